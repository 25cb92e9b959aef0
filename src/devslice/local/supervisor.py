"""The supervisor: runs the services of ``spec.json``, keeps them up, writes ``state.json``.

Run detached by the CLI: ``python -m devslice.local.supervisor DIR``. SIGTERM stops every
service (SIGTERM to each process group, SIGKILL after a grace period) and then itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devslice import child_environ
from devslice.adapters.spawn import popen
from devslice.facts.ports import port_open
from devslice.local.state import (
    GO,
    LOGS,
    SPEC,
    STATE,
    poll_delays,
    process_start,
    read_json,
    write_json,
)

GRACE = 5.0  # seconds between SIGTERM and SIGKILL
MAX_BACKOFF = 10.0
IDLE_LOOK = 1.0  # seconds between looks when nothing woke the supervisor
HEALTHY_RUN = 30.0  # a run this long (seconds) was healthy: the next crash backs off from 0.5 s

Clock = Callable[[], float]
Spawn = Callable[..., "subprocess.Popen[bytes]"]


def environment(own: dict[str, str]) -> dict[str, str]:
    """What a service runs with: the supervisor's environment (the shell `devslice up` ran
    in), what devslice sets for the service on top, and devslice's own Python first on PATH,
    so `run: python -m orders` finds the SDK also when its venv is not activated. Only the
    variables devslice sets are written to spec.json and decide whether `up` restarts."""
    env = child_environ({k: v for k, v in os.environ.items() if not k.startswith("DEVSLICE_")})
    env.update(own)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable),
                                   env.get("PATH", os.defpath)])
    return env


class Service:
    """One service's process, restarted when it exits. ``spawn`` starts the process
    (``adapters.runner.popen``) and ``clock`` tells the time (``time.monotonic``); tests pass
    their own to decide which comes first, the process or the supervisor."""

    def __init__(self, spec: dict[str, Any], logs: Path, spawn: Spawn = popen,
                 clock: Clock = time.monotonic, changed: Callable[[], None] = lambda: None
                 ) -> None:
        self.spec = spec
        self.changed = changed  # called when the state changes in a watcher thread
        self.name: str = spec["name"]
        self.log_path = logs / f"{self.name}.log"
        self.spawn = spawn
        self.clock = clock
        self.proc: subprocess.Popen[bytes] | None = None
        self.started: str | None = None  # process_start of proc: a recycled pid is not ours
        self.started_at = 0.0  # clock() when proc started
        self.state = "starting"
        self.restarts = 0  # all restarts since the supervisor started
        self.crashes = 0  # crashes since the last healthy run: what the backoff grows with
        self.next_start = 0.0
        self.detail = ""

    def start(self) -> None:
        # The offset of the log before the process exists: a service that prints its ready
        # line at once must not print it before the watcher starts reading (issue 13, item 8).
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it now
        try:
            self.proc = self.spawn(
                self.spec["argv"], cwd=self.spec["cwd"], env=environment(self.spec["env"]),
                stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            log.write(f"[devslice] cannot start {self.spec['argv'][0]}: {exc}\n".encode())
            self.proc = None
            self.state, self.detail = "failed", str(exc)
        finally:
            log.close()
        if self.proc is not None:
            self.started = process_start(self.proc.pid)
            self.started_at = self.clock()
            self.state, self.detail = "starting", ""
            threading.Thread(target=self._await_ready, args=(self.proc, offset),
                             daemon=True).start()

    def _await_ready(self, proc: subprocess.Popen[bytes], offset: int) -> None:
        ready = self.spec.get("ready") or {}
        deadline = time.monotonic() + float(ready.get("timeout", 60))
        delays = poll_delays(time.monotonic)
        while time.monotonic() < deadline and proc.poll() is None and self.proc is proc:
            if self._is_ready(ready, offset):
                self.state = "ready"
                self.changed()  # written to state.json at once: `up` waits for it
                return
            time.sleep(next(delays))
        if proc.poll() is None and self.proc is proc:
            self.state, self.detail = "unready", f"not ready after {ready.get('timeout', 60)}s"
            self.changed()

    def _is_ready(self, ready: dict[str, Any], offset: int) -> bool:
        if ready.get("port") and not port_open(int(ready["port"]), timeout=0.2):
            return False
        if ready.get("log"):
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if ready["log"].encode() not in f.read():
                    return False
        return True

    def check(self, now: float) -> None:
        """Restart a crashed service, waiting longer after each crash (0.5 s, 1 s, ... 10 s);
        a run of HEALTHY_RUN seconds or more starts the backoff again from 0.5 s, so a service
        that crashes once a day is not restarted 10 s late forever."""
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            self.proc = None
            self.started = None
            self.crashes = 1 if now - self.started_at >= HEALTHY_RUN else self.crashes + 1
            self.restarts += 1
            self.state, self.detail = "crashed", f"exited with {code}"
            delay = min(MAX_BACKOFF, 0.5 * 2 ** (self.crashes - 1))
            self.next_start = now + delay
            with open(self.log_path, "ab") as log:
                log.write(f"[devslice] {self.name} exited with {code}; restart "
                          f"{self.restarts} in {delay:.1f}s\n".encode())
        if self.proc is None and self.state == "crashed" and now >= self.next_start:
            self.start()

    def terminate(self) -> None:
        """SIGTERM to the process group (stop() waits for it)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, deadline: float) -> None:
        """Wait for the process until ``deadline`` (time.monotonic), then SIGKILL its group."""
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def record(self) -> dict[str, Any]:
        pid = self.proc.pid if self.proc is not None else None
        return {"pid": pid, "pgid": pid, "started": self.started if pid else None,
                "state": self.state, "restarts": self.restarts, "crashes": self.crashes,
                "detail": self.detail}


def stop_all(services: list[Service], grace: float = GRACE) -> None:
    """Every service at once: N services that ignore SIGTERM cost one grace period, not N."""
    for s in services:
        s.terminate()
    deadline = time.monotonic() + grace
    for s in services:
        s.stop(deadline)


def await_go(base: Path, go: int, parent: int, woken: int, stopping: threading.Event) -> bool:
    """A held supervisor waits, its imports done, for `up` to write to the ``go`` FIFO (open
    as ``go``; closed here) once the emulators are ready and the slice's containers exist
    (issue 17): True then; False if it is stopped or ``parent`` (that `up`) ends first."""
    try:
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:
        os.close(go)
        return False
    try:
        while not stopping.is_set():
            with contextlib.suppress(InterruptedError):
                ready, _, _ = select.select([go, pidfd, woken], [], [], IDLE_LOOK)
                if go in ready:
                    if os.read(go, 16):
                        return True
                    os.close(go)  # a writer closed without a word: wait for the next one
                    go = os.open(base / GO, os.O_RDONLY | os.O_NONBLOCK)
                if pidfd in ready:
                    return False
                if woken in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(woken, 4096)
        return False
    finally:
        os.close(go)
        os.close(pidfd)


def main(directory: str) -> None:
    base = Path(directory)
    spec = read_json(base / SPEC)
    logs = base / LOGS
    logs.mkdir(parents=True, exist_ok=True)
    # Woken by what changes the state (a child exiting, a service turning ready, a signal),
    # with a slow look besides: idle, it costs nearly nothing (issue 17). Signals reach the
    # loop through a pipe (signal.set_wakeup_fd): a handler taking a lock the main thread
    # holds would deadlock.
    woken, wake_fd = os.pipe()
    for fd in (woken, wake_fd):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_fd)

    def poke() -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe wakes the loop anyway
            os.write(wake_fd, b"\0")

    services = [Service(s, logs, changed=poke) for s in spec["services"]]
    stopping = threading.Event()  # set by the handlers; read without a lock (is_set)
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the loop (wakeup fd)
    me = {"pid": os.getpid(), "spec": spec["hash"], "started": process_start(os.getpid())}
    written: dict[str, Any] | None = None

    def save(running: bool) -> None:
        """state.json, written only when it changed."""
        nonlocal written
        state = {"supervisor": me if running else {**me, "pid": None, "started": None},
                 "services": {s.name: s.record() for s in services}}
        if state != written:
            write_json(base / STATE, state)
            written = state

    hold = spec.get("hold")
    if hold:
        for s in services:
            s.state = "held"
        # the FIFO is open before the state says held: `up` writes to it once it reads that
        go = os.open(base / GO, os.O_RDONLY | os.O_NONBLOCK)
        write_json(base / STATE, {"supervisor": {**me, "held": True},
                                  "services": {s.name: s.record() for s in services}})
        if not await_go(base, go, int(hold["parent"]), woken, stopping):
            for s in services:
                s.state = "stopped"
            save(False)
            return
    for s in services:
        s.start()
    save(True)
    while not stopping.is_set():
        with contextlib.suppress(BlockingIOError):
            os.read(woken, 4096)
        now = time.monotonic()
        for s in services:
            s.check(now)
        save(True)
        restarts = [s.next_start - now for s in services if s.proc is None and
                    s.state == "crashed"]
        with contextlib.suppress(InterruptedError):
            select.select([woken], [], [], max(0.01, min([IDLE_LOOK, *restarts])))
    stop_all(services)
    save(False)


if __name__ == "__main__":
    main(sys.argv[1])
