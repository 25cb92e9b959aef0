"""The embedded event hub: a durable log shared by the processes of one machine."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from azure.eventhub import EventData
from hypothesis import given, settings
from hypothesis import strategies as st

from devslice.embedded import EmbeddedConsumerClient, EmbeddedHub, EmbeddedProducerClient
from devslice.embedded.eventhub import EmbeddedHubError

from .helpers import REPO, wait_for

APPEND = """
import sys
from azure.eventhub import EventData
from devslice.embedded import EmbeddedHub, EmbeddedProducerClient
hub = EmbeddedHub(sys.argv[1], partitions=4)
p = EmbeddedProducerClient(hub, "orders")
for i in range(50):
    p.send_batch([EventData(f"{sys.argv[2]}-{i}-{j}") for j in range(3)], partition_id="1")
"""


def test_many_processes_append_without_gaps_or_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    procs = [subprocess.Popen([sys.executable, "-c", APPEND, str(path), f"w{i}"], cwd=REPO)
             for i in range(6)]
    assert [p.wait(60) for p in procs] == [0] * 6
    events = EmbeddedHub(path, partitions=4).read("orders", "1", -1, limit=10_000)
    assert [e.sequence_number for e in events] == list(range(6 * 50 * 3))
    assert len({e.body for e in events}) == 900
    # A batch is appended atomically: its three events stay together, in order.
    for start in range(0, 900, 3):
        bodies = [e.body.decode() for e in events[start:start + 3]]
        assert [b.rsplit("-", 1)[1] for b in bodies] == ["0", "1", "2"]


def test_events_survive_reopening_with_their_properties(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=2)
    e = EventData(b"\x00binary")
    e.properties = {"Database": "db4ab", "n": 3}
    EmbeddedProducerClient(hub, "orders").send_batch([e], partition_id="0")
    hub.close()
    (again,) = EmbeddedHub(tmp_path / "hub.db").read("orders", "0", -1)
    assert (again.body, again.properties, again.offset) == (b"\x00binary",
                                                            {b"Database": "db4ab", b"n": 3}, "0")


def test_partition_count_is_fixed_when_the_hub_is_created(tmp_path: Path) -> None:
    EmbeddedHub(tmp_path / "hub.db", partitions=2).partition_ids("orders")
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=32)
    assert hub.partition_ids("orders") == ["0", "1"]
    with pytest.raises(EmbeddedHubError, match=r"has no partition '5' \(it has 0..1\)"):
        EmbeddedProducerClient(hub, "orders").send_batch([EventData("x")], partition_id="5")


def test_producer_refuses_to_guess_a_partition(tmp_path: Path) -> None:
    p = EmbeddedProducerClient(EmbeddedHub(tmp_path / "hub.db"), "orders")
    with pytest.raises(EmbeddedHubError, match="needs a partition id"):
        p.send_batch([EventData("x")])


def receive_for(consumer: EmbeddedConsumerClient, count: int, **kw: object) -> list[bytes]:
    """What the consumer received once ``count`` events came (events of one partition come in
    order, so a wrong earlier one would be among them)."""
    got: list[bytes] = []
    t = threading.Thread(target=consumer.receive,
                         args=(lambda pc, e: got.append(e.body),), kwargs=kw)
    t.start()
    if count:
        wait_for(lambda: len(got) >= count, 10, f"{count} events")
    else:
        # expecting none: a moment in which a wrong event would come (no later event can
        # prove the absence, since where the consumer starts is what is tested)
        time.sleep(0.1)
    consumer.close()
    t.join(5)
    return got


def test_starting_positions_and_checkpoints(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=2)
    producer = EmbeddedProducerClient(hub, "orders")
    producer.send_batch([EventData(f"e{i}") for i in range(5)], partition_id="0")
    assert receive_for(EmbeddedConsumerClient(hub, "orders"), 0, partition_id="0",
                       starting_position="@latest") == []
    assert receive_for(EmbeddedConsumerClient(hub, "orders"), 2, partition_id="0",
                       starting_position="2") == [b"e3", b"e4"]
    hub.update_checkpoint({"eventhub_name": "orders", "consumer_group": "billing",
                           "partition_id": "0", "sequence_number": 1, "offset": "1"})
    # A checkpoint wins over the starting position, as with azure-eventhub.
    got = receive_for(EmbeddedConsumerClient(hub, "orders", "billing"), 3, partition_id="0",
                      starting_position="@latest")
    assert got == [b"e2", b"e3", b"e4"]


def test_new_events_reach_a_waiting_consumer(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=1)
    consumer = EmbeddedConsumerClient(hub, "orders")
    got: list[bytes] = []
    t = threading.Thread(target=consumer.receive, args=(lambda pc, e: got.append(e.body),),
                         kwargs={"partition_id": "0"})
    t.start()
    # what is tested: a consumer already backing off on an empty log still sees a new event
    time.sleep(0.2)
    EmbeddedProducerClient(EmbeddedHub(tmp_path / "hub.db"), "orders").send_batch(
        [EventData("late")], partition_id="0")
    wait_for(lambda: bool(got), 5, "the late event")
    consumer.close()
    t.join(5)
    assert got == [b"late"]


def test_consumer_needs_a_partition(tmp_path: Path) -> None:
    consumer = EmbeddedConsumerClient(EmbeddedHub(tmp_path / "hub.db"), "orders")
    with pytest.raises(EmbeddedHubError, match="one partition per call"):
        consumer.receive(lambda pc, e: None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=400),
                          st.dictionaries(st.text(min_size=1, max_size=12),
                                          st.text(max_size=40), max_size=4)),
                min_size=1, max_size=40),
       st.sampled_from([600, 1500, 4000]))
def test_embedded_batches_fill_exactly_like_the_sdks(
    items: list[tuple[bytes, dict[str, str]]], limit: int
) -> None:
    """The embedded batch estimates sizes cheaply but must accept exactly the events the
    SDK's own EventDataBatch accepts before it is full."""
    def events() -> list[EventData]:
        out = []
        for body, props in items:
            e = EventData(body)
            e.properties = dict(props)
            out.append(e)
        return out

    def accepted(batch: object) -> int:
        n = 0
        for e in events():
            try:
                batch.add(e)  # type: ignore[attr-defined]
            except ValueError:
                break
            n += 1
        return n

    from azure.eventhub import EventDataBatch

    from devslice.embedded.eventhub import EmbeddedBatch

    assert accepted(EmbeddedBatch(limit)) == accepted(EventDataBatch(max_size_in_bytes=limit))


def test_starting_positions_follow_azure_eventhub(tmp_path: Path) -> None:
    """Default "@latest"; a dict per partition; inclusive; an enqueued time."""
    from datetime import UTC, datetime, timedelta

    hub = EmbeddedHub(tmp_path / "hub.db", partitions=2)
    producer = EmbeddedProducerClient(hub, "orders")
    producer.send_batch([EventData(f"e{i}") for i in range(3)], partition_id="0")
    assert receive_for(EmbeddedConsumerClient(hub, "orders"), 0, partition_id="0") == []
    assert receive_for(EmbeddedConsumerClient(hub, "orders"), 1, partition_id="0",
                       starting_position={"0": 1, "1": "-1"}) == [b"e2"]
    assert receive_for(EmbeddedConsumerClient(hub, "orders"), 2, partition_id="0",
                       starting_position=1, starting_position_inclusive=True) == [b"e1", b"e2"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert receive_for(EmbeddedConsumerClient(hub, "orders"), 0, partition_id="0",
                       starting_position=future) == []
    past = datetime.now(UTC) - timedelta(hours=1)
    assert receive_for(EmbeddedConsumerClient(hub, "orders"), 3, partition_id="0",
                       starting_position=past) == [b"e0", b"e1", b"e2"]
