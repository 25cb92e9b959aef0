"""The ledger's reach matches the services' (issue 11): shared services need a ledger the team
shares, a developer alone says so, and `devslice ledger migrate` moves a machine's ledger into
the team's blob (a real Azurite); the Azure Blob ledger checks its whole document."""

from __future__ import annotations

import gc
import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from devslice.cli.app import run
from devslice.errors import LedgerCorrupt
from devslice.ledger.azureblob import AzureBlobLedger
from devslice.project import Project
from devslice.testing import Azurite

from .helpers import BASE, SOLO

SHARED_EH = BASE + ("eventHubs:\n  mode: shared\n"
                   "  namespaces: [{name: team-dev-ehns1, partitions: 4}]\n")


def checkout(root: Path, name: str, text: str = SHARED_EH) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "devslice.yaml").write_text(text)
    return folder


def test_two_checkouts_sharing_event_hubs_are_refused_a_private_ledger(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11: two laptops, default ledger, shared Event Hubs, both got partition 0."""
    for name in ("ann", "bob"):
        folder = checkout(tmp_path, name)
        monkeypatch.chdir(folder)
        assert run(["slice", "claim"]) == 2
        err = capsys.readouterr().err
        assert f"{folder}/devslice.yaml:5:3: eventHubs.mode: the ledger sqlite:" \
               f"{folder}/.devslice/ledger.db is a file only this machine sees, but " \
               "eventHubs.mode is shared" in err.replace("\n", "").replace("  ", " ")
        assert "share an azureBlob ledger" in err and "soloTeam: true" in err
        assert not (folder / ".devslice").exists()  # refused before anything was written
        assert run(["doctor", "-o", "json"]) == 1
        ledger = next(c for c in json.loads(capsys.readouterr().out) if c["name"] == "ledger")
        assert not ledger["ok"] and "only this machine sees" in ledger["problem"]


def test_the_error_points_at_the_ledger_key_when_the_file_writes_one(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(SHARED_EH + "ledger:\n  backend: sqlite\n")
    assert run(["slice", "claim"]) == 2
    assert "devslice.yaml:8:3: ledger.backend: the ledger" in capsys.readouterr().err


def test_a_developer_alone_opts_in_and_doctor_shows_it(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(SHARED_EH + SOLO)
    assert run(["slice", "claim", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["eventHubs"]["partitions"] == [0]
    assert run(["doctor", "-o", "json"]) in (0, 1)  # tools may be missing here; the ledger is ok
    ledger = next(c for c in json.loads(capsys.readouterr().out) if c["name"] == "ledger")
    assert ledger["ok"]
    assert "this machine only; soloTeam: true (you alone use eventHubs.mode)" \
        in ledger["version"]


@pytest.mark.parametrize(("text", "refused"), [
    ("storage: {mode: shared}\n", "storage.mode"),
    ("dataExplorer: {clusterUrl: 'https://t.westeurope.kusto.windows.net'}\n",
     "dataExplorer.mode"),
    ("signalR: {endpoint: 'https://t.service.signalr.net'}\n", "signalR.mode"),
    ("", None),  # the defaults: Data Explorer and SignalR shared, but nothing to connect to
    ("storage: {mode: embedded}\n", None),
])
def test_every_shared_service_needs_the_teams_ledger(
        workdir: Path, capsys: pytest.CaptureFixture[str], text: str,
        refused: str | None) -> None:
    (workdir / "devslice.yaml").write_text(BASE + text)
    code = run(["slice", "claim"])
    err = capsys.readouterr().err.replace("\n", "")
    if refused:
        assert code == 2 and f"{refused}: the ledger sqlite:" in err
    else:
        assert code == 0, err


# -- migrate -------------------------------------------------------------------------------

@pytest.fixture
def team_blob(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> ContainerClient:
    monkeypatch.setenv("TEAM_LEDGER", azurite.connection_string())
    return ContainerClient.from_connection_string(azurite.connection_string(),
                                                  f"ledger-{uuid.uuid4().hex[:12]}")


@pytest.mark.azurite
def test_migrate_copies_every_slice_and_its_history_and_leaves_the_source(
        workdir: Path, team_blob: ContainerClient, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(SHARED_EH + SOLO)
    for args in (["slice", "claim", "ab"], ["slice", "claim", "cd", "--owner", "Carl Dahl"],
                 ["slice", "claim", "ci1", "--kind", "ci"], ["slice", "renew", "ci1"],
                 ["slice", "claim", "ef", "--owner", "Eva F"], ["slice", "release", "ef",
                                                                  "--force"]):
        assert run(args) == 0, args
    source = workdir / ".devslice" / "ledger.db"
    gc.collect()  # the commands' connections, so that the WAL is all in the file
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = source.read_bytes()
    local = Project.load()
    state, history = local.ledger.read(), local.ledger.history(limit=None)
    assert state.released  # a field besides the slices (ef's partition), copied generically
    local.ledger.close()
    assert len(history) == 6
    capsys.readouterr()
    target = ["ledger", "migrate", "--to-connection-string-env", "TEAM_LEDGER",
              "--to-container", team_blob.container_name, "-o", "json"]
    assert run(target) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["slices"] == ["ab", "cd", "ci1"] and done["history"] == 6
    assert not done["already"]
    assert source.read_bytes() == before  # only read

    # The team now points devslice.yaml at the blob: the same slices, the whole history.
    (workdir / "devslice.yaml").write_text(SHARED_EH + (
        f"ledger:\n  backend: azureBlob\n  connectionString: {{fromEnv: TEAM_LEDGER}}\n"
        f"  container: {team_blob.container_name}\n"))
    team = Project.load()
    assert team.ledger.read() == state
    copied = team.ledger.history(limit=None)
    assert copied[:-1] == history
    assert copied[-1].action == "migrate" and "3 slice(s) and 6 history line(s)" in \
        copied[-1].detail
    assert run(["slice", "claim", "gh", "--owner", "Gus H", "-o", "json"]) == 0  # no refusal now
    assert json.loads(capsys.readouterr().out)["eventHubs"]["partitions"] == [3]

    # Again: the target holds other slices now (gh), so nothing is copied.
    assert run(["ledger", "migrate"]) == 1
    assert "already holds other slices (ab, cd, ci1, gh); nothing was copied" in \
        capsys.readouterr().err.replace("\n", "").replace("  ", " ")
    assert set(team.ledger.read().slices) == {"ab", "cd", "ci1", "gh"}


@pytest.mark.azurite
def test_migrating_twice_changes_nothing(workdir: Path, team_blob: ContainerClient,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(SHARED_EH + SOLO)
    assert run(["slice", "claim", "ab"]) == 0
    target = ["ledger", "migrate", "--to-connection-string-env", "TEAM_LEDGER",
              "--to-container", team_blob.container_name]
    assert run(target) == 0
    etag = team_blob.get_blob_client("ledger.json").get_blob_properties().etag
    capsys.readouterr()
    assert run(target) == 0
    assert "already holds these 1 slice(s); nothing to copy" in capsys.readouterr().out
    assert team_blob.get_blob_client("ledger.json").get_blob_properties().etag == etag


# -- the blob's whole document -------------------------------------------------------------

@pytest.mark.azurite
@pytest.mark.parametrize(("history", "problem"), [
    ("abc", "history: is str, not a list of changes"),
    ([{"at": "2026-01-01T00:00:00Z"}], "history line 1: is unreadable: actor"),
    ([42], "history line 1: is unreadable"),
])
def test_a_bad_history_is_reported_and_the_document_never_rewritten(
        team_blob: ContainerClient, history: object, problem: str) -> None:
    ledger = AzureBlobLedger(team_blob, "ledger.json", "company1")
    Project(_env(), Path("devslice.yaml"), ledger=ledger).claim("ab")
    doc = json.loads(team_blob.download_blob("ledger.json").readall())
    team_blob.upload_blob("ledger.json", json.dumps({**doc, "history": history}),
                          overwrite=True)
    etag = team_blob.get_blob_client("ledger.json").get_blob_properties().etag
    p = Project(_env(), Path("devslice.yaml"), ledger=ledger)
    for action in (p.slices, lambda: p.claim("cd", owner="Carl Dahl"), p.gc,
                   p.ledger.history):
        with pytest.raises(LedgerCorrupt) as info:
            action()
        assert problem in info.value.message
    assert team_blob.get_blob_client("ledger.json").get_blob_properties().etag == etag
    assert any(problem in str(x) for x in ledger.check())


@pytest.mark.azurite
def test_a_planted_handle_in_the_blob_is_refused(team_blob: ContainerClient) -> None:
    ledger = AzureBlobLedger(team_blob, "ledger.json", "company1")
    Project(_env(), Path("devslice.yaml"), ledger=ledger).claim("ab")
    doc = json.loads(team_blob.download_blob("ledger.json").readall())
    doc["slices"]["../../pwn"] = {**doc["slices"]["ab"], "handle": "../../pwn"}
    team_blob.upload_blob("ledger.json", json.dumps(doc), overwrite=True)
    with pytest.raises(LedgerCorrupt, match=r"slice '\.\./\.\./pwn': '\.\./\.\./pwn' is not a "
                                            "valid slice handle"):
        ledger.read()
    assert [p.subject for p in ledger.check()] == ["slice '../../pwn'"]


def _env():  # type: ignore[no-untyped-def]
    from .helpers import env_from

    return env_from()

