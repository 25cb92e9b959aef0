"""The files the CLI and the supervisor share under ``.devslice/local/``, and the facts read
from them: which recorded processes still run (the same processes, not a recycled pid), and
who holds a folder's lock."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devslice.files import write_atomic

SPEC = "spec.json"  # what to run (holds the contract, secrets included: mode 0600)
STATE = "state.json"  # what runs: pids, process groups, their start times, states
LOGS = "logs"
GO = "go"  # a FIFO: a held supervisor starts its services when `up` writes to it
LOCK = "lock"  # flock'ed by the `up` or `down` that acts on the folder; holds who that is
FAST_POLL = 0.005  # seconds between the first looks for a starting process (issue 17)
FAST_FOR = 3.0  # seconds of looking that often; most services are ready well before
SLOW_POLL = 0.1  # seconds between looks once a start takes longer than FAST_FOR
MARKER = "devslice.local.supervisor"  # in a supervisor's command line: python -m MARKER DIR
SUPERVISOR_LOG = "supervisor.log"  # the supervisor's own output, in its folder


def poll_delays(clock: Callable[[], float]) -> Iterator[float]:
    """How long to sleep between looks for something starting (a port, a ready line, the
    supervisor's state): every FAST_POLL seconds for the first FAST_FOR seconds of
    ``clock`` (``time.monotonic``), so a service that is ready in 300 ms is seen within 5 ms
    of it, as a script starting it directly would; then doubling to SLOW_POLL, so a slow
    start is not watched 200 times a second for a minute (issue 17: the fixed 20 ms look of
    each layer, supervisor and CLI, added up to ~40 ms of a cold `up`)."""
    until = clock() + FAST_FOR
    delay = FAST_POLL
    while True:
        if clock() >= until:
            delay = min(SLOW_POLL, delay * 2)
        yield delay


def supervisor_argv(directory: Path) -> list[str]:
    """How the supervisor of ``directory`` is started, by a plan or as `up` begins."""
    return [sys.executable, "-m", MARKER, str(directory)]


def spec_digest(services: list[dict[str, Any]]) -> str:
    """What identifies a supervisor's services (the entries of its ``spec.json``: name, argv,
    cwd, env, ready), the environment's values (secrets) only through a digest: the hash a
    plan compares with the running supervisor's."""
    public = [{"name": s["name"], "argv": s["argv"], "cwd": s["cwd"], "ready": s["ready"],
               "env": hashlib.sha256(json.dumps(s["env"], sort_keys=True).encode())
               .hexdigest()[:16]} for s in services]
    return hashlib.sha256(json.dumps(public, sort_keys=True).encode()).hexdigest()[:16]


def write_json(path: Path, data: Any, private: bool = False) -> None:
    """Atomically, so a reader never sees half a file."""
    write_atomic(path, json.dumps(data, indent=1), 0o600 if private else 0o644)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # a torn write cannot happen (atomic), but a hand-edited file can


def process_start(pid: int, proc: Path = Path("/proc")) -> str | None:
    """When ``pid`` started, as a string that differs for a later process given the same pid
    (pids are recycled): the boot id and the start time in clock ticks from /proc on Linux,
    ``ps -o lstart=`` elsewhere (macOS, the BSDs). None when the process does not run (or is a
    zombie) or nothing can tell."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except FileNotFoundError:
        if proc.exists():
            return None  # /proc is there and the process is not
    except OSError:
        return None
    else:
        fields = stat[stat.rindex(")") + 2:].split()  # the command (field 2) may hold spaces
        if fields[0] in "ZX":  # state: a zombie has exited
            return None
        try:  # ticks since boot: the boot tells two boots' processes apart
            boot = (proc / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        except OSError:
            boot = ""
        return f"{boot}:{fields[19]}"  # starttime
    # Linux reads /proc above and never gets here
    from devslice.adapters.runner import SubprocessRunner  # lazy: the supervisor's start-up
    from devslice.errors import DevsliceError  # lazy: the supervisor's start-up (issue 17)

    try:
        out = SubprocessRunner().run(["ps", "-o", "lstart=", "-p", str(pid)], check=False,
                                     timeout=10).stdout.strip()
    except DevsliceError:
        return None
    return out or None


def alive(pid: int | None, marker: str | None = None, started: str | None = None) -> bool:
    """Whether the process ``pid`` that started at ``started`` (see process_start) still runs.
    Without ``started`` (a state file of an older devslice), ``marker`` must be in its command
    line. Either way a pid recycled by an unrelated process is not taken for ours, so it is
    never killed."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # runs, as another user: not one of ours unless its start time says so
    if started is not None:
        return process_start(pid) == started
    if marker is None:
        return process_start(pid) is not None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return True  # no /proc (macOS): trust the pid
    if not cmdline:
        return False  # a zombie: exited, not yet reaped
    return marker in cmdline


def running(directory: Path) -> dict[str, Any] | None:
    """The supervisor's state, if it runs (the recorded process, not a recycled pid)."""
    state = read_json(directory / STATE)
    sup = (state or {}).get("supervisor") or {}
    if state and alive(sup.get("pid"), MARKER, sup.get("started")):
        return state
    return None


def orphans(directory: Path) -> dict[str, int]:
    """Services a dead supervisor left running (name: pid), checked by their start time so a
    recycled pid is not taken for one of them."""
    if running(directory) is not None:
        return {}
    state = read_json(directory / STATE) or {}
    return {name: int(s["pid"]) for name, s in (state.get("services") or {}).items()
            if s.get("pid") and alive(int(s["pid"]), started=s.get("started"))}


# flock locks belong to an open file, so a second open in this process would wait for the
# first: the executor's threads act on a folder whose lock the CLI already holds.
_held: dict[str, int] = {}
_held_guard = threading.Lock()


@contextmanager
def locked(directory: Path, what: str, fail_if_busy: bool = False,
           on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``directory``'s lock (``fcntl.flock`` on its ``lock`` file) while acting on it.
    Another process holding it is waited for, after ``on_wait`` is told who that is; with
    ``fail_if_busy`` that is an error (SliceBusy) instead. The lock goes with the process,
    so a killed `up` never leaves it taken. Reentrant within one process."""
    key = str(directory.resolve())
    with _held_guard:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = _holder(fd)
            if fail_if_busy:
                from devslice.errors import SliceBusy  # lazy: the supervisor's start-up (issue 17)

                raise SliceBusy(f"{holder} is running",
                                hint="wait for it to finish, or run without --fail-if-busy "
                                "to wait for it") from None
            if on_wait is not None:
                on_wait(f"waiting for {holder} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()})".encode(), 0)
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                del _held[key]
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    return text or "another devslice command"


def busy(directory: Path) -> bool:
    """Whether another process holds ``directory``'s lock now (an `up` or `down` on it)."""
    key = str(directory.resolve())
    with _held_guard:
        if _held.get(key):
            return False  # this process: not another's
    try:
        fd = os.open(directory / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
