"""The embedded hub's fast paths (issue 17): canaries filtered without decoding, the slice
producer storing bodies without building EventData, consumers woken on change, retention."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData

from devslice.embedded import EmbeddedConsumerClient, EmbeddedHub, EmbeddedProducerClient
from devslice.embedded.eventhub import CANARY_KEY, MAX_BATCH_BYTES, ReceivedEvent, changes
from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import CANARY, SliceConsumer, SliceProducer, is_canary

from .helpers import REPO

CONTRACT = {"LOCAL_DEV_SLICE": "ab", "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "1,2",
            "LOCAL_DEV_DATAEXPLORER_DATABASE": "db4ab"}


def stored(props: dict[str, Any] | None) -> ReceivedEvent:
    return ReceivedEvent.of(b"x", json.dumps(props) if props else None, 0, 0)


def test_canary_key_is_what_json_stores() -> None:
    assert json.dumps({CANARY: "1"}).startswith("{" + CANARY_KEY)


@pytest.mark.parametrize(("props", "canary"), [
    ({CANARY: "verify"}, True),
    ({"a": 1, CANARY: True}, True),
    (None, False),
    ({"note": f'"{CANARY}": yes'}, False),  # the name inside a value is no key
    ({"note": CANARY}, False),
    ({f"{CANARY}x": 1}, False),
])
def test_canaries_are_told_without_decoding_properties(props: dict[str, Any] | None,
                                                       canary: bool) -> None:
    event = stored(props)
    assert event.devslice_canary is canary
    assert is_canary(event) is canary
    assert "properties" not in event.__dict__  # nothing was decoded
    assert (CANARY.encode() in event.properties) is canary  # and decoding agrees


def test_slice_consumer_drops_canaries_of_the_embedded_hub(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=4)
    producer = EmbeddedProducerClient(hub, "orders")
    canary = EventData("canary")
    canary.properties = {CANARY: "run-1"}
    tricky = EventData("keep")
    tricky.properties = {"note": f'"{CANARY}": no'}
    producer.send_batch([EventData("a"), canary, tricky], partition_id="1")
    consumer = SliceConsumer(lambda: EmbeddedConsumerClient(hub, "orders"),
                             SliceContext.from_env(CONTRACT))
    got: list[bytes] = []

    def on_event(_ctx: Any, event: Any) -> None:
        got.append(event.body)
        if len(got) == 2:
            consumer.close()

    consumer.receive(on_event, starting_position="-1")
    assert got == [b"a", b"keep"]


def test_slice_producer_stores_bodies_with_the_routing(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=4)
    producer = SliceProducer(EmbeddedProducerClient(hub, "orders"),
                             SliceContext.from_env(CONTRACT))
    own = EventData(b"mine")
    own.properties = {"Database": "other", "n": 3}
    assert producer.send(["a", b"b", own], partition_id="2") == 1
    assert own.properties == {"Database": "db4ab", "n": 3}  # stamped, as before
    events = hub.read("orders", "2", -1)
    assert [e.body for e in events] == [b"a", b"b", b"mine"]
    assert [e.properties for e in events] == [{b"Database": "db4ab"}, {b"Database": "db4ab"},
                                              {b"Database": "db4ab", b"n": 3}]
    assert producer.send(e for e in ["from", "a generator"]) == 1
    assert sum(len(hub.read("orders", p, -1)) for p in ("1", "2")) == 5


def test_slice_producer_splits_what_one_batch_cannot_hold(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=4)
    producer = SliceProducer(EmbeddedProducerClient(hub, "orders"),
                             SliceContext.from_env(CONTRACT))
    big = "x" * (MAX_BATCH_BYTES // 3)
    assert producer.send(iter([big] * 4), partition_id="1") == 2
    assert len(hub.read("orders", "1", -1)) == 4


PUBLISH = """
import sys
from azure.eventhub import EventData
from devslice.embedded import EmbeddedHub, EmbeddedProducerClient
EmbeddedProducerClient(EmbeddedHub(sys.argv[1], partitions=4), "orders").send_batch(
    [EventData("from another process")], partition_id="3")
"""


def test_an_idle_consumer_is_woken_by_a_commit_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    hub = EmbeddedHub(path, partitions=4)
    hub.partition_ids("orders")
    watch = changes(path)
    assert watch is not None  # Linux: inotify
    # Polling would wait an hour: only the watcher can wake it.
    client = EmbeddedConsumerClient(hub, "orders", poll_interval=3600, max_poll_interval=3600,
                                    idle_poll=3600)
    got = threading.Event()

    def on_event(_ctx: Any, event: Any) -> None:
        got.set()

    receiving = threading.Thread(target=client.receive, args=(on_event,),
                                 kwargs={"partition_id": "3", "starting_position": "-1"},
                                 daemon=True)
    seen = watch.generation
    receiving.start()
    subprocess.run([sys.executable, "-c", PUBLISH, str(path)], cwd=REPO, check=True,
                   timeout=60)
    assert got.wait(30)
    assert watch.generation != seen
    client.close()  # wakes the waiting receive
    receiving.join(30)
    assert not receiving.is_alive()


def test_consumers_are_woken_when_a_commit_is_visible_not_when_the_wal_is_written(
        tmp_path: Path) -> None:
    """Issue 17: SQLite writes a transaction's pages to the WAL file before they are visible
    to readers. Woken by that write, a consumer read nothing and slept until the next event
    (one event per run arrived a whole interval late). Pages written, not committed: no wake;
    committed through the hub: a wake, and the event is there to read."""
    import sqlite3

    path = tmp_path / "hub.db"
    hub = EmbeddedHub(path, partitions=4)
    hub.partition_ids("orders")
    watch = changes(path)
    assert watch is not None  # Linux: inotify
    seen = watch.generation
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA cache_size = 1")  # spill the transaction's pages into the WAL
    writer.execute("BEGIN IMMEDIATE")
    writer.executemany("INSERT INTO events VALUES ('orders', 0, ?, 0, ?, NULL, NULL)",
                       [(i, b"x" * 4000) for i in range(200)])
    assert (path.parent / "hub.db-wal").stat().st_size > 100_000  # written, not committed
    watch.wait(seen, 0.5)  # a wake would come within milliseconds
    assert watch.generation == seen
    writer.execute("ROLLBACK")
    writer.close()
    hub.append("orders", "1", [EventData("visible")])
    watch.wait(seen, 30)
    assert watch.generation != seen
    assert [e.body for e in hub.read("orders", "1", -1)] == [b"visible"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_retention_deletes_old_events_and_keeps_the_numbering(tmp_path: Path) -> None:
    clock = Clock()
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=2, retention=3600, clock=clock)
    producer = EmbeddedProducerClient(hub, "orders")
    producer.send_batch([EventData(f"old-{i}") for i in range(5)], partition_id="0")
    clock.now += 1800
    producer.send_batch([EventData("recent")], partition_id="0")
    assert hub.prune() == 0  # nothing is an hour old yet
    clock.now += 1801
    producer.send_batch([EventData("new")], partition_id="0")
    assert hub.prune() == 5
    assert [(e.sequence_number, e.body) for e in hub.read("orders", "0", -1)] == [
        (5, b"recent"), (6, b"new")]
    # An expired position gets the oldest retained event, as Event Hubs does.
    for position in ("-1", 2):
        client = EmbeddedConsumerClient(hub, "orders")
        got: list[int] = []

        def on_event(_ctx: Any, event: Any, got: list[int] = got,
                     client: EmbeddedConsumerClient = client) -> None:
            got.append(event.sequence_number)
            client.close()

        client.receive(on_event, partition_id="0", starting_position=position)
        assert got == [5]
    # The last event is never deleted: numbering goes on after everything expired.
    clock.now += 10 * 3600
    hub.prune()
    producer.send_batch([EventData("later")], partition_id="0")
    hub.prune()
    assert [e.sequence_number for e in hub.read("orders", "0", -1)] == [7]


def test_a_size_cap_deletes_the_oldest_events(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=2, max_bytes=200_000)
    producer = EmbeddedProducerClient(hub, "orders")
    for _n in range(40):
        producer.send_batch([EventData("x" * 1000) for _ in range(50)], partition_id="1")
        hub.prune()
    events = hub.read("orders", "1", -1, limit=10_000)
    assert events[-1].sequence_number == 40 * 50 - 1
    assert len(events) < 40 * 50 // 2
    assert hub.used_bytes() < 400_000


def test_configured_retention_reaches_the_services_hub(workdir: Path) -> None:
    from devslice.project import Project
    from devslice.sdk.eventhubs import _embedded

    from .helpers import BASE

    (workdir / "devslice.yaml").write_text(
        BASE + "eventHubs: {mode: embedded, eventHubs: [orders], embeddedRetention: 2h, "
        "embeddedMaxSizeMb: 64}\n")
    project = Project.load()
    project.claim("ab")
    env = {v.name: v.value for v in project.variables("ab") if isinstance(v.value, str)}
    connection = env["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"]
    assert connection == (f"embedded:{(workdir / '.devslice/eventhubs.db').resolve()}"
                          f"?retention=7200&maxBytes={64 * 1024 * 1024}")
    ctx = SliceContext.from_env(env)
    assert ctx.embedded_path == str((workdir / ".devslice/eventhubs.db").resolve())
    hub = _embedded(ctx)
    assert (hub.retention, hub.max_bytes) == (7200.0, 64 * 1024 * 1024)


def test_default_retention_keeps_the_plain_connection(tmp_path: Path) -> None:
    from devslice.sdk.context import embedded_connection

    assert embedded_connection("/x/y.db") == "embedded:/x/y.db"
    odd = SliceContext.from_env({"LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING": "embedded:/a?b.db"})
    assert (odd.embedded_path, odd.embedded_options) == ("/a?b.db", {})


def test_services_get_the_users_pydantic_plugin_setting_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from devslice import PLUGINS_OFF_MARKER
    from devslice.local.supervisor import environment

    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "__all__")
    monkeypatch.setenv(PLUGINS_OFF_MARKER, "1")  # the CLI turned the plugins off itself
    assert "PYDANTIC_DISABLE_PLUGINS" not in environment({"A": "1"})
    monkeypatch.delenv(PLUGINS_OFF_MARKER)  # the user's own setting stays
    assert environment({})["PYDANTIC_DISABLE_PLUGINS"] == "__all__"


def test_finding_azurite_loads_neither_the_hub_nor_azure_eventhub() -> None:
    code = ("import sys, devslice.testing.azurite; print(any(m.startswith(("
            "'azure.eventhub', 'devslice.embedded')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "False"
