"""A consumer that checkpoints every CHECKPOINT_EVERY events and appends what it handles to a
file, so a test can kill it mid-stream (SIGKILL) and restart it.

argv: log-file checkpoint-every seconds-per-event [blob-connection-string blob-container]
"""

from __future__ import annotations

import os
import sys
import threading
import time

from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import SliceConsumer


def main() -> None:
    log_path, every, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    store = None
    if len(sys.argv) > 4:
        from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore

        store = BlobCheckpointStore.from_connection_string(sys.argv[4], sys.argv[5])
    ctx = SliceContext.from_env()
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    log.write("start\n")
    handled = {"n": 0}
    lock = threading.Lock()

    def on_event(pc: object, event: object) -> None:
        with lock:
            log.write(f"{pc.partition_id} {event.sequence_number}\n")  # type: ignore[attr-defined]
            log.flush()
            os.fsync(log.fileno())
            handled["n"] += 1
            time.sleep(pause)  # slow enough for the test to kill it mid-stream
            if handled["n"] % every == 0:
                pc.update_checkpoint(event)  # type: ignore[attr-defined]
                log.write(f"checkpoint {pc.partition_id} {event.sequence_number}\n")  # type: ignore[attr-defined]

    consumer = SliceConsumer.from_context("orders", "billing", ctx=ctx, checkpoint_store=store)
    print("receiving", flush=True)
    consumer.receive(on_event, starting_position="-1")


if __name__ == "__main__":
    main()
