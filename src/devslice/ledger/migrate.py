"""Copy one ledger into another: a machine's SQLite ledger into the team's Azure Blob ledger.

The whole :class:`LedgerState` travels as a model (slices and any other field the state
has), with the history, in one change of the target; the source is only read. A target that
already holds other slices is refused: merging two teams' claims could give one partition to
two slices. Running it again after it worked changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from devslice.errors import LedgerError
from devslice.ledger.base import Ledger
from devslice.slices.model import Change, LedgerState
from devslice.slices.operations import Transition


@dataclass(frozen=True)
class Migration:
    source: str
    target: str
    slices: tuple[str, ...]  # handles copied (or found already there)
    history: int  # history lines copied
    dropped: int  # of those, the oldest the target does not keep
    already: bool  # the target held exactly these slices: nothing was written


def migrate(source: Ledger, target: Ledger, now: datetime, actor: str) -> Migration:
    if source.location == target.location:
        raise LedgerError(f"the source and the target are the same ledger ({source.location})",
                          hint="name another target")
    state = source.read().model_copy(update={"history": ()})
    history = source.history(limit=None)
    note = Change(at=now, actor=actor, action="migrate", handle="",
                  detail=f"{len(state.slices)} slice(s) and {len(history)} history line(s) "
                  f"copied from {source.location}")

    def copy(current: LedgerState) -> Transition[bool]:
        if current.model_copy(update={"history": ()}) == state:
            return Transition(current, [], True)  # done before: nothing to write
        if current.slices:
            held = ", ".join(sorted(current.slices)[:8])
            raise LedgerError(
                f"the target {target.location} already holds other slices ({held}); "
                f"nothing was copied",
                hint="migrate into an empty ledger (another ledger.blob name), or release "
                "those slices first; merging two ledgers could give one partition to two "
                "slices",
            )
        return Transition(state, [*history, note], False)

    result = target.transact(copy)
    kept = target.history_kept
    written = len(history) + 1
    return Migration(
        source=source.location, target=target.location, slices=tuple(sorted(state.slices)),
        history=len(history), dropped=max(0, written - kept) if kept and not result.value else 0,
        already=bool(result.value),
    )
