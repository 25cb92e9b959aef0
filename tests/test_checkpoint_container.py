"""The consumers' checkpoint container is made by devslice, not by hand (issue 15)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from devslice.embedded import EmbeddedHub, EmbeddedProducerClient
from devslice.sdk.context import SliceContext
from devslice.sdk.eventhubs import SliceConsumer, checkpoint_store_for
from devslice.testing import Azurite
from tests.helpers import write_azurite_slice_config


@pytest.mark.azurite
def test_a_new_slices_consumer_receives_its_first_event_with_no_container_made_by_hand(
        tmp_path: Path, azurite: Azurite) -> None:
    from azure.eventhub import EventData
    from azure.storage.blob import BlobServiceClient

    conn = azurite.connection_string("company1stacc4cd")
    container = f"checkpoints{time.monotonic_ns()}"  # as new as a new slice's account
    ctx = SliceContext.from_env({
        "LOCAL_DEV_SLICE": "ab", "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "0",
        "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING": f"embedded:{tmp_path / 'hub.db'}",
        "LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT": "2",
        "LOCAL_DEV_STORAGE_CONNECTIONSTRING": conn})
    hub = EmbeddedHub(tmp_path / "hub.db", partitions=2)
    EmbeddedProducerClient(hub, "orders").send_batch([EventData("first")], partition_id="0")
    consumer = SliceConsumer.from_context("orders", "billing", ctx=ctx,
                                          checkpoint_store=checkpoint_store_for(ctx, container))
    got = threading.Event()
    seen: list[bytes] = []

    def on_event(pc: object, event: EventData) -> None:
        seen.append(event.body if isinstance(event.body, bytes) else b"".join(event.body))
        pc.update_checkpoint(event)  # type: ignore[attr-defined]
        got.set()

    thread = threading.Thread(target=consumer.receive, args=(on_event,),
                              kwargs={"starting_position": "-1"})
    thread.start()
    try:
        assert got.wait(20), "the consumer never received its first event"
    finally:
        consumer.close()
        thread.join(10)
    assert seen == [b"first"]
    blobs = [b.name for b in BlobServiceClient.from_connection_string(conn)
             .get_container_client(container).list_blobs()]
    assert any("checkpoint" in b for b in blobs), blobs
    # A second consumer (another process, the same moment) finds it there: no error.
    checkpoint_store_for(ctx, container)


@pytest.mark.azurite
def test_up_creates_the_slices_containers_in_azurite_before_its_services(
        tmp_path: Path, azurite: Azurite) -> None:
    """`up` on emulator/embedded storage: the checkpoint container, and the containers and
    queues of `names:`, exist before any service starts (they wait for this resource)."""
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    from devslice.cloud.storage import EmulatorContainersResource
    from devslice.engine import Executor
    from devslice.engine.environment import Tools, build
    from devslice.engine.plan import make_plan
    from devslice.project import Project

    suffix = time.monotonic_ns() % 10**8
    write_azurite_slice_config(tmp_path, azurite.blob_port, azurite.queue_port, suffix)
    project = Project.load(tmp_path / "devslice.yaml")
    project.claim("ab", owner="ann.b@example.com")
    resources = build(project, "ab", Tools(None, None, None, None), "local")  # type: ignore[arg-type]
    by_key = {r.key: r for r in resources}
    emulated = by_key["storage-containers:company1stacc4ab"]
    assert emulated.key in by_key["local"].after  # services wait for it
    assert isinstance(emulated, EmulatorContainersResource)
    assert emulated.after == ("local:emulators",)  # Azurite runs first
    emulated.after = ()  # Azurite runs already (the fixture's)
    conn = azurite.connection_string("company1stacc4ab")
    blobs = BlobServiceClient.from_connection_string(conn)
    if blobs.get_container_client("eventhub-checkpoints").exists():
        blobs.delete_container("eventhub-checkpoints")  # as new as a new slice's account
    text = make_plan([emulated]).render()
    assert "blob container company1stacc4ab/eventhub-checkpoints is missing" in text
    Executor().apply([emulated])
    names = {c.name for c in blobs.list_containers()}
    assert {"eventhub-checkpoints", f"inv{suffix}ab"} <= names
    queues = {q.name for q in QueueServiceClient.from_connection_string(conn).list_queues()}
    assert f"jobs{suffix}ab" in queues
    assert make_plan([emulated]).empty
