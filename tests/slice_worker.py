"""A service of one slice, as a process: publishes keyed events and consumes its partitions.

Run by tests/test_sdk_isolation.py with the slice's contract in its environment. Publishes
COUNT events tagged with its slice, consumes until it has seen all of its own, then prints
every event it received as JSON lines ("slice partition seq") and exits.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import SliceConsumer, SliceProducer


def main() -> None:
    count = int(sys.argv[1])
    ctx = SliceContext.from_env()
    received: list[dict[str, object]] = []
    mine = threading.Event()
    lock = threading.Lock()

    def on_event(pc: object, event: object) -> None:
        body = json.loads(event.body_as_str())  # type: ignore[attr-defined]
        with lock:
            received.append({"from": body["slice"], "n": body["n"],
                             "partition": pc.partition_id,  # type: ignore[attr-defined]
                             "database": event.properties.get(b"Database")})  # type: ignore[attr-defined]
            if sum(1 for r in received if r["from"] == ctx.handle) >= count:
                mine.set()

    consumer = SliceConsumer.from_context("orders", "billing", ctx=ctx)
    thread = threading.Thread(target=consumer.receive, args=(on_event,), daemon=True,
                              kwargs={"starting_position": "-1"})
    thread.start()
    with SliceProducer.from_context("orders", ctx=ctx) as producer:
        for n in range(count):
            producer.send(json.dumps({"slice": ctx.handle, "n": n}), partition_key=f"cust-{n}")
    ok = mine.wait(60)
    time.sleep(0.2)  # a moment more, so a stray event from another slice would show up
    consumer.close()
    thread.join(10)
    print(json.dumps({"slice": ctx.handle, "complete": ok, "received": received}))


if __name__ == "__main__":
    main()
