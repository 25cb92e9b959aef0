"""One reader for all of a consumer's partitions (issue 17): the embedded hub's client reads the
partitions in turns, a page at a time, in one thread, as azure-eventhub's event processor takes
turns over its partition consumers; each partition keeps its order, context, start,
checkpoint, start fence and ``max_wait_time``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from azure.eventhub import EventData

from devslice.embedded import EmbeddedConsumerClient, EmbeddedHub, EmbeddedProducerClient
from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import CANARY, SliceConsumer

CONTRACT = {"LOCAL_DEV_SLICE": "ab", "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "1,2",
            "LOCAL_DEV_DATAEXPLORER_DATABASE": "db4ab"}


def fill(hub: EmbeddedHub, partitions: tuple[str, ...], per: int) -> None:
    producer = EmbeddedProducerClient(hub, "orders")
    for i in range(per):  # interleaved, one event per send
        for pid in partitions:
            producer.send_batch([EventData(f"{pid}-{i}")], partition_id=pid)


def test_one_reader_takes_turns_and_keeps_each_partitions_order(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=4)
    fill(hub, ("0", "1", "2"), 7)
    client = EmbeddedConsumerClient(hub, "orders", page=2)
    got: list[tuple[str, int, bytes]] = []
    threads: set[int] = set()

    def on_event(context: Any, event: Any) -> None:
        threads.add(threading.get_ident())
        got.append((context.partition_id, event.sequence_number, event.body))
        if len(got) == 21:
            client.close()

    client.receive_partitions({pid: on_event for pid in ("0", "1", "2")},
                              starting_position="-1")
    assert threads == {threading.get_ident()}
    for pid in ("0", "1", "2"):
        mine = [(seq, body) for p, seq, body in got if p == pid]
        assert mine == [(i, f"{pid}-{i}".encode()) for i in range(7)]
    # turns of a page (2 events) each: partition 1 starts before partition 0 is done
    assert [p for p, _, _ in got[:6]] == ["0", "0", "1", "1", "2", "2"]


def test_each_partition_starts_at_its_checkpoint_or_its_own_position(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=3)
    fill(hub, ("0", "1", "2"), 5)
    hub.update_checkpoint({"eventhub_name": "orders", "consumer_group": "$Default",
                           "partition_id": "0", "sequence_number": 3, "offset": "3"})
    client = EmbeddedConsumerClient(hub, "orders")
    got: dict[str, list[int]] = {"0": [], "1": [], "2": []}

    def on_event(context: Any, event: Any) -> None:
        got[context.partition_id].append(event.sequence_number)
        if sum(map(len, got.values())) == 1 + 3 + 1:
            client.close()

    client.receive_partitions({pid: on_event for pid in got},
                              starting_position={"0": "-1", "1": 2, "2": 3},
                              starting_position_inclusive={"1": True})
    assert got == {"0": [4], "1": [2, 3, 4], "2": [4]}


def test_max_wait_time_is_kept_per_partition(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=2)
    fill(hub, ("0",), 3)
    client = EmbeddedConsumerClient(hub, "orders")
    events: list[int] = []
    nothing: dict[str, int] = {"0": 0, "1": 0}

    def on_event(context: Any, event: Any) -> None:
        if event is None:
            nothing[context.partition_id] += 1
        else:
            events.append(event.sequence_number)
        if nothing["0"] and nothing["1"]:
            client.close()

    done = threading.Thread(target=client.receive_partitions,
                            args=({"0": on_event, "1": on_event},),
                            kwargs={"starting_position": "-1", "max_wait_time": 0.05})
    done.start()
    done.join(10)
    assert not done.is_alive()
    assert events == [0, 1, 2]
    assert nothing["0"] >= 1 and nothing["1"] >= 1


def test_closing_in_a_callback_stops_every_partition(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=2)
    fill(hub, ("0", "1"), 3)
    client = EmbeddedConsumerClient(hub, "orders")
    got: list[bytes] = []

    def on_event(_context: Any, event: Any) -> None:
        got.append(event.body)
        client.close()

    client.receive_partitions({"0": on_event, "1": on_event}, starting_position="-1")
    assert got == [b"0-0"]


def test_a_failing_partition_is_paused_while_the_others_carry_on(tmp_path: Path) -> None:
    """A partition whose read fails goes to on_error once per pause (max_poll_interval), not
    once per turn of the busy partitions beside it."""
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=2)
    fill(hub, ("0",), 20)
    client = EmbeddedConsumerClient(hub, "orders", page=1, max_poll_interval=3600)
    events: list[int] = []
    errors: list[tuple[str, str]] = []

    def on_event(_context: Any, event: Any) -> None:
        events.append(event.sequence_number)
        if len(events) == 20:
            client.close()

    client.receive_partitions({"0": on_event, "7": on_event}, starting_position="-1",
                              on_error=lambda c, e: errors.append((c.partition_id, str(e))))
    assert events == list(range(20))  # 20 turns, one event each
    assert len(errors) == 1 and errors[0][0] == "7", errors


def test_slice_consumer_reads_its_partitions_in_the_callers_thread(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=4)
    fill(hub, ("1", "2"), 4)
    canary = EventData("canary")
    canary.properties = {CANARY: "run-1"}
    EmbeddedProducerClient(hub, "orders").send_batch([canary], partition_id="2")
    fill(hub, ("2",), 1)  # 2-0 after the canary: seq 5 of partition 2
    consumer = SliceConsumer(lambda: EmbeddedConsumerClient(hub, "orders"),
                             SliceContext.from_env(CONTRACT))
    got: dict[str, list[bytes]] = {"1": [], "2": []}
    threads: set[int] = set()

    def on_event(context: Any, event: Any) -> None:
        threads.add(threading.get_ident())
        got[context.partition_id].append(event.body)
        if len(got["1"]) + len(got["2"]) == 4 + 5:
            consumer.close()

    consumer.receive(on_event, starting_position="-1")
    assert threads == {threading.get_ident()}
    assert got == {"1": [b"1-0", b"1-1", b"1-2", b"1-3"],
                   "2": [b"2-0", b"2-1", b"2-2", b"2-3", b"2-0"]}


def test_start_fences_hold_per_partition_under_one_reader(tmp_path: Path) -> None:
    """An offset start (not moved up to the fence) reads the previous holder's events: the
    reader drops them, each partition by its own fence."""
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=4)
    fill(hub, ("1", "2"), 5)
    ctx = SliceContext.from_env({**CONTRACT,
                                 "LOCAL_DEV_EVENTHUBS_STARTFENCE": "orders/1=1,orders/2=3"})
    consumer = SliceConsumer(lambda: EmbeddedConsumerClient(hub, "orders"), ctx)
    got: dict[str, list[int]] = {"1": [], "2": []}

    def on_event(context: Any, event: Any) -> None:
        got[context.partition_id].append(event.sequence_number)
        if len(got["1"]) + len(got["2"]) == 3 + 1:
            consumer.close()

    consumer.receive(on_event, starting_position="0")
    assert got == {"1": [2, 3, 4], "2": [4]}
