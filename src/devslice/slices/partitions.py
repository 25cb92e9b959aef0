"""The pool of Event Hubs partitions that slices are carved from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from devslice.errors import CapacityError
from devslice.slices.model import PartitionLease, Slice


@dataclass(frozen=True)
class NamespaceCapacity:
    name: str
    partitions: int
    reserved: frozenset[int]


@dataclass(frozen=True)
class PartitionPool:
    """Namespaces in the order they fill up; every event hub of a namespace has ``partitions``."""

    namespaces: tuple[NamespaceCapacity, ...]

    def held(self, slices: Iterable[Slice]) -> dict[str, dict[int, str]]:
        """namespace -> partition -> handle, for the given slices."""
        out: dict[str, dict[int, str]] = {ns.name: {} for ns in self.namespaces}
        for s in slices:
            taken = out.setdefault(s.event_hubs.namespace, {})
            for p in s.event_hubs.partitions:
                taken[p] = s.handle
        return out

    def free(self, slices: Iterable[Slice]) -> dict[str, list[int]]:
        held = self.held(slices)
        return {
            ns.name: [
                p for p in range(ns.partitions) if p not in ns.reserved and p not in held[ns.name]
            ]
            for ns in self.namespaces
        }

    def allocate(self, count: int, slices: Iterable[Slice]) -> PartitionLease:
        """The lowest free partitions of the first namespace with ``count`` free.

        A slice's partitions lie in one namespace, so that one connection string serves it.
        """
        free = self.free(slices)
        for ns in self.namespaces:
            if len(free[ns.name]) >= count:
                return PartitionLease(namespace=ns.name, partitions=tuple(free[ns.name][:count]))
        total = sum(len(v) for v in free.values())
        per_ns = ", ".join(f"{name} has {len(v)}" for name, v in free.items())
        largest = max((len(v) for v in free.values()), default=0)
        raise CapacityError(
            f"no Event Hubs namespace has {count} free partition{'s' * (count != 1)} "
            f"({per_ns} free; {total} free in all, at most {largest} in one namespace)",
            hint="add another namespace under eventHubs.namespaces in devslice.yaml, "
            "release slices nobody uses (`devslice slice list`, `devslice slice gc`), "
            "or ask for fewer partitions with --partitions",
        )
