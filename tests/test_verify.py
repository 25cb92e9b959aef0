"""`devslice verify` is green for a healthy slice and red for broken ones."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from devslice.cli.app import run

from .helpers import BASE, SOLO, wait_for

CONFIG = BASE + """\
cluster: {runtime: local}
eventHubs:
  eventHubs: [orders]
  namespaces: [{name: embedded, partitions: 4}]
"""


def hub_events() -> dict[str, int]:
    """The last sequence number of each partition of the embedded hub's `orders`."""
    from devslice.embedded import EmbeddedHub

    hub = EmbeddedHub(Path(".devslice/eventhubs.db"), partitions=4)
    try:
        return {p: hub.last_sequence_number("orders", p) for p in hub.partition_ids("orders")}
    finally:
        hub.close()


def new_events(before: dict[str, int]) -> dict[str, int]:
    """How many events each partition got since ``before`` (partitions that got none left out)."""
    return {p: n - before.get(p, -1) for p, n in hub_events().items() if n != before.get(p, -1)}


def checks(capsys: pytest.CaptureFixture[str], code: int,
           handle: str | None = None) -> dict[str, dict[str, str]]:
    capsys.readouterr()
    assert run(["verify", "-o", "json", *(["--slice", handle] if handle else [])]) == code
    return {c["check"]: c for c in json.loads(capsys.readouterr().out)}


def test_a_healthy_slice_is_green(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(CONFIG)
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    assert run(["slice", "claim", "--partitions", "2"]) == 0
    result = checks(capsys, 0)
    running = result.pop("running services use the slice's contract")
    assert (running["status"], running["detail"]) == (
        "skipped", "local runtime: no service of slice ab runs (`devslice up` starts them)")
    assert {c["status"] for c in result.values()} == {"ok"}
    canary = result["a canary on each partition arrives there only"]["detail"]
    assert canary == "2 canaries on orders, each only in its partition"
    assert run(["verify"]) == 0
    assert "partitions are the slice's own" in capsys.readouterr().out


def test_two_slices_sharing_a_partition_turn_it_red(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ledger edited by hand so that cd's record claims ab's partition."""
    (workdir / "devslice.yaml").write_text(CONFIG)
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    assert run(["slice", "claim"]) == 0  # ab gets partition 1
    conn = sqlite3.connect(workdir / ".devslice" / "ledger.db")
    doc = json.loads(conn.execute("SELECT doc FROM slices WHERE handle = 'cd'").fetchone()[0])
    doc["eventHubs"]["partitions"] = [1]
    conn.execute("UPDATE slices SET doc = ? WHERE handle = 'cd'", (json.dumps(doc),))
    conn.commit()
    conn.close()
    result = checks(capsys, 1)
    own = result["partitions are the slice's own"]
    assert (own["status"], own["detail"]) == ("failed", "cd holds embedded partition 1")
    assert run(["verify"]) == 1


def test_an_override_pointing_at_someone_elses_partition_turns_it_red(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "devslice.yaml").write_text(CONFIG)
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0  # partition 0
    assert run(["slice", "claim"]) == 0  # partition 1
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ab\n"
        "env: {LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS: '0'}\n")
    before = hub_events()
    result = checks(capsys, 1)
    uses = result["services use the slice's partitions"]
    assert uses["status"] == "failed"
    assert uses["detail"] == (
        "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS=0, but the ledger gave 1: partition 0 is "
        "slice cd's (fix: remove LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS from env: in "
        "devslice.local.yaml)")
    # the canary went to the ledger's partition 1, never to cd's partition 0
    assert result["a canary on each partition arrives there only"]["status"] == "ok"
    assert new_events(before) == {"1": 1}


def test_canaries_never_reach_a_services_code(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify publishes canaries on the slice's partitions; a service's SliceConsumer drops
    them, so a consumer that parses every event as an order does not crash on one."""
    import threading

    from azure.eventhub import EventData

    from devslice.project import Project
    from devslice.sdk import SliceContext
    from devslice.sdk.eventhubs import SliceConsumer, SliceProducer

    (workdir / "devslice.yaml").write_text(CONFIG)
    assert run(["slice", "claim"]) == 0
    assert run(["verify"]) == 0
    project = Project.load()
    ctx = SliceContext.from_env({v.name: str(v.value) for v in project.variables("ab")})
    with SliceProducer.from_context("orders", ctx) as producer:
        producer.send(EventData('{"order": 1}'))
    got: list[str] = []
    consumer = SliceConsumer.from_context("orders", ctx=ctx)
    t = threading.Thread(target=consumer.receive, args=(
        lambda pc, e: got.append(json.loads(e.body_as_str())["order"]),),
        kwargs={"starting_position": "-1"})
    t.start()
    # event 1 came after the canary on the same partition: once 1 is here, the canary would
    # have come first had it not been skipped
    wait_for(lambda: bool(got), 5, "the order event")
    consumer.close()
    t.join(5)
    assert got == [1]  # the canary was on the same partition, before it, and was skipped


def test_an_override_taking_someone_elses_name_turns_it_red(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "devslice.yaml").write_text(CONFIG)
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    assert run(["slice", "claim"]) == 0
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ab\n"
        "env: {LOCAL_DEV_DATAEXPLORER_DATABASE: db4cd}\n")
    names = checks(capsys, 1)["names are the slice's own"]
    assert (names["status"], names["detail"]) == (
        "failed", "LOCAL_DEV_DATAEXPLORER_DATABASE=db4cd is slice cd's (the slice's own is "
        "db4ab) (fix: remove LOCAL_DEV_DATAEXPLORER_DATABASE from env: in devslice.local.yaml)")


LOCAL = "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\n"


def two_slices(workdir: Path, config: str = CONFIG) -> None:
    """cd holds partition 0, ab (the current owner's) partition 1."""
    (workdir / "devslice.yaml").write_text(config)
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    assert run(["slice", "claim"]) == 0


def test_an_override_belongs_to_the_slice_it_names(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11: devslice.local.yaml naming cd must not reach ab's services."""
    two_slices(workdir)
    (workdir / "devslice.local.yaml").write_text(
        LOCAL + "slice: cd\nenv: {LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS: '0', MY_DEBUG: '1'}\n")
    capsys.readouterr()
    assert run(["env", "--slice", "ab", "-o", "json"]) == 0
    ab = json.loads(capsys.readouterr().out)
    assert ab["LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"] == "1"
    assert "MY_DEBUG" not in ab
    assert run(["env", "--slice", "ab", "--explain"]) == 0
    assert ("devslice.local.yaml names slice cd, not ab: its overrides "
            "(LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS, MY_DEBUG) were not applied to ab"
            in capsys.readouterr().out.replace("\n", " "))
    assert run(["env", "--slice", "cd", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "personal override" in out
    assert "devslice.local.yaml names slice cd: its overrides apply" in out.replace("\n", " ")
    assert run(["env", "--slice", "cd", "--explain", "-o", "json"]) == 0
    assert "its overrides apply" in capsys.readouterr().err
    assert checks(capsys, 0, "ab")  # ab's services get none of it: green
    assert checks(capsys, 0, "cd")  # cd's own partition, overridden as it is: green


def test_overrides_that_name_no_slice_are_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_slices(workdir)
    (workdir / "devslice.local.yaml").write_text(LOCAL + "env: {MY_DEBUG: '1'}\n")
    capsys.readouterr()
    assert run(["env", "--slice", "ab"]) == 2
    err = capsys.readouterr().err
    assert "devslice.local.yaml:3:6: env: " in err
    assert "overrides must name the slice they are for: add `slice: HANDLE`" in err


def test_renaming_the_partition_variable_to_another_slices_partitions_turns_it_red(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_slices(workdir)
    (workdir / "devslice.local.yaml").write_text(
        LOCAL + "slice: ab\nenv: {DEVSLICE_PARTITIONIDS_VARIABLE: CD_IDS, CD_IDS: '0'}\n")
    before = hub_events()
    result = checks(capsys, 1)
    uses = result["services use the slice's partitions"]
    assert uses["status"] == "failed"
    assert uses["detail"] == (
        "CD_IDS=0 (services read it because DEVSLICE_PARTITIONIDS_VARIABLE=CD_IDS; "
        "devslice.yaml names LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS), but the ledger gave 1: "
        "partition 0 is slice cd's (fix: remove DEVSLICE_PARTITIONIDS_VARIABLE, CD_IDS from "
        "env: in devslice.local.yaml)")
    assert new_events(before) == {"1": 1}  # the canary: ab's partition only

    # renamed to a variable nobody sets: services would read every partition
    (workdir / "devslice.local.yaml").write_text(
        LOCAL + "slice: ab\nenv: {DEVSLICE_PARTITIONIDS_VARIABLE: NOWHERE}\n")
    detail = checks(capsys, 1)["services use the slice's partitions"]["detail"]
    assert detail.startswith("NOWHERE is not set (services read it because "
                             "DEVSLICE_PARTITIONIDS_VARIABLE=NOWHERE; ")
    assert "services would use every partition, other slices' too" in detail


def test_another_slices_storage_connection_string_turns_it_red_without_showing_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Azurite connection strings (storage.mode embedded): cd's string names cd's account and
    holds its key; a .NET service given it would write into cd's account."""
    from devslice.project import Project
    from devslice.sdk.storage import _connection_settings

    two_slices(workdir)
    cd = {v.name: str(v.value) for v in Project.load().variables("cd")}
    theirs = cd["LOCAL_DEV_STORAGE_CONNECTIONSTRING"]
    key = _connection_settings(theirs)["ACCOUNTKEY"]
    (workdir / "devslice.local.yaml").write_text(
        LOCAL + f"slice: ab\nenv: {{LOCAL_DEV_STORAGE_CONNECTIONSTRING: '{theirs}'}}\n")
    capsys.readouterr()
    assert run(["verify", "-o", "json"]) == 1
    out = capsys.readouterr().out
    assert key not in out and theirs not in out
    storage = {c["check"]: c for c in json.loads(out)}[
        "services use the slice's storage account"]
    assert storage["status"] == "failed"
    assert storage["detail"].startswith(
        "LOCAL_DEV_STORAGE_CONNECTIONSTRING (its AccountName) addresses account "
        "company1stacc4cd, slice cd's storage account (the slice's is company1stacc4ab) (fix: "
        "remove LOCAL_DEV_STORAGE_CONNECTIONSTRING from env: in devslice.local.yaml)")
    assert "(its BlobEndpoint) addresses account company1stacc4cd" in storage["detail"]
    assert run(["verify"]) == 1
    assert key not in capsys.readouterr().out


def test_an_endpoint_override_into_another_slices_account_turns_it_red(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_slices(workdir)
    (workdir / "devslice.local.yaml").write_text(
        LOCAL + "slice: ab\nenv: {LOCAL_DEV_STORAGE_QUEUEENDPOINT: "
        "'http://127.0.0.1:10001/company1stacc4cd', LOCAL_DEV_SLICE: cd}\n")
    result = checks(capsys, 1)
    assert result["services use the slice's storage account"]["detail"].startswith(
        "LOCAL_DEV_STORAGE_QUEUEENDPOINT addresses account company1stacc4cd, slice cd's "
        "storage account")
    assert result["names are the slice's own"]["detail"].startswith(
        "LOCAL_DEV_SLICE=cd (another slice of the ledger), but this is slice ab")


def test_a_team_that_renamed_its_variables_is_read_as_its_services_read_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_slices(workdir, CONFIG + "contract: {prefix: ACME_, partitionIdsVariable: ORDER_PARTS}\n")
    result = checks(capsys, 0)
    assert result["services use the slice's partitions"]["detail"] == (
        "ORDER_PARTS=1, the ledger's embedded partitions")
    (workdir / "devslice.local.yaml").write_text(
        LOCAL + "slice: ab\nenv: {ORDER_PARTS: '0', ACME_SIGNALR_HUB_X: y}\n")
    assert checks(capsys, 1)["services use the slice's partitions"]["detail"].startswith(
        "ORDER_PARTS=0, but the ledger gave 1: partition 0 is slice cd's")


def test_a_team_secret_naming_another_slices_account_is_red_and_a_missing_one_said(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    two_slices(workdir, CONFIG + SOLO
               + "storage:\n  mode: shared\n  connectionString: {fromEnv: CS}\n")
    monkeypatch.setenv("CS", "AccountName=company1stacc4cd;AccountKey=S3CRET;"
                             "EndpointSuffix=core.windows.net")
    capsys.readouterr()
    assert run(["verify", "-o", "json"]) == 1
    out = capsys.readouterr().out
    assert "S3CRET" not in out
    storage = {c["check"]: c for c in json.loads(out)}["services use the slice's storage account"]
    assert storage["detail"] == (
        "LOCAL_DEV_STORAGE_CONNECTIONSTRING (its AccountName) addresses account company1stacc4cd, "
        "slice cd's storage account (the slice's is company1stacc4ab) (fix: correct the secret "
        "LOCAL_DEV_STORAGE_CONNECTIONSTRING (devslice.yaml storage.connectionString (env:CS)))")
    monkeypatch.delenv("CS")
    storage = checks(capsys, 0)["services use the slice's storage account"]
    assert storage["status"] == "ok"
    assert storage["detail"].endswith("; not checked: the secret CS is not set")
