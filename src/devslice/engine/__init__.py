"""The environment engine: facts, resources, plan, apply (after pyinfra and ctlptl).

- A *fact* reads the world and never changes it (adapters' ``*_list``/``*_get`` calls).
- A *resource* compares desired state with facts and returns :class:`Action` s, each with its
  reason; it never executes anything itself.
- The *plan* is the list of actions; ``devslice plan`` prints it, ``devslice up`` runs it.
- The executor re-plans each resource from fresh facts just before acting on it, and runs
  independent resources in parallel. Concurrency lives there and nowhere else.
"""

from devslice.engine.executor import Event, Executor, StepReport
from devslice.engine.plan import Action, Plan, Resource

__all__ = ["Action", "Event", "Executor", "Plan", "Resource", "StepReport"]
