"""The files the CLI and the supervisor share under ``.devslice/local/``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from devslice.files import write_atomic

SPEC = "spec.json"  # what to run (holds the contract, secrets included: mode 0600)
STATE = "state.json"  # what runs: pids, process groups, states
LOGS = "logs"


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


def alive(pid: int | None, marker: str | None = None) -> bool:
    """Whether ``pid`` runs; with ``marker``, also that its command line contains it (a pid
    reused by an unrelated process after a reboot must not be killed)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if marker is None:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return True  # no /proc (macOS): trust the pid
    if not cmdline:
        return False  # a zombie: exited, not yet reaped
    return marker in cmdline
