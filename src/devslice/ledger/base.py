"""What every ledger backend offers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from devslice.slices.model import Change, LedgerState
from devslice.slices.operations import Transition

T = TypeVar("T")

# Identifies documents devslice wrote; anything else is reported, never overwritten.
API_VERSION = "devslice.dev/v1alpha1"
KIND = "Ledger"


class Ledger(ABC):
    """Holds the team's slices. ``transact`` applies a pure operation atomically."""

    location: str  # where it lives, for messages; never contains a secret

    @abstractmethod
    def read(self) -> LedgerState:
        """The current slices (a fact: reads, never writes)."""

    @abstractmethod
    def transact(self, operation: Callable[[LedgerState], Transition[T]]) -> Transition[T]:
        """Run ``operation`` on the current state and store its result atomically.

        The operation may run more than once (optimistic backends retry on conflict), so it
        must be pure. Errors it raises abort the change and reach the caller unchanged.
        """

    @abstractmethod
    def history(self, handle: str | None = None, limit: int = 50) -> list[Change]:
        """The newest changes, newest last."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
