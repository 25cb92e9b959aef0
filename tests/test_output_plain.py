"""Piped output without rich (issue 17): what ``Plain`` writes is what rich's console for
piped output writes, byte for byte, for every table and line the commands print that way;
anything else is handed to rich."""

from __future__ import annotations

import io
import itertools
import sys
from collections.abc import Callable, Iterator

import pytest

from devslice.cli.output import Plain, Table, _plain_rich, _terminal


def _captured(write: Callable[[], None]) -> str:
    out, sys.stdout = sys.stdout, io.StringIO()
    try:
        write()
        return sys.stdout.getvalue()
    finally:
        sys.stdout = out


def _tables() -> Iterator[Table]:
    rows = [("ok", "green"), "local:emulators", "running: azurite ready :41101"], \
        [("!", "yellow"), "storage-containers:x", "blob container x/y is missing [y]"], \
        [("✓", "green"), "", "a [bold]b[/] c:d: e"], [("…", "yellow"), "k", ""], \
        [("✗", "red"), "kk", "x" * 120], [("·", "dim"), "-", "  spaces inside  "]
    for n, header, title in itertools.product(range(len(rows) + 1), (True, False),
                                              (None, "ready in 0.2s", "a long title " * 40)):
        t = Table("", "resource", "state", show_header=header, title=title)
        for row in rows[:n]:
            t.add_row(*row)
        yield t
    wide = Table("a", "b")
    wide.add_row("x" * 600, "y" * 600)  # wider than PLAIN_WIDTH: rich's layout, through rich
    yield wide
    odd = Table("a", "b")
    odd.add_row("two\nlines", "日本")
    yield odd


@pytest.mark.parametrize("table", list(_tables()))
def test_a_table_piped_is_what_rich_writes(table: Table) -> None:
    assert _captured(lambda: Plain(False).print(table)) == \
        _captured(lambda: _plain_rich(False).print(table.rich()))


@pytest.mark.parametrize("text", [
    "plain", "= local: running: orders ready :57219\nnothing to do", "", "trailing   \nx  ",
    "a [dim]b[/] c", "[x]", "emoji :thumbs_up: here", "http://127.0.0.1:10000/a:b",
    "storage-containers:acct1: blob container acct1/x exists",
    "tab\there", "é and 日本"])
@pytest.mark.parametrize("markup", [False, None])
@pytest.mark.parametrize("end", ["\n", ""])
def test_text_piped_is_what_rich_writes(text: str, markup: bool | None, end: str) -> None:
    plain = _captured(lambda: Plain(False).print(text, end=end, markup=markup))
    if markup is False and ":thumbs_up:" in text:  # data: written as it is, no emoji
        assert plain == "\n".join(line.rstrip(" ") for line in (text + end).split("\n"))
        return
    assert plain == _captured(lambda: _plain_rich(False).print(text, end=end, markup=markup))


def test_plain_text_and_tables_load_no_rich() -> None:
    import subprocess

    code = """\
import sys
from devslice.cli.output import Plain, Table
t = Table("", "resource", "state", title="ready in 0.1s")
t.add_row(("ok", "green"), "local", "running: a ready :1")
Plain(False).print(t)
Plain(False).print("= local: running", markup=False, style="dim")
print(sorted(m for m in sys.modules if m.split(".")[0] == "rich"))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.rstrip().rsplit("\n", 1)[-1] == "[]", done.stdout


@pytest.mark.parametrize(("env", "tty", "terminal"), [
    ({}, False, False), ({}, True, True), ({"FORCE_COLOR": "1"}, False, True),
    ({"FORCE_COLOR": ""}, True, False), ({"TTY_COMPATIBLE": "1"}, False, True),
    ({"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, True, False)])
def test_a_terminal_is_what_rich_takes_for_one(monkeypatch: pytest.MonkeyPatch,
                                               env: dict[str, str], tty: bool,
                                               terminal: bool) -> None:
    from rich.console import Console

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdout", Stream())
    assert _terminal(False) is terminal
    assert Console().is_terminal is terminal
