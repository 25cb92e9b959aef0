"""A first-come, first-served queue of writers for one file, across processes.

SQLite's own busy handler retries with growing sleeps (up to 100 ms), so under a storm the
writers that just arrived keep beating the ones that have waited longest: issue 12 measured
one operation waiting 9.5-17.9 s. This queue hands out tickets instead, with POSIX record
locks on a lock file beside the ledger:

- byte 0 guards the ticket counter (the file's first 8 bytes);
- a writer takes ticket ``t`` and locks byte ``BASE + t`` while it still holds byte 0, so its
  place is visible before anyone can take the next ticket;
- it may write once no byte in ``[BASE, BASE + t)`` is locked: everyone before it has
  written or gone (a process that dies releases its locks, so a crash never blocks the queue).

Waiting polls that range without blocking, so a stopped writer (Ctrl-Z) ends in a clear
timeout instead of a hang; the order does not depend on who polls first. POSIX locks belong
to a process, so threads of one process take a thread lock first and then one ticket each.
Where ``fcntl`` is missing (Windows), writers fall back to SQLite's busy handler.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

BASE = 1 << 20  # ticket bytes start here, clear of the counter
COUNTER = struct.Struct("<Q")
POLL = (0.0002, 0.002)  # first and longest pause between looks at the queue

_threads: dict[str, threading.Lock] = {}
_threads_guard = threading.Lock()


class QueueTimeout(Exception):
    """The writers ahead did not finish in time."""

    def __init__(self, ahead: int) -> None:
        super().__init__(f"{ahead} writer(s) still ahead")
        self.ahead = ahead


def _thread_lock(path: Path) -> threading.Lock:
    with _threads_guard:
        return _threads.setdefault(str(path.resolve()), threading.Lock())


class WriterQueue:
    """``with WriterQueue(path).turn(timeout):`` runs the block when its turn comes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def tickets(self) -> int:
        """How many tickets were ever handed out (for tests watching from another process:
        closing any descriptor of the file drops this process's POSIX locks on it)."""
        try:
            data = self.path.read_bytes()[: COUNTER.size]
        except FileNotFoundError:
            return 0
        return COUNTER.unpack(data)[0] if len(data) == COUNTER.size else 0

    @contextmanager
    def turn(self, timeout: float) -> Iterator[int]:
        """Wait for every writer that came earlier; yields this writer's ticket."""
        deadline = time.monotonic() + timeout
        local = _thread_lock(self.path)
        if not local.acquire(timeout=max(timeout, 0.001)):
            raise QueueTimeout(1)
        try:
            if fcntl is None:  # pragma: no cover - Windows
                yield -1
                return
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                ticket = self._take(fd)
                try:
                    self._wait(fd, ticket, deadline)
                    yield ticket
                finally:
                    fcntl.lockf(fd, fcntl.LOCK_UN, ticket + 1, BASE)
            finally:
                os.close(fd)
        finally:
            local.release()

    def _take(self, fd: int) -> int:
        assert fcntl is not None
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)  # held for a read and a write: microseconds
        try:
            data = os.pread(fd, COUNTER.size, 0)
            ticket = COUNTER.unpack(data)[0] if len(data) == COUNTER.size else 0
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, BASE + ticket)
            os.pwrite(fd, COUNTER.pack(ticket + 1), 0)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)
        return ticket

    def _wait(self, fd: int, ticket: int, deadline: float) -> None:
        assert fcntl is not None
        if ticket == 0:
            return
        pause = POLL[0]
        while True:
            try:
                # Locking the range succeeds only when nobody holds a byte in it. Our own
                # byte lies just past it, so releasing the range leaves our place held.
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, ticket, BASE)
            except OSError:
                if time.monotonic() > deadline:
                    raise QueueTimeout(self._ahead(fd, ticket)) from None
                time.sleep(pause)
                pause = min(pause * 2, POLL[1])
                continue
            fcntl.lockf(fd, fcntl.LOCK_UN, ticket, BASE)
            return

    def _ahead(self, fd: int, ticket: int) -> int:
        """How many earlier tickets are still held (a count for the timeout message)."""
        assert fcntl is not None
        ahead = 0
        for t in range(max(0, ticket - 64), ticket):
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, BASE + t)
            except OSError:
                ahead += 1
                continue
            with suppress(OSError):
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, BASE + t)
        return ahead
