"""Actions and plans: what would change, why, and the exact calls it would make.

The types every resource module uses; running and gathering live in ``devslice.engine``
(resources never import the engine, so the engine may import every resource).

A resource that reads the world does it in ``read(reader)``, through the ``devslice.facts``
readers, and returns its facts; ``plan(facts)`` is then a function of the desired state and
those facts with no I/O (table tests hand in facts and check the actions). The engine's
``gather`` reads every resource's facts at once, sharing one ``facts.world.Reader``, so a
command lists each system's state once (one ``k3d registry list``, one Kubernetes LIST per
kind). ``plan()`` without facts reads them itself, for callers with a single resource.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard

from devslice.facts.world import Reader

NOOP = "noop"


@dataclass(frozen=True)
class Action:
    """One change to the world, or a no-op that says why nothing changes.

    ``calls`` are the exact commands and API calls, secrets masked, so the plan shows what
    will run. ``execute`` does it; the plan never calls it.
    """

    resource: str
    verb: str  # create | start | recreate | build | push | apply | prune | ... | noop
    reason: str
    calls: tuple[str, ...] = ()
    execute: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @property
    def changes(self) -> bool:
        return self.verb != NOOP

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "verb": self.verb, "reason": self.reason,
                "calls": list(self.calls)}


def noop(resource: str, reason: str) -> Action:
    return Action(resource, NOOP, reason)


class Resource(Protocol):
    """Something devslice keeps in a desired state."""

    key: str  # unique, e.g. "registry", "cluster", "image:orders", "manifests:platform"
    after: tuple[str, ...]  # keys of resources that must be ready first

    def plan(self) -> list[Action]:
        """Read facts, compare with the desired state, return actions (never execute)."""


class ReadingResource(Resource, Protocol):
    """A resource whose facts are gathered apart from its plan (the k3d registry and
    cluster, images, host DNS, the slice's config, manifest layers).

    It may also define ``plan_holds(facts, changed) -> bool``: whether the plan from
    ``facts``, read as the command began, may be acted on after waiting for its dependencies
    without reading them again (``changed``: the keys of those that changed something). Only
    when nothing they changed shows in ``facts`` and every change the plan makes is refused by
    the system if the facts no longer hold; the engine then re-reads only if acting fails."""

    def read(self, reader: Reader) -> Any:
        """Gather the facts the plan needs through ``devslice.facts`` readers."""

    def plan(self, facts: Any = None) -> list[Action]:
        """Compare the desired state with ``facts`` (what ``read`` returned; read now when
        None), return actions (never execute, never read)."""


def reads(resource: Resource) -> TypeGuard[ReadingResource]:
    """Whether the resource gathers its facts through ``read(reader)``."""
    return callable(getattr(resource, "read", None))


@dataclass(frozen=True)
class Gathered:
    """One resource's facts, or the error reading them raised (raised when it plans)."""

    facts: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.changes]

    @property
    def empty(self) -> bool:
        return not self.changes

    def as_dict(self) -> dict[str, Any]:
        return {"changes": len(self.changes), "actions": [a.as_dict() for a in self.actions]}

    def render(self) -> str:
        """Text for `devslice plan`: one line per action, its calls indented under it."""
        lines = []
        for a in self.actions:
            mark = "=" if not a.changes else "+"
            lines.append(f"{mark} {a.resource}: {a.verb} ({a.reason})" if a.changes
                         else f"{mark} {a.resource}: {a.reason}")
            lines.extend(f"    $ {c}" for c in a.calls)
        n = len(self.changes)
        lines.append(f"{n} change{'s' * (n != 1)}" if n else "nothing to do")
        return "\n".join(lines) + "\n"


def order(resources: Sequence[Resource]) -> list[Resource]:
    """Resources in an order that respects ``after`` (stable otherwise)."""
    by_key = {r.key: r for r in resources}
    for r in resources:
        missing = [k for k in r.after if k not in by_key]
        if missing:
            raise ValueError(f"{r.key} waits for unknown resource {missing[0]}")
    done: list[Resource] = []
    seen: set[str] = set()
    visiting: set[str] = set()

    def visit(r: Resource) -> None:
        if r.key in seen:
            return
        if r.key in visiting:
            raise ValueError(f"resources wait for each other in a cycle through {r.key}")
        visiting.add(r.key)
        for k in r.after:
            visit(by_key[k])
        visiting.discard(r.key)
        seen.add(r.key)
        done.append(r)

    for r in resources:
        visit(r)
    return done
