"""`devslice verify`: check the current slice for real, not from configuration alone.

- its partitions are its own in the ledger (no other live slice, no reserved one);
- the partitions its services will use (the contract, personal overrides included) are the
  ones the ledger gave it;
- its names (storage account, database, hubs, named templates) are its own;
- a canary event sent through the slice's producer to each of its partitions arrives there
  and nowhere else (embedded event hub: every partition is read back; real Event Hubs: not
  checked here, say so).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from devslice.slices.derive import derive_names

if TYPE_CHECKING:
    from devslice.project import Project
    from devslice.sdk.context import SliceContext


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | failed | skipped
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def verify(project: Project, handle: str) -> list[Check]:
    state = project.ledger.read()
    mine = project.get(handle)
    others = [s for h, s in state.slices.items() if h != handle]
    checks: list[Check] = []

    own = {(mine.event_hubs.namespace, p) for p in mine.event_hubs.partitions}
    clashes = sorted(f"{s.handle} holds {ns} partition {p}" for s in others
                     for ns, p in ((s.event_hubs.namespace, q) for q in s.event_hubs.partitions)
                     if (ns, p) in own)
    reserved = {ns.name: set(ns.reserved) for ns in project.env.event_hubs.namespaces}
    clashes += [f"partition {p} of {ns} is reserved" for ns, p in sorted(own)
                if p in reserved.get(ns, set())]
    checks.append(Check("partitions are the slice's own", "failed" if clashes else "ok",
                        "; ".join(clashes) or f"{mine.event_hubs.namespace} partitions "
                        f"{','.join(map(str, mine.event_hubs.partitions))}, held by no one "
                        "else"))

    variables = {v.name: v.value for v in project.variables(handle, secrets=False)}
    contract_ids = str(variables.get(project.env.contract.partition_ids_variable, ""))
    ledger_ids = ",".join(map(str, mine.event_hubs.partitions))
    checks.append(Check(
        "services use the slice's partitions",
        "ok" if contract_ids == ledger_ids else "failed",
        f"{project.env.contract.partition_ids_variable}={contract_ids}"
        + ("" if contract_ids == ledger_ids else f", but the ledger gave {ledger_ids}")))

    # The names the services will use: the contract's values, personal overrides included
    # (templates cannot collide, config loading proves it; an override can).
    names = _effective_names(project, handle, variables)
    taken = {}
    for s in others:
        for key, name in derive_names(project.env, s.handle).all().items():
            taken[(key, name)] = s.handle
    shared = [f"{key} {name} is also {taken[(key, name)]}'s" for key, name in names.items()
              if (key, name) in taken]
    checks.append(Check("names are the slice's own", "failed" if shared else "ok",
                        "; ".join(shared) or f"{len(names)} names, e.g. storage account "
                        f"{names['storageAccount']}"))
    checks.append(_canary(project, handle, variables))
    checks.append(start_fence_check(project, handle))
    return checks


def _effective_names(project: Project, handle: str,
                     variables: Mapping[str, object]) -> dict[str, str]:
    """Each derived name's key mapped to the value the contract gives the services."""
    from devslice.sdk.context import variable_key

    p = project.env.contract.prefix
    where = {"storageAccount": f"{p}STORAGE_ACCOUNT",
             "dataExplorerDatabase": f"{p}DATAEXPLORER_DATABASE"}
    where.update({f"signalrHub:{h}": f"{p}SIGNALR_HUB_{variable_key(h)}"
                  for h in project.env.signal_r.hubs})
    where.update({f"name:{k}": f"{p}NAME_{variable_key(k)}" for k in project.env.names})
    derived = derive_names(project.env, handle).all()
    return {key: str(variables.get(where.get(key, ""), derived[key])) for key in derived}


def _canary(project: Project, handle: str, variables: Mapping[str, object]) -> Check:
    name = "a canary on each partition arrives there only"
    hubs = project.env.event_hubs.event_hubs
    if project.env.event_hubs.mode != "embedded":
        return Check(name, "skipped", "real Event Hubs: read back only on the embedded hub")
    if not hubs:
        return Check(name, "skipped", "no event hub in eventHubs.eventHubs")
    from azure.eventhub import EventData

    from devslice.embedded import EmbeddedHub
    from devslice.sdk import SliceContext
    from devslice.sdk.eventhubs import CANARY, SliceProducer

    ctx = SliceContext.from_env({k: str(v) for k, v in variables.items()},
                                prefix=project.env.contract.prefix,
                                partition_ids_variable=project.env.contract.partition_ids_variable)
    assert ctx.embedded_path is not None
    hub = EmbeddedHub(ctx.embedded_path, partitions=ctx.partition_count or 32)
    try:
        all_ids = hub.partition_ids(hubs[0])
        before = {p: hub.last_sequence_number(hubs[0], p) for p in all_ids}
        canaries = {}
        with SliceProducer.from_context(hubs[0], ctx) as producer:
            for p in ctx.partition_ids or ():
                marker = f"devslice-canary-{uuid.uuid4().hex}"
                canary = EventData(marker)
                canary.properties = {CANARY: "1"}  # SliceConsumer keeps it from services
                producer.send(canary, partition_id=p)
                canaries[marker] = p
        found: dict[str, list[str]] = {}
        for p in all_ids:
            for event in hub.read(hubs[0], p, before[p], limit=10_000):
                body = event.body.decode(errors="replace")
                if body in canaries:
                    found.setdefault(body, []).append(p)
    finally:
        hub.close()
    wrong = [f"canary for {p} arrived in {','.join(found.get(m, []) or ['no partition'])}"
             for m, p in canaries.items() if found.get(m) != [p]]
    if wrong:
        return Check(name, "failed", "; ".join(wrong))
    return Check(name, "ok", f"{len(canaries)} canaries on {hubs[0]}, each only in its partition")


def start_fence_check(project: Project, handle: str) -> Check:
    """Issue 11: a consumer of the slice sees nothing from before its claim. The contract
    (overrides included) must carry the ledger's fences; on the embedded hub a SliceConsumer
    reads every event hub of the slice from the beginning, and must deliver no event
    enqueued before the claim."""
    from devslice.sdk.context import SliceContext
    from devslice.slices.fences import contract_fences

    name = "a consumer of the slice sees nothing from before its claim"
    s = project.get(handle)
    fences = contract_fences(s)
    if fences is None:
        return Check(name, "skipped", f"slice {handle!r} was claimed before start fences "
                     f"existed; release it and claim again to get them")
    variables = {v.name: str(v.value) for v in project.variables(handle, secrets=False)}
    p = project.env.contract.prefix
    given = variables.get(f"{p}SLICE_CLAIM"), variables.get(f"{p}EVENTHUBS_STARTFENCE")
    if given != (s.claim, fences.format()):
        return Check(name, "failed", f"the contract gives {p}SLICE_CLAIM={given[0]} and "
                     f"{p}EVENTHUBS_STARTFENCE={given[1]}, but the ledger has claim {s.claim} "
                     f"with fences {fences.format()} (an override in devslice.local.yaml?)")
    by_time = sorted(f"{f.event_hub}/{f.partition}" for f in s.start_fences
                     if f.sequence_number is None)
    note = f"; fenced at the claim time (sequence number unread): {', '.join(by_time)}" \
        if by_time else ""
    hubs = project.env.event_hubs.event_hubs
    if project.env.event_hubs.mode != "embedded" or not hubs:
        why = "no event hub in eventHubs.eventHubs" if not hubs else \
            "real Event Hubs: read back only on the embedded hub"
        return Check(name, "skipped", f"the contract carries the ledger's fences; {why}{note}")
    ctx = SliceContext.from_env(variables, prefix=p,
                                partition_ids_variable=project.env.contract.partition_ids_variable)
    read, old = 0, []
    for hub in hubs:
        got = _read_from_the_beginning(ctx, hub)
        read += len(got)
        old += [f"{hub}/{pid}#{seq}" for pid, seq, at in got if at < s.created_at]
    if old:
        return Check(name, "failed", f"{len(old)} event(s) from before the claim "
                     f"({s.created_at:%Y-%m-%d %H:%M:%S}Z) reached a consumer: "
                     f"{', '.join(old[:5])}", )
    return Check(name, "ok", f"read {len(hubs)} event hub(s) from the beginning: {read} "
                 f"event(s), none from before the claim{note}")


def _read_from_the_beginning(ctx: SliceContext, hub: str) -> list[tuple[str, int, datetime]]:
    """(partition, sequence number, enqueued time) of every event a SliceConsumer of the
    slice delivers from "-1", in a consumer group no service checkpoints in; it stops once
    every partition has been idle for a moment (the embedded client then reports None)."""
    import threading

    from devslice.embedded import EmbeddedConsumerClient, EmbeddedHub
    from devslice.sdk.eventhubs import SliceConsumer

    assert ctx.embedded_path is not None
    log = EmbeddedHub(ctx.embedded_path, partitions=ctx.partition_count or 32)
    consumer = SliceConsumer(lambda: EmbeddedConsumerClient(log, hub, "devslice-verify"), ctx,
                             eventhub_name=hub)
    partitions = set(consumer.partitions())
    idle: set[str] = set()
    got: list[tuple[str, int, datetime]] = []
    lock = threading.Lock()

    def on_event(context: Any, event: Any) -> None:
        with lock:
            if event is None:
                idle.add(context.partition_id)
                if idle >= partitions:
                    consumer.close()
            else:
                got.append((context.partition_id, event.sequence_number, event.enqueued_time))

    try:
        consumer.receive(on_event, starting_position="-1", max_wait_time=0.1)
    finally:
        log.close()
    return got
