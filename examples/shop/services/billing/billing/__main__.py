"""billing: consumes `order-placed` events and writes an invoice for each.

Reads event hub `orders` as consumer group `billing` (the slice's partitions only, from the
beginning the first time, then after its checkpoints) and writes `invoices/<order id>.json`
into the container the slice's contract names `invoices` (``names.invoices`` in
devslice.yaml, `invoices-<slice>`), in the slice's own storage account. It prints
"billing ready" once it receives.

A failure while handling an event (storage unreachable, say) ends the process; whatever runs
it (devslice's local runtime, Kubernetes) starts it again, and it resumes after the last
checkpoint. Writing an invoice twice gives the same blob, so nothing is lost or doubled.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ServiceRequestError
from azure.storage.blob import ContainerClient, ContentSettings

from devslice.sdk import SliceContext, storage
from devslice.sdk.eventhubs import SliceConsumer

EVENT_HUB = "orders"
CONSUMER_GROUP = "billing"
VAT = 0.2

log = logging.getLogger("billing")


def invoice_for(order: dict[str, Any], ctx: SliceContext) -> dict[str, Any]:
    net = round(float(order["amount"]), 2)
    vat = round(net * VAT, 2)
    return {
        "invoiceFor": order["orderId"],
        "customer": order["customer"],
        "net": net,
        "vat": vat,
        "total": round(net + vat, 2),
        "placedAt": order.get("placedAt"),
        "issuedAt": datetime.now(UTC).isoformat(),
        "slice": ctx.handle,
    }


class Billing:
    def __init__(self, ctx: SliceContext, invoices: ContainerClient) -> None:
        self.ctx = ctx
        self.invoices = invoices

    def on_event(self, partition_context: Any, event: Any) -> None:
        order = json.loads(event.body_as_str())
        if order.get("type") == "order-placed":
            name = f"invoices/{order['orderId']}.json"
            self.invoices.upload_blob(
                name, json.dumps(invoice_for(order, self.ctx), indent=2), overwrite=True,
                content_settings=ContentSettings(content_type="application/json"))
            log.info("invoice %s/%s written (partition %s)", self.invoices.container_name,
                     name, partition_context.partition_id)
        partition_context.update_checkpoint(event)


def ensure_container(invoices: ContainerClient, wait: float = 60.0) -> None:
    """Create the invoices container unless it exists, waiting up to ``wait`` seconds for the
    storage account to answer: the storage SDK's own retries wait 15 s and more after the
    first refused connection, too long for an emulator that starts beside this service."""
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        try:
            invoices.create_container(retry_total=0)
            log.info("created container %s", invoices.container_name)
            return
        except ResourceExistsError:
            return
        except ServiceRequestError as exc:  # nothing listens yet
            if time.monotonic() > deadline:
                raise
            if not waiting:
                log.info("waiting for storage at %s (%s)", invoices.url, exc.message)
                waiting = True
            time.sleep(0.2)


def on_error(partition_context: Any, error: Exception) -> None:
    where = getattr(partition_context, "partition_id", None)
    log.warning("receiving from partition %s failed, retrying: %s", where, error)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # not every HTTP request
    ctx = SliceContext.from_env()
    with storage.container(ctx, "invoices") as invoices:
        ensure_container(invoices)
        consumer = SliceConsumer.from_context(EVENT_HUB, consumer_group=CONSUMER_GROUP,
                                              ctx=ctx, service="billing")
        # close() from a signal handler could wait on a lock the interrupted thread holds.
        signal.signal(signal.SIGTERM,
                      lambda *_: threading.Thread(target=consumer.close, daemon=True).start())
        partitions = consumer.partitions()
        print(f"billing ready: {EVENT_HUB} partitions {','.join(partitions)} as "
              f"{CONSUMER_GROUP}, invoices into {invoices.container_name}", flush=True)
        try:
            consumer.receive(Billing(ctx, invoices).on_event, starting_position="-1",
                             on_error=on_error)
        except KeyboardInterrupt:
            consumer.close()
    log.info("billing stopped")


if __name__ == "__main__":
    main()
