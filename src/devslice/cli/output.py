"""Printing: rich for people, JSON for machines, and one place that turns errors into text."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from devslice.errors import DevsliceError

_console: Console | None = None
_err_console: Console | None = None


def console() -> Console:
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(highlight=False, soft_wrap=True)
    return _console


def err_console() -> Console:
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _err_console


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_error(exc: DevsliceError) -> None:
    from rich.markup import escape

    from devslice.errors import ConfigError

    c = err_console()
    if isinstance(exc, ConfigError):
        count = len(exc.issues)
        if count == 1 and exc.issues[0].line is None:
            # About the file as a whole (missing, a folder, unreadable): one line, and no
            # claim that a configuration was read and found invalid.
            c.print(f"[bold red]error:[/] {escape(str(exc.issues[0]))}")
        else:
            if count > 1:
                files = {os.path.basename(i.path) for i in exc.issues}
                name = files.pop() if len(files) == 1 else "the configuration"
                c.print(f"[bold red]error:[/] {escape(name)} has {count} problems:")
            else:
                c.print("[bold red]error:[/] invalid configuration:")
            for issue in exc.issues:
                c.print(f"  {escape(str(issue))}")
    else:
        c.print(f"[bold red]error:[/] {escape(exc.message)}")
    if exc.hint:
        c.print(f"[dim]hint:[/] {escape(exc.hint)}")
