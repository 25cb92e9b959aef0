"""Printing: rich for people, JSON or YAML for machines, and one place that turns errors
into text.

The output convention (issue 16), as kubectl has it: every command with machine-readable
output takes ``-o/--output FORMAT``, where FORMAT is the human form (the default: ``table``,
or a command's own, such as ``env``'s ``shell``), ``json`` or ``yaml``. ``output_option`` adds
it to a command and ``emit`` prints in the chosen one, so no command does either twice.
The spellings before it (``--json``, ``env --format X``) still work, hidden from ``--help``,
with a note on stderr (never stdout: ``$(devslice env --format json)`` still parses).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from io import StringIO
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import click

from devslice.errors import ConfigError, DevsliceError

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

MACHINE = ("json", "yaml")  # every command with machine-readable output offers these
HUMAN = ("table", "text")  # the default of a command: table where it prints a table or list
ENV_FORMATS = ("shell", "dotenv", "json", "yaml", "k8s")  # `devslice env`'s own
FORMAT_NAMES = frozenset((*MACHINE, *HUMAN, *ENV_FORMATS))

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
    sys.stdout.write(dumps(data, "json"))


# -- -o/--output FORMAT ----------------------------------------------------------------------

class Formats(click.Choice):
    """The format names a command's ``-o`` takes; an unknown one is a usage error (exit 2)
    listing them, and Tab completes them (click.Choice.shell_complete)."""

    name = "format"

    def __init__(self, choices: Sequence[str]) -> None:
        super().__init__(list(choices), case_sensitive=True)


def output_help(choices: Sequence[str]) -> str:
    return f"Output format: {', '.join(choices)} (default {choices[0]})."


def deprecated(old: str, new: str) -> None:
    """One line on stderr for a spelling that still works; stdout stays the data alone."""
    click.echo(f"note: {old} is deprecated, use {new}", err=True)


def output_option(human: str | None = "table") -> Callable[[F], F]:
    """``-o/--output FORMAT``: ``human`` (the default; None for a command whose output is
    data only), ``json`` or ``yaml``, passed to the command as ``fmt``; and the hidden
    ``--json`` of before, which means ``-o json`` with a note on stderr."""
    choices = ([human] if human else []) + list(MACHINE)

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def command(*args: Any, legacy_json: bool, fmt: str, **kwargs: Any) -> Any:
            if legacy_json:
                ctx = click.get_current_context()
                given = ctx.get_parameter_source("fmt") is not click.core.ParameterSource.DEFAULT
                if given and fmt != "json":
                    raise click.UsageError(f"--json and -o {fmt} ask for two formats; give "
                                           "one (-o json)")
                deprecated("--json", "-o json")
                fmt = "json"
            return f(*args, fmt=fmt, **kwargs)

        command = click.option("--json", "legacy_json", is_flag=True, hidden=True,
                               help="Deprecated: -o json.")(command)
        command = click.option("-o", "--output", "fmt", type=Formats(choices),
                               default=choices[0], metavar="FORMAT",
                               help=output_help(choices))(command)
        return cast("F", command)

    return decorate


def machine(fmt: str) -> bool:
    """Whether ``fmt`` is a format for programs (json, yaml) rather than people."""
    return fmt in MACHINE


def emit(data: Any, fmt: str, human: Callable[[], None] | None = None,
         stream: bool = False) -> None:
    """Print ``data`` as ``fmt`` (json: indented, as it always was; yaml: the same data), or
    call ``human`` for the human form. ``stream``: one document of several (yaml: each
    starts with ``---``; json: one after another, as `down` has always printed them)."""
    if machine(fmt):
        sys.stdout.write(dumps(data, fmt, stream))
    elif human is not None:
        human()


def dumps(data: Any, fmt: str, stream: bool = False) -> str:
    """``data`` as the text of a machine format (what ``emit`` prints)."""
    if fmt == "json":
        return json.dumps(data, indent=2, default=str) + "\n"
    return yaml_text(data, start=stream)


def event_line(data: Any, fmt: str) -> None:
    """One event of a stream read while it runs (`up`): a JSON line, or a YAML document,
    flushed at once."""
    sys.stdout.write(json.dumps(data) + "\n" if fmt == "json" else yaml_text(data, start=True))
    sys.stdout.flush()


def yaml_text(data: Any, start: bool = False) -> str:
    """``data`` as safe, block-style YAML, keys in the order JSON has them. It goes through
    JSON first, so the YAML is the JSON's data exactly (dates as the same strings)."""
    from ruamel.yaml import YAML  # lazy: ruamel.yaml (~16 ms), only for -o yaml

    # A YAML object per call: it keeps state while dumping, and `up` reports from threads.
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = _representer()
    yaml.default_flow_style = False
    yaml.width = 4096  # a long value (a path, a detail) stays on one line
    yaml.representer.sort_base_mapping_type_on_output = False  # JSON's key order
    yaml.explicit_start = start
    buf = StringIO()
    yaml.dump(json.loads(json.dumps(data, default=str)), buf)
    return buf.getvalue()


@functools.cache
def _representer() -> type[Any]:
    from ruamel.yaml.representer import SafeRepresenter  # lazy: ruamel.yaml, only for -o yaml

    class Representer(SafeRepresenter):
        """Quotes the strings a YAML 1.1 reader (PyYAML, older yq) would take for booleans,
        so that every reader gets the strings back."""

        def represent_str(self, data: str) -> Any:
            if data.lower() in _YAML11_BOOLS:
                return self.represent_scalar("tag:yaml.org,2002:str", data, style="'")
            return super().represent_str(data)

    Representer.add_representer(str, Representer.represent_str)
    return Representer


_YAML11_BOOLS = {"y", "yes", "n", "no", "true", "false", "on", "off"}


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
