"""The embedded ledger: one SQLite file, safe for many processes on one machine.

A change runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock before
reading, so concurrent claims serialise instead of racing; writers line up in a
first-come, first-served queue (:mod:`devslice.ledger.queue`) so none of them starves. The
``partitions`` table's primary key makes a double allocation impossible even if the Python
rules had a bug.

The file is trusted only once it proves to be a devslice ledger (issue 12): a missing or
empty file is a new ledger; anything else must already carry devslice's ``meta`` rows, or it
is reported and left exactly as it was (no tables, no WAL switch, even for a read). Before
the first write of a connection ``PRAGMA quick_check`` must pass, and every SQLite error
becomes one :class:`LedgerError` naming the file and the way out.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from devslice.errors import LedgerBusy, LedgerCorrupt, LedgerError, LedgerUnreachable
from devslice.ledger.base import API_VERSION, CHECK_HINT, KIND, Ledger
from devslice.ledger.queue import QueueTimeout, WriterQueue
from devslice.ledger.records import (
    Problem,
    overlaps,
    parse_history,
    parse_slices,
    state_extra,
)
from devslice.slices.model import Change, LedgerState
from devslice.slices.names import HandleRule
from devslice.slices.operations import Transition

T = TypeVar("T")

TABLES = {
    "meta": "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "slices": "CREATE TABLE IF NOT EXISTS slices (handle TEXT PRIMARY KEY, doc TEXT NOT NULL)",
    "partitions": """CREATE TABLE IF NOT EXISTS partitions (
        namespace TEXT NOT NULL,
        partition INTEGER NOT NULL,
        handle TEXT NOT NULL REFERENCES slices(handle) ON DELETE CASCADE,
        PRIMARY KEY (namespace, partition))""",
    "history": """CREATE TABLE IF NOT EXISTS history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        handle TEXT NOT NULL, detail TEXT NOT NULL)""",
}
STATE_KEY = "state"  # meta row holding LedgerState's fields besides slices and history
DAMAGED_HINT = ("restore the file from a backup, or move it aside to start an empty ledger "
                "(its slices are then forgotten); devslice never overwrites it. ") + CHECK_HINT


class SqliteLedger(Ledger):
    shared = False  # a file on this machine: no other machine sees its claims

    def __init__(self, path: Path, team: str, *, handles: HandleRule | None = None,
                 busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.team = team
        self.handles = handles or HandleRule()
        self.location = f"sqlite:{self.path}"
        self.busy_timeout = busy_timeout
        self.queue = WriterQueue(self.path.with_name(self.path.name + ".lock"))
        self._conn: sqlite3.Connection | None = None
        self._intact = False  # quick_check passed on this connection

    # -- errors -------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Every SQLite error as one LedgerError naming the file (a traceback is a bug)."""
        try:
            yield
        except LedgerError:
            raise
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if _locked(exc):
                raise self._busy() from exc
            if any(w in text for w in ("readonly", "unable to open", "I/O", "permission")):
                raise LedgerUnreachable(
                    f"cannot use the ledger at {self.path}: {exc}",
                    hint="check that the file and its folder are writable, or set ledger.path",
                ) from exc
            raise self._damaged(exc) from exc
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from exc

    def _damaged(self, exc: Exception) -> LedgerCorrupt:
        what = ("is not a devslice ledger" if "not a database" in str(exc)
                else "is damaged")
        return LedgerCorrupt(f"{self.path} {what} ({exc})", hint=DAMAGED_HINT)

    def _busy(self) -> LedgerBusy:
        return LedgerBusy(
            f"the ledger at {self.path} stayed locked for {self.busy_timeout:.0f}s",
            hint="another devslice process holds it; try again",
        )

    # -- connection ---------------------------------------------------------------------
    def _connect(self, create: bool) -> sqlite3.Connection | None:
        """The open ledger; None for a read of a ledger that does not exist yet.

        Creating means: the file is missing, empty, or a database without tables. Anything
        else must prove to be a devslice ledger before devslice writes a byte.
        """
        if self._conn is not None:
            return self._conn
        if not create and not self.path.exists():
            return None  # a fact never writes: no file yet means no slices yet
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerUnreachable(
                f"cannot open the ledger at {self.path}: {exc}",
                hint="check that the folder exists and is writable, or set ledger.path",
            ) from exc
        try:
            with self._errors():
                conn.execute("PRAGMA foreign_keys = ON")
                if self._identify(conn) == "new":
                    if not create:
                        conn.close()
                        return None
                    self._create(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _identify(self, conn: sqlite3.Connection) -> str:
        """"new" or "ledger"; raises for a file another tool or team wrote."""
        tables = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")} - {"sqlite_sequence"}
        if not tables:
            return "new"
        if "meta" not in tables:
            raise self._foreign(f"holds tables {', '.join(sorted(tables)[:5])} and no "
                                "devslice identity")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if not meta and tables <= TABLES.keys():
            return "new"  # a ledger whose creation an older devslice did not finish
        expected = {"apiVersion": API_VERSION, "kind": KIND, "team": self.team}
        for key, value in expected.items():
            if meta.get(key) != value:
                self._intact_or_damaged(conn)  # a garbled meta page is damage, not a stranger
                other = "team" if key == "team" else "tool or version"
                raise self._foreign(f"holds {key} {meta.get(key)!r}, expected {value!r}; it "
                                    f"belongs to another {other}")
        missing = sorted(TABLES.keys() - tables)
        if missing:
            raise self._damaged(Exception(f"table {missing[0]} is missing"))
        return "ledger"

    def _foreign(self, what: str) -> LedgerCorrupt:
        return LedgerCorrupt(
            f"{self.path} {what}",
            hint="point ledger.path at another file; devslice never overwrites this one",
        )

    def _create(self, conn: sqlite3.Connection) -> None:
        """WAL mode, tables and identity in one transaction, so nobody sees half a ledger.

        Switching a new file to WAL needs an exclusive lock and SQLite answers "database is
        locked" at once instead of waiting for the busy timeout, so when many processes open
        a new ledger together (16 CI jobs, say) we wait here ourselves.
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if self._identify(conn) == "new":
                        for statement in TABLES.values():
                            conn.execute(statement)
                        conn.executemany(
                            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            {"apiVersion": API_VERSION, "kind": KIND, "team": self.team}.items())
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._intact = False

    # -- reading ------------------------------------------------------------------------
    def _snapshot(self, conn: sqlite3.Connection) -> tuple[LedgerState, list[Problem]]:
        raw = dict(conn.execute("SELECT handle, doc FROM slices ORDER BY handle").fetchall())
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (STATE_KEY,)).fetchone()
        try:
            extra = json.loads(row[0]) if row else {}
        except ValueError:
            extra = None
        state, problems = parse_slices(raw, self.handles, extra if isinstance(extra, dict)
                                       else {})
        if row and not isinstance(extra, dict):
            problems.append(Problem("the ledger's state", "is not a JSON object"))
        return state, problems

    def _load(self, conn: sqlite3.Connection) -> LedgerState:
        state, problems = self._snapshot(conn)
        if problems:
            raise self.invalid(problems)
        return state

    def read(self) -> LedgerState:
        with self._errors():
            conn = self._connect(create=False)
            return self._load(conn) if conn is not None else LedgerState()

    def history(self, handle: str | None = None, limit: int | None = 50) -> list[Change]:
        with self._errors():
            conn = self._connect(create=False)
            if conn is None:
                return []
            rows = self._history_rows(conn, handle, limit)
        changes, problems = parse_history(rows)
        if problems:
            raise self.invalid(problems)
        return changes

    def _history_rows(self, conn: sqlite3.Connection, handle: str | None,
                      limit: int | None) -> list[dict[str, object]]:
        query = "SELECT at, actor, action, handle, detail FROM history"
        args: tuple[object, ...] = ()
        if handle is not None:
            query += " WHERE handle = ?"
            args = (handle,)
        rows = conn.execute(query + " ORDER BY id DESC LIMIT ?",
                            (*args, -1 if limit is None else limit)).fetchall()
        keys = ("at", "actor", "action", "handle", "detail")
        return [dict(zip(keys, r, strict=True)) for r in reversed(rows)]

    def check(self) -> list[Problem]:
        """Identity, ``PRAGMA integrity_check``, then every record; writes nothing."""
        if not self.path.exists():
            return []
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            return [Problem("the file", f"cannot be opened: {exc}")]
        try:
            conn.execute("PRAGMA query_only = ON")
            try:
                with self._errors():
                    if self._identify(conn) == "new":
                        return []
            except LedgerError as exc:
                return [Problem("the file", exc.message)]
            problems = [Problem("the file", f"fails PRAGMA integrity_check: {row}")
                        for (row,) in conn.execute("PRAGMA integrity_check(20)") if row != "ok"]
            state, found = self._snapshot(conn)
            problems += found
            problems += overlaps(state.slices.values()) + self._index_problems(conn, state)
            _, found = parse_history(self._history_rows(conn, None, None))
            return problems + found
        except sqlite3.DatabaseError as exc:
            return [Problem("the file", f"cannot be read: {exc}")]
        finally:
            conn.close()

    def _index_problems(self, conn: sqlite3.Connection, state: LedgerState) -> list[Problem]:
        """The partitions table must say what the slices say (it is what stops a double
        allocation)."""
        rows = set(conn.execute("SELECT namespace, partition, handle FROM partitions"))
        wanted = {(s.event_hubs.namespace, p, h) for h, s in state.slices.items()
                  for p in s.event_hubs.partitions}
        return [Problem(f"slice {h!r}", f"the partitions table does not record {ns} "
                        f"partition {p}") for ns, p, h in sorted(wanted - rows)]

    # -- writing ------------------------------------------------------------------------
    def _verify(self, conn: sqlite3.Connection) -> None:
        """``PRAGMA quick_check`` once per connection before writing: a damaged file is
        reported, never written into (issue 12: writes went into a garbled file)."""
        if not self._intact:
            self._intact_or_damaged(conn)
            self._intact = True

    def _intact_or_damaged(self, conn: sqlite3.Connection) -> None:
        bad = [row for (row,) in conn.execute("PRAGMA quick_check(5)") if row != "ok"]
        if bad:
            raise self._damaged(Exception("PRAGMA quick_check: " + "; ".join(bad)))

    def transact(self, operation: Callable[[LedgerState], Transition[T]]) -> Transition[T]:
        with self._errors():
            conn = self._connect(create=True)
            assert conn is not None
            self._verify(conn)
        try:
            with self.queue.turn(self.busy_timeout), self._errors():
                return self._transact(conn, operation)
        except QueueTimeout as exc:
            raise LedgerBusy(
                f"the ledger at {self.path} stayed busy for {self.busy_timeout:.0f}s "
                f"({exc.ahead} writer(s) ahead in its queue)",
                hint="another devslice process holds it (a stopped one, Ctrl-Z?); try again",
            ) from exc
        except OSError as exc:  # the queue's lock file
            raise LedgerUnreachable(
                f"cannot use the ledger's lock file {self.queue.path}: {exc.strerror}",
                hint="check that the ledger's folder is writable, or set ledger.path",
            ) from exc

    def _transact(self, conn: sqlite3.Connection,
                  operation: Callable[[LedgerState], Transition[T]]) -> Transition[T]:
        # The queue serialises devslice's writers; SQLite's busy handler (timeout=) covers
        # anyone else holding the file, such as a `sqlite3` shell.
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = self._load(conn)
            result = operation(before)
            self._store(conn, before, result)
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            _rollback(conn)
            # The partitions table's key caught a double allocation the rules let through.
            raise LedgerCorrupt(
                f"the ledger at {self.path} refused a change that would give a partition to "
                f"two slices ({exc})",
                hint="nothing was changed; please report this as a devslice bug",
            ) from exc
        except BaseException:
            _rollback(conn)
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
        extra = state_extra(after)
        if extra != state_extra(before):
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         (STATE_KEY, json.dumps(extra, sort_keys=True)))
        conn.executemany(
            "INSERT INTO history (at, actor, action, handle, detail) VALUES (?, ?, ?, ?, ?)",
            [(c.at.isoformat(), c.actor, c.action, c.handle, c.detail) for c in result.changes],
        )


def _rollback(conn: sqlite3.Connection) -> None:
    with suppress(sqlite3.Error):  # a damaged file may refuse even this; report the cause
        conn.execute("ROLLBACK")


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)
