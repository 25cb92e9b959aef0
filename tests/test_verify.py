"""`devslice verify` is green for a healthy slice and red for broken ones."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from devslice.cli.app import run

from .helpers import BASE

CONFIG = BASE + """\
eventHubs:
  eventHubs: [orders]
  namespaces: [{name: embedded, partitions: 4}]
"""


def checks(capsys: pytest.CaptureFixture[str], code: int) -> dict[str, dict[str, str]]:
    capsys.readouterr()
    assert run(["verify", "--json"]) == code
    return {c["check"]: c for c in json.loads(capsys.readouterr().out)}


def test_a_healthy_slice_is_green(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(CONFIG)
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    assert run(["slice", "claim", "--partitions", "2"]) == 0
    result = checks(capsys, 0)
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
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\n"
        "env: {LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS: '0'}\n")
    result = checks(capsys, 1)
    uses = result["services use the slice's partitions"]
    assert uses["status"] == "failed"
    assert uses["detail"] == "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS=0, but the ledger gave 1"


def test_canaries_never_reach_a_services_code(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify publishes canaries on the slice's partitions; a service's SliceConsumer drops
    them, so a consumer that parses every event as an order does not crash on one."""
    import threading
    import time

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
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
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
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\n"
        "env: {LOCAL_DEV_DATAEXPLORER_DATABASE: db4cd}\n")
    names = checks(capsys, 1)["names are the slice's own"]
    assert (names["status"], names["detail"]) == (
        "failed", "dataExplorerDatabase db4cd is also cd's")
