"""What the runtime SDK and the embedded hub share, below both (so the hub never imports the
SDK): a lease's record and the embedded hub's default retention."""

from __future__ import annotations

import time
from dataclasses import dataclass

DEFAULT_RETENTION = 86400.0  # seconds: the embedded hub's default, Event Hubs' shortest


@dataclass(frozen=True)
class LeaseInfo:
    """A live lease: who holds it and until when (epoch milliseconds)."""

    name: str
    holder: str
    expires_ms: int

    @property
    def seconds_left(self) -> float:
        return max(0.0, self.expires_ms / 1000 - time.time())
