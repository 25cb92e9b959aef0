"""Facts read once per gathering (after pyinfra's per-run fact cache).

A :class:`Reader` hands each distinct read of the world to the first resource that asks for
it and makes every other resource asking for the same read wait for that one answer (or
error), so a command that plans a registry, a cluster and three manifest layers lists k3d's
registries once and each Kubernetes kind once. The engine makes one Reader for the first
gathering of a command and a fresh one whenever a resource must re-read before it acts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class _Entry:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class Reader:
    """Memoised reads, safe to share between threads: one call per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        self.reads: list[Hashable] = []  # the keys actually read, in order (tests, benchmarks)

    def once(self, key: Hashable, read: Callable[[], T]) -> T:
        """``read()``'s answer for ``key``; only the first caller of a key calls ``read``."""
        with self._lock:
            entry = self._entries.get(key)
            first = entry is None
            if entry is None:
                entry = self._entries[key] = _Entry()
                self.reads.append(key)
        if first:
            try:
                entry.value = read()
            except BaseException as exc:  # shared with every waiter, raised to each
                entry.error = exc
            finally:
                entry.done.set()
        else:
            entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.value
