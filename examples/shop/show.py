"""What happened in your slice of the shop: its partitions, the events on every partition of
event hub `orders`, and the invoices in its storage. Run beside devslice.yaml, after
`devslice up` and a few orders:

    python show.py            # your current slice
    python show.py --slice cd
"""

from __future__ import annotations

import argparse
import json

from devslice.embedded import EmbeddedHub
from devslice.errors import DevsliceError
from devslice.project import Project
from devslice.sdk import SliceContext, storage

EVENT_HUB = "orders"


def contract(project: Project, handle: str) -> SliceContext:
    """The slice's contract, as `devslice env` gives it to its services."""
    return SliceContext.from_env({
        v.name: v.value if isinstance(v.value, str) else v.value.reveal()
        for v in project.variables(handle)})


def show_events(ctx: SliceContext) -> None:
    own = ctx.partition_ids or ()
    if not ctx.embedded_path:
        print(f"events: on Event Hubs ({ctx.eventhubs_namespace}); the slice's partitions are "
              f"{','.join(own)}")
        return
    hub = EmbeddedHub(ctx.embedded_path, partitions=ctx.partition_count or 32)
    try:
        print(f"events on event hub {EVENT_HUB!r} (embedded: {ctx.embedded_path}):")
        for pid in hub.partition_ids(EVENT_HUB):
            count = hub.last_sequence_number(EVENT_HUB, pid) + 1
            whose = f"slice {ctx.handle}" if pid in own else "other slices"
            if count or pid in own:
                print(f"  partition {pid:>2}  {count:>4} events  ({whose})")
    finally:
        hub.close()


def show_invoices(ctx: SliceContext) -> None:
    with storage.container(ctx, "invoices") as invoices:
        print(f"invoices in {ctx.storage_account}/{invoices.container_name}:")
        if not invoices.exists():
            print("  none yet (billing creates the container when it starts)")
            return
        found = 0
        for blob in invoices.list_blobs(name_starts_with="invoices/"):
            invoice = json.loads(invoices.download_blob(blob.name).readall())
            print(f"  {blob.name}  {invoice['customer']:<12} total {invoice['total']:>9.2f}")
            found += 1
        if not found:
            print("  none yet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice", help="which slice (default: your current one)")
    args = parser.parse_args()
    try:
        project = Project.load()
        handle = project.current_handle(args.slice)
        ctx = contract(project, handle)
        print(f"slice {handle}: partitions {','.join(ctx.partition_ids or ())} of "
              f"{ctx.partition_count} in {ctx.eventhubs_namespace}, storage account "
              f"{ctx.storage_account}, SignalR hub {ctx.hub('notifications')}")
        show_events(ctx)
        show_invoices(ctx)
    except DevsliceError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
