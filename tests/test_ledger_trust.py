"""What devslice accepts from a SQLite ledger (issue 12): records are checked before anything
acts on them, foreign and damaged files are reported and never written, an empty handle is an
error, and writers are served in the order they came."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from devslice.cli.app import run
from devslice.errors import LedgerBusy, LedgerCorrupt
from devslice.ledger.queue import WriterQueue
from devslice.ledger.sqlite import SqliteLedger

from .helpers import BASE, REPO, wait_for

CONFIG = BASE + "eventHubs: {eventHubs: [orders], namespaces: [{name: embedded, partitions: 8}]}\n"


def ledger_file(workdir: Path) -> Path:
    return workdir / ".devslice" / "ledger.db"


def plant(workdir: Path, handle: str, **changes: object) -> None:
    """Copy slice ab's record under another handle, as someone with write access could."""
    conn = sqlite3.connect(ledger_file(workdir))
    (doc,) = conn.execute("SELECT doc FROM slices WHERE handle = 'ab'").fetchone()
    record = {**json.loads(doc), "handle": handle, **changes}
    record["eventHubs"] = {"namespace": "embedded", "partitions": [7]}
    conn.execute("INSERT INTO slices VALUES (?, ?)", (handle, json.dumps(record)))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the main file, compared below
    conn.close()


@pytest.fixture
def claimed(workdir: Path) -> Path:
    (workdir / "devslice.yaml").write_text(CONFIG)
    assert run(["slice", "claim", "ab"]) == 0
    return workdir


def test_a_planted_handle_never_becomes_a_path(
        claimed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant(claimed, "../../pwn")
    capsys.readouterr()
    assert run(["env", "--slice", "../../pwn", "-o", "dotenv"]) == 1
    err = capsys.readouterr().err
    assert "holds records devslice will not act on" in err
    assert "slice '../../pwn': '../../pwn' is not a valid slice handle" in err
    assert not list(claimed.parent.parent.glob("pwn*")) and not list(claimed.glob("**/*.env"))
    # and nothing else acts on that ledger either, nor writes to it
    before = ledger_file(claimed).read_bytes()
    for args in (["slice", "list"], ["slice", "claim", "cd"], ["slice", "gc"], ["env"]):
        assert run(args) == 1, args
        assert "'../../pwn'" in capsys.readouterr().err
    assert ledger_file(claimed).read_bytes() == before


@pytest.mark.parametrize(("changes", "problem"), [
    ({"owner": "x\x1b]52;c;cGF5bG9hZA==\x07"}, "owner 'x\\x1b]52;c;cGF5bG9hZA==\\x07' holds "
     "the control character U+001B"),
    ({"createdAt": "2026-01-01T00:00:00"}, "createdAt 2026-01-01T00:00:00 has no time zone"),
    ({"ttlSeconds": -5}, "ttlSeconds -5 is not positive"),
    ({"eventHubs": None}, "is unreadable: eventHubs"),
])
def test_other_invalid_fields_are_named(claimed: Path, capsys: pytest.CaptureFixture[str],
                                        changes: dict[str, object], problem: str) -> None:
    plant(claimed, "cd")
    conn = sqlite3.connect(ledger_file(claimed))
    (doc,) = conn.execute("SELECT doc FROM slices WHERE handle = 'cd'").fetchone()
    conn.execute("UPDATE slices SET doc = ? WHERE handle = 'cd'",
                 (json.dumps({**json.loads(doc), **changes}),))
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert run(["slice", "list"]) == 1
    assert f"slice 'cd': {problem}" in capsys.readouterr().err.replace("\n", "")


def test_ledger_check_reports_and_changes_nothing(
        claimed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["ledger", "check"]) == 0
    assert "no problems found" in capsys.readouterr().out
    plant(claimed, "../x", eventHubs={"namespace": "embedded", "partitions": [0]})
    conn = sqlite3.connect(ledger_file(claimed))
    conn.execute("INSERT INTO history (at, actor, action, handle, detail) "
                 "VALUES ('yesterday', 'a', 'claim', 'ab', '')")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = ledger_file(claimed).read_bytes()
    assert run(["ledger", "check", "-o", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    found = {(p["subject"], p["problem"].split(":")[0]) for p in report["problems"]}
    assert ("slice '../x'", "'../x' is not a valid slice handle") in found
    assert any(s == "history line 2" for s, _ in found)
    assert ledger_file(claimed).read_bytes() == before


def test_a_foreign_database_is_reported_and_left_exactly_as_it_was(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(CONFIG)
    ledger_file(workdir).parent.mkdir()
    conn = sqlite3.connect(ledger_file(workdir))
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ann')")
    conn.commit()
    conn.close()
    before = ledger_file(workdir).read_bytes()
    for args in (["slice", "list"], ["slice", "claim"], ["ledger", "check"], ["doctor"]):
        run(args)
        out = capsys.readouterr()
        assert "holds tables users and no devslice identity" in out.err + out.out, args
    assert ledger_file(workdir).read_bytes() == before
    # nothing beside it but the config's kept YAML data (issue 17), which is no ledger's
    assert sorted(p.name for p in ledger_file(workdir).parent.iterdir()
                  if p.name != "config-data.json") == ["ledger.db"]


def test_an_empty_file_is_a_new_ledger(workdir: Path) -> None:
    (workdir / "devslice.yaml").write_text(CONFIG)
    ledger_file(workdir).parent.mkdir()
    ledger_file(workdir).touch()
    assert run(["slice", "list"]) == 0
    assert ledger_file(workdir).stat().st_size == 0  # a read creates nothing
    assert run(["slice", "claim", "ab"]) == 0


COMMANDS = [["slice", "list"], ["slice", "show", "ab", "--history"], ["slice", "claim", "cd"],
            ["slice", "release", "ab"], ["slice", "renew", "ab"], ["slice", "gc"],
            ["slice", "map"], ["env", "--slice", "ab"], ["ledger", "check"], ["doctor"]]


def test_garbled_pages_give_clear_errors_and_are_never_written_into(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Garbage written over each page in turn: every command ends in a message (no
    traceback), and a file that fails integrity_check is never changed."""
    (workdir / "devslice.yaml").write_text(
        BASE + "eventHubs: {namespaces: [{name: embedded, partitions: 32}]}\n")
    for i in range(12):
        assert run(["slice", "claim", f"h{i}", "--owner", f"Dev {i}"]) == 0
        assert run(["slice", "renew", f"h{i}", "--force"]) == 0
    path = ledger_file(workdir)
    with sqlite3.connect(path) as conn:  # everything in the main file, no WAL left
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pristine = path.read_bytes()
    page = 4096
    assert len(pristine) // page >= 6
    damaged = 0
    for n in range(len(pristine) // page):
        garbage = bytes((n * 31 + k * 7) % 256 for k in range(page))
        path.write_bytes(pristine[: n * page] + garbage + pristine[(n + 1) * page:])
        for wal in path.parent.glob("ledger.db-*"):
            wal.unlink()
        bad = _integrity(path) != ["ok"]
        damaged += bad
        for args in COMMANDS:
            before = path.read_bytes()
            try:
                run(args)
            except Exception as exc:  # a traceback would reach the user
                pytest.fail(f"page {n}: {' '.join(args)} raised {exc!r}")
            out = capsys.readouterr()
            assert "Traceback" not in out.err + out.out
            if bad:
                assert path.read_bytes() == before, (n, args)
    assert damaged >= 3


def _integrity(path: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return [r for (r,) in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]


def test_a_damaged_file_is_one_clear_error(tmp_path: Path) -> None:
    from devslice.slices.operations import Transition

    path = tmp_path / "l.db"
    with SqliteLedger(path, "company1") as ledger:
        ledger.transact(lambda s: Transition(s, [], None))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[4096 + 8: 4096 + 64] = b"\xff" * 56  # page 2's cell pointers
    path.write_bytes(bytes(data))
    with pytest.raises(LedgerCorrupt) as info:
        SqliteLedger(path, "company1").read()
    assert str(path) in info.value.message
    assert "restore the file from a backup" in (info.value.hint or "")
    assert "devslice ledger check" in (info.value.hint or "")


@pytest.mark.parametrize("args", [
    ["slice", "release", ""], ["slice", "renew", ""], ["slice", "show", ""],
    ["slice", "claim", ""], ["env", "--slice", ""], ["verify", "--slice", ""],
    ["slice", "release", "  "],
])
def test_an_empty_handle_is_an_error(claimed: Path, capsys: pytest.CaptureFixture[str],
                                     args: list[str]) -> None:
    capsys.readouterr()
    assert run(args) == 2
    assert "the slice handle is empty" in capsys.readouterr().err
    assert run(["slice", "show", "ab"]) == 0  # still held


# -- writers in order ---------------------------------------------------------------------

HOLDER = """
import sys
from pathlib import Path
from devslice.ledger.queue import WriterQueue
with WriterQueue(Path(sys.argv[1])).turn(60):
    print("held", flush=True)
    sys.stdin.readline()
"""
WRITER = """
import sys
from pathlib import Path
from devslice.ledger.queue import WriterQueue
with WriterQueue(Path(sys.argv[1])).turn(60):
    with open(sys.argv[2], "a") as f:
        f.write(sys.argv[3] + "\\n")
"""


def _python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO / "src"))}
    return subprocess.Popen([sys.executable, "-c", code, *args], text=True, env=env,
                            cwd=REPO, **kwargs)  # type: ignore[call-overload, no-any-return]


def _queue_with_holder(tmp_path: Path) -> tuple[WriterQueue, subprocess.Popen[str]]:
    queue = WriterQueue(tmp_path / "l.db.lock")
    holder = _python(HOLDER, str(queue.path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return queue, holder


@pytest.mark.parametrize("holder_ends", ["finishes", "is killed"])
def test_writers_are_served_in_the_order_they_came(tmp_path: Path, holder_ends: str) -> None:
    """Five writers queue behind a holder, one after another; they write in that order,
    whether the holder finishes or dies (a dead writer never blocks the queue)."""
    queue, holder = _queue_with_holder(tmp_path)
    order = tmp_path / "order"
    writers = []
    for i in range(5):
        writers.append(_python(WRITER, str(queue.path), str(order), str(i)))
        wait_for(lambda n=i: queue.tickets() == n + 2, timeout=30)  # it holds its ticket
    assert not order.exists()  # nobody passed the holder
    if holder_ends == "finishes":
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()
    else:
        holder.send_signal(signal.SIGKILL)
    _stop(holder)
    for w in writers:
        assert w.wait(60) == 0
    assert order.read_text().split() == ["0", "1", "2", "3", "4"]


def test_a_writer_stuck_behind_another_gives_up_clearly(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    _, holder = _queue_with_holder(tmp_path)
    try:
        ledger = SqliteLedger(path, "company1", busy_timeout=0.3)
        from devslice.slices.operations import Transition

        with pytest.raises(LedgerBusy, match=r"1 writer\(s\) ahead in its queue"):
            ledger.transact(lambda s: Transition(s, [], None))
    finally:
        holder.kill()
        _stop(holder)


def _stop(holder: subprocess.Popen[str]) -> None:
    holder.wait(30)
    for stream in (holder.stdin, holder.stdout):
        if stream is not None:
            stream.close()
