"""Start-up time of the ``devslice`` command against a bare ``python -c pass``.

Each command runs as a subprocess, interleaved (one of each per pass, the order rotating),
so that the baseline and the commands see the same machine. One unmeasured pass first
warms the page cache and creates the ledger that ``slice list`` reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.stats import median, ms, percentile, ratio, table

BASELINE = "python -c pass"
GOAL = 3.0  # devslice --version should start in under GOAL x the baseline
CONFIG = "apiVersion: devslice.dev/v1alpha1\nkind: Environment\nteam: company1\n"


@dataclass(frozen=True)
class Timing:
    command: str
    samples: list[float]


def commands() -> dict[str, list[str]]:
    bin_dir = Path(sys.prefix) / "bin"  # the venv running the benchmarks
    devslice = str(bin_dir / "devslice")
    return {
        BASELINE: [str(bin_dir / "python"), "-c", "pass"],
        "devslice --version": [devslice, "--version"],
        "devslice --help": [devslice, "--help"],
        "devslice slice list": [devslice, "slice", "list"],
    }


def time_once(argv: list[str], cwd: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]!r}")
    return seconds


def run(quick: bool) -> list[Timing]:
    runs = 10 if quick else 30
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVSLICE_")}
    todo = commands()
    samples: dict[str, list[float]] = {name: [] for name in todo}
    with tempfile.TemporaryDirectory(prefix="devslice-startup-") as tmp:
        Path(tmp, "devslice.yaml").write_text(CONFIG, encoding="utf-8")
        names = list(todo)
        for name in names:
            time_once(todo[name], tmp, env)
        for i in range(runs):
            for name in names[i % len(names):] + names[: i % len(names)]:
                samples[name].append(time_once(todo[name], tmp, env))
    return [Timing(name, sorted(s)) for name, s in samples.items()]


def report(timings: list[Timing]) -> str:
    base = median(next(t for t in timings if t.command == BASELINE).samples)
    rows = [
        [f"`{t.command}`", str(len(t.samples)), ms(median(t.samples)),
         ms(percentile(t.samples, 95)), ms(t.samples[0]), ratio(median(t.samples), base)]
        for t in timings
    ]
    version = median(next(t for t in timings if t.command == "devslice --version").samples)
    verdict = "met" if version / base < GOAL else "NOT met"
    return "\n".join([
        table(["command", "runs", "median", "p95", "min", "median / baseline median"], rows),
        "",
        f"Goal `devslice --version` < {GOAL:g}x `{BASELINE}`: {verdict} "
        f"({ratio(version, base)}).",
    ])
