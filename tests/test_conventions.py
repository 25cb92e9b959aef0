"""CLI conventions (issue 16): shell completion with the slices' handles and the team's
services, whole command summaries in --help, plain tables when piped, plurals right."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from devslice.cli.app import cli, run
from devslice.text import plural

from .helpers import BASE, REPO

CONFIG = BASE + """\
cluster: {runtime: local}
eventHubs:
  eventHubs: [orders]
  namespaces: [{name: embedded, partitions: 4}]
services:
  - {name: orders, run: python -m orders}
  - {name: billing, run: python -m billing}
images:
  - {name: gateway, context: gateway}
"""


def devslice(cwd: Path, *args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    """devslice in a real process, stdout a pipe (as in `devslice ... | grep`)."""
    full = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    full.pop("DEVSLICE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "devslice", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=60, check=False)


def complete(cwd: Path, words: str, shell: str = "bash") -> list[str]:
    """What Tab offers after ``words`` (click's protocol, as the generated script calls it)."""
    env = {"_DEVSLICE_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    done = devslice(cwd, env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    if shell == "bash":
        return [line.split(",", 1)[1] for line in done.stdout.splitlines() if line]
    return done.stdout.split()


@pytest.fixture
def project(workdir: Path) -> Path:
    (workdir / "devslice.yaml").write_text(CONFIG)
    assert run(["slice", "claim"]) == 0  # ab
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    assert run(["slice", "claim", "ci7", "--kind", "ci", "--ttl", "1s"]) == 0
    db = workdir / ".devslice" / "ledger.db"
    with sqlite3.connect(db) as conn:  # ci7's lease ran out an hour ago
        doc = json.loads(conn.execute("SELECT doc FROM slices WHERE handle='ci7'").fetchone()[0])
        doc["expiresAt"] = "2020-01-01T00:00:00Z"
        conn.execute("UPDATE slices SET doc=? WHERE handle='ci7'", (json.dumps(doc),))
    return workdir


# -- completion --------------------------------------------------------------------------

@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _devslice_completion devslice"),
    ("zsh", "#compdef devslice"),
    ("fish", "complete --no-files --command devslice"),
])
def test_completion_prints_the_shells_script(capsys: pytest.CaptureFixture[str], shell: str,
                                             marker: str) -> None:
    assert run(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert marker in script and "_DEVSLICE_COMPLETE" in script


def test_handles_and_services_complete(project: Path) -> None:
    handles = complete(project, "devslice slice show ")
    assert handles == ["ab", "cd"]  # ci7 expired: gc will reclaim it
    assert complete(project, "devslice env --slice c") == ["cd"]
    assert complete(project, "devslice debug ") == ["billing", "gateway", "orders"]
    assert complete(project, "devslice logs o", shell="zsh") == ["plain", "orders", "_"]
    assert complete(project, "devslice sl") == ["slice"]  # click's own still works
    assert "cluster.registry.port" in complete(project, "devslice explain cluster.reg")


def test_completion_reads_the_ledger_without_changing_it(project: Path) -> None:
    files = [project / ".devslice" / name for name in ("ledger.db", "ledger.db-wal")]
    before = {p: p.read_bytes() for p in files if p.exists()}  # (-shm: readers' marks)
    complete(project, "devslice slice show ")
    assert {p: p.read_bytes() for p in files if p.exists()} == before


@pytest.mark.parametrize("broken", ["no config", "bad config", "foreign ledger"])
def test_completion_never_errors(workdir: Path, broken: str) -> None:
    if broken != "no config":
        (workdir / "devslice.yaml").write_text(CONFIG if broken != "bad config"
                                               else BASE + "cluster: {runtime: nowhere}\n")
    if broken == "foreign ledger":
        (workdir / ".devslice").mkdir()
        (workdir / ".devslice" / "ledger.db").write_bytes(b"not a database at all" * 100)
    assert complete(workdir, "devslice slice show ") == []
    assert complete(workdir, "devslice debug ") == (
        ["billing", "gateway", "orders"] if broken == "foreign ledger" else [])


# -- help ---------------------------------------------------------------------------------

def _groups(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _groups(command, (*path, name))
    return found


def test_help_lists_every_command_with_its_whole_summary() -> None:
    for path in _groups(cli):
        out = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80).output
        assert "..." not in out.split("\nCommands:\n", 1)[1], path
        group = cli
        for name in path:
            group = group.commands[name]  # type: ignore[assignment]
        flat = " ".join(out.split())
        for name, command in group.commands.items():  # type: ignore[attr-defined]
            summary = " ".join((command.help or "").split("\n\n", 1)[0].split())
            assert summary and summary in flat, (path, name)


# -- output -------------------------------------------------------------------------------

def test_piped_tables_are_plain_one_row_per_line(project: Path) -> None:
    done = devslice(project, "env", "--explain")
    assert done.returncode == 0 and "\x1b[" not in done.stdout
    lines = done.stdout.splitlines()
    row = next(line for line in lines if "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING" in line)
    assert f"embedded:{project.resolve() / '.devslice' / 'eventhubs.db'}" in row
    assert max(map(len, lines)) > 80  # a row is not cut at 80 columns
    assert all(line == line.rstrip() for line in lines)  # nor padded with spaces
    listing = devslice(project, "slice", "list").stdout.splitlines()
    assert len(listing) == 4 and all("\x1b[" not in line for line in listing)  # ci7 too


# -- plurals --------------------------------------------------------------------------------

def test_plural() -> None:
    assert [plural(n, "slice") for n in (0, 1, 2)] == ["0 slices", "1 slice", "2 slices"]
    assert [plural(n, "canary") for n in (1, 3)] == ["1 canary", "3 canaries"]
    assert plural(2, "key") == "2 keys"


def test_one_of_a_thing_is_said_in_the_singular(workdir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(CONFIG)
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["verify", "-o", "json"]) == 0
    details = " ".join(c["detail"] for c in json.loads(capsys.readouterr().out))
    assert "1 canary on orders" in details and "0 hubs, 0 names" in details
    assert run(["slice", "map"]) == 0
    assert "1 slice live, 3 partitions free" in capsys.readouterr().out
