"""Facts about processes on this machine: the environment a running process was started with.

`devslice verify` compares it with the ledger (issue 11): what a service uses is what its
process holds, whatever the contract says now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessEnvironment:
    """What reading a process's environment found: ``environ`` when it could be read, else
    ``why`` it could not."""

    pid: int
    environ: dict[str, str] | None = field(default=None, repr=False)  # values may be secrets
    why: str = ""

    @property
    def read(self) -> bool:
        return self.environ is not None


def environ_readable(proc: Path = PROC) -> bool:
    """Whether this machine exposes processes' environments (Linux ``/proc/PID/environ``)."""
    return (proc / "self" / "environ").is_file()


def process_environment(pid: int, proc: Path = PROC) -> ProcessEnvironment:
    """The environment process ``pid`` was started with (``/proc/PID/environ``; Linux only).

    It is the environment given to ``execve``: a process that changes its own environment
    later is not seen changed, which is what verify wants (it is what the service read).
    """
    if not environ_readable(proc):
        return ProcessEnvironment(pid, why="no /proc/PID/environ on this system (Linux only)")
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except FileNotFoundError:
        return ProcessEnvironment(pid, why=f"process {pid} does not run")
    except ProcessLookupError:  # ESRCH: a zombie has no memory left to read
        return ProcessEnvironment(pid, why=f"process {pid} has exited")
    except PermissionError:
        return ProcessEnvironment(pid, why=f"process {pid} belongs to another user")
    except OSError as exc:
        return ProcessEnvironment(pid, why=f"process {pid}: {exc.strerror or exc}")
    if not raw and _zombie(pid, proc):  # exited, not yet reaped by its parent
        return ProcessEnvironment(pid, why=f"process {pid} has exited")
    out: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name:
            out[name.decode(errors="replace")] = value.decode(errors="replace")
    return ProcessEnvironment(pid, out)


def _zombie(pid: int, proc: Path) -> bool:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return True  # gone meanwhile
    # "PID (COMM) STATE ...": COMM may hold spaces and parentheses, STATE follows the last ")"
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
