"""Running external programs: argv lists only (never a shell), with timeouts, and failures
turned into DevsliceErrors that show the command and its output.

Every process devslice starts goes through a runner: the k3d adapter, tool probes
(``facts.tools``), git for the owner (``identity``), mongosh and the local runtime's detached
supervisor (``start_detached``). Tests hand in their own runner to see and fake every argv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from devslice.adapters.spawn import detached
from devslice.adapters.spawn import popen as popen  # its own module: see there
from devslice.errors import CommandFailed, ToolMissing


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 600,
            env: Mapping[str, str] | None = None) -> Completed: ...


class DetachedStarter(Protocol):
    def start_detached(self, argv: Sequence[str], *, log: Path,
                       env: Mapping[str, str] | None = None) -> int: ...




class SubprocessRunner:
    """Runs programs found on PATH (``path`` overrides it, for tests with fake tools)."""

    def __init__(self, path: str | None = None, fixes: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.fixes = dict(fixes or {})  # tool -> how to install it, for ToolMissing

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 600,
            env: Mapping[str, str] | None = None) -> Completed:
        exe = shutil.which(argv[0], path=self.path)
        if exe is None:
            raise ToolMissing(f"{argv[0]} is not installed (not on PATH)",
                              hint=self.fixes.get(argv[0], "`devslice doctor` lists what is "
                                                  "needed"))
        full_env = None
        if env is not None or self.path is not None:
            full_env = dict(os.environ)
            full_env.update(env or {})
            if self.path is not None:
                full_env["PATH"] = self.path
        try:
            done = subprocess.run([exe, *argv[1:]], capture_output=True, text=True,
                                  timeout=timeout, env=full_env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise CommandFailed(f"`{' '.join(argv)}` did not finish in {timeout:.0f}s") from exc
        except OSError as exc:  # found but not runnable: no permission, a bad interpreter
            raise CommandFailed(f"`{' '.join(argv)}` could not start: {exc}") from exc
        result = Completed(tuple(argv), done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
            raise CommandFailed(f"`{' '.join(argv)}` failed (exit {done.returncode}):\n{tail}")
        return result

    def start_detached(self, argv: Sequence[str], *, log: Path,
                       env: Mapping[str, str] | None = None) -> int:
        """Start a program in a new session that outlives this one (and a Ctrl-C in its
        terminal), stdin from /dev/null, stdout and stderr appended to ``log``; its pid."""
        exe = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0], path=self.path)
        if exe is None:
            raise ToolMissing(f"{argv[0]} is not installed (not on PATH)")
        try:
            return detached(exe, argv, log, os.environ if env is None else env)
        except OSError as exc:
            raise CommandFailed(f"`{' '.join(argv)}` could not start: {exc}") from exc
