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
