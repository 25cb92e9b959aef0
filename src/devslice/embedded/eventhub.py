"""An embedded event hub: a durable partitioned log in one SQLite file (WAL), shared by the
processes of one machine.

It offers the subset of ``azure-eventhub``'s producer and consumer clients that devslice's
slice wrappers use (``get_partition_ids``, ``create_batch``, ``send_batch``; ``receive`` with
``partition_id``, ``starting_position`` and a checkpoint store), so a service runs unchanged
against it or against real Event Hubs. Offsets are the sequence numbers, as strings.

It stands in for Event Hubs on one machine. It is not a broker: no AMQP, no Kafka endpoint, no
Data Explorer ingestion. Teams share real Event Hubs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import random
import select
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

from azure.eventhub import EventData, EventDataBatch

from devslice.errors import DevsliceError
from devslice.hubs import DEFAULT_RETENTION, LeaseInfo

SCHEMA = """
CREATE TABLE IF NOT EXISTS hubs (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    hub TEXT NOT NULL, partition INTEGER NOT NULL, seq INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL, body BLOB NOT NULL, properties TEXT,
    partition_key TEXT,
    PRIMARY KEY (hub, partition, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    hub TEXT NOT NULL, consumer_group TEXT NOT NULL, partition INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (hub, consumer_group, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""

NAMESPACE = "embedded"
MAX_BATCH_BYTES = 1024 * 1024  # Standard tier's limit per publish
RETENTION = DEFAULT_RETENTION  # seconds: Event Hubs' shortest retention, one day
PRUNE_EVERY = 1.0  # seconds between a producer's retention passes
PRUNE_MIN = 500  # rows a retention pass may delete at least (more after a burst)
IDLE_POLL = 1.0  # seconds: an idle consumer that is woken on change still looks this often
PAGE = 300  # events a consumer reads per query
CANARY_KEY = '"DevsliceCanary":'  # `devslice verify`'s canary property, as JSON stores it

Row = tuple[bytes, str | None, str | None]  # body, properties as JSON, partition key


class EmbeddedHubError(DevsliceError):
    pass


class CheckpointStore(Protocol):
    """The two calls of azure-eventhub's checkpoint stores that a consumer needs."""

    def list_checkpoints(
        self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
        **kwargs: Any,
    ) -> Iterable[dict[str, Any]]: ...

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None: ...


class ReceivedEvent(tuple[int, int, bytes, str | None, str | None]):
    """An event read from the embedded hub, with the attributes of ``azure.eventhub.EventData``
    that consumers read. It is the row as SQLite gives it (sequence number, enqueued time in
    ms, body, properties as JSON, partition key), so reading builds no Python object per
    field; properties and the enqueued time are decoded when first read (most consumers never
    look at all of them: decoding was most of the read cost)."""

    sequence_number: int = property(itemgetter(0))  # type: ignore[assignment]
    body: bytes = property(itemgetter(2))  # type: ignore[assignment]
    partition_key: str | None = property(itemgetter(4))  # type: ignore[assignment]

    @classmethod
    def of(cls, body: bytes, raw_properties: str | None, sequence_number: int,
           enqueued_ms: int, partition_key: str | None = None) -> ReceivedEvent:
        return cls((sequence_number, enqueued_ms, body, raw_properties, partition_key))

    @cached_property
    def properties(self) -> dict[bytes, Any]:
        """Keys are bytes, as azure-eventhub (pyamqp) gives them for received events, so code
        that works here works against the real service."""
        raw = self[3]
        return {k.encode(): v for k, v in json.loads(raw).items()} if raw else {}

    @property
    def devslice_canary(self) -> bool:
        """Whether this is a canary of `devslice verify`, without decoding the properties: in
        JSON (``json.dumps``) a quote followed by a colon can only end a key, since quotes
        inside strings are escaped."""
        raw = self[3]
        return raw is not None and CANARY_KEY in raw

    @property
    def offset(self) -> str:
        return str(self[0])

    @property
    def enqueued_time(self) -> datetime:
        return datetime.fromtimestamp(self[1] / 1000, UTC)

    @property
    def system_properties(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"ReceivedEvent(sequence_number={self[0]}, body={self[2]!r})"

    def body_as_str(self, encoding: str = "UTF-8") -> str:
        return self[2].decode(encoding)

    def body_as_json(self, encoding: str = "UTF-8") -> Any:
        return json.loads(self.body_as_str(encoding))


class EmbeddedBatch:
    """``EventDataBatch``'s surface (``add``, ``len``, ``size_in_bytes``, the same limit).

    Sizes are estimated from body and properties while the batch is well under its limit, and
    the SDK's own encoder takes over near it, so batches split where the real client's would
    without encoding every event twice (the encoder was 70% of the embedded hub's produce time;
    benchmarks/RESULTS.md).
    """

    EXACT_FROM = 0.8  # share of the limit after which sizes come from the SDK's encoder

    def __init__(self, max_size_in_bytes: int | None = None, partition_id: str | None = None,
                 partition_key: str | None = None) -> None:
        self.max_size_in_bytes = max_size_in_bytes or MAX_BATCH_BYTES
        self._partition_id = partition_id
        self._partition_key = partition_key
        self.events: list[EventData] = []
        self._estimate = 0
        self._exact: EventDataBatch | None = None

    def __len__(self) -> int:
        return len(self.events)

    @property
    def size_in_bytes(self) -> int:
        return self._exact.size_in_bytes if self._exact is not None else self._estimate

    def add(self, event_data: EventData) -> None:
        guess = _estimated_size(event_data)
        roomy = self._estimate + guess < self.max_size_in_bytes * self.EXACT_FROM
        if self._exact is None and roomy:
            self._estimate += guess
        else:
            if self._exact is None:
                self._exact = EventDataBatch(max_size_in_bytes=self.max_size_in_bytes,
                                             partition_id=self._partition_id)
                for earlier in self.events:
                    self._exact.add(earlier)
            self._exact.add(event_data)  # raises ValueError ("size limit") when full
        self.events.append(event_data)


def _estimated_size(event: EventData) -> int:
    """Roughly what the AMQP encoding takes: body, properties, and a fixed overhead."""
    props = event.properties or {}
    return (len(_body(event)) + 64
            + sum(len(_text(k)) + len(str(v)) + 8 for k, v in props.items()))


class Changes:
    """Tells a process's idle consumers that the hub's file changed, so they read at once
    instead of polling: after every commit of events the producer touches the hub's file
    (:func:`committed`: its times change), and inotify (Linux, through ctypes) reports that
    to every process watching. One watcher thread per file and process, started by the
    first consumer that waits; where inotify is missing, :func:`changes` gives None and
    consumers poll.

    Not the WAL file's writes (issue 17): SQLite writes the frames to ``PATH-wal`` first
    and makes them visible to readers afterwards, in the shared-memory index, which inotify
    does not see. A consumer woken by the write could read before the commit was visible,
    find nothing, and sleep until the *next* event: one event per run arrived a whole
    interval late (50 ms at 20 events/s). The touch comes after the commit is visible.

    ``generation`` grows with every change; a consumer notes it *before* reading, and after
    reading nothing waits until it differs (:meth:`wait`), so a commit between the read and
    the wait is never missed."""

    IN_ATTRIB, IN_Q_OVERFLOW = 0x4, 0x4000
    IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, 0o2000000

    def __init__(self, path: Path, libc: Any) -> None:
        self.name = path.name.encode()
        self.generation = 0
        self._cond = threading.Condition()
        fd = libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        # The folder, not the file: a watch on the file would not see it replaced.
        if libc.inotify_add_watch(fd, str(path.parent).encode(), self.IN_ATTRIB) < 0:
            os.close(fd)
            raise OSError(ctypes.get_errno(), "inotify_add_watch failed")
        self._fd = fd
        threading.Thread(target=self._watch, name=f"devslice-hub-watch-{path.name}",
                         daemon=True).start()

    def _watch(self) -> None:
        header = struct.Struct("iIII")
        while True:
            select.select([self._fd], [], [])
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                continue
            hit, at = False, 0
            while at + header.size <= len(data):
                _wd, mask, _cookie, length = header.unpack_from(data, at)
                name = data[at + header.size: at + header.size + length].rstrip(b"\0")
                at += header.size + length
                hit = hit or name == self.name or bool(mask & self.IN_Q_OVERFLOW)
            if hit:
                self.poke()

    def poke(self) -> None:
        """Wake every waiter (a change, or a consumer closing)."""
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Until the generation differs from ``seen``, or ``timeout`` seconds."""
        with self._cond:
            if self.generation == seen:
                self._cond.wait(timeout)


def committed(path: Path) -> None:
    """Tell the consumers watching ``path`` (:class:`Changes`) that events were committed:
    one ``utime`` after the commit, which inotify reports as IN_ATTRIB."""
    # gone or read-only: consumers still look every IDLE_POLL seconds
    with contextlib.suppress(OSError):
        os.utime(path)


_watchers: dict[tuple[int, Path], Changes | None] = {}  # by process: a fork has no thread
_watchers_lock = threading.Lock()


def changes(path: Path) -> Changes | None:
    """The process's watcher of ``path``, or None where inotify is not available (then
    consumers fall back to polling)."""
    key = (os.getpid(), path.resolve())
    with _watchers_lock:
        if key not in _watchers:
            watcher = None
            if sys.platform.startswith("linux"):
                try:
                    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
                    watcher = Changes(key[1], libc)
                except (OSError, AttributeError):
                    watcher = None
            _watchers[key] = watcher
        return _watchers[key]


class EmbeddedHub:
    """The log file. One instance per process and file; it is thread-safe."""

    def __init__(self, path: str | Path, partitions: int = 32, retention: float = RETENTION,
                 max_bytes: int | None = None, clock: Callable[[], float] = time.time) -> None:
        """``retention``: seconds an event is kept (Event Hubs' retention time); ``max_bytes``:
        an optional cap on the file's used size. Producers enforce both, a little at a time
        after their own commits (:meth:`prune`), never deleting a partition's last event
        (it carries the sequence numbering on). ``clock`` gives the time events are enqueued
        at and leases expire by (tests pass their own)."""
        self.path = Path(path)
        self.clock = clock
        self.partitions = partitions
        self.retention = retention
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._counts: dict[str, int] = {}  # fixed once a hub exists, so safe to keep
        self._prune_lock = threading.Lock()
        self._next_prune = 0.0  # time.monotonic() of the next retention pass
        self._appended: dict[tuple[str, int], int] = {}  # since the last pass, per partition
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._retry(lambda c: c.executescript(SCHEMA))

    # -- connections ----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._retry_on(conn, lambda c: c.execute("PRAGMA journal_mode = WAL"))
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across crashes
            self._local.conn = conn
        return conn

    def _retry(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return self._retry_on(self._conn(), fn)

    @staticmethod
    def _retry_on(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        # A new file's switch to WAL answers "locked" at once rather than waiting.
        deadline = time.monotonic() + 30
        while True:
            try:
                return fn(conn)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise EmbeddedHubError(f"the embedded event hub failed: {exc}") from exc
                time.sleep(random.uniform(0.002, 0.02))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- event hubs ---------------------------------------------------------------------------
    def partition_count(self, hub: str) -> int:
        known = self._counts.get(hub)
        if known is not None:
            return known
        conn = self._conn()
        row = conn.execute("SELECT partitions FROM hubs WHERE name = ?", (hub,)).fetchone()
        if row is None:
            conn.execute("INSERT OR IGNORE INTO hubs VALUES (?, ?)", (hub, self.partitions))
            row = conn.execute("SELECT partitions FROM hubs WHERE name = ?", (hub,)).fetchone()
        self._counts[hub] = int(row[0])
        return self._counts[hub]

    def partition_ids(self, hub: str) -> list[str]:
        return [str(p) for p in range(self.partition_count(hub))]

    def _partition(self, hub: str, partition_id: str) -> int:
        count = self.partition_count(hub)
        if not partition_id.isdigit() or int(partition_id) >= count:
            raise EmbeddedHubError(
                f"event hub {hub!r} has no partition {partition_id!r} (it has 0..{count - 1})")
        return int(partition_id)

    # -- the log ------------------------------------------------------------------------------
    def append(self, hub: str, partition_id: str, events: Sequence[EventData]) -> int:
        """Append events to one partition atomically; returns the last sequence number."""
        rows: list[Row] = []
        for e in events:
            props = {_text(k): v for k, v in (e.properties or {}).items()}
            rows.append((_body(e), json.dumps(props, default=str) if props else None,
                         _text(e.partition_key) if e.partition_key is not None else None))
        return self.append_rows(hub, partition_id, rows)

    def append_rows(self, hub: str, partition_id: str, rows: Sequence[Row]) -> int:
        """Append stored rows (body, properties as JSON, partition key) to one partition
        atomically; returns the last sequence number. Producers that hold bodies and
        properties already (SliceProducer) store them without building ``EventData``."""
        partition = self._partition(hub, partition_id)
        now = int(self.clock() * 1000)
        conn = self._conn()
        self._retry_on(conn, lambda c: c.execute("BEGIN IMMEDIATE"))
        try:
            last = conn.execute(
                "SELECT MAX(seq) FROM events WHERE hub = ? AND partition = ?", (hub, partition)
            ).fetchone()[0]
            first = -1 if last is None else last
            conn.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(hub, partition, first + 1 + i, now, body, props, key)
                 for i, (body, props, key) in enumerate(rows)],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        committed(self.path)
        key = (hub, partition)
        self._appended[key] = self._appended.get(key, 0) + len(rows)
        if time.monotonic() >= self._next_prune:
            self.prune()
        return first + len(rows)

    def prune(self) -> int:
        """One retention pass over the partitions this process wrote since the last: delete
        events older than the retention time and, over ``max_bytes``, the oldest events,
        in small transactions (at least PRUNE_MIN rows a pass, more after a burst), so no
        producer waits long. Freed pages are reused: the file stops growing. Returns the
        number of events deleted."""
        if not self._prune_lock.acquire(blocking=False):
            return 0  # another thread of this process is at it
        try:
            self._next_prune = time.monotonic() + PRUNE_EVERY
            written, self._appended = self._appended, {}
            conn = self._conn()
            cutoff = int((self.clock() - self.retention) * 1000)
            deleted = 0
            for (hub, partition), count in written.items():
                budget = max(PRUNE_MIN, 2 * count)
                deleted += self._delete(conn, hub, partition, "AND enqueued_ms < ?", (cutoff,),
                                        budget)
                if self.max_bytes is not None and self.used_bytes() > self.max_bytes:
                    deleted += self._delete(conn, hub, partition, "", (), budget)
            return deleted
        except (sqlite3.Error, EmbeddedHubError):
            return 0  # retention is best effort: the next pass tries again
        finally:
            self._prune_lock.release()

    def _delete(self, conn: sqlite3.Connection, hub: str, partition: int, where: str,
                args: tuple[Any, ...], limit: int) -> int:
        """The oldest ``limit`` events of a partition matching ``where``, but never its last."""
        cursor = self._retry_on(conn, lambda c: c.execute(
            "DELETE FROM events WHERE hub = ? AND partition = ? AND seq IN ("
            " SELECT seq FROM events WHERE hub = ? AND partition = ? " + where +
            " AND seq < (SELECT MAX(seq) FROM events WHERE hub = ? AND partition = ?)"
            " ORDER BY seq LIMIT ?)",
            (hub, partition, hub, partition, *args, hub, partition, limit)))
        return int(cursor.rowcount)

    def used_bytes(self) -> int:
        """The file's pages in use (free pages are reused before the file grows)."""
        conn = self._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def read(self, hub: str, partition_id: str, after_seq: int, limit: int = PAGE
             ) -> list[ReceivedEvent]:
        """Events of one partition with sequence number greater than ``after_seq``."""
        return list(map(ReceivedEvent, self.rows(hub, self._partition(hub, partition_id),
                                                 after_seq, limit)))

    def rows(self, hub: str, partition: int, after_seq: int, limit: int = PAGE
             ) -> list[tuple[int, int, bytes, str | None, str | None]]:
        """:meth:`read`'s rows as SQLite gives them (``ReceivedEvent`` makes events of
        them), for a partition number already checked."""
        try:
            return self._conn().execute(
                "SELECT seq, enqueued_ms, body, properties, partition_key FROM events "
                "WHERE hub = ? AND partition = ? AND seq > ? ORDER BY seq LIMIT ?",
                (hub, partition, after_seq, limit),
            ).fetchall()
        except sqlite3.Error as exc:  # consumers hand this to on_error and carry on
            raise EmbeddedHubError(f"cannot read {self.path}: {exc}") from exc

    def last_before(self, hub: str, partition_id: str, when: datetime,
                    inclusive: bool = False) -> int:
        """The last sequence number enqueued before ``when`` (at or before, if not inclusive:
        an exclusive start skips events enqueued exactly then)."""
        ms = int(when.timestamp() * 1000)
        op = "<" if inclusive else "<="
        row = self._conn().execute(
            f"SELECT MAX(seq) FROM events WHERE hub = ? AND partition = ? AND enqueued_ms {op} ?",
            (hub, self._partition(hub, partition_id), ms),
        ).fetchone()
        return -1 if row[0] is None else int(row[0])

    def partition_properties(self, hub: str, partition_id: str) -> dict[str, Any]:
        """``EventHubConsumerClient.get_partition_properties``'s answer, key for key (an empty
        partition: beginning 0, last -1, offset "-1", the epoch, ``is_empty``)."""
        key = (hub, self._partition(hub, partition_id))
        conn = self._conn()
        # both by the primary key: no scan of the partition
        first = conn.execute("SELECT MIN(seq) FROM events WHERE hub = ? AND partition = ?",
                             key).fetchone()[0]
        last, ms = conn.execute(
            "SELECT seq, enqueued_ms FROM events WHERE hub = ? AND partition = ? "
            "ORDER BY seq DESC LIMIT 1", key).fetchone() or (None, 0)
        if last is None:
            first, last = 0, -1
        return {
            "eventhub_name": hub,
            "id": partition_id,
            "beginning_sequence_number": int(first),
            "last_enqueued_sequence_number": int(last),
            "last_enqueued_offset": str(last),
            "last_enqueued_time_utc": datetime.fromtimestamp(ms / 1000, UTC),
            "is_empty": last == -1,
        }

    def last_sequence_number(self, hub: str, partition_id: str) -> int:
        row = self._conn().execute(
            "SELECT MAX(seq) FROM events WHERE hub = ? AND partition = ?",
            (hub, self._partition(hub, partition_id)),
        ).fetchone()
        return -1 if row[0] is None else int(row[0])

    # checkpoints, for consumers without a checkpoint store of their own
    def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str,
                         consumer_group: str, **kwargs: Any) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT partition, seq FROM checkpoints WHERE hub = ? AND consumer_group = ?",
            (eventhub_name, consumer_group),
        ).fetchall()
        return [{"fully_qualified_namespace": fully_qualified_namespace,
                 "eventhub_name": eventhub_name, "consumer_group": consumer_group,
                 "partition_id": str(p), "offset": str(seq), "sequence_number": seq}
                for p, seq in rows]

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        self._retry(lambda conn: conn.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET seq = excluded.seq",
            (checkpoint["eventhub_name"], checkpoint["consumer_group"],
             int(checkpoint["partition_id"]), int(checkpoint["sequence_number"])),
        ))

    # consumer leases (devslice.sdk.leases.LeaseStore), for `devslice debug --exclusive`
    def acquire_lease(self, name: str, holder: str, ttl: float) -> LeaseInfo | None:
        """Take or renew a lease in one statement: SQLite serialises writers, so two
        processes cannot both win. An expired lease of another holder is taken over."""
        now = int(self.clock() * 1000)
        expires = now + int(ttl * 1000)
        row = self._retry(lambda conn: conn.execute(
            "INSERT INTO leases VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "holder = excluded.holder, expires_ms = excluded.expires_ms "
            "WHERE leases.holder = excluded.holder OR leases.expires_ms <= ? "
            "RETURNING holder, expires_ms",
            (name, holder, expires, now)).fetchone())
        return None if row is None else LeaseInfo(name, row[0], int(row[1]))

    def release_lease(self, name: str, holder: str) -> None:
        self._retry(lambda conn: conn.execute(
            "DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)))

    def live_lease(self, name: str) -> LeaseInfo | None:
        try:
            row = self._conn().execute(
                "SELECT holder, expires_ms FROM leases WHERE name = ? AND expires_ms > ?",
                (name, int(self.clock() * 1000))).fetchone()
        except sqlite3.Error as exc:
            raise EmbeddedHubError(f"cannot read the leases in {self.path}: {exc}") from exc
        return None if row is None else LeaseInfo(name, row[0], int(row[1]))


def _body(event: EventData) -> bytes:
    body = event.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return b"".join(bytes(part) for part in body)  # type: ignore[union-attr,arg-type]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


class EmbeddedProducerClient:
    """``EventHubProducerClient``'s surface, over an :class:`EmbeddedHub`."""

    def __init__(self, hub: EmbeddedHub, eventhub_name: str) -> None:
        self.hub = hub
        self.eventhub_name = eventhub_name

    def get_partition_ids(self) -> list[str]:
        return self.hub.partition_ids(self.eventhub_name)

    def create_batch(self, *, partition_id: str | None = None,
                     partition_key: str | None = None,
                     max_size_in_bytes: int | None = None) -> EmbeddedBatch:
        return EmbeddedBatch(max_size_in_bytes, partition_id, partition_key)

    def send_batch(self, event_data_batch: EmbeddedBatch | Sequence[EventData], *,
                   partition_id: str | None = None, **kwargs: Any) -> None:
        if isinstance(event_data_batch, EmbeddedBatch):
            if partition_id is not None:
                raise TypeError("partition_id goes on create_batch, not on send_batch of a batch")
            events, target = event_data_batch.events, event_data_batch._partition_id
        else:
            events, target = list(event_data_batch), partition_id
        if target is None:
            raise EmbeddedHubError(
                "the embedded event hub needs a partition id: devslice's producer always "
                "sends to one of the slice's partitions")
        if events:
            self.hub.append(self.eventhub_name, str(target), events)

    def send_direct(self, events: Sequence[Any], partition_id: str,
                    stamp: Callable[[EventData], Any], routing_json: str | None) -> int | None:
        """What ``SliceProducer.send`` does, stored straight from what it was given: a str or
        bytes body gets the slice's routing (``routing_json``, computed once) without building
        an ``EventData``; an ``EventData`` is stamped (``stamp``) and stored as
        :meth:`EmbeddedHub.append` would. Returns the batches sent (1), or None, having sent
        nothing, when the events may not fit one batch (the caller then splits them exactly
        as the SDK's size accounting does) or are of another kind."""
        routing_size = len(routing_json) if routing_json else 0
        limit = MAX_BATCH_BYTES * EmbeddedBatch.EXACT_FROM
        rows: list[Row] = []
        size = 0
        for e in events:
            if isinstance(e, str):
                body = e.encode()
                size += len(body) + 64 + routing_size
                rows.append((body, routing_json, None))
            elif isinstance(e, bytes):
                size += len(e) + 64 + routing_size
                rows.append((e, routing_json, None))
            elif isinstance(e, EventData):
                stamp(e)
                size += _estimated_size(e)
                props = {_text(k): v for k, v in (e.properties or {}).items()}
                rows.append((_body(e), json.dumps(props, default=str) if props else None,
                             _text(e.partition_key) if e.partition_key is not None else None))
            else:
                return None
            if size >= limit:
                return None
        if not rows:
            return 0
        self.hub.append_rows(self.eventhub_name, str(partition_id), rows)
        return 1

    def close(self) -> None:
        """Nothing to release: the hub's connections belong to the hub."""


@dataclass
class EmbeddedPartitionContext:
    """``azure.eventhub.PartitionContext``'s surface."""

    fully_qualified_namespace: str
    eventhub_name: str
    consumer_group: str
    partition_id: str
    _store: CheckpointStore

    def update_checkpoint(self, event: ReceivedEvent | None = None, **kwargs: Any) -> None:
        if event is None:
            return
        self._store.update_checkpoint({
            "fully_qualified_namespace": self.fully_qualified_namespace,
            "eventhub_name": self.eventhub_name, "consumer_group": self.consumer_group,
            "partition_id": self.partition_id, "offset": event.offset,
            "sequence_number": event.sequence_number,
        })


class EmbeddedConsumerClient:
    """``EventHubConsumerClient``'s surface for one consumer group, over an EmbeddedHub.

    ``receive(on_event, partition_id=...)`` blocks until :meth:`close` is called from another
    thread (as with the real client). While idle it sleeps until the file changes (inotify on
    Linux: :class:`Changes`; a look every IDLE_POLL seconds besides), or, where that is not
    available or with ``notify=False``, polls from ``poll_interval`` doubling up to
    ``max_poll_interval``. Like the real client, it starts
    after the partition's checkpoint when the store has one, else at ``starting_position``
    ("-1" = the beginning, "@latest" = new events only, or a sequence number, exclusive),
    and with ``max_wait_time`` calls ``on_event(context, None)`` whenever that many seconds
    pass without an event.
    """

    def __init__(self, hub: EmbeddedHub, eventhub_name: str, consumer_group: str = "$Default",
                 checkpoint_store: CheckpointStore | None = None,
                 fully_qualified_namespace: str = NAMESPACE, poll_interval: float = 0.002,
                 max_poll_interval: float = 0.05, notify: bool = True,
                 idle_poll: float = IDLE_POLL, page: int = PAGE) -> None:
        self.hub = hub
        self.eventhub_name = eventhub_name
        self.consumer_group = consumer_group
        self.checkpoint_store: CheckpointStore = checkpoint_store or hub
        self.fully_qualified_namespace = fully_qualified_namespace
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.notify = notify  # wake on change (Changes) where the platform can
        self.idle_poll = idle_poll  # woken on change, it still looks this often
        self.page = page  # events read per query
        self._closed = threading.Event()
        # Also empty until close(): tested before every event delivered, and a list's truth
        # costs less than a call of Event.is_set (issue 17).
        self._stop: list[bool] = []
        self._watches: list[Changes] = []

    def get_partition_ids(self) -> list[str]:
        return self.hub.partition_ids(self.eventhub_name)

    def get_partition_properties(self, partition_id: str) -> dict[str, Any]:
        """As the SDK's: ``last_enqueued_sequence_number`` and the rest (start fences read
        it)."""
        return self.hub.partition_properties(self.eventhub_name, str(partition_id))

    def close(self) -> None:
        self._stop.append(True)
        self._closed.set()
        for watch in self._watches:
            watch.poke()  # a receive waiting for a change returns now

    def _start_after(self, partition_id: str, starting_position: Any, inclusive: Any,
                     checkpoints: dict[str, int]) -> int:
        """The sequence number to read after, with azure-eventhub 5.x's rules: a checkpoint
        (``checkpoints``: the store's, by partition) wins; else ``starting_position`` (one
        value or a dict per partition): "-1" the beginning, "@latest" (the default) new
        events only, a str an offset, an int a sequence number, a datetime an enqueued time;
        exclusive unless ``starting_position_inclusive``.
        """
        if partition_id in checkpoints:
            return checkpoints[partition_id]
        if isinstance(starting_position, dict):
            starting_position = starting_position.get(partition_id)
        if isinstance(inclusive, dict):
            inclusive = inclusive.get(partition_id, False)
        back = 1 if inclusive else 0
        if starting_position in (None, "@latest"):
            return self.hub.last_sequence_number(self.eventhub_name, partition_id)
        if starting_position in ("-1", -1):
            return -1
        if isinstance(starting_position, datetime):
            return self.hub.last_before(self.eventhub_name, partition_id, starting_position,
                                        inclusive=bool(inclusive))
        return int(starting_position) - back  # offsets here are sequence numbers

    def receive(self, on_event: Callable[[EmbeddedPartitionContext, ReceivedEvent | None], None],
                *,
                partition_id: str | None = None, starting_position: Any = None,
                starting_position_inclusive: Any = False,
                on_error: Callable[[EmbeddedPartitionContext, Exception], None] | None = None,
                max_wait_time: float | None = None,
                **kwargs: Any) -> None:
        if partition_id is None:
            raise EmbeddedHubError(
                "the embedded event hub receives one partition per call: pass partition_id "
                "(devslice's consumer does this for each of the slice's partitions)")
        self.receive_partitions({str(partition_id): on_event},
                                starting_position=starting_position,
                                starting_position_inclusive=starting_position_inclusive,
                                on_error=on_error, max_wait_time=max_wait_time)

    def receive_partitions(
        self,
        handlers: dict[str, Callable[[EmbeddedPartitionContext, ReceivedEvent | None], None]],
        *, starting_position: Any = None, starting_position_inclusive: Any = False,
        on_error: Callable[[EmbeddedPartitionContext, Exception], None] | None = None,
        max_wait_time: float | None = None, **kwargs: Any,
    ) -> None:
        """:meth:`receive` for several partitions in this one thread, each with its own
        ``on_event`` (``handlers``: partition id to callback), until :meth:`close`. The
        partitions take turns a page at a time, as the SDK's own event processor takes turns
        over its partition consumers in one thread; each partition's events come in order,
        with its own context, start, checkpoint and ``max_wait_time``. One thread instead of
        one per partition (issue 17): ``sqlite3`` releases the GIL at every row step, so
        receiver threads handed the GIL back and forth per row.

        ``starting_position`` and ``starting_position_inclusive`` may be dicts by partition,
        as with the SDK. A failed read goes to ``on_error`` with that partition's context
        (the others carry on), or, without ``on_error``, ends the receive with the error."""
        checkpoints = {  # one read of the store for all the partitions
            str(cp["partition_id"]): int(cp["sequence_number"])
            for cp in reversed(list(self.checkpoint_store.list_checkpoints(
                self.fully_qualified_namespace, self.eventhub_name, self.consumer_group)))}
        receivers = [
            _Receiver(EmbeddedPartitionContext(
                self.fully_qualified_namespace, self.eventhub_name, self.consumer_group, pid,
                self.checkpoint_store), on_event,
                self._start_after(pid, starting_position, starting_position_inclusive,
                                  checkpoints))
            for pid, on_event in handlers.items()]
        watch = changes(self.hub.path) if self.notify else None
        if watch is not None:
            self._watches.append(watch)
        stop = self._stop
        wait = self.poll_interval
        now = time.monotonic()
        for r in receivers:
            r.last_event = now
        while not stop:
            seen = watch.generation if watch is not None else 0  # before reading: see Changes
            got = self._turn(receivers, on_error, max_wait_time)
            if got is None or stop:
                return  # closed meanwhile
            if got:
                wait = self.poll_interval
                continue
            left = None
            if max_wait_time:
                now = time.monotonic()
                left = max(0.0, min(r.last_event for r in receivers) + max_wait_time - now)
            if watch is not None:  # woken by the next commit; a slow look meanwhile
                watch.wait(seen, self.idle_poll if left is None else min(self.idle_poll, left))
            else:  # back off while idle: poll_interval, then twice that, up to the maximum
                self._closed.wait(wait if left is None else min(wait, left))
                wait = min(wait * 2, self.max_poll_interval)

    def _turn(self, receivers: list[_Receiver],
              on_error: Callable[[EmbeddedPartitionContext, Exception], None] | None,
              max_wait_time: float | None) -> bool | None:
        """A page for each partition in turn: True to read again at once (a partition had
        events, or a read failed and the pause after it is over), None when closed meanwhile.
        A failed read goes to ``on_error``, or raises without it."""
        got = failed = False
        now = time.monotonic()
        for r in receivers:
            if r.retry_at > now:  # its read failed: paused, while the others carry on
                failed = True
                continue
            try:
                if r.number is None:  # checked once (an unknown partition fails here)
                    r.number = self.hub._partition(self.eventhub_name, r.context.partition_id)
                page_rows = self.hub.rows(self.eventhub_name, r.number, r.after, self.page)
            except DevsliceError as exc:
                if on_error is None:
                    raise
                on_error(r.context, exc)
                r.retry_at = time.monotonic() + self.max_poll_interval
                failed = True
                continue
            if page_rows:
                if not self._deliver(r, page_rows):
                    return None
                r.after = page_rows[-1][0]
                r.last_event = time.monotonic()
                got = True
            elif max_wait_time and time.monotonic() - r.last_event >= max_wait_time:
                r.on_event(r.context, None)  # the SDK's "nothing came"
                r.last_event = time.monotonic()
            if self._stop:
                return None
        if failed and not got:  # sleep until the first paused partition may be read again
            self._closed.wait(max(0.0, min(r.retry_at for r in receivers) - time.monotonic()))
            return True
        return got

    def _deliver(self, r: _Receiver, rows: list[tuple[Any, ...]]) -> bool:
        """Hand a page of rows, as events, to the partition's ``on_event``; False when closed
        meanwhile. With SliceConsumer's handler (``fenced``) its fence and canary test run
        here on the rows, without a call per event."""
        stop, context, fenced = self._stop, r.context, r.fenced
        if fenced is not None and fenced.since is None:
            floor, deliver = fenced.floor, fenced.on_event
            if rows[0][0] <= floor:  # the previous holder's, only ever at the start
                rows = [row for row in rows if row[0] > floor]
            for event in map(ReceivedEvent, rows):
                if not ((raw := event[3]) and CANARY_KEY in raw):
                    if stop:
                        return False
                    deliver(context, event)
            return True
        on_event = r.on_event
        for event in map(ReceivedEvent, rows):
            if stop:
                return False
            on_event(context, event)
        return True


class _Receiver:
    """One partition's state within :meth:`EmbeddedConsumerClient.receive_partitions`."""

    __slots__ = ("after", "context", "fenced", "last_event", "number", "on_event", "retry_at")

    def __init__(self, context: EmbeddedPartitionContext,
                 on_event: Callable[[EmbeddedPartitionContext, ReceivedEvent | None], None],
                 after: int) -> None:
        self.context = context
        self.on_event = on_event
        self.after = after  # the sequence number last read
        self.number: int | None = None  # the partition's number, once checked
        self.last_event = 0.0  # time.monotonic() of the last event, for max_wait_time
        self.retry_at = 0.0  # after a failed read: not read again before (time.monotonic())
        # SliceConsumer's handler (sdk.eventhubs.Fenced: on_event, floor, since): its fence
        # and canary test done on the rows, without a call per event (issue 17)
        self.fenced: Any = (on_event if hasattr(on_event, "floor") and hasattr(on_event, "since")
                            else None)
