"""How long a SQLite ledger operation waits under a mixed storm of writers (issue 12, item 8).

Eight worker processes (``spawn``) hammer one SQLite ledger for a fixed time. Each loops over
a seeded random mix: claim its own next handle, renew or release one it holds, list the
slices, or gc; each operation opens a new ledger, as a new ``devslice`` process would, and is
timed alone (``time.perf_counter``). Reported: how many of each, and the median, p99 and
maximum wait of the writes and of the reads. Only the public library API is used, so the same
module measures an older checkout too (``PYTHONPATH=/path/to/old/src``).
"""

from __future__ import annotations

import multiprocessing as mp
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.stats import ms, percentile, table

WORKERS = 8
TEAM = "company1"
CONFIG = f"""\
apiVersion: devslice.dev/v1alpha1
kind: Environment
team: {TEAM}
eventHubs:
  namespaces:
    - {{name: {TEAM}-ehns1, partitions: 32}}
    - {{name: {TEAM}-ehns2, partitions: 32}}
"""
WRITES = ("claim", "renew", "release", "gc")


@dataclass
class Samples:
    by_op: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, other: Samples) -> None:
        for op, values in other.by_op.items():
            self.by_op.setdefault(op, []).extend(values)
        self.errors += other.errors

    def writes(self) -> list[float]:
        return [v for op in WRITES for v in self.by_op.get(op, [])]


def worker(index: int, path: str, until: float, seed: int,
           out: mp.queues.Queue[Samples]) -> None:  # type: ignore[name-defined]
    from devslice.config import Environment, parse_config
    from devslice.ledger.sqlite import SqliteLedger
    from devslice.project import Project

    env = parse_config(CONFIG, "bench.yaml", Environment)
    rng = random.Random(seed)
    owner = f"Storm Worker{index} <w{index}@bench.example>"
    held: list[str] = []
    made = 0
    samples = Samples()
    while time.time() < until:
        roll = rng.random()
        op = ("claim" if not held or (roll < 0.35 and len(held) < 4) else "renew"
              if roll < 0.55 else "release" if roll < 0.75 else "list" if roll < 0.95 else "gc")
        started = time.perf_counter()
        try:
            with SqliteLedger(Path(path), TEAM) as ledger:
                project = Project(env, Path(path).parent / "bench.yaml", ledger=ledger,
                                  actor=f"w{index}")
                if op == "claim":
                    made += 1
                    handle = f"w{index}x{made}"
                    project.claim(handle, owner=owner)
                    held.append(handle)
                elif op == "renew":
                    project.renew(rng.choice(held), owner=owner)
                elif op == "release":
                    project.release(held.pop(rng.randrange(len(held))), owner=owner)
                elif op == "list":
                    project.slices()
                else:
                    project.gc()
        except Exception as exc:
            samples.errors.append(f"{op}: {type(exc).__name__}: {exc}")
            continue
        samples.by_op.setdefault(op, []).append(time.perf_counter() - started)
    out.put(samples)


def run(quick: bool) -> Samples:
    seconds = 6.0 if quick else 20.0
    ctx = mp.get_context("spawn")
    results: mp.queues.Queue[Samples] = ctx.Queue()  # type: ignore[name-defined]
    total = Samples()
    with tempfile.TemporaryDirectory(prefix="devslice-storm-") as tmp:
        path = str(Path(tmp) / "ledger.db")
        until = time.time() + 3.0 + seconds  # the workers start (spawn) within 3 s
        procs = [ctx.Process(target=worker, args=(i, path, until, 1000 + i, results))
                 for i in range(WORKERS)]
        for p in procs:
            p.start()
        for _ in procs:
            total.add(results.get(timeout=seconds + 120))
        for p in procs:
            p.join(timeout=30)
    return total


def report(samples: Samples) -> str:
    rows = []
    for name, values in [*((op, samples.by_op.get(op, [])) for op in (*WRITES, "list")),
                         ("all writes", samples.writes())]:
        if not values:
            continue
        ordered = sorted(values)
        rows.append([name, str(len(values)), ms(percentile(ordered, 50)),
                     ms(percentile(ordered, 99)), ms(ordered[-1])])
    out = table(["operation", "count", "median", "p99", "max"], rows)
    if samples.errors:
        out += f"\n\n{len(samples.errors)} operation(s) failed, e.g. {samples.errors[0]}"
    return out


if __name__ == "__main__":
    import sys

    print(report(run("--quick" in sys.argv)))
