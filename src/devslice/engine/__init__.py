"""The environment engine: facts, resources, plan, apply (after pyinfra and ctlptl).

- A *fact* reads the world and never changes it: the ``devslice.facts`` readers, each read
  made once per gathering through a shared :class:`~devslice.facts.world.Reader`.
- A *resource* gathers its facts in ``read(reader)`` and compares them with the desired state
  in ``plan(facts)``, returning :class:`Action` s, each with its reason, with no I/O; it never
  executes anything itself (types in :mod:`devslice.resources.plan`).
- The *plan* is the list of actions; ``devslice plan`` prints it, ``devslice up`` runs it.
- The executor gathers every resource's facts at once, plans each from them, and reads a
  resource's own facts again (only its own) when its dependencies changed something or when
  it waited for them and is about to act; independent resources run in parallel.
  Concurrency lives there and nowhere else.
"""

from devslice.engine.executor import Event, Executor, StepReport
from devslice.engine.plan import Action, Plan, Resource

__all__ = ["Action", "Event", "Executor", "Plan", "Resource", "StepReport"]
