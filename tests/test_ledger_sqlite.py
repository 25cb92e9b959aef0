"""The embedded SQLite ledger: history, identity checks, and files it must not touch."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devslice.errors import LedgerCorrupt, LedgerUnreachable
from devslice.ledger.sqlite import SqliteLedger
from devslice.project import Project
from devslice.slices.model import SliceKind

from .helpers import env_from

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def project(path: Path, team: str = "company1", actor: str = "ann@laptop") -> Project:
    env = env_from() if team == "company1" else env_from().model_copy(update={"team": team})
    return Project(env, path.parent / "devslice.yaml", ledger=SqliteLedger(path, team=team),
                   clock=lambda: NOW, actor=actor)


def test_every_change_records_who_and_when(tmp_path: Path) -> None:
    p = project(tmp_path / "l.db")
    s, _ = p.claim("ab", kind=SliceKind.ci, ttl=timedelta(hours=2), owner="pipeline-7")
    assert (s.created_at, s.created_by) == (NOW, "ann@laptop")
    assert s.expires_at == NOW + timedelta(hours=2)
    p.renew("ab", owner="pipeline-7")
    p.release("ab", owner="pipeline-7")
    lines = [(c.action, c.actor, c.at, c.handle) for c in p.ledger.history()]
    assert lines == [("claim", "ann@laptop", NOW, "ab"), ("renew", "ann@laptop", NOW, "ab"),
                     ("release", "ann@laptop", NOW, "ab")]


def test_state_survives_reopening(tmp_path: Path) -> None:
    first = project(tmp_path / "l.db")
    claimed, _ = first.claim("ab", partitions=3)
    first.ledger.close()
    again = project(tmp_path / "l.db")
    assert again.get("ab") == claimed


def test_database_refuses_double_allocation_even_if_rules_failed(tmp_path: Path) -> None:
    """Defence in depth: the partitions table's key rejects a second holder."""
    p = project(tmp_path / "l.db")
    p.claim("ab")
    conn = sqlite3.connect(tmp_path / "l.db")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO partitions VALUES ('embedded', 0, 'ab')")
    conn.close()


def test_a_file_that_is_not_sqlite_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = path.read_bytes()
    with pytest.raises(LedgerCorrupt) as info:
        project(path).slices()
    assert "is not a devslice ledger" in info.value.message
    assert "never overwrites" in (info.value.hint or "")
    assert path.read_bytes() == before


def test_a_foreign_sqlite_database_is_not_adopted(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('apiVersion', 'someone.else/v1')")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerCorrupt, match=r"holds apiVersion 'someone\.else/v1', "
                                            r"expected 'devslice\.dev/v1alpha1'"):
        project(path).slices()


def test_another_teams_ledger_is_refused(tmp_path: Path) -> None:
    project(tmp_path / "l.db").claim("ab")
    with pytest.raises(LedgerCorrupt, match="holds team 'company1', expected 'other'"):
        project(tmp_path / "l.db", team="other").slices()


def test_unwritable_location_is_unreachable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerUnreachable) as info:
        project(blocker / "sub" / "l.db").claim("ab")
    assert str(blocker / "sub" / "l.db") in info.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder_is_unreachable(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(LedgerUnreachable):
        project(ro / "l.db").claim("ab")


def test_unreadable_slice_row_is_reported(tmp_path: Path) -> None:
    p = project(tmp_path / "l.db")
    p.claim("ab")
    conn = sqlite3.connect(tmp_path / "l.db")
    conn.execute("UPDATE slices SET doc = '{\"handle\": 3}'")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerCorrupt, match=r"l.db holds records .*slice 'ab': is unreadable"):
        project(tmp_path / "l.db").slices()


def test_reading_a_ledger_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    p = project(tmp_path / "sub" / "l.db")
    assert p.slices() == []
    assert p.ledger.history() == []
    assert not (tmp_path / "sub").exists()


def test_a_change_giving_a_partition_twice_is_refused_by_the_database(tmp_path: Path) -> None:
    """If the rules ever let a double allocation through, the partitions table's key stops
    it: the change is rolled back and reported, and the ledger is as before."""
    from devslice.slices.model import LedgerState
    from devslice.slices.operations import Transition

    p = project(tmp_path / "l.db")
    ab, _ = p.claim("ab")
    twin = ab.model_copy(update={"handle": "cd", "owner": "Carl"})

    def broken(state: LedgerState) -> Transition[None]:
        return Transition(LedgerState(slices={**state.slices, "cd": twin}), [], None)

    with pytest.raises(LedgerCorrupt, match="would give a partition to two slices"):
        p.ledger.transact(broken)
    assert [s.handle for s in p.slices()] == ["ab"]
