"""Printing: rich for people, JSON for machines, and one place that turns errors into text."""

from __future__ import annotations

import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any, cast

from devslice.errors import ConfigError, DevsliceError

if TYPE_CHECKING:
    from rich.console import Console

_console: Console | None = None
_err_console: Console | None = None


PLAIN_WIDTH = 1000  # piped output: wide enough that no table row wraps


def _make(stderr: bool) -> Console:
    """A terminal gets rich's output at its width (tables wrap between words). Piped or
    redirected output (grep, CI logs, `| less`) is plain: no colour or escape codes, and
    tables at their natural width, one row per line, never cut at rich's 80 columns."""
    from rich.console import Console  # lazy: rich, only for output

    terminal = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if terminal.is_terminal:
        return terminal
    return Console(file=cast("IO[str]", _Unpadded(stderr)), highlight=False, soft_wrap=True,
                   width=PLAIN_WIDTH, color_system=None)


class _Unpadded:
    """sys.stdout or sys.stderr (looked up at each write, as rich does, so a redirected
    stream is followed) without the spaces rich pads table rows with to their width."""

    def __init__(self, stderr: bool) -> None:
        self.stderr = stderr

    def _stream(self) -> Any:
        return sys.stderr if self.stderr else sys.stdout

    def write(self, text: str) -> int:
        return int(self._stream().write("\n".join(line.rstrip(" ") for line in
                                                  text.split("\n"))))

    def flush(self) -> None:
        self._stream().flush()

    def isatty(self) -> bool:
        return False


def console() -> Console:
    global _console
    if _console is None:
        _console = _make(stderr=False)
    return _console


def err_console() -> Console:
    global _err_console
    if _err_console is None:
        _err_console = _make(stderr=True)
    return _err_console


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_error(exc: DevsliceError) -> None:
    from rich.markup import escape  # lazy: rich, only for output


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
