"""What every ledger backend offers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from devslice.errors import LedgerCorrupt
from devslice.slices.model import Change, LedgerState
from devslice.slices.operations import Transition

if TYPE_CHECKING:
    from devslice.ledger.records import Problem

T = TypeVar("T")

# Identifies documents devslice wrote; anything else is reported, never overwritten.
API_VERSION = "devslice.dev/v1alpha1"
KIND = "Ledger"
CHECK_HINT = "`devslice ledger check` lists every problem; docs/ledger.md says how to fix them"


class Ledger(ABC):
    """Holds the team's slices. ``transact`` applies a pure operation atomically."""

    location: str  # where it lives, for messages; never contains a secret
    shared: bool  # whether other machines see it (the team's blob) or only this one (a file)
    history_kept: int | None = None  # the newest lines kept (None: all)

    @abstractmethod
    def read(self) -> LedgerState:
        """The current slices (a fact: reads, never writes).

        Every record is checked first (:mod:`devslice.ledger.records`); a ledger holding an
        invalid one raises :class:`LedgerCorrupt` naming it, and nothing acts on it.
        """

    @abstractmethod
    def transact(self, operation: Callable[[LedgerState], Transition[T]]) -> Transition[T]:
        """Run ``operation`` on the current state and store its result atomically.

        The operation may run more than once (optimistic backends retry on conflict), so it
        must be pure. Errors it raises abort the change and reach the caller unchanged.
        """

    @abstractmethod
    def history(self, handle: str | None = None, limit: int | None = 50) -> list[Change]:
        """The newest changes, newest last (``limit=None``: all of them)."""

    @abstractmethod
    def check(self) -> list[Problem]:
        """Everything wrong with the ledger (identity, integrity, records); changes nothing.

        Raises only when the ledger cannot be reached at all.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def invalid(self, problems: list[Problem]) -> LedgerCorrupt:
        """The error for a ledger holding records devslice will not act on."""
        from devslice.ledger.records import summary  # lazy: pydantic, only for this error

        return LedgerCorrupt(
            f"the ledger {self.location} holds records devslice will not act on: "
            f"{summary(problems)}",
            hint=f"nothing was changed, and devslice never overwrites these records; {CHECK_HINT}",
        )
