"""The embedded ledger: one SQLite file, safe for many processes on one machine.

A claim runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock before
reading, so concurrent claims serialise instead of racing. The ``partitions`` table's primary
key makes a double allocation impossible even if the Python rules had a bug.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from devslice.errors import LedgerBusy, LedgerCorrupt, LedgerUnreachable
from devslice.ledger.base import API_VERSION, KIND, Ledger
from devslice.slices.model import Change, LedgerState, Slice
from devslice.slices.operations import Transition

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slices (handle TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    namespace TEXT NOT NULL,
    partition INTEGER NOT NULL,
    handle TEXT NOT NULL REFERENCES slices(handle) ON DELETE CASCADE,
    PRIMARY KEY (namespace, partition)
);
CREATE TABLE IF NOT EXISTS released (
    namespace TEXT NOT NULL, partition INTEGER NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (namespace, partition)
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    handle TEXT NOT NULL, detail TEXT NOT NULL
);
"""


class SqliteLedger(Ledger):
    def __init__(self, path: Path, team: str, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.team = team
        self.location = f"sqlite:{self.path}"
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerUnreachable(
                f"cannot open the ledger at {self.path}: {exc}",
                hint="check that the folder exists and is writable, or set ledger.path",
            ) from exc
        try:
            self._prepare(conn)
        except sqlite3.OperationalError as exc:
            conn.close()
            if _locked(exc):
                raise LedgerBusy(
                    f"the ledger at {self.path} stayed locked for {self.busy_timeout:.0f}s",
                    hint="another devslice process holds it; try again",
                ) from exc
            raise LedgerUnreachable(
                f"cannot use the ledger at {self.path}: {exc}",
                hint="check that the file and its folder are writable, or set ledger.path",
            ) from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise LedgerCorrupt(
                f"{self.path} is not a devslice ledger ({exc})",
                hint="point ledger.path at another file; devslice never overwrites this one",
            ) from exc
        self._conn = conn
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL mode, tables and identity, retried while other processes hold the lock.

        Switching a new file to WAL needs an exclusive lock and SQLite answers "database is
        locked" at once instead of waiting for the busy timeout, so when many processes open
        a new ledger together (16 CI jobs, say) we wait here ourselves.
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(SCHEMA)
                self._check_identity(conn)
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def _check_identity(self, conn: sqlite3.Connection) -> None:
        """Stamp a new file; refuse a file that another tool or team wrote."""
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        expected = {"apiVersion": API_VERSION, "kind": KIND, "team": self.team}
        if not meta:
            conn.execute("BEGIN IMMEDIATE")
            if not conn.execute("SELECT 1 FROM meta").fetchone():
                conn.executemany("INSERT INTO meta VALUES (?, ?)", expected.items())
            conn.execute("COMMIT")
            return
        for key, value in expected.items():
            if meta.get(key) != value:
                raise LedgerCorrupt(
                    f"{self.path} holds {key} {meta.get(key)!r}, expected {value!r}; it belongs "
                    f"to another {'team' if key == 'team' else 'tool or version'}",
                    hint="point ledger.path at another file; devslice never overwrites this one",
                )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- reading ------------------------------------------------------------------------
    def _load(self, conn: sqlite3.Connection) -> LedgerState:
        slices: dict[str, Slice] = {}
        for handle, doc in conn.execute("SELECT handle, doc FROM slices ORDER BY handle"):
            try:
                slices[handle] = Slice.model_validate_json(doc)
            except ValueError as exc:
                raise LedgerCorrupt(
                    f"slice {handle!r} in {self.path} is unreadable: {exc.__class__.__name__}",
                    hint="inspect the file with sqlite3; devslice will not overwrite it",
                ) from exc
        released: dict[str, dict[int, str]] = {}  # when partitions were given back (issue 11)
        for ns, partition, at in conn.execute("SELECT namespace, partition, at FROM released"):
            released.setdefault(ns, {})[partition] = at
        return LedgerState.model_validate({"slices": slices, "released": released})

    def read(self) -> LedgerState:
        if self._conn is None and not self.path.exists():
            return LedgerState()  # a fact never writes: no file yet means no slices yet
        conn = self._connect()
        try:
            return self._load(conn)
        except sqlite3.OperationalError as exc:
            raise LedgerBusy(f"cannot read {self.path}: {exc}") from exc

    def history(self, handle: str | None = None, limit: int = 50) -> list[Change]:
        if self._conn is None and not self.path.exists():
            return []
        conn = self._connect()
        query = "SELECT at, actor, action, handle, detail FROM history"
        args: tuple[object, ...] = ()
        if handle:
            query += " WHERE handle = ?"
            args = (handle,)
        rows = conn.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        keys = ("at", "actor", "action", "handle", "detail")
        return [Change.model_validate(dict(zip(keys, r, strict=True))) for r in reversed(rows)]

    # -- writing ------------------------------------------------------------------------
    def transact(self, operation: Callable[[LedgerState], Transition[T]]) -> Transition[T]:
        conn = self._connect()
        started = time.monotonic()
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if not _locked(exc):  # read-only file, I/O error: waiting will not help
                    raise LedgerUnreachable(f"cannot write the ledger at {self.path}: {exc}",
                                            hint="check that the file is writable") from exc
                if time.monotonic() - started > self.busy_timeout:
                    raise LedgerBusy(
                        f"the ledger at {self.path} stayed locked for {self.busy_timeout:.0f}s",
                        hint="another devslice process holds it; try again",
                    ) from exc
                time.sleep(random.uniform(0.005, 0.05))
        try:
            before = self._load(conn)
            result = operation(before)
            self._store(conn, before, result)
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            # The partitions table's key caught a double allocation the rules let through.
            raise LedgerCorrupt(
                f"the ledger at {self.path} refused a change that would give a partition to "
                f"two slices ({exc})",
                hint="nothing was changed; please report this as a devslice bug",
            ) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    def _store(self, conn: sqlite3.Connection, before: LedgerState, result: Transition[T]) -> None:
        after = result.state
        for handle in before.slices.keys() - after.slices.keys():
            conn.execute("DELETE FROM slices WHERE handle = ?", (handle,))
        for handle, s in after.slices.items():
            if before.slices.get(handle) == s:
                continue
            conn.execute("DELETE FROM slices WHERE handle = ?", (handle,))
            conn.execute("INSERT INTO slices VALUES (?, ?)", (handle, s.model_dump_json()))
            conn.executemany(
                "INSERT INTO partitions VALUES (?, ?, ?)",
                [(s.event_hubs.namespace, p, handle) for p in s.event_hubs.partitions],
            )
        conn.executemany("INSERT OR REPLACE INTO released VALUES (?, ?, ?)", [
            (ns, p, at.isoformat()) for ns, parts in after.released.items()
            for p, at in parts.items() if before.released.get(ns, {}).get(p) != at])
        conn.executemany(
            "INSERT INTO history (at, actor, action, handle, detail) VALUES (?, ?, ?, ?, ?)",
            [(c.at.isoformat(), c.actor, c.action, c.handle, c.detail) for c in result.changes],
        )


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)
