"""The slice-scoped producer and consumer, on a recording stub of azure-eventhub's client
(with the SDK's real EventDataBatch) and on the embedded hub."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData, EventDataBatch
from hypothesis import given
from hypothesis import strategies as st

from devslice.embedded import EmbeddedHub, EmbeddedProducerClient
from devslice.errors import DevsliceError
from devslice.sdk import SliceContext, SliceViolation
from devslice.sdk.aio import AsyncSliceProducer
from devslice.sdk.eventhubs import SliceConsumer, SliceProducer, partition_for_key
from devslice.testing import Azurite

from .helpers import REPO, wait_for

SLICE_AB = {
    "LOCAL_DEV_SLICE": "ab",
    "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "4,5,6",
    "LOCAL_DEV_DATAEXPLORER_DATABASE": "db4ab",
    "LOCAL_DEV_DATAEXPLORER_TABLE": "Orders",
    "LOCAL_DEV_DATAEXPLORER_FORMAT": "json",
}


class RecordingProducer:
    """Stands where azure-eventhub's EventHubProducerClient stands: same calls, real
    EventDataBatch objects (so the SDK's own size accounting applies), sends recorded."""

    def __init__(self, partitions: int = 32, max_size: int | None = None) -> None:
        self.partitions = partitions
        self.max_size = max_size
        self.sent: list[EventDataBatch] = []
        self.closed = False

    def get_partition_ids(self) -> list[str]:
        return [str(i) for i in range(self.partitions)]

    def create_batch(self, *, partition_id: str | None = None,
                     partition_key: str | None = None) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes=self.max_size, partition_id=partition_id,
                              partition_key=partition_key)

    def send_batch(self, event_data_batch: EventDataBatch, **kwargs: Any) -> None:
        assert not kwargs, "partition_id/partition_key with a batch raise TypeError in the SDK"
        self.sent.append(event_data_batch)

    def close(self) -> None:
        self.closed = True


def producer(
    env: dict[str, str] | None = None, **kw: Any
) -> tuple[SliceProducer, RecordingProducer]:
    client = RecordingProducer(**kw)
    return SliceProducer(client, SliceContext.from_env(SLICE_AB if env is None else env)), client


@given(st.text(min_size=1))
def test_every_key_lands_in_the_slice_and_follows_the_contract(key: str) -> None:
    chosen = partition_for_key(key, ("4", "5", "6"))
    assert chosen in ("4", "5", "6")
    n = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    assert chosen == ("4", "5", "6")[n % 3]  # the formula conformance/ gives other languages


def test_key_mapping_is_stable_across_processes() -> None:
    keys = [f"customer-{i}" for i in range(50)]
    here = [partition_for_key(k, ("4", "5", "6")) for k in keys]
    code = ("from devslice.sdk.eventhubs import partition_for_key; "
            f"print(','.join(partition_for_key(k, ('4','5','6')) for k in {keys!r}))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # Python's own hash() would differ
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=True).stdout.strip().split(",")
    assert here == there
    assert len(set(here)) == 3  # and the keys spread over all three


def test_keyed_send_goes_by_partition_id_to_the_slice() -> None:
    p, client = producer()
    p.send(["a", "b"], partition_key="customer-7")
    (batch,) = client.sent
    assert batch._partition_id == partition_for_key("customer-7", ("4", "5", "6"))
    assert batch._partition_key is None  # never the key: the service would hash it over all 32


def test_unkeyed_sends_rotate_over_the_slice_only() -> None:
    p, client = producer()
    for _ in range(6):
        p.send("x")
    assert [b._partition_id for b in client.sent] == ["4", "5", "6", "4", "5", "6"]


def test_foreign_partition_is_refused() -> None:
    p, client = producer()
    with pytest.raises(SliceViolation, match=r"partition 7 is not in slice 'ab' \(its "
                                             r"partitions are 4,5,6\)"):
        p.send("x", partition_id="7")
    p.send("x", partition_id="5")
    assert [b._partition_id for b in client.sent] == ["5"]


def test_key_and_id_together_are_refused() -> None:
    p, _ = producer()
    with pytest.raises(DevsliceError, match="not both"):
        p.send("x", partition_key="k", partition_id="4")


def test_routing_properties_are_stamped() -> None:
    p, client = producer()
    own_table = EventData("x")
    own_table.properties = {"Table": "Refunds", "Database": "someone-elses"}
    p.send([EventData("y"), own_table], partition_id="4")
    first, second = client.sent[0]._internal_events
    assert first.properties == {"Database": "db4ab", "Table": "Orders", "Format": "json"}
    # The slice's database always wins; an event's own table is kept.
    assert second.properties == {"Database": "db4ab", "Table": "Refunds", "Format": "json"}


def test_batches_split_at_the_sdks_size_limit() -> None:
    p, client = producer(max_size=1000)
    sent = p.send([b"x" * 200 for _ in range(10)], partition_id="4")
    assert sent == len(client.sent) >= 3
    assert sum(len(b) for b in client.sent) == 10
    assert all(b.size_in_bytes <= 1000 for b in client.sent)
    with pytest.raises(DevsliceError, match="one event is larger than a batch may be"):
        p.send(b"x" * 2000, partition_id="4")


def test_shared_environment_is_the_plain_sdk() -> None:
    p, client = producer(env={})
    p.send("x", partition_key="customer-7")
    p.send("y", partition_id="31")
    assert [(b._partition_id, b._partition_key) for b in client.sent] == [
        (None, "customer-7"), ("31", None)]
    assert client.sent[0]._internal_events[0].properties == {}


def test_slice_partitions_missing_from_the_hub_are_reported() -> None:
    p, _ = producer(partitions=4)
    with pytest.raises(SliceViolation, match="partitions 4,5,6 do not exist in this event hub"):
        p.send("x")


def embedded_ctx(path: Path, ids: str, handle: str = "ab") -> SliceContext:
    return SliceContext.from_env({
        "LOCAL_DEV_SLICE": handle, "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": ids,
        "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING": f"embedded:{path}",
        "LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT": "8",
        "LOCAL_DEV_DATAEXPLORER_DATABASE": f"db4{handle}"})


def test_consumer_reads_only_its_partitions(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    hub = EmbeddedHub(path, partitions=8)
    raw = EmbeddedProducerClient(hub, "orders")
    for pid in range(8):
        raw.send_batch([EventData(f"p{pid}")], partition_id=str(pid))
    consumer = SliceConsumer.from_context("orders", ctx=embedded_ctx(path, "2,3"))
    got: list[tuple[str, bytes]] = []
    thread = threading.Thread(target=consumer.receive,
                              args=(lambda pc, e: got.append((pc.partition_id, e.body)),),
                              kwargs={"starting_position": "-1"})
    thread.start()
    wait_for(lambda: len(got) >= 2, 10, "events of partitions 2 and 3")
    # a moment for a stray event of another partition to show up: nothing orders events across
    # partitions, so no later event could prove its absence
    time.sleep(0.1)
    consumer.close()
    thread.join(5)
    assert sorted(got) == [("2", b"p2"), ("3", b"p3")]


async def test_async_producer_routes_like_the_sync_one(tmp_path: Path) -> None:
    ctx = embedded_ctx(tmp_path / "hub.db", "1,3,5")
    async with AsyncSliceProducer.from_context("orders", ctx) as p:
        await p.send(["a", "b"], partition_key="customer-9")
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=8)
    target = partition_for_key("customer-9", ("1", "3", "5"))
    events = hub.read("orders", target, -1)
    assert [e.body for e in events] == [b"a", b"b"]
    assert events[0].properties == {b"Database": "db4ab"}  # bytes keys, as azure-eventhub


# -- crash and restart from a checkpoint ---------------------------------------------------------

EVENTS = 300


def crash_and_restart(
    tmp_path: Path, store_args: list[str]
) -> tuple[list[list[str]], SliceContext]:
    """Publish 300 events on partitions 1 and 2, consume them in a process that is killed with
    SIGKILL after a few checkpoints, restart it; returns each run's log lines."""
    path = tmp_path / "hub.db"
    ctx_env = {"LOCAL_DEV_SLICE": "ab", "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "1,2",
               "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING": f"embedded:{path}",
               "LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT": "4"}
    ctx = SliceContext.from_env(ctx_env)
    with SliceProducer.from_context("orders", ctx) as p:
        for i in range(EVENTS):
            p.send(f"e{i}", partition_key=f"k{i}")
    env = {**os.environ, **ctx_env, "PYTHONPATH": str(REPO)}
    log = tmp_path / "handled.log"
    argv = [sys.executable, "-m", "tests.consumer_worker", str(log), "25", "0.002", *store_args]

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "receiving\n"
        return proc

    def handled() -> set[str]:
        return {ln for ln in log.read_text().splitlines() if ln[0].isdigit()}

    first = start()
    wait_for(lambda: log.read_text().count("checkpoint") >= 3, 30, "three checkpoints")
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert len(handled()) < EVENTS, "the consumer finished before it could be killed"
    second = start()
    wait_for(lambda: len(handled()) >= EVENTS, 60, "every event handled")
    second.terminate()
    second.communicate()
    runs = log.read_text().split("start\n")[1:]
    return [r.splitlines() for r in runs], ctx


def check_restart(runs: list[list[str]]) -> dict[str, int]:
    """No event lost; duplicates only of events after the last checkpoint before the crash."""
    first, second = runs
    checkpoint: dict[str, int] = {}
    for ln in first:
        if ln.startswith("checkpoint"):
            _, pid, seq = ln.split()
            checkpoint[pid] = int(seq)
    seen_first = {tuple(ln.split()) for ln in first if ln[0].isdigit()}
    seen_second = {tuple(ln.split()) for ln in second if ln[0].isdigit()}
    assert len(seen_first | seen_second) == EVENTS, "events were lost"
    duplicates = seen_first & seen_second
    assert all(int(seq) > checkpoint.get(pid, -1) for pid, seq in duplicates)
    for pid in ("1", "2"):  # the restart resumed right after the checkpoint, not earlier
        resumed = min(int(s) for p, s in seen_second if p == pid)
        assert resumed == checkpoint.get(pid, -1) + 1
    last: dict[str, int] = {}
    for ln in second:
        if ln.startswith("checkpoint"):
            _, pid, seq = ln.split()
            last[pid] = int(seq)
    return last


def test_crash_and_restart_loses_nothing(tmp_path: Path) -> None:
    runs, _ = crash_and_restart(tmp_path, [])
    check_restart(runs)


@pytest.mark.azurite
def test_crash_and_restart_with_blob_checkpoints(tmp_path: Path, azurite: Azurite) -> None:
    """Checkpoints go to the slice's storage account through the official BlobCheckpointStore,
    and the official store reads them back."""
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore

    conn = azurite.connection_string("company1stacc4ab")
    container = f"checkpoints{time.monotonic_ns()}"
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(conn).create_container(container)
    runs, _ = crash_and_restart(tmp_path, [conn, container])
    last = check_restart(runs)
    store = BlobCheckpointStore.from_connection_string(conn, container)
    stored = {c["partition_id"]: c for c in store.list_checkpoints("embedded", "orders",
                                                                     "billing")}
    assert set(stored) == {"1", "2"}
    for pid, seq in last.items():
        assert stored[pid]["sequence_number"] >= seq
        assert stored[pid]["offset"] == str(stored[pid]["sequence_number"])


def test_an_event_the_sdk_cannot_encode_is_reported_not_mistaken_for_size() -> None:
    p, client = producer()
    bad = EventData("x")
    bad.properties = {"sent_ns": 2**40}  # beyond the 32-bit int the AMQP encoder takes here
    with pytest.raises(DevsliceError, match="the event cannot be sent") as info:
        p.send([EventData("ok"), bad], partition_id="4")
    assert "larger than a batch" not in info.value.message
    assert client.sent == []  # nothing half-sent from this call


class RecordingConsumer:
    """azure-eventhub's consumer-client surface; receive blocks until close, as the real one."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls
        self.closed = threading.Event()

    def get_partition_ids(self) -> list[str]:
        return [str(i) for i in range(8)]

    def receive(self, on_event: Any, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        self.closed.wait(5)

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, [None]),  # shared: one plain receive, the SDK's load balancer shares partitions
    (SLICE_AB, ["4", "5", "6"]),  # a slice: one receiver per own partition
])
def test_consumer_receivers(env: dict[str, str], expected: list[str | None]) -> None:
    calls: list[dict[str, Any]] = []
    consumer = SliceConsumer(lambda: RecordingConsumer(calls), SliceContext.from_env(env))
    t = threading.Thread(target=consumer.receive, args=(lambda pc, e: None,))
    t.start()
    wait_for(lambda: len(calls) >= len(expected), 5, "the receivers")
    consumer.close()
    t.join(5)
    assert not t.is_alive()
    assert sorted(c.get("partition_id") or "" for c in calls) == sorted(
        e or "" for e in expected)
    assert all(("partition_id" in c) == (expected != [None]) for c in calls)
