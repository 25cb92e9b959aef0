"""orders: an HTTP API that publishes each order as an `order-placed` event.

    POST /orders {"customer": "c-1", "amount": 12.5}  -> 202 {"orderId": ..., "slice": ...}
    GET  /healthz                                      -> 200

Events go to event hub `orders`, keyed by customer, through devslice's SliceProducer: in a
slice they land on the slice's own partitions only; without the contract's variables (a
shared environment) on any partition, like the plain SDK. Listens on $HOST:$PORT
(127.0.0.1:8080 by default; the container sets HOST=0.0.0.0).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from azure.eventhub import EventData

from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import SliceProducer

EVENT_HUB = "orders"
MAX_BODY = 64 * 1024

log = logging.getLogger("orders")


class Orders:
    """Validates orders and publishes them; one producer for the process."""

    def __init__(self, ctx: SliceContext) -> None:
        self.ctx = ctx
        self.producer = SliceProducer.from_context(EVENT_HUB, ctx)
        self._lock = threading.Lock()  # azure-eventhub's producer is not thread-safe

    def place(self, payload: Any) -> dict[str, Any]:
        customer, amount = _validated(payload)
        order = {
            "type": "order-placed",
            "orderId": uuid.uuid4().hex,
            "customer": customer,
            "amount": amount,
            "placedAt": datetime.now(UTC).isoformat(),
        }
        event = EventData(json.dumps(order))
        event.properties = {"type": "order-placed"}
        with self._lock:
            self.producer.send(event, partition_key=customer)
        log.info("order %s placed for %s (%.2f)", order["orderId"], customer, amount)
        return {"orderId": order["orderId"], "slice": self.ctx.handle}

    def close(self) -> None:
        self.producer.close()


class BadOrder(ValueError):
    pass


def _validated(payload: Any) -> tuple[str, float]:
    if not isinstance(payload, dict):
        raise BadOrder('expected a JSON object: {"customer": "...", "amount": 12.5}')
    customer, amount = payload.get("customer"), payload.get("amount")
    if not isinstance(customer, str) or not customer.strip():
        raise BadOrder("customer must be a non-empty string")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
        raise BadOrder("amount must be a positive number")
    return customer.strip(), float(amount)


def handler(orders: Orders) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "shop-orders/1"

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(200, {"status": "ok", "slice": orders.ctx.handle})
            else:
                self._answer(404, {"error": f"no such resource: {self.path}"})

        def do_POST(self) -> None:
            if self.path != "/orders":
                self._answer(404, {"error": f"no such resource: {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"error": f"an order is at most {MAX_BODY} bytes"})
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"null")
                self._answer(202, orders.place(payload))
            except (json.JSONDecodeError, UnicodeDecodeError):
                self._answer(400, {"error": "the body is not JSON"})
            except BadOrder as exc:
                self._answer(400, {"error": str(exc)})
            except Exception:
                log.exception("publishing the order failed")
                self._answer(503, {"error": "the order could not be published; retry"})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    ctx = SliceContext.from_env()
    orders = Orders(ctx)
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), handler(orders))
    # SIGTERM (devslice down, Kubernetes) stops serving; shutdown() must not run on the
    # thread that serves, so it gets its own.
    signal.signal(signal.SIGTERM,
                  lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    where = f"slice {ctx.handle}, partitions {','.join(ctx.partition_ids)}" \
        if ctx.handle and ctx.partition_ids else "shared environment, every partition"
    log.info("orders listening on %s:%d (%s)", host, port, where)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        orders.close()
        log.info("orders stopped")


if __name__ == "__main__":
    main()
