"""The library API: a loaded devslice.yaml with its ledger. The CLI is a thin layer on this.

    from devslice.project import Project
    project = Project.load()             # finds devslice.yaml
    s, created = project.claim("ab")
    for v in project.variables(s.handle):
        print(v.name, v.value)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from devslice import identity
from devslice.config.checks import handle_rule
from devslice.config.load import load_config
from devslice.config.local import load_local
from devslice.errors import InvalidHandle, SliceError, SliceNotFound
from devslice.ledger import open_ledger
from devslice.ledger.reach import reach_issue
from devslice.slices import operations as ops
from devslice.slices.model import LedgerState, Slice, SliceKind
from devslice.slices.names import HandleRule
from devslice.slices.partitions import NamespaceCapacity, PartitionPool

if TYPE_CHECKING:
    from devslice.config.local import LocalOverrides
    from devslice.config.model import Environment
    from devslice.contract.variables import Overrides, Variable
    from devslice.ledger.base import Ledger

T = TypeVar("T")

CURRENT_FILE = ".devslice/current-slice"
UNSET = object()


def _not_empty(handle: str) -> str:
    """An explicitly empty handle (``release "$H"`` with H unset) is a mistake, never "my
    slice" (issue 12)."""
    if not handle.strip():
        raise InvalidHandle("the slice handle is empty",
                            hint="name a slice, or leave the handle out to mean yours")
    return handle


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PartitionCell:
    partition: int
    state: str  # free | reserved | held
    handle: str | None = None


@dataclass(frozen=True)
class NamespaceMap:
    name: str
    partitions: int
    cells: tuple[PartitionCell, ...]
    configured: bool  # False: slices hold partitions of a namespace the config no longer lists

    @property
    def free(self) -> int:
        return sum(c.state == "free" for c in self.cells)


class Project:
    def __init__(
        self,
        env: Environment,
        config_path: Path,
        ledger: Ledger | None = None,
        clock: Callable[[], datetime] = utcnow,
        actor: str | None = None,
    ) -> None:
        self.env = env
        self.config_path = Path(config_path)
        self.base_dir = self.config_path.resolve().parent
        self._ledger = ledger
        self.clock = clock
        self.actor = actor or identity.actor()

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, **kwargs: object) -> Project:
        env, found = load_config(path)
        return cls(env, found, **kwargs)  # type: ignore[arg-type]

    # -- parts ------------------------------------------------------------------------------
    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = open_ledger(self.env, self.base_dir)
        return self._ledger

    @cached_property
    def pool(self) -> PartitionPool:
        return PartitionPool(tuple(
            NamespaceCapacity(ns.name, ns.partitions, frozenset(ns.reserved))
            for ns in self.env.event_hubs.namespaces
        ))

    @cached_property
    def handle_rule(self) -> HandleRule:
        return handle_rule(self.env)

    def default_ttl(self, kind: SliceKind) -> timedelta | None:
        ttl: timedelta | None = getattr(self.env.slices.ttl, kind.value)
        return ttl

    # -- ledger operations ----------------------------------------------------------------
    def claim(
        self,
        handle: str | None = None,
        kind: SliceKind = SliceKind.developer,
        partitions: int | None = None,
        ttl: timedelta | object | None = UNSET,
        owner: str | None = None,
    ) -> tuple[Slice, bool]:
        """Claim a slice (or return the one the owner already holds); returns (slice, new)."""
        if handle is not None:
            _not_empty(handle)

        refused = reach_issue(self.env, self.config_path, self.ledger)
        if refused is not None:
            raise refused
        request = ops.ClaimRequest(
            owner=owner or identity.owner(),
            handle=handle,
            kind=kind,
            partitions=partitions or self.env.event_hubs.partitions_per_slice,
            ttl=self.default_ttl(kind) if ttl is UNSET else ttl,  # type: ignore[arg-type]
        )
        now = self.clock()
        result = self.ledger.transact(
            lambda state: ops.claim(state, request, self.pool, self.handle_rule, now, self.actor)
        )
        assert result.value is not None
        s, created = result.value
        if created and s.claim is not None:  # issue 11: where the new holder's view begins
            from devslice.services.fences import fence_new_slice  # lazy: docker SDK

            s, _ = fence_new_slice(self, s)
        return s, created

    def release(self, handle: str, force: bool = False, owner: str | None = None) -> Slice:
        who = owner or identity.owner()
        now = self.clock()
        result = self.ledger.transact(
            lambda state: ops.release(state, handle, who, now, self.actor, force)
        )
        assert result.value is not None
        return result.value

    def renew(self, handle: str, ttl: timedelta | None = None, owner: str | None = None,
              force: bool = False) -> Slice:
        who = owner or identity.owner()
        now = self.clock()
        result = self.ledger.transact(
            lambda state: ops.renew(state, handle, now, self.actor, ttl, owner=who, force=force))
        assert result.value is not None
        return result.value

    def gc(self, dry_run: bool = False) -> list[Slice]:
        now = self.clock()
        if dry_run:
            return [s for s in self.ledger.read().slices.values() if s.expired(now)]
        result = self.ledger.transact(lambda state: ops.collect(state, now, self.actor))
        return result.value or []

    def slices(self) -> list[Slice]:
        return sorted(self.ledger.read().slices.values(), key=lambda s: s.handle)

    def get(self, handle: str, state: LedgerState | None = None) -> Slice:
        """Slice ``handle``, from ``state`` when given (a command reads the ledger once)."""
        return ops.get_slice(state or self.ledger.read(), handle)

    # -- the current slice ------------------------------------------------------------------
    def current_handle(self, explicit: str | None = None, state: LedgerState | None = None) -> str:
        """Which slice a command means: --slice, $DEVSLICE_SLICE, devslice.local.yaml,
        the last one claimed here, or the only one the owner holds."""
        if explicit is not None:
            return _not_empty(explicit)
        if os.environ.get("DEVSLICE_SLICE"):
            return os.environ["DEVSLICE_SLICE"]
        local, _ = self.local()
        if local is not None and local.slice:
            return local.slice
        remembered = self.current_handle_marker()
        if remembered:
            return remembered
        me = identity.owner()
        mine = [s.handle for s in (state or self.ledger.read()).slices.values() if s.owner == me]
        if len(mine) == 1:
            return mine[0]
        raise SliceNotFound(
            "no slice chosen" + (f": {me} holds {', '.join(mine)}" if mine else ""),
            hint="pass --slice HANDLE, or claim one with `devslice slice claim`",
        )

    def current_handle_marker(self) -> str | None:
        marker = self.base_dir / CURRENT_FILE
        return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None

    def remember(self, handle: str | None) -> None:
        marker = self.base_dir / CURRENT_FILE
        if handle is None:
            marker.unlink(missing_ok=True)
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(handle + "\n", encoding="utf-8")

    def local(self) -> tuple[LocalOverrides | None, Path]:
        """The developer's devslice.local.yaml beside devslice.yaml, and its path."""
        return load_local(self.base_dir)

    # -- views ------------------------------------------------------------------------------
    def variables(self, handle: str, environ: dict[str, str] | None = None,
                  secrets: bool = True, overrides: bool = True,
                  state: LedgerState | None = None) -> list[Variable]:
        """The slice's contract; ``secrets=False`` leaves secrets out (and unresolved),
        ``overrides=False`` gives it as the ledger and devslice.yaml alone make it; ``state``
        is the ledger as the command read it (read here when not given)."""
        from devslice.contract.variables import slice_variables  # lazy: docker SDK

        s = self.get(handle, state)
        if s.expired(self.clock()):
            # Its partitions go to the next claimer once collected: using them would mix
            # this developer's events with someone else's.
            raise SliceError(
                f"slice {handle!r} expired at {s.expires_at:%Y-%m-%d %H:%M}Z",
                hint=f"renew it (`devslice slice renew {handle}`) or claim a new one")
        mine = self.overrides(handle) if overrides else None
        return slice_variables(self.env, s, self.base_dir, mine.env if mine else None,
                               mine.source if mine else "", environ, secrets,
                               host_address=self.host_address())

    def host_address(self) -> str | None:
        """This machine as k3d pods reach it: the gateway of the cluster's network; None
        when the runtime is kube or local (auto may still become k3d). Local: no pods, and
        no need to ask a Docker engine for its networks (issue 17)."""
        if self.env.cluster.runtime in ("kube", "local"):
            return None
        # lazy: resources.k3d brings the k3d adapter; runtime kube and local never need it
        from devslice.resources.k3d import cluster_subnet, host_gateway

        return host_gateway(cluster_subnet(self.env.cluster, self.base_dir))

    def overrides(self, handle: str) -> Overrides:
        """The personal overrides slice ``handle`` gets: those of devslice.local.yaml when it
        names this slice, none otherwise."""
        from devslice.contract.variables import overrides_for  # lazy: docker SDK

        return overrides_for(*self.local(), handle)

    def capacity(self, state: LedgerState | None = None) -> list[NamespaceMap]:
        state = state or self.ledger.read()
        held = self.pool.held(state.slices.values())
        out = []
        for ns in self.pool.namespaces:
            cells = tuple(
                PartitionCell(p, "reserved") if p in ns.reserved
                else PartitionCell(p, "held", held[ns.name][p]) if p in held[ns.name]
                else PartitionCell(p, "free")
                for p in range(ns.partitions)
            )
            out.append(NamespaceMap(ns.name, ns.partitions, cells, True))
        configured = {ns.name for ns in self.pool.namespaces}
        for name in sorted(set(held) - configured):
            cells = tuple(PartitionCell(p, "held", h) for p, h in sorted(held[name].items()))
            out.append(NamespaceMap(name, len(cells), cells, False))
        return out
