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
import re
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
    if not _terminal(stderr):
        return cast("Console", Plain(stderr))
    from rich.console import Console  # lazy: rich, only for output

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _plain_rich(stderr: bool) -> Console:
    """rich's console for piped output: what :class:`Plain` hands what it does not print."""
    from rich.console import Console  # lazy: rich, only for output

    return Console(file=cast("IO[str]", _Unpadded(stderr)), highlight=False, soft_wrap=True,
                   width=PLAIN_WIDTH, color_system=None)


def _terminal(stderr: bool) -> bool:
    """Whether rich takes the stream for a terminal (``Console.is_terminal``, rich 13-14),
    decided without importing rich."""
    if os.environ.get("TTY_COMPATIBLE", "") in ("0", "1"):
        return os.environ["TTY_COMPATIBLE"] == "1"
    if os.environ.get("FORCE_COLOR") is not None:
        return os.environ["FORCE_COLOR"] != ""
    if hasattr(sys.stdin, "__module__") and sys.stdin.__module__.startswith("idlelib"):
        return False
    stream = sys.stderr if stderr else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


# What rich changes in text it prints: tabs and control codes (and, to be safe, anything not
# ASCII); with markup, its tags (rich/markup.py) and emoji codes (rich/_emoji_replace.py).
# Such text goes through rich. Text printed with markup=False is data (names, URLs, plans):
# written as it is, where rich would turn a `:name:` that happens to be an emoji's (a
# container `cat` in `acct:cat:`) into the emoji; knowing which are costs ~20 ms.
_RICH_CHANGES = re.compile(r"[^ -~\n]")
_RICH_MARKUP = re.compile(r"\[|:\S*?:")
_NARROW = frozenset("✓…✗·")  # the step view's marks: one column each, as rich counts them


class Table:
    """A table of text cells, each plain text or ``(text, style)``: on a terminal, rich's
    ``Table(box=None)``; piped, the same layout written directly (issue 17: the commands a
    script pipes (`status`, `up`) then load no rich, ~40 ms). Cells are text, never markup."""

    def __init__(self, *columns: str, title: str | None = None, show_header: bool = True,
                 header_style: str = "bold") -> None:
        self.columns = columns
        self.title = title
        self.show_header = show_header
        self.header_style = header_style
        self.rows: list[tuple[str | tuple[str, str], ...]] = []

    def add_row(self, *cells: str | tuple[str, str]) -> None:
        self.rows.append(cells)

    def lines(self) -> list[str] | None:
        """The plain text lines rich would print, or None where rich's layout is not this
        simple one (a cell that is not one line of ASCII, a table wider than PLAIN_WIDTH)."""
        texts = [[c if isinstance(c, str) else c[0] for c in row] for row in self.rows]
        if self.show_header:
            texts.insert(0, list(self.columns))
        if not _one_column_each([c for row in texts for c in row] + [self.title or ""]):
            return None
        widths = [max((len(row[i]) for row in texts), default=0)
                  for i in range(len(self.columns))]
        width = sum(w + 2 for w in widths)
        if width > PLAIN_WIDTH or len(self.title or "") > width:
            return None
        out = [self.title] if self.title else []  # not centred: the consoles soft-wrap
        return out + ["".join(f" {c:<{w}} " for c, w in zip(row, widths, strict=True))
                      for row in texts]

    def rich(self) -> Any:
        from rich.table import Table as RichTable  # lazy: rich, only for a terminal
        from rich.text import Text  # lazy: as above

        t = RichTable(box=None, title=self.title, show_header=self.show_header,
                      header_style=self.header_style)
        for column in self.columns:
            t.add_column(column)
        for row in self.rows:
            t.add_row(*(Text(c) if isinstance(c, str) else Text(c[0], style=c[1])
                        for c in row))
        return t


def _one_column_each(cells: list[str]) -> bool:
    """Whether every character of ``cells`` takes one column, on one line."""
    return all((c.isascii() and c.isprintable()) or set(c) <= _NARROW for c in cells)


class Plain:
    """The console of piped output: text and :class:`Table` written as rich would write
    them to a file, without loading rich; anything else (markup, rich's own renderables)
    is handed to rich's console."""

    def __init__(self, stderr: bool) -> None:
        self.stderr = stderr
        self.file = _Unpadded(stderr)
        self._rich: Console | None = None

    def _delegate(self) -> Console:
        if self._rich is None:
            self._rich = _plain_rich(self.stderr)
        return self._rich

    def print(self, *objects: Any, end: str = "\n", markup: bool | None = None,
              highlight: bool | None = None, style: str | None = None, **kwargs: Any) -> None:
        text = None
        if len(objects) == 1 and not kwargs:
            (obj,) = objects
            if isinstance(obj, Table):
                lines = obj.lines()
                if lines == []:
                    return  # no header and no rows: rich prints nothing either
                text = None if lines is None else "\n".join(lines)
            elif isinstance(obj, str) and not _RICH_CHANGES.search(obj) and (
                    markup is False or not _RICH_MARKUP.search(obj)):
                text = obj
        if text is None:
            rich = [o.rich() if isinstance(o, Table) else o for o in objects]
            self._delegate().print(*rich, end=end, markup=markup, highlight=highlight,
                                   style=style, **kwargs)
            return
        self.file.write(text + end)
        self.file.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._delegate(), name)


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
    from ruamel.yaml.nodes import ScalarNode  # lazy: ruamel.yaml, only for -o yaml
    from ruamel.yaml.representer import SafeRepresenter  # lazy: ruamel.yaml, only for -o yaml
    from ruamel.yaml.resolver import VersionedResolver  # lazy: ruamel.yaml, only for -o yaml

    yaml11 = VersionedResolver(version=(1, 1))

    class Representer(SafeRepresenter):
        """Quotes the strings a YAML 1.1 reader (PyYAML, older yq) would take for another
        type (``yes``, ``12:30``, ``0x1F``, ``2026-01-01``, ``~``), so that every reader gets
        the strings back; YAML 1.2's own are quoted by ruamel already."""

        def represent_str(self, data: str) -> Any:
            if yaml11.resolve(ScalarNode, data, (True, False)) != "tag:yaml.org,2002:str":
                return self.represent_scalar("tag:yaml.org,2002:str", data, style="'")
            return super().represent_str(data)

    Representer.add_representer(str, Representer.represent_str)
    return Representer


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
