"""The pool of Event Hubs partitions that slices are carved from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

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

    def allocate(self, count: int, slices: Iterable[Slice],
                 released: Mapping[str, Mapping[int, datetime]] | None = None
                 ) -> PartitionLease:
        """``count`` free partitions of the first namespace with that many free: those never
        used first, then those released longest ago (``released``: namespace -> partition ->
        when it was last given back), lowest ids first among equals.

        A partition's next holder must not see its previous holder's events (issue 11); the
        start fence guarantees that, and handing out the partition that rested longest keeps
        the old events fewer (retention may have dropped them) and a lingering consumer of
        the previous holder less likely.

        A slice's partitions lie in one namespace, so that one connection string serves it.
        """
        free = self.free(slices)
        released = released or {}
        for ns in self.namespaces:
            if len(free[ns.name]) >= count:
                when = released.get(ns.name, {})
                rested = sorted(free[ns.name], key=lambda p: (p in when, when.get(p), p))
                return PartitionLease(namespace=ns.name, partitions=tuple(sorted(rested[:count])))
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
