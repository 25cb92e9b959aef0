"""Actions and plans: what would change, why, and the exact calls it would make."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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


def make_plan(resources: Sequence[Resource]) -> Plan:
    return Plan(tuple(a for r in order(resources) for a in r.plan()))
