"""The Azure Blob ledger's pause after a lost race (issue 17): decorrelated jitter, capped."""

from __future__ import annotations

import random

from devslice.ledger.azureblob import BACKOFF_BASE, BACKOFF_CAP, backoff


def test_pauses_grow_while_losing_up_to_the_cap() -> None:
    pauses, pause = [], 0.0
    for _ in range(8):
        pause = backoff(pause, lambda _low, high: high)  # the longest draw each time
        pauses.append(pause)
    assert pauses[:3] == [BACKOFF_BASE, 3 * BACKOFF_BASE, 9 * BACKOFF_BASE]
    assert pauses[-1] == BACKOFF_CAP and max(pauses) == BACKOFF_CAP


def test_each_pause_is_drawn_afresh_from_the_base() -> None:
    """A writer that lost often is not held at the cap: its next pause may be short again."""
    rng = random.Random(7)
    pause, seen = BACKOFF_CAP, []
    for _ in range(200):
        pause = backoff(pause, rng.uniform)
        seen.append(pause)
    assert min(seen) < 4 * BACKOFF_BASE
    assert all(BACKOFF_BASE <= p <= BACKOFF_CAP for p in seen)
