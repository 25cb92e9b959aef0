"""The local runtime with the shop (examples/shop): what a developer waits for at the command
line, each figure against a baseline from the same run, the variants interleaved.

- **No-op `devslice up`** (everything already runs) and **`status` / `plan`** as commands,
  with a bytecode cache (as after an install): wall time, and the CPU time of the command
  (user + system, from ``getrusage`` of the child), against ``python -c pass``. Their output
  is piped, as a script's is: plain text, without rich (a terminal loads rich, ~40 ms more),
  and devslice.yaml is unchanged since the last command (its YAML data is the one kept;
  a changed file is read with ruamel, ~20 ms more). Beside them, a control: a process that
  only computes for 200 ms of CPU (no I/O, no threads): its wall minus CPU is what the
  machine's load alone adds, so the no-op's own waiting (wall minus CPU, beyond that) shows.
- **Cold `devslice up`** (`down` first) against starting the same processes directly (the
  argv, folder and environment `up` wrote into the supervisors' ``spec.json``, Azurite first
  and the three services once it answers, each waited for as its ``ready`` says, port open or
  the line in its output, with 5 ms polls), and beside them the same `up` with
  ``DEVSLICE_EARLY_START=0`` (the emulators started when the plan says, not as `up` begins:
  devslice/local/early.py); the three take turns.
- **Idle supervisors**: their CPU time (every thread's ``/proc/PID/task/TID/schedstat``, in
  ns) over a few seconds of nothing happening, per supervisor (the emulators' and the
  slice's).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.stats import median, ms, table
from devslice.facts.ports import free_ports
from devslice.local.early import REASON as EARLY_REASON

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "shop"
BIN = Path(sys.prefix) / "bin"
NOOP_GOAL = 0.25  # seconds, a no-op up as a command
CPU_GOAL = 0.35  # seconds of CPU, status / plan
BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.2:\n    pass"
COLD_GOAL = 1.15  # cold up / starting the processes directly
IDLE_GOAL = 0.001  # share of a CPU, an idle supervisor


@contextmanager
def shop() -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of the example on free ports, local runtime, and the environment to run it."""
    from devslice.testing.azurite import find_azurite

    with tempfile.TemporaryDirectory(prefix="devslice-local-") as tmp:
        root = Path(tmp, "shop")
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(
            ".devslice", "devslice.local.yaml", "__pycache__", "vendor"))
        web, blob, queue = free_ports(3)
        config = (root / "devslice.yaml").read_text()
        for old, new in (("runtime: auto", "runtime: local"),
                         ("127.0.0.1:10000/", f"127.0.0.1:{blob}/"),
                         ("127.0.0.1:10001/", f"127.0.0.1:{queue}/"),
                         ('PORT: "8080"', f'PORT: "{web}"'),
                         ("ready: {port: 8080}", f"ready: {{port: {web}}}")):
            assert old in config, old
            config = config.replace(old, new)
        (root / "devslice.yaml").write_text(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVSLICE_")
               and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                   AZURITE_BIN=find_azurite(REPO),
                   PYTHONPYCACHEPREFIX=str(Path(tmp, "pycache")))
        try:
            yield root, env
        finally:
            subprocess.run([str(BIN / "devslice"), "down"], cwd=root, env=env,
                           capture_output=True, check=False, timeout=120)


def command(argv: list[str], root: Path, env: dict[str, str],
            output: list[bytes] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child); its stdout appended to ``output``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, check=False,
                          timeout=300)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: "
                           f"{done.stderr[-800:]!r} {done.stdout[-800:]!r}")
    if output is not None:
        output.append(done.stdout)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ready(spec: dict[str, Any], log: Path, offset: int) -> bool:
    r = spec.get("ready") or {}
    if r.get("port"):
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", int(r["port"]))) != 0:
                return False
    if r.get("log"):
        with open(log, "rb") as f:
            f.seek(offset)
            if r["log"].encode() not in f.read():
                return False
    return True


def start_directly(specs: list[dict[str, Any]], logs: Path) -> list[subprocess.Popen[bytes]]:
    """Start ``specs`` at once and wait until each is ready (5 ms polls)."""
    from devslice.local.supervisor import environment

    procs, offsets = [], []
    for spec in specs:
        log = logs / f"{spec['name']}.log"
        offsets.append(log.stat().st_size if log.exists() else 0)
        with open(log, "ab") as out:
            procs.append(subprocess.Popen(spec["argv"], cwd=spec["cwd"],
                                          env=environment(spec["env"]), stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + 60
    waiting = list(range(len(specs)))
    while waiting:
        waiting = [i for i in waiting
                   if not ready(specs[i], logs / f"{specs[i]['name']}.log", offsets[i])]
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready: {[specs[i]['name'] for i in waiting]}")
        if waiting:
            time.sleep(0.005)
    return procs


def stop_directly(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid``, in nanoseconds where the kernel keeps them
    (``/proc/PID/task/TID/schedstat``); ``/proc/PID/stat``'s clock ticks (10 ms: 0.1% of a
    10 s look) only where it does not."""
    try:
        return sum(int((task / "schedstat").read_text().split()[0])
                   for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Local:
    commands: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    cold: list[float] = field(default_factory=list)
    cold_late: list[float] = field(default_factory=list)  # DEVSLICE_EARLY_START=0
    direct: list[float] = field(default_factory=list)
    idle: dict[str, float] = field(default_factory=dict)  # supervisor: share of a CPU
    problems: list[str] = field(default_factory=list)
    load: str = ""  # the machine's load average when the commands were timed


def run(quick: bool) -> Local:
    from devslice.local.state import read_json

    result = Local()
    devslice = str(BIN / "devslice")
    with shop() as (root, env):
        def do(*args: str) -> tuple[float, float]:
            return command([devslice, *args], root, env)

        do("slice", "claim")
        do("up")  # converges, and fills the bytecode cache
        base = root / ".devslice" / "local"
        (handle,) = [d.name for d in base.iterdir()
                     if d.name != "_emulators" and (d / "spec.json").exists()]
        emulators = read_json(base / "_emulators" / "spec.json")["services"]
        services = read_json(base / handle / "spec.json")["services"]

        # idle supervisors, while everything runs and nothing happens
        pids = {name: read_json(base / d / "state.json")["supervisor"]["pid"]
                for name, d in (("emulators' supervisor", "_emulators"),
                                ("slice's supervisor", handle))}
        span = 3.0 if quick else 10.0
        before = {n: cpu_seconds(p) for n, p in pids.items()}
        time.sleep(span)
        result.idle = {n: (cpu_seconds(p) - before[n]) / span for n, p in pids.items()}

        variants = {"python -c pass": [str(BIN / "python"), "-c", "pass"],
                    "python busy 200 ms of CPU": [str(BIN / "python"), "-c", BUSY],
                    "devslice up (no-op)": [devslice, "up"],
                    "devslice status": [devslice, "status"],
                    "devslice plan": [devslice, "plan"]}
        result.commands = {name: [] for name in variants}
        runs = 4 if quick else 10
        for i in range(runs):
            names = list(variants)
            for name in names[i % len(names):] + names[:i % len(names)]:
                result.commands[name].append(command(variants[name], root, env))
        result.load = " / ".join(f"{x:.2f}" for x in os.getloadavg())

        # cold up against the same processes started directly, taking turns
        logs = Path(root, "direct-logs")
        logs.mkdir()
        late = {**env, "DEVSLICE_EARLY_START": "0"}  # the emulators started by the plan only
        for i in range(2 if quick else 7):
            order = ("up", "late", "direct")
            for what in order[i % 3:] + order[:i % 3]:
                if what in ("up", "late"):
                    do("down")
                    said: list[bytes] = []
                    wall, _ = command([devslice, "up"], root, env if what == "up" else late,
                                      said)
                    (result.cold if what == "up" else result.cold_late).append(wall)
                    if (EARLY_REASON.encode() in said[0]) != (what == "up"):  # measured as named
                        result.problems.append(f"a cold `up` ({what}) did "
                                               f"{'not ' if what == 'up' else ''}begin early")
                else:
                    do("down")
                    started = time.perf_counter()
                    procs = start_directly(emulators, logs)
                    procs += start_directly(services, logs)
                    result.direct.append(time.perf_counter() - started)
                    stop_directly(procs)
            do("up")
    return result


@dataclass(frozen=True)
class Goal:
    figure: str
    measured: str
    goal: str
    met: bool


def goals(r: Local) -> list[Goal]:
    out = []
    base_wall = median([w for w, _ in r.commands["python -c pass"]])
    base_cpu = median([c for _, c in r.commands["python -c pass"]])
    samples = r.commands["devslice up (no-op)"]
    noop, noop_cpu = median([w for w, _ in samples]), median([c for _, c in samples])
    busy = r.commands["python busy 200 ms of CPU"]
    busy_gap = median([w - c for w, c in busy])
    out.append(Goal("no-op `up`, local runtime (the shop), as a command, piped",
                    f"{ms(noop)} wall ({noop / base_wall:.1f}x `python -c pass`); "
                    f"{ms(noop_cpu)} CPU; wall - CPU {ms(median([w - c for w, c in samples]))} "
                    f"(a process busy for 200 ms of CPU: {ms(busy_gap)}); load {r.load}",
                    f"< {NOOP_GOAL * 1000:g} ms wall",
                    noop < NOOP_GOAL))
    for name in ("devslice status", "devslice plan"):
        cpu = median([c for _, c in r.commands[name]])
        out.append(Goal(f"`{name.split()[1]}`, local runtime, CPU, piped",
                        f"{ms(cpu)} ({cpu / base_cpu:.1f}x `python -c pass`)",
                        f"< {CPU_GOAL * 1000:g} ms", cpu < CPU_GOAL))
    if r.cold and r.direct:
        ratio = median(r.cold) / median(r.direct)
        late = (f"; with the emulators started by the plan only (DEVSLICE_EARLY_START=0), "
                f"same run: {median(r.cold_late) / median(r.direct):.2f}x "
                f"({ms(median(r.cold_late))})" if r.cold_late else "")
        out.append(Goal("cold `up`, local runtime, vs starting the same processes directly",
                        f"{ratio:.2f}x ({ms(median(r.cold))} / {ms(median(r.direct))}){late}",
                        f"< {COLD_GOAL:g}x", ratio < COLD_GOAL))
    for name, share in r.idle.items():
        out.append(Goal(f"idle {name} CPU", f"{share * 100:.3f}% of a CPU",
                        f"< {IDLE_GOAL * 100:g}%", share < IDLE_GOAL))
    return out


def report(r: Local) -> str:
    base = r.commands["python -c pass"]
    rows = []
    for name, samples in r.commands.items():
        wall, cpu = median([w for w, _ in samples]), median([c for _, c in samples])
        rows.append([f"`{name}`", str(len(samples)), ms(wall), ms(cpu),
                     f"{wall / median([w for w, _ in base]):.2f}x"])
    out = [
        f"Load average (1, 5, 15 min) after the commands were timed: {r.load}", "",
        "Goals:", "",
        table(["figure (issue 17)", "measured", "goal", "met"],
              [[g.figure, g.measured, g.goal, "yes" if g.met else "**no**"] for g in goals(r)]),
        "",
        table(["command (bytecode cached)", "runs", "wall median", "CPU median",
               "wall / `python -c pass`"], rows), "",
        table(["cold start", "runs", "median", "min", "max"],
              [[name, str(len(s)), ms(median(s)), ms(min(s)), ms(max(s))]
               for name, s in (("`devslice up` after `down`", r.cold),
                               ("`devslice up` after `down`, DEVSLICE_EARLY_START=0",
                                r.cold_late),
                               ("the same processes started directly", r.direct)) if s]),
    ]
    out += [f"- problem: {p}" for p in r.problems]
    return "\n".join(out)
