"""Claim latency under contention, on the SQLite ledger and on the Azure Blob ledger (Azurite).

Sixteen worker processes (``spawn``) each receive one claim per round with a common start
time, sleep until it, and time ``Project.claim`` alone (``time.perf_counter``). Every round
starts from an empty ledger (a new SQLite file; the blob deleted). Each claim gets a new
ledger object, as a new ``devslice`` process would, so opening the SQLite file and the HTTP
connection to Azurite are part of the measured time. A warm-up round per backend, checked but
not counted, loads the lazily imported modules, so the figures are the ledger's and not
Python's import time.

The baseline is the same claim with no one else around: one worker at a time, each on an
empty ledger, interleaved with the contended rounds so that both see the same machine.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from benchmarks.stats import ms, percentile, ratio, table
from devslice.ledger.base import Ledger

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess
    from multiprocessing.queues import Queue

    from devslice.config.model import Environment
    from devslice.ledger.records import Problem
    from devslice.slices.model import Change, LedgerState
    from devslice.slices.operations import Transition

T = TypeVar("T")

WORKERS = 16
TEAM = "company1"
CONTAINER = "devslice"
BLOB = "ledger.json"
LEAD = 0.5  # seconds between sending a round and its common start time
CONFIG = f"""\
apiVersion: devslice.dev/v1alpha1
kind: Environment
team: {TEAM}
ledger: {{soloTeam: true}}  # the SQLite rounds: every claimer is on this machine
eventHubs:
  mode: shared
  namespaces:
    - name: {TEAM}-ehns1
      partitions: 32
    - name: {TEAM}-ehns2
      partitions: 32
"""


@dataclass(frozen=True)
class Task:
    backend: str  # "sqlite" or "azureBlob"
    location: str  # the SQLite file, or the Azurite connection string
    owner: str
    start_at: float  # time.time() at which to claim; 0 for at once


@dataclass(frozen=True)
class Outcome:
    owner: str
    seconds: float
    attempts: int  # how often the ledger ran the claim (optimistic retries)
    skew: float  # how late the claim started after the common start time
    handle: str = ""
    namespace: str = ""
    partitions: tuple[int, ...] = ()
    error: str | None = None


# -- the worker process ----------------------------------------------------------------------


@contextmanager
def opened(backend: str, location: str) -> Iterator[Ledger]:
    """A new ledger object, as a fresh ``devslice`` process would make one."""
    if backend == "sqlite":
        from devslice.ledger.sqlite import SqliteLedger

        with SqliteLedger(Path(location), TEAM) as ledger:
            yield ledger
        return
    from azure.storage.blob import ContainerClient

    from devslice.ledger.azureblob import AzureBlobLedger

    # AzureBlobLedger.close does not close the client it was given, so close it here.
    with ContainerClient.from_connection_string(location, CONTAINER) as client:
        yield AzureBlobLedger(client, BLOB, TEAM)


class CountingLedger(Ledger):
    """Passes everything through, counting how often ``transact`` runs the operation."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        self.location = inner.location
        self.shared = inner.shared
        self.attempts = 0

    def read(self) -> LedgerState:
        return self.inner.read()

    def history(self, handle: str | None = None, limit: int | None = 50) -> list[Change]:
        return self.inner.history(handle, limit)

    def check(self) -> list[Problem]:
        return self.inner.check()

    def transact(self, operation: Callable[[LedgerState], Transition[T]]) -> Transition[T]:
        def counted(state: LedgerState) -> Transition[T]:
            self.attempts += 1
            return operation(state)

        return self.inner.transact(counted)


def claim_once(env: Environment, workdir: Path, task: Task) -> Outcome:
    from devslice.project import Project

    skew = 0.0
    started = time.perf_counter()
    counting: CountingLedger | None = None
    try:
        with opened(task.backend, task.location) as ledger:
            counting = CountingLedger(ledger)
            project = Project(env, workdir / "bench.yaml", ledger=counting, actor="bench")
            time.sleep(max(0.0, task.start_at - time.time()))
            skew = max(0.0, time.time() - task.start_at) if task.start_at else 0.0
            started = time.perf_counter()
            claimed, _ = project.claim(owner=task.owner)
            seconds = time.perf_counter() - started
    except Exception as exc:
        return Outcome(task.owner, time.perf_counter() - started,
                       counting.attempts if counting else 0, skew,
                       error=f"{type(exc).__name__}: {exc}")
    lease = claimed.event_hubs
    return Outcome(task.owner, seconds, counting.attempts, skew, claimed.handle,
                   lease.namespace, tuple(lease.partitions))


def serve(workdir: str, tasks: Queue[Task | None], results: Queue[Outcome | None]) -> None:
    """A worker: parse the config once, say ready, then run tasks until None."""
    from devslice.config import Environment, parse_config

    env = parse_config(CONFIG, "bench.yaml", Environment)
    results.put(None)
    while (task := tasks.get()) is not None:
        results.put(claim_once(env, Path(workdir), task))


# -- the driver ------------------------------------------------------------------------------


@dataclass
class Pool:
    processes: list[SpawnProcess]
    tasks: list[Queue[Task | None]]
    results: Queue[Outcome | None]

    @classmethod
    def start(cls, workdir: str) -> Pool:
        ctx = mp.get_context("spawn")
        results: Queue[Outcome | None] = ctx.Queue()
        tasks: list[Queue[Task | None]] = [ctx.Queue() for _ in range(WORKERS)]
        processes = [ctx.Process(target=serve, args=(workdir, q, results), daemon=True)
                     for q in tasks]
        for p in processes:
            p.start()
        for _ in processes:
            if results.get(timeout=120) is not None:
                raise RuntimeError("a worker answered before it was ready")
        return cls(processes, tasks, results)

    def run(self, tasks: list[Task], first: int = 0) -> list[Outcome]:
        """Give task i to worker first + i: one task per worker, so all claim at once."""
        for i, task in enumerate(tasks):
            self.tasks[(first + i) % WORKERS].put(task)
        outcomes = [self.results.get(timeout=300) for _ in tasks]
        return [o for o in outcomes if o is not None]

    def stop(self) -> None:
        for queue in self.tasks:
            queue.put(None)
        for p in self.processes:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join()


@dataclass
class BackendResult:
    name: str
    contended: list[Outcome] = field(default_factory=list)
    uncontended: list[Outcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failed: int = 0  # claims that raised, warm-up rounds included
    duplicates: int = 0  # partitions given to more than one claim


def owner(i: int) -> str:
    return f"Bench Worker{i:02d} <worker{i:02d}@bench.example>"


def check_round(result: BackendResult, backend: str, location: str,
                outcomes: list[Outcome]) -> None:
    """No failure, no partition given twice, and the ledger holds what the claims returned."""
    errors = [f"{o.owner}: {o.error}" for o in outcomes if o.error]
    result.failed += len(errors)
    result.problems += errors
    cells = Counter((o.namespace, p) for o in outcomes if not o.error for p in o.partitions)
    result.duplicates += sum(n - 1 for n in cells.values() if n > 1)
    handles = Counter(o.handle for o in outcomes if not o.error)
    result.problems += [f"handle {h!r} given {n} times" for h, n in handles.items() if n > 1]
    with opened(backend, location) as ledger:
        state = ledger.read()
    held = Counter((s.event_hubs.namespace, p)
                   for s in state.slices.values() for p in s.event_hubs.partitions)
    if held != cells or len(state.slices) != len(handles):
        result.problems.append(f"the ledger holds {len(state.slices)} slices, not the "
                               f"{len(handles)} the claims returned")


def bench_backend(pool: Pool, name: str, backend: str, fresh: Callable[[], str], rounds: int,
                  solo: int) -> BackendResult:
    result = BackendResult(name)
    warm = fresh()  # not counted, but checked
    start_at = time.time() + LEAD
    outcomes = pool.run([Task(backend, warm, owner(i), start_at) for i in range(WORKERS)])
    check_round(result, backend, warm, outcomes)
    for r in range(rounds):
        for s in range(solo):  # one worker at a time, a different one each time
            location = fresh()
            outcomes = pool.run([Task(backend, location, owner(0), 0.0)], first=r * solo + s)
            result.uncontended += outcomes
            check_round(result, backend, location, outcomes)
        location = fresh()
        start_at = time.time() + LEAD
        outcomes = pool.run([Task(backend, location, owner(i), start_at) for i in range(WORKERS)])
        result.contended += outcomes
        check_round(result, backend, location, outcomes)
    return result


def run(quick: bool) -> list[BackendResult]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import ContainerClient

    from devslice.testing import Azurite

    rounds, solo = (2, 4) if quick else (8, 6)
    with tempfile.TemporaryDirectory(prefix="devslice-bench-") as tmp, Azurite() as az:
        files = count()

        def fresh_sqlite() -> str:
            return str(Path(tmp, f"ledger-{next(files)}.db"))

        client = ContainerClient.from_connection_string(az.connection_string(), CONTAINER)

        def fresh_blob() -> str:
            with suppress(ResourceNotFoundError):
                client.delete_blob(BLOB)
            return az.connection_string()

        pool = Pool.start(tmp)
        try:
            return [
                bench_backend(pool, "SQLite (temp file)", "sqlite", fresh_sqlite, rounds, solo),
                bench_backend(pool, "Azure Blob (Azurite)", "azureBlob", fresh_blob, rounds, solo),
            ]
        finally:
            pool.stop()
            client.close()


BLOB_P95_GOAL = 1.0  # seconds


def report(results: list[BackendResult]) -> str:
    header = ["ledger", "claims", "failed", "duplicate partitions", "p50", "p95", "max",
              "uncontended p50 (n)", "contended p50 / uncontended p50",
              "attempts mean / max", "start skew max"]
    rows = []
    for r in results:
        lat = sorted(o.seconds for o in r.contended if not o.error) or [float("nan")]
        base = sorted(o.seconds for o in r.uncontended if not o.error) or [float("nan")]
        attempts = [o.attempts for o in r.contended]
        rows.append([
            r.name, str(len(r.contended)), str(r.failed), str(r.duplicates),
            ms(percentile(lat, 50)), ms(percentile(lat, 95)), ms(lat[-1]),
            f"{ms(percentile(base, 50))} ({len(base)})",
            ratio(percentile(lat, 50), percentile(base, 50)),
            f"{sum(attempts) / len(attempts):.1f} / {max(attempts)}",
            ms(max(o.skew for o in r.contended)),
        ])
    out = [table(header, rows)]
    for r in results:
        if "Azure" in r.name:
            lat = sorted(o.seconds for o in r.contended if not o.error)
            if lat:
                p95 = percentile(lat, 95)
                out += ["", f"Goal (issue 17) claim p95, {WORKERS} concurrent claimers, Azure "
                        f"Blob ledger < {BLOB_P95_GOAL:g} s: "
                        f"{'met' if p95 < BLOB_P95_GOAL else 'NOT met'} ({ms(p95)})."]
    for r in results:
        out += [f"- {r.name}: {p}" for p in r.problems[:10]]
    return "\n".join(out)
