"""The runtime SDK: the slice producer's overhead, the embedded hub's throughput, and
publish-to-receive latency across processes. Every figure has a baseline from the same run.

1. Overhead per event of ``SliceProducer(stub, ctx).send(bodies, partition_key=k)`` over the
   plain SDK pattern (``create_batch(partition_id=...)``, ``add(EventData(body))``,
   ``send_batch``) on the same stub client, which makes real ``EventDataBatch`` objects and
   drops what is sent; and over the same pattern with the slice's routing properties set by
   hand, which is what the wrapper sends. All build their ``EventData`` from the same ``str``
   bodies. The variants take turns within each repeat (the order rotating); garbage
   collection is off while timing, as in timeit.
2. The embedded hub on one core (CPU time of this process, all threads: the machine is shared
   and its wall times too noisy): producing batches of 100 events (~200-byte bodies, five
   properties) through ``EmbeddedProducerClient`` (with an ``EventDataBatch``, and with a
   plain list, which skips the SDK's size accounting), through ``SliceProducer`` over it, and
   straight into ``EmbeddedHub.append`` with the ``EventData`` built before timing, against
   ``executemany`` of the same rows into devslice's own schema with the same PRAGMAs and one
   transaction per batch; then reading them all back through
   ``EmbeddedConsumerClient.receive``, ``SliceConsumer.receive`` over it (canaries and the
   slice's start fences checked per event) and ``EmbeddedHub.read`` against a plain
   ``SELECT``.
   Each repeat writes new files; the order of the variants rotates.
3. Latency: this process publishes single events at a steady rate, each carrying
   ``time.time_ns()`` (as a string) in its properties; a consumer in a spawned process
   receives them with ``EmbeddedConsumerClient`` (default polling) and records its clock
   minus the sent one.
"""

from __future__ import annotations

import gc
import inspect
import itertools
import json
import multiprocessing as mp
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from azure.eventhub import EventData, EventDataBatch

from benchmarks.stats import median, ms, percentile, ratio, table, us
from devslice.embedded import EmbeddedConsumerClient, EmbeddedHub, EmbeddedProducerClient
from devslice.embedded.eventhub import SCHEMA
from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import SliceConsumer, SliceProducer, partition_for_key

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

T = TypeVar("T")

HUB = "bench"
PARTITIONS = 32
CONTRACT = {  # a slice of three partitions with Data Explorer routing, as `devslice env` gives
    "LOCAL_DEV_SLICE": "ab",
    "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "4,5,6",
    "LOCAL_DEV_DATAEXPLORER_DATABASE": "db4ab",
    "LOCAL_DEV_DATAEXPLORER_TABLE": "Orders",
    "LOCAL_DEV_DATAEXPLORER_FORMAT": "json",
}
OWN = ("4", "5", "6")
ROUTING: dict[str | bytes, Any] = {"Database": "db4ab", "Table": "Orders", "Format": "json"}
BATCH = 100  # events per send in the throughput benchmark
KEYS = [f"customer-{i}" for i in range(16)]


def body(i: int) -> str:
    """A JSON body of about 200 bytes."""
    text = json.dumps({"order": i, "customer": KEYS[i % 16], "amount": 12.5, "note": ""})
    return text[:-2] + "x" * (200 - len(text)) + '"}'


def context() -> SliceContext:
    return SliceContext.from_env(CONTRACT)


# -- 1. wrapper overhead on a stub client ---------------------------------------------------------


class DiscardingProducer:
    """azure-eventhub's producer-client surface with real EventDataBatch objects; what is sent
    is counted and dropped, so memory stays flat."""

    def __init__(self) -> None:
        self.batches = 0
        self.events = 0

    def get_partition_ids(self) -> list[str]:
        return [str(i) for i in range(PARTITIONS)]

    def create_batch(self, *, partition_id: str | None = None,
                     partition_key: str | None = None) -> EventDataBatch:
        return EventDataBatch(partition_id=partition_id, partition_key=partition_key)

    def send_batch(self, event_data_batch: EventDataBatch, **kwargs: Any) -> None:
        self.batches += 1
        self.events += len(event_data_batch)

    def close(self) -> None:
        pass


RAW = "raw SDK pattern"
RAW_ROUTED = "raw, routing properties set by hand"
WRAPPED = "SliceProducer.send"


@dataclass(frozen=True)
class Overhead:
    size: int  # events per send
    sends: int  # sends per timed run
    per_event: dict[str, list[float]]  # RAW, RAW_ROUTED, WRAPPED: seconds per event, per run


def rotated(items: Sequence[T], r: int) -> list[T]:
    """The r-th rotation of items, so that no variant always runs first."""
    k = r % len(items)
    return [*items[k:], *items[:k]]


def timed(send: Callable[[int], object], sends: int) -> float:
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for i in range(sends):
            send(i)
        return time.perf_counter() - started
    finally:
        gc.enable()


def bench_overhead(size: int, sends: int, repeats: int, problems: list[str]) -> Overhead:
    bodies = [body(i) for i in range(size)]
    pids = [partition_for_key(k, OWN) for k in KEYS]
    stubs = {name: DiscardingProducer() for name in (RAW, RAW_ROUTED, WRAPPED)}
    producer = SliceProducer(stubs[WRAPPED], context())

    def raw(i: int) -> None:
        stub = stubs[RAW]
        batch = stub.create_batch(partition_id=pids[i & 15])
        for b in bodies:
            batch.add(EventData(b))
        stub.send_batch(batch)

    def raw_routed(i: int) -> None:  # what the wrapper sends, built by hand
        stub = stubs[RAW_ROUTED]
        batch = stub.create_batch(partition_id=pids[i & 15])
        for b in bodies:
            event = EventData(b)
            event.properties = dict(ROUTING)
            batch.add(event)
        stub.send_batch(batch)

    def wrapped(i: int) -> None:
        producer.send(bodies, partition_key=KEYS[i & 15])

    sends_by_name = {RAW: raw, RAW_ROUTED: raw_routed, WRAPPED: wrapped}
    result = Overhead(size, sends, {name: [] for name in sends_by_name})
    for r in range(repeats + 1):  # the first round warms up
        for name in rotated(list(sends_by_name), r):
            seconds = timed(sends_by_name[name], sends)
            if r:
                result.per_event[name].append(seconds / (sends * size))
    for name, stub in stubs.items():
        if stub.events != (repeats + 1) * sends * size:
            problems.append(f"overhead, {size} per send, {name}: the stub got {stub.events} "
                            f"events, not {(repeats + 1) * sends * size}")
    return result


# -- 2. embedded hub throughput -------------------------------------------------------------------


def props(i: int) -> dict[str | bytes, Any]:
    """The properties every stored event ends up with (SliceProducer stamps ROUTING itself)."""
    return {"kind": "order", "n": i, **ROUTING}


def events(first: int) -> list[EventData]:
    out = []
    for i in range(first, first + BATCH):
        e = EventData(body(i))
        e.properties = props(i)
        out.append(e)
    return out


def produce_sqlite(path: Path, total: int) -> float:
    """The baseline: the same rows, built before timing, into the same table, one
    executemany per batch (the timed loop is SQLite's work only)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(SCHEMA)
    seqs = dict.fromkeys(OWN, -1)
    now = int(time.time() * 1000)
    batches = []
    for n, first in enumerate(range(0, total, BATCH)):
        pid = OWN[n % len(OWN)]
        batches.append([(HUB, int(pid), seqs[pid] + 1 + j, now, body(i).encode(),
                         json.dumps(props(i)), None)
                        for j, i in enumerate(range(first, first + BATCH))])
        seqs[pid] += BATCH
    started = time.process_time()
    for rows in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    seconds = time.process_time() - started
    conn.close()
    return seconds


SQLITE = "sqlite3 executemany (baseline)"
BATCHED = "EmbeddedProducerClient, EventDataBatch"
SLICE = "SliceProducer over EmbeddedProducerClient, EventData built in the loop"
SLICE_BODIES = "SliceProducer.send(str bodies) over EmbeddedProducerClient"  # as services do
LISTED = "EmbeddedProducerClient.send_batch(list)"  # no EventDataBatch
APPENDED = "EmbeddedHub.append, EventData built beforehand"  # the hub's own cost


def produce_hub(path: Path, total: int, how: str) -> float:
    hub = EmbeddedHub(path, partitions=PARTITIONS)
    client = EmbeddedProducerClient(hub, HUB)
    producer = SliceProducer(client, context())
    client.get_partition_ids()  # registers the event hub
    built = [events(first) for first in range(0, total, BATCH)] if how == APPENDED else []
    bodies = ([[body(i) for i in range(first, first + BATCH)] for first in range(0, total, BATCH)]
              if how == SLICE_BODIES else [])
    started = time.process_time()
    for n, first in enumerate(range(0, total, BATCH)):
        pid = OWN[n % len(OWN)]
        if how == SLICE_BODIES:
            producer.send(bodies[n], partition_id=pid)
            continue
        batch_events = built[n] if built else events(first)
        if how == APPENDED:
            hub.append(HUB, pid, batch_events)
        elif how == SLICE:
            producer.send(batch_events, partition_id=pid)
        elif how == BATCHED:
            batch = client.create_batch(partition_id=pid)
            for e in batch_events:
                batch.add(e)
            client.send_batch(batch)
        else:
            client.send_batch(batch_events, partition_id=pid)
    seconds = time.process_time() - started
    hub.close()
    return seconds


def produce(path: Path, total: int, how: str) -> float:
    return produce_sqlite(path, total) if how == SQLITE else produce_hub(path, total, how)


def consume_select(path: Path) -> tuple[float, int]:
    conn = sqlite3.connect(path)
    got = 0
    started = time.process_time()
    for pid in OWN:
        for _row in conn.execute(
            "SELECT seq, enqueued_ms, body, properties, partition_key FROM events "
            "WHERE hub = ? AND partition = ? ORDER BY seq", (HUB, int(pid))):
            got += 1
    seconds = time.process_time() - started
    conn.close()
    return seconds, got


def consume_read(path: Path) -> tuple[float, int]:
    hub = EmbeddedHub(path, partitions=PARTITIONS)
    got = 0
    started = time.process_time()
    for pid in OWN:
        after = -1
        while page := hub.read(HUB, pid, after):
            got += len(page)
            after = page[-1].sequence_number
    seconds = time.process_time() - started
    hub.close()
    return seconds, got


def receive_all(hub: EmbeddedHub, pid: str, expected: int) -> int:
    client = EmbeddedConsumerClient(hub, HUB)
    received: list[int] = []

    def on_event(_ctx: Any, event: Any) -> None:
        received.append(event.sequence_number)
        if len(received) == expected:
            client.close()  # receive returns without polling again

    client.receive(on_event, partition_id=pid, starting_position="-1")
    return len(received)


def consume_receive(path: Path, per_partition: int) -> tuple[float, int]:
    hub = EmbeddedHub(path, partitions=PARTITIONS)
    started = time.process_time()
    got = sum(receive_all(hub, pid, per_partition) for pid in OWN)
    seconds = time.process_time() - started
    hub.close()
    return seconds, got


# The slice's start fences (issue 11), one per partition: every event is checked against one.
FENCED = {**CONTRACT, "LOCAL_DEV_SLICE_CLAIM": "ab-20261207020000000000",
          "LOCAL_DEV_EVENTHUBS_STARTFENCE": ",".join(f"{HUB}/{p}=-1" for p in OWN)
          + ",*=2026-12-07T02:00:00Z"}


def consume_slice(path: Path, per_partition: int) -> tuple[float, int]:
    """``SliceConsumer.receive`` over ``EmbeddedConsumerClient`` (one reader for the three
    partitions, in this thread), canaries and start fences checked per event, the service's
    callback counting per partition."""
    hub = EmbeddedHub(path, partitions=PARTITIONS)
    consumer = SliceConsumer(lambda: EmbeddedConsumerClient(hub, HUB),
                             SliceContext.from_env(FENCED))
    counts = dict.fromkeys(OWN, 0)
    done: set[str] = set()

    def on_event(context: Any, _event: Any) -> None:
        pid = context.partition_id
        counts[pid] += 1  # one thread per partition: no lock needed
        if counts[pid] == per_partition:
            done.add(pid)
            if len(done) == len(OWN):
                consumer.close()

    started = time.process_time()
    consumer.receive(on_event, starting_position="-1")
    seconds = time.process_time() - started
    hub.close()
    return seconds, sum(counts.values())


SELECT = "SELECT (baseline)"
SLICE_CONSUME = "SliceConsumer.receive (start fences, canaries), as services use it"


def stored(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


@dataclass(frozen=True)
class Throughput:
    events: int
    produce: dict[str, list[float]]  # events/s, one per run; the first entry is the baseline
    consume: dict[str, list[float]]


def bench_throughput(tmp: str, total: int, repeats: int, problems: list[str]) -> Throughput:
    paths = (SQLITE, SLICE_BODIES, SLICE, BATCHED, LISTED, APPENDED)
    result = Throughput(total, {name: [] for name in paths}, {})
    files = count()
    for r in range(repeats + 1):  # the first round warms up
        for how in rotated(list(result.produce), r):
            path = Path(tmp, f"produce-{next(files)}.db")
            rate = total / produce(path, total, how)
            if stored(path) != total:
                problems.append(f"produce, {how}: stored {stored(path)} events of {total}")
            if r:
                result.produce[how].append(rate)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    path = Path(tmp, "consume.db")
    produce_hub(path, total, BATCHED)
    consumers: dict[str, Callable[[], tuple[float, int]]] = {
        SELECT: lambda: consume_select(path),
        "EmbeddedHub.read, pages of 300": lambda: consume_read(path),
        "EmbeddedConsumerClient.receive": lambda: consume_receive(path, total // len(OWN)),
        SLICE_CONSUME: lambda: consume_slice(path, total // len(OWN)),
    }
    result.consume.update({name: [] for name in consumers})
    for r in range(repeats + 1):
        for name in rotated(list(consumers), r):
            seconds, got = consumers[name]()
            if got != total:
                problems.append(f"consume, {name}: read {got} events of {total}")
            if r:
                result.consume[name].append(total / seconds)
    return result


# -- 3. publish-to-receive latency across processes ------------------------------------------------


def receive_latencies(path: str, expected: int, ready: Queue[None],
                      out: Queue[list[float]]) -> None:
    """The consumer process: ``SliceConsumer`` over the embedded hub, as a service uses it
    (defaults: woken on change); acknowledge the warm-up event, then time ``expected``
    events."""
    hub = EmbeddedHub(path, partitions=PARTITIONS)
    consumer = SliceConsumer(lambda: EmbeddedConsumerClient(hub, HUB), context())
    latencies: list[float] = []

    def on_event(_ctx: Any, event: Any) -> None:
        now = time.time_ns()
        if b"sent_ns" not in event.properties:
            ready.put(None)
            return
        latencies.append((now - int(event.properties[b"sent_ns"])) / 1e9)
        if len(latencies) == expected:
            consumer.close()

    consumer.receive(on_event, starting_position="-1")
    out.put(latencies)


@dataclass(frozen=True)
class Latency:
    rate: int  # events per second
    latencies: list[float]  # sent -> received, seconds
    sends: list[float]  # duration of the publisher's send() calls


def bench_latency(tmp: str, rate: int, seconds: float, problems: list[str]) -> Latency:
    path = str(Path(tmp, f"latency-{rate}.db"))
    expected = round(rate * seconds)
    hub = EmbeddedHub(path, partitions=PARTITIONS)
    producer = SliceProducer(EmbeddedProducerClient(hub, HUB), context())
    ctx = mp.get_context("spawn")
    ready: Queue[None] = ctx.Queue()
    out: Queue[list[float]] = ctx.Queue()
    consumer = ctx.Process(target=receive_latencies, args=(path, expected, ready, out),
                           daemon=True)
    consumer.start()
    try:
        producer.send("warm-up", partition_id=OWN[0])
        ready.get(timeout=120)
        sends = []
        start = time.perf_counter()
        for i in range(expected):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            event = EventData(body(i))
            # a string: the SDK's AMQP encoder takes no int beyond 32 bits in properties
            event.properties = {"sent_ns": str(time.time_ns())}
            began = time.perf_counter()
            producer.send(event, partition_id=OWN[0])
            sends.append(time.perf_counter() - began)
        latencies = out.get(timeout=60)
        consumer.join(timeout=10)
    finally:
        if consumer.is_alive():
            consumer.terminate()
            consumer.join()
        hub.close()
    if len(latencies) != expected:
        problems.append(f"latency at {rate}/s: received {len(latencies)} of {expected}")
    return Latency(rate, sorted(latencies), sorted(sends))


# -- 4. an idle consumer's CPU --------------------------------------------------------------------

IDLE_PARTITIONS = 8


def idle_cpu(path: str, seconds: float, notify: bool, out: Queue[tuple[float, float]]) -> None:
    """The consumer process: ``SliceConsumer`` on 8 partitions of an idle hub; its CPU time
    over ``seconds`` of wall time, after a second to settle."""
    hub = EmbeddedHub(path, partitions=PARTITIONS)
    env = {**CONTRACT, "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS":
           ",".join(str(p) for p in range(IDLE_PARTITIONS))}
    consumer = SliceConsumer(lambda: EmbeddedConsumerClient(hub, HUB, notify=notify),
                             SliceContext.from_env(env))
    receiving = threading.Thread(target=consumer.receive, args=(lambda _c, _e: None,),
                                 daemon=True)
    receiving.start()
    time.sleep(1.0)
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    out.put((time.process_time() - cpu, time.perf_counter() - wall))
    consumer.close()
    receiving.join(10)


@dataclass(frozen=True)
class Idle:
    notify: bool
    shares: list[float]  # CPU seconds per wall second, one per run


def bench_idle(tmp: str, seconds: float, runs: int) -> list[Idle]:
    path = str(Path(tmp, "idle.db"))
    hub = EmbeddedHub(path, partitions=PARTITIONS)
    hub.partition_ids(HUB)
    hub.close()
    ctx = mp.get_context("spawn")
    shares: dict[bool, list[float]] = {True: [], False: []}
    for r in range(runs):
        for notify in rotated([True, False], r):
            out: Queue[tuple[float, float]] = ctx.Queue()
            proc = ctx.Process(target=idle_cpu, args=(path, seconds, notify, out), daemon=True)
            proc.start()
            cpu, wall = out.get(timeout=120)
            proc.join(20)
            shares[notify].append(cpu / wall)
    return [Idle(n, sorted(s)) for n, s in shares.items()]


# -- 5. the file under a steady stream, with and without retention ------------------------------


@dataclass(frozen=True)
class Growth:
    retention: float | None  # seconds; None: kept forever (the baseline)
    samples: list[tuple[float, int, int]]  # (seconds since start, events sent, file bytes)


def file_bytes(path: Path) -> int:
    return sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal")
               if Path(f"{path}{s}").exists())


def bench_growth(tmp: str, seconds: float, retention: float | None, rate: int = 2000
                 ) -> Growth:
    """SliceProducer sends 20 events every 10 ms (``rate``/s) for ``seconds``; the hub's
    file (and its WAL) measured every second."""
    path = Path(tmp, f"growth-{retention}.db")
    hub = EmbeddedHub(path, partitions=PARTITIONS,
                      **({"retention": retention} if retention is not None else
                         {"retention": 1e9}))
    producer = SliceProducer(EmbeddedProducerClient(hub, HUB), context())
    bodies = [body(i) for i in range(20)]
    samples: list[tuple[float, int, int]] = []
    sent, tick = 0, 0.01
    start = time.perf_counter()
    next_sample = 1.0
    for i in itertools.count():
        at = start + i * tick
        if at - start >= seconds:
            break
        time.sleep(max(0.0, at - time.perf_counter()))
        producer.send(bodies, partition_key=KEYS[i & 15])
        sent += len(bodies)
        if time.perf_counter() - start >= next_sample:
            samples.append((next_sample, sent, file_bytes(path)))
            next_sample += 1.0
    hub.close()
    return Growth(retention, samples)


# -- the whole -------------------------------------------------------------------------------------


@dataclass
class Results:
    overhead: list[Overhead]
    throughput: Throughput
    latency: list[Latency]
    idle: list[Idle]
    growth: list[Growth]
    problems: list[str]


RATES = (200, 20, 5)  # events/s of the latency runs
RETENTION_S = 2.0  # the growth run's retention: short, so that it shows within seconds


def run(quick: bool) -> Results:
    problems: list[str] = []
    repeats = 5 if quick else 15
    overhead = [bench_overhead(1, 2000, repeats, problems),
                bench_overhead(BATCH, 30, repeats, problems)]
    with tempfile.TemporaryDirectory(prefix="devslice-sdk-") as tmp:
        throughput = bench_throughput(tmp, 6000 if quick else 30000, 3 if quick else 7, problems)
        seconds = 2.0 if quick else 5.0
        latency = [bench_latency(tmp, rate, seconds * (2 if rate < 20 else 1), problems)
                   for rate in RATES]
        idle = bench_idle(tmp, 3.0 if quick else 5.0, 2 if quick else 3)
        span = 6.0 if quick else 12.0
        growth = [bench_growth(tmp, span, None), bench_growth(tmp, span, RETENTION_S)]
    return Results(overhead, throughput, latency, idle, growth, problems)


def rates(samples: Sequence[float]) -> str:
    return f"{median(samples):,.0f} /s ({min(samples):,.0f}–{max(samples):,.0f})"


def rate_table(measured: dict[str, list[float]]) -> str:
    base = median(next(iter(measured.values())))  # the first entry is the baseline
    rows = [[name, str(len(s)), rates(s), us(1 / median(s)), ratio(median(s), base)]
            for name, s in measured.items()]
    return table(["path", "runs", "events/s median (min–max)", "per event",
                  "median / baseline median"], rows)


@dataclass(frozen=True)
class Goal:
    figure: str
    measured: str
    goal: str
    met: bool


def goal_table(goals: Sequence[Goal]) -> str:
    return table(["figure (issue 17)", "measured", "goal", "met"],
                 [[g.figure, g.measured, g.goal, "yes" if g.met else "**no**"] for g in goals])


def goals(results: Results) -> list[Goal]:
    t = results.throughput
    out = []
    base = median(t.produce[SQLITE])
    got = median(t.produce[SLICE_BODIES]) / base
    out.append(Goal("`SliceProducer` produce, batches of 100, vs raw SQLite insert of prebuilt "
                    "rows", f"{got:.2f}x", ">= 0.5x", got >= 0.5))
    base = median(t.consume[SELECT])
    got = median(t.consume[SLICE_CONSUME]) / base
    out.append(Goal("`SliceConsumer` consume (as services use it) vs raw `SELECT`",
                    f"{got:.2f}x", ">= 0.7x", got >= 0.7))
    for lat in results.latency:
        if lat.latencies:
            p99 = percentile(lat.latencies, 99)
            out.append(Goal(f"publish-to-receive p99 at {lat.rate} events/s, consumer in "
                            "another process", ms(p99), "< 10 ms", p99 < 0.010))
    for idle in results.idle:
        if idle.notify:
            share = median(idle.shares)
            out.append(Goal(f"idle `SliceConsumer` CPU, {IDLE_PARTITIONS} partitions",
                            f"{share * 100:.2f}% of a CPU", "< 1%", share < 0.01))
    kept = next((g for g in results.growth if g.retention is not None), None)
    if kept is not None and len(kept.samples) >= 4:
        half = kept.samples[len(kept.samples) // 2][2]
        end = kept.samples[-1][2]
        out.append(Goal("embedded hub file under a steady stream (retention "
                        f"{kept.retention:g} s)", f"{half:,} → {end:,} bytes from the middle "
                        "to the end", "bounded by retention (end <= 1.25x middle)",
                        end <= 1.25 * half))
    return out


def report(results: Results) -> str:
    rows = []
    for o in results.overhead:
        raw, routed, wrapped = (median(o.per_event[name]) for name in (RAW, RAW_ROUTED, WRAPPED))
        rows.append([str(o.size), f"{len(o.per_event[RAW])} × {o.sends}", us(raw), us(routed),
                     us(wrapped), f"{us(wrapped - raw)} ({ratio(wrapped, raw)})",
                     us(wrapped - routed)])
    t = results.throughput
    defaults = inspect.signature(EmbeddedConsumerClient).parameters
    poll, top = defaults["poll_interval"].default, defaults["max_poll_interval"].default
    lat_rows = [[f"{lat.rate} /s", str(len(lat.latencies)),
                 *(ms(percentile(lat.latencies, p)) for p in (50, 99)), ms(lat.latencies[-1]),
                 ms(percentile(lat.sends, 50)), ms(percentile(lat.sends, 99))]
                for lat in results.latency if lat.latencies]
    idle_rows = [["woken on change (default)" if i.notify else
                  f"polling (notify=False: {poll * 1000:g} ms doubling to {top * 1000:g} ms)",
                  str(len(i.shares)), f"{median(i.shares) * 100:.2f}%",
                  f"{max(i.shares) * 100:.2f}%"] for i in results.idle]
    growth_rows = []
    for g in results.growth:
        label = "kept forever (baseline)" if g.retention is None else f"retention {g.retention:g} s"
        for at, sent, size in g.samples[1::2] or g.samples:
            growth_rows.append([label, f"{at:g} s", f"{sent:,}", f"{size:,}",
                                f"{size / sent:,.0f}"])
    out = [
        "Goals:", "", goal_table(goals(results)), "",
        "### Wrapper overhead per event (stub client, real EventDataBatch)", "",
        table(["events per send", "runs × sends", RAW, RAW_ROUTED, WRAPPED,
               "overhead per event vs raw (wrapped / raw)",
               "overhead per event vs raw with routing properties"], rows), "",
        "Per event, medians; the routing properties are the three the slice's contract "
        "stamps (Database, Table, Format).", "",
        f"### Embedded hub, one core: {t.events:,} events in batches of {BATCH}, "
        f"~200-byte bodies", "",
        "Produce (the baseline's rows are built before timing):", "", rate_table(t.produce), "",
        "Consume (the same events, three partitions):", "", rate_table(t.consume), "",
        "### Publish-to-receive latency, consumer in another process", "",
        table(["publish rate", "events", "p50", "p99", "max", "send() p50", "send() p99"],
              lat_rows), "",
        "The consumer is `SliceConsumer` over `EmbeddedConsumerClient` with its defaults "
        "(woken on change of the WAL file through inotify).", "",
        f"### Idle consumer: `SliceConsumer` on {IDLE_PARTITIONS} partitions, nothing sent", "",
        table(["consumer", "runs", "CPU median (of one CPU)", "max"], idle_rows), "",
        "### The hub's file under a steady stream (2,000 events/s, ~200-byte bodies)", "",
        table(["retention", "at", "events sent", "file + WAL bytes", "bytes / event sent"],
              growth_rows),
    ]
    out += [f"- problem: {p}" for p in results.problems]
    return "\n".join(out)
