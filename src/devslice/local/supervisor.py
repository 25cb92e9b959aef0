"""The supervisor: runs the services of ``spec.json``, keeps them up, writes ``state.json``.

Run detached by the CLI: ``python -m devslice.local.supervisor DIR``. SIGTERM stops every
service (SIGTERM to its process group, SIGKILL after a grace period) and then itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from devslice.facts.ports import port_open
from devslice.local.state import LOGS, SPEC, STATE, read_json, write_json

GRACE = 5.0  # seconds between SIGTERM and SIGKILL
MAX_BACKOFF = 10.0


def environment(own: dict[str, str]) -> dict[str, str]:
    """What a service runs with: the supervisor's environment (the shell `devslice up` ran
    in), what devslice sets for the service on top, and devslice's own Python first on PATH,
    so `run: python -m orders` finds the SDK also when its venv is not activated. Only the
    variables devslice sets are written to spec.json and decide whether `up` restarts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVSLICE_")}
    env.update(own)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable),
                                   env.get("PATH", os.defpath)])
    return env


class Service:
    def __init__(self, spec: dict[str, Any], logs: Path) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.log_path = logs / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = "starting"
        self.restarts = 0
        self.next_start = 0.0
        self.detail = ""

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it now
        try:
            self.proc = subprocess.Popen(
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
            self.state, self.detail = "starting", ""
            threading.Thread(target=self._await_ready, args=(self.proc,), daemon=True).start()

    def _await_ready(self, proc: subprocess.Popen[bytes]) -> None:
        ready = self.spec.get("ready") or {}
        deadline = time.monotonic() + float(ready.get("timeout", 60))
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        while time.monotonic() < deadline and proc.poll() is None and self.proc is proc:
            if self._is_ready(ready, offset):
                self.state = "ready"
                return
            time.sleep(0.05)
        if proc.poll() is None and self.proc is proc:
            self.state, self.detail = "unready", f"not ready after {ready.get('timeout', 60)}s"

    def _is_ready(self, ready: dict[str, Any], offset: int) -> bool:
        if ready.get("port") and not port_open(int(ready["port"]), timeout=0.2):
            return False
        if ready.get("log"):
            with open(self.log_path, "rb") as f:
                f.seek(max(0, offset - len(ready["log"])))
                if ready["log"].encode() not in f.read():
                    return False
        return True

    def check(self, now: float) -> None:
        """Restart a crashed service, waiting longer after each crash (0.5 s, 1 s, ... 10 s)."""
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            self.proc = None
            self.restarts += 1
            self.state, self.detail = "crashed", f"exited with {code}"
            self.next_start = now + min(MAX_BACKOFF, 0.5 * 2 ** (self.restarts - 1))
            with open(self.log_path, "ab") as log:
                log.write(f"[devslice] {self.name} exited with {code}; restart "
                          f"{self.restarts} in {self.next_start - now:.1f}s\n".encode())
        if self.proc is None and self.state == "crashed" and now >= self.next_start:
            self.start()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()

    def record(self) -> dict[str, Any]:
        pid = self.proc.pid if self.proc is not None else None
        return {"pid": pid, "pgid": pid, "state": self.state, "restarts": self.restarts,
                "detail": self.detail}


def main(directory: str) -> None:
    base = Path(directory)
    spec = read_json(base / SPEC)
    logs = base / LOGS
    logs.mkdir(parents=True, exist_ok=True)
    services = [Service(s, logs) for s in spec["services"]]
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    def save(running: bool) -> None:
        write_json(base / STATE, {
            "supervisor": {"pid": os.getpid() if running else None, "spec": spec["hash"]},
            "services": {s.name: s.record() for s in services},
        })

    for s in services:
        s.start()
    save(True)
    while not stopping.is_set():
        now = time.monotonic()
        for s in services:
            s.check(now)
        save(True)
        stopping.wait(0.1)
    for s in services:
        s.stop()
    save(False)


if __name__ == "__main__":
    main(sys.argv[1])
