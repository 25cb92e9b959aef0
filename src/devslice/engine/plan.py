"""Plans: the types live in :mod:`devslice.resources.plan` (resources import them, never
the engine); :func:`make_plan` gathers every resource's facts once and plans them in order."""

from __future__ import annotations

from collections.abc import Sequence

from devslice.engine.executor import gather, plan_of
from devslice.resources.plan import (
    NOOP,
    Action,
    Gathered,
    Plan,
    ReadingResource,
    Resource,
    noop,
    order,
    reads,
)

__all__ = ["NOOP", "Action", "Gathered", "Plan", "ReadingResource", "Resource", "gather",
           "make_plan", "noop", "order", "plan_of", "reads"]


def make_plan(resources: Sequence[Resource]) -> Plan:
    """The plan of ``resources``, from facts gathered once for all of them."""
    ordered = order(resources)
    facts = gather(ordered)
    return Plan(tuple(a for r in ordered for a in plan_of(r, facts.get(r.key))))
