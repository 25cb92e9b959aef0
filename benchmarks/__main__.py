"""Run the benchmarks and print a markdown summary: ``.venv/bin/python -m benchmarks`` runs
them all, ``.venv/bin/python -m benchmarks sdk`` (or ``claims``, ``storm``, ``startup``,
``local``, ``engine``) only those named; ``engine-real`` (not in "all") times the image and
container steps on the real engine and registry ``scripts/docker-engine.sh start`` exports."""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version

from benchmarks import claims, engine, local, sdk, startup, storm

SUITES = ("claims", "storm", "startup", "local", "sdk", "engine")
OPTIONAL = ("engine-real",)  # needs a Docker engine and registry


def machine() -> str:
    from devslice.testing import find_azurite

    u = platform.uname()
    try:
        azurite = subprocess.run([find_azurite(), "--version"], capture_output=True,
                                 text=True, check=False).stdout.strip() or "?"
    except Exception as exc:  # reported, not fatal: the claim benchmark says more
        azurite = f"not found ({exc})"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join([
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- uname: {u.system} {u.release} {u.version} {u.machine}",
        f"- CPUs: {os.cpu_count()}; load average at start: {load}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"SQLite {sqlite3.sqlite_version}, azure-storage-blob {version('azure-storage-blob')}, "
        f"azure-eventhub {version('azure-eventhub')}, Azurite {azurite}, "
        f"devslice {version('devslice')}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"run only these: {', '.join(SUITES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and runs")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.suites) - set(SUITES) - set(OPTIONAL))
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; choose from "
                     f"{', '.join(SUITES + OPTIONAL)}")
    chosen = args.suites or SUITES

    began = time.perf_counter()
    print(f"# devslice benchmarks{' (--quick)' if args.quick else ''}\n")
    print(machine(), flush=True)
    bad = False

    if "claims" in chosen:
        print(f"\n## Claim latency, {claims.WORKERS} processes claiming at once\n", flush=True)
        results = claims.run(args.quick)
        print(claims.report(results), flush=True)
        bad = any(r.failed or r.duplicates or r.problems for r in results)

    if "storm" in chosen:
        print(f"\n## SQLite ledger, a mixed storm of {storm.WORKERS} writers\n", flush=True)
        print(storm.report(storm.run(args.quick)), flush=True)

    if "startup" in chosen:
        print("\n## Start-up time\n", flush=True)
        print(startup.report(startup.run(args.quick)), flush=True)

    if "local" in chosen:
        print("\n## The local runtime (the shop)\n", flush=True)
        measured_local = local.run(args.quick)
        print(local.report(measured_local), flush=True)
        bad = bad or bool(measured_local.problems)

    if "sdk" in chosen:
        print("\n## Runtime SDK\n", flush=True)
        measured = sdk.run(args.quick)
        print(sdk.report(measured), flush=True)
        bad = bad or bool(measured.problems)

    if "engine" in chosen:
        print("\n## Environment engine\n", flush=True)
        result = engine.run(args.quick)
        print(engine.report(result), flush=True)
        bad = bad or bool(result.problems)

    if "engine-real" in chosen:
        from benchmarks import engine_real

        print("\n## Environment engine on a real Docker engine\n", flush=True)
        real = engine_real.run(args.quick)
        print(engine_real.report(real), flush=True)
        bad = bad or bool(real.problems)

    print(f"\n(ran in {time.perf_counter() - began:.0f} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
