"""notifier: pushes `order-placed` events to the slice's SignalR hub `notifications`.

Reads event hub `orders` as consumer group `notifier` (the slice's partitions only) and
calls `orderPlaced(order)` on every client of the hub `notifications` (in a slice
`notifications_<slice>`, from the contract). Without LOCAL_DEV_SIGNALR_CONNECTIONSTRING
(``signalR.connectionString`` in devslice.yaml) it only logs that SignalR is not
configured. Notifications are best effort: a failed push is logged, not retried.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

from devslice.errors import DevsliceError
from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import SliceConsumer
from devslice.sdk.signalr import SliceSignalR

EVENT_HUB = "orders"
CONSUMER_GROUP = "notifier"
HUB = "notifications"

log = logging.getLogger("notifier")


class Notifier:
    def __init__(self, ctx: SliceContext, signalr: SliceSignalR | None) -> None:
        self.ctx = ctx
        self.signalr = signalr

    def on_event(self, partition_context: Any, event: Any) -> None:
        order = json.loads(event.body_as_str())
        if order.get("type") == "order-placed":
            self.push(order)
        partition_context.update_checkpoint(event)

    def push(self, order: dict[str, Any]) -> None:
        if self.signalr is None:
            log.info("order %s not pushed: SignalR is not configured "
                     "(LOCAL_DEV_SIGNALR_CONNECTIONSTRING is unset)", order["orderId"])
            return
        try:
            self.signalr.send_to_all(HUB, "orderPlaced", [order])
        except DevsliceError as exc:  # SignalRSendFailed: best effort, never a crash
            log.warning("order %s not pushed: %s", order["orderId"], exc)
            return
        log.info("order %s pushed to hub %s", order["orderId"], self.signalr.slice_hub(HUB))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not every HTTP request
    ctx = SliceContext.from_env()
    signalr = SliceSignalR.from_context(ctx) if ctx.signalr_connection_string else None
    if signalr is None:
        log.info("SignalR is not configured (LOCAL_DEV_SIGNALR_CONNECTIONSTRING is unset): "
                 "orders are logged, not pushed")
    consumer = SliceConsumer.from_context(EVENT_HUB, consumer_group=CONSUMER_GROUP, ctx=ctx,
                                          service="notifier")
    signal.signal(signal.SIGTERM,
                  lambda *_: threading.Thread(target=consumer.close, daemon=True).start())
    target = f"hub {signalr.slice_hub(HUB)}" if signalr else "the log"
    print(f"notifier ready: {EVENT_HUB} partitions {','.join(consumer.partitions())} as "
          f"{CONSUMER_GROUP}, pushing to {target}", flush=True)
    try:
        consumer.receive(Notifier(ctx, signalr).on_event, starting_position="-1")
    except KeyboardInterrupt:
        consumer.close()
    finally:
        if signalr is not None:
            signalr.close()
    log.info("notifier stopped")


if __name__ == "__main__":
    main()
