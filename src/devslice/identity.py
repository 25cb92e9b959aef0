"""Who is asking: the owner a slice is claimed for, and the actor recorded in the history."""

from __future__ import annotations

import getpass
import os
import shutil
import socket

from devslice.adapters.runner import CommandRunner, SubprocessRunner
from devslice.errors import DevsliceError


def actor() -> str:
    """Who made a change, for the ledger's history: DEVSLICE_ACTOR or user@host."""
    return os.environ.get("DEVSLICE_ACTOR") or f"{_user()}@{socket.gethostname()}"


def owner(runner: CommandRunner | None = None) -> str:
    """Who a slice is for: DEVSLICE_OWNER, else git's user.email, else user@host."""
    explicit = os.environ.get("DEVSLICE_OWNER")
    if explicit:
        return explicit
    git = shutil.which("git")
    if git:
        try:
            done = (runner or SubprocessRunner()).run([git, "config", "user.email"],
                                                      check=False, timeout=5)
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.strip()
        except DevsliceError:
            pass
    return f"{_user()}@{socket.gethostname()}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
