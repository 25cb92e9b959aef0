"""Opt-in: the slice-scoped producer and consumer against a real Event Hubs namespace.

Set DEVSLICE_LIVE_EVENTHUBS_CONNECTION (a namespace connection string),
DEVSLICE_LIVE_EVENTHUB (an event hub with at least 4 partitions) and
DEVSLICE_LIVE_STORAGE_CONNECTION (a storage account for checkpoints) to run it.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import SliceConsumer, SliceProducer

from .helpers import wait_for

pytestmark = pytest.mark.live
NEEDED = ("DEVSLICE_LIVE_EVENTHUBS_CONNECTION", "DEVSLICE_LIVE_EVENTHUB",
          "DEVSLICE_LIVE_STORAGE_CONNECTION")


@pytest.mark.skipif(not all(os.environ.get(v) for v in NEEDED),
                    reason="live Event Hubs settings are not set")
def test_real_event_hubs_stay_in_the_slice() -> None:
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
    from azure.storage.blob import BlobServiceClient

    hub = os.environ["DEVSLICE_LIVE_EVENTHUB"]
    container = f"devslice-live-{uuid.uuid4().hex[:8]}"
    storage = os.environ["DEVSLICE_LIVE_STORAGE_CONNECTION"]
    BlobServiceClient.from_connection_string(storage).create_container(container)
    ctx = SliceContext.from_env({
        "LOCAL_DEV_SLICE": "live", "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "2,3",
        "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING": os.environ["DEVSLICE_LIVE_EVENTHUBS_CONNECTION"],
        "LOCAL_DEV_DATAEXPLORER_DATABASE": "db4live",
    })
    marker = uuid.uuid4().hex
    with SliceProducer.from_context(hub, ctx) as producer:
        for i in range(20):
            producer.send(f"{marker}-{i}", partition_key=f"k{i}")
    store = BlobCheckpointStore.from_connection_string(storage, container)
    consumer = SliceConsumer.from_context(hub, ctx=ctx, checkpoint_store=store)
    got: list[tuple[str, str, dict[str, object]]] = []

    def on_event(pc: object, event: object) -> None:
        if event is not None and event.body_as_str().startswith(marker):  # type: ignore[attr-defined]
            props = event.properties  # type: ignore[attr-defined]
            got.append((pc.partition_id, event.body_as_str(),  # type: ignore[attr-defined]
                        {(k.decode() if isinstance(k, bytes) else k): v
                         for k, v in props.items()}))

    thread = threading.Thread(target=consumer.receive, args=(on_event,),
                              kwargs={"starting_position": "-1"}, daemon=True)
    thread.start()
    wait_for(lambda: len(got) >= 20, 60, "20 events")
    consumer.close()
    assert len(got) == 20
    assert {p for p, _, _ in got} <= {"2", "3"}
    assert all(props.get("Database") == "db4live" for _, _, props in got)
