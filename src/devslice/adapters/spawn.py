"""Starting a process the caller owns and watches, in a module of its own: the local
runtime's supervisor imports only this, not the runner's dataclasses and error tree, because
its start-up is on a cold `devslice up`'s critical path, twice (issue 17)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any


def popen(argv: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """A process the caller owns and watches (the local runtime's supervisor starts each
    service with it): ``subprocess.Popen`` with the caller's options."""
    return subprocess.Popen(list(argv), **options)
