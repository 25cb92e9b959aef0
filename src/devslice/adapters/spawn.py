"""Starting processes, in a module of its own: the local runtime's supervisor and the start of
a cold `devslice up` (devslice.local.early) import only this, not the runner's dataclasses and
error tree, because their start-up is on a cold `up`'s critical path (issue 17)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def popen(argv: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """A process the caller owns and watches (the local runtime's supervisor starts each
    service with it): ``subprocess.Popen`` with the caller's options."""
    return subprocess.Popen(list(argv), **options)


def detached(exe: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> int:
    """Start ``exe`` in a new session that outlives this one (and a Ctrl-C in its terminal),
    stdin from /dev/null, stdout and stderr appended to ``log``; its pid. posix_spawn rather
    than Popen: no Popen object is left to complain that it still runs when devslice exits.
    OSError when it cannot start."""
    return os.posix_spawn(exe, list(argv), dict(env), setsid=True, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2)])
