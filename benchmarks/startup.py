"""Start-up time of the ``devslice`` command against a bare ``python -c pass``.

Each command runs as a subprocess, interleaved (one of each per pass, the order rotating),
so that the baseline and the commands see the same machine. One unmeasured pass first
warms the page cache, fills the bytecode cache and creates the ledger ``slice list`` reads.

Two modes, each with its own baseline: with a bytecode cache (``PYTHONPYCACHEPREFIX`` in a
temporary folder, as after any normal install), and with the environment as given, which
may set ``PYTHONDONTWRITEBYTECODE`` so that every run compiles devslice's own modules.
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
    mode: str
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


def modes(tmp: str) -> dict[str, dict[str, str]]:
    given = {k: v for k, v in os.environ.items() if not k.startswith("DEVSLICE_")}
    cached = {k: v for k, v in given.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(Path(tmp, "pycache"))
    flag = given.get("PYTHONDONTWRITEBYTECODE")
    return {
        "bytecode cached": cached,
        "environment as given" + (f" (PYTHONDONTWRITEBYTECODE={flag})" if flag else ""): given,
    }


def run(quick: bool) -> list[Timing]:
    runs = 10 if quick else 30
    samples: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="devslice-startup-") as tmp:
        Path(tmp, "devslice.yaml").write_text(CONFIG, encoding="utf-8")
        todo = [(mode, env, name, argv) for mode, env in modes(tmp).items()
                for name, argv in commands().items()]
        for mode, env, name, argv in todo:
            time_once(argv, tmp, env)
            samples[mode, name] = []
        for i in range(runs):
            for mode, env, name, argv in todo[i % len(todo):] + todo[: i % len(todo)]:
                samples[mode, name].append(time_once(argv, tmp, env))
    return [Timing(mode, name, sorted(s)) for (mode, name), s in samples.items()]


def report(timings: list[Timing]) -> str:
    out = []
    for mode in dict.fromkeys(t.mode for t in timings):
        medians = {t.command: median(t.samples) for t in timings if t.mode == mode}
        base = medians[BASELINE]
        rows = [
            [f"`{t.command}`", str(len(t.samples)), ms(median(t.samples)),
             ms(percentile(t.samples, 95)), ms(t.samples[0]), ratio(median(t.samples), base)]
            for t in timings if t.mode == mode
        ]
        version = medians["devslice --version"]
        verdict = "met" if version / base < GOAL else "NOT met"
        out += [
            f"### {mode}", "",
            table(["command", "runs", "median", "p95", "min", "median / baseline median"], rows),
            "",
            f"Goal `devslice --version` < {GOAL:g}x `{BASELINE}`: {verdict} "
            f"({ratio(version, base)}).", "",
        ]
    return "\n".join(out).rstrip()
