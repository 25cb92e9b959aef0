"""Event Hubs, limited to the slice's partitions (the seed article's "small wrapper").

Publishing: a partition key is mapped onto the slice's own partitions here and sent by
partition id, because Event Hubs would hash the key over *all* partitions, most of them other
developers' (facts.md: unbuffered sends with a key are hashed by the service). The mapping is
``ids[sha256(key)[:8] as big-endian integer % len(ids)]``, stable across processes and
languages (docs/contract.md). Every event is stamped with the slice's Data Explorer routing.

Consuming: one receiver per own partition (the pattern of the Azure SDK's "static partition
assignment" sample; over the embedded hub, one reader for them all), checkpointing through
the store given, by default the official ``BlobCheckpointStore`` in the slice's own storage
account.

Start fences (issue 11): a partition's new holder never sees its previous holder's events.
The consumer delivers no event at or below the partition's fence
(``LOCAL_DEV_EVENTHUBS_STARTFENCE``), whatever start position or checkpoint it is given, and
keeps checkpoints per claim (``LOCAL_DEV_SLICE_CLAIM``), so a new holder never resumes from
an old holder's checkpoint.

Without a slice (shared environments) both behave like the plain SDK on every partition.
The clients are injected; ``from_context`` builds real ``azure-eventhub`` clients, or the
embedded hub's when the contract's connection is ``embedded:PATH``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from devslice.errors import DevsliceError
from devslice.sdk.context import ContractError, SliceContext, SliceViolation
from devslice.sdk.leases import LeaseInfo, LeaseWatch, service_name

DATABASE = "Database"


class ProducerClient(Protocol):
    def get_partition_ids(self) -> list[str]: ...
    def create_batch(self, *, partition_id: str | None = ...,
                     partition_key: str | None = ...) -> Any: ...
    def send_batch(self, event_data_batch: Any, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


class ConsumerClient(Protocol):
    def get_partition_ids(self) -> list[str]: ...
    def receive(self, on_event: Callable[..., None], **kwargs: Any) -> None: ...
    def close(self) -> None: ...


CANARY = "DevsliceCanary"  # property of `devslice verify`'s test events
_CANARY_BYTES = CANARY.encode()


def is_canary(event: Any) -> bool:
    quick = getattr(event, "devslice_canary", None)  # the embedded hub's events answer cheaply
    if quick is not None:
        return bool(quick)
    props = getattr(event, "properties", None) or {}
    return CANARY in props or _CANARY_BYTES in props  # received keys are bytes


Fence = int | datetime  # a sequence number (deliver only later ones) or an enqueued time


class Fenced:
    """``on_event`` for one partition, without the events below its start fence and without
    canaries (:func:`behind_fence`). A client that reads rows in pages (the embedded hub)
    may apply ``floor`` and the canary test to a whole page and call ``on_event`` directly
    (issue 17: no extra call per event); others call the object per event."""

    __slots__ = ("floor", "on_event", "since")

    def __init__(self, on_event: Callable[[Any, Any], None], fence: Fence | None) -> None:
        self.on_event = on_event
        self.floor = -1  # sequence numbers start at 0: nothing is below -1
        self.since: datetime | None = None  # a time fence not yet turned into a floor
        if isinstance(fence, datetime):
            self.floor, self.since = sys.maxsize, fence
        elif fence is not None:
            self.floor = fence

    def __call__(self, context: Any, event: Any) -> None:
        if event is not None:
            if event.sequence_number <= self.floor:
                if self.since is None or event.enqueued_time < self.since:
                    return  # the previous holder's
                self.floor, self.since = event.sequence_number - 1, None
            try:
                canary = event.devslice_canary  # the embedded hub's events: no decoding
            except AttributeError:
                props = event.properties
                canary = bool(props) and (CANARY in props or _CANARY_BYTES in props)
            if canary:
                return
        self.on_event(context, event)


def behind_fence(on_event: Callable[[Any, Any], None], fence: Fence | None) -> Fenced:
    """``on_event`` for one partition, without the events below its start fence and without
    canaries. The per-event cost is one int comparison: a time fence turns into a sequence
    number at the first event enqueued from then on (enqueued times only grow within a
    partition)."""
    return Fenced(on_event, fence)


def fenced_start(position: Any, inclusive: Any, partition_id: str, fence: Fence | None
                 ) -> tuple[Any, bool]:
    """The start position and inclusiveness for one partition, moved up to its fence when
    the one asked for lies below it: "-1", a lower sequence number, an earlier time. Other
    positions ("@latest", an offset) stay; :func:`behind_fence` drops what they reach below
    the fence, so this only saves reading old events."""
    if isinstance(position, dict):
        position = position.get(partition_id)
    if isinstance(inclusive, dict):
        inclusive = inclusive.get(partition_id, False)
    inclusive = bool(inclusive)
    if isinstance(fence, datetime):
        if position in ("-1", -1) or (isinstance(position, datetime) and position < fence):
            return fence, True
    elif fence is not None and fence >= 0:
        first = (position if inclusive else position + 1) if isinstance(position, int) else None
        if position in ("-1", -1) or (first is not None and first <= fence):
            return fence, False
    return position, inclusive


class ClaimCheckpoints:
    """A checkpoint store seen through one claim of the slice: consumer group G is kept as
    ``G/CLAIM``, so a partition's new holder never resumes from its previous holder's
    checkpoints (nor load-balances against its ownerships). Wraps the official
    ``BlobCheckpointStore`` or the embedded hub; callers see their own consumer group."""

    def __init__(self, store: Any, claim: str) -> None:
        self.store = store
        self.claim = claim

    def _group(self, consumer_group: str) -> str:
        return f"{consumer_group}/{self.claim}"

    def _in(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "consumer_group": self._group(record["consumer_group"])}

    @staticmethod
    def _out(record: dict[str, Any], consumer_group: str) -> dict[str, Any]:
        return {**record, "consumer_group": consumer_group}

    def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str,
                         consumer_group: str, **kwargs: Any) -> list[dict[str, Any]]:
        return [self._out(c, consumer_group) for c in self.store.list_checkpoints(
            fully_qualified_namespace, eventhub_name, self._group(consumer_group), **kwargs)]

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        self.store.update_checkpoint(self._in(checkpoint), **kwargs)

    def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str,
                       consumer_group: str, **kwargs: Any) -> list[dict[str, Any]]:
        return [self._out(o, consumer_group) for o in self.store.list_ownership(
            fully_qualified_namespace, eventhub_name, self._group(consumer_group), **kwargs)]

    def claim_ownership(self, ownership_list: Iterable[dict[str, Any]], **kwargs: Any
                        ) -> list[dict[str, Any]]:
        asked = list(ownership_list)
        groups = {o["partition_id"]: o["consumer_group"] for o in asked}
        claimed = self.store.claim_ownership([self._in(o) for o in asked], **kwargs)
        return [self._out(o, groups.get(o["partition_id"], o["consumer_group"]))
                for o in claimed]


def per_claim(store: Any, ctx: SliceContext) -> Any:
    """``store`` seen through the slice's claim (unchanged without one: a shared environment,
    or a slice claimed before claims had ids)."""
    return store if ctx.claim is None or store is None else ClaimCheckpoints(store, ctx.claim)


def partition_for_key(key: str | bytes, partition_ids: Sequence[str]) -> str:
    """The partition a key maps to among ``partition_ids`` (the contract's hash)."""
    data = key.encode() if isinstance(key, str) else key
    n = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    return partition_ids[n % len(partition_ids)]


class Router:
    """Where an event of this slice goes, and what it must carry. Shared by sync and async."""

    def __init__(self, ctx: SliceContext) -> None:
        if ctx.handle and ctx.partition_ids is None:
            # A slice without partitions would quietly use everyone's: refuse instead.
            raise ContractError(
                f"slice {ctx.handle!r} has no partitions: {ctx.partition_ids_variable} is not set",
                hint="set the variables from `devslice env` (all of them), or none in a shared "
                "environment",
            )
        self.ctx = ctx
        self._own: tuple[str, ...] | None = ctx.partition_ids
        self._turn = itertools.count()
        self._routing = ctx.routing_properties()
        self._routing_json: str | None = None

    def target(self, partition_key: str | None, partition_id: str | None
               ) -> tuple[str | None, str | None]:
        """(partition_id, partition_key) to hand the SDK for one send."""
        if partition_key is not None and partition_id is not None:
            raise DevsliceError(
                "give partition_key or partition_id, not both",
                hint="the Python SDK silently prefers partition_id; .NET and JS refuse both",
            )
        own = self._own
        if own is None:  # shared environment: the plain SDK's behaviour
            return partition_id, partition_key
        if partition_id is not None:
            if str(partition_id) not in own:
                raise SliceViolation(
                    f"partition {partition_id} is not in slice {self.ctx.handle!r} (its "
                    f"partitions are {','.join(own)})",
                    hint="send with a partition_key, or to one of the slice's partitions",
                )
            return str(partition_id), None
        if partition_key is not None:
            return partition_for_key(partition_key, own), None
        return own[next(self._turn) % len(own)], None  # round robin, like the service

    def routing_json(self) -> str | None:
        """The routing properties of an event that names none of its own, as the embedded
        hub stores them (JSON), computed once."""
        if self._routing_json is None and self._routing:
            self._routing_json = json.dumps(self._routing, default=str)
        return self._routing_json

    def stamp(self, event: Any) -> Any:
        """Add the Data Explorer routing: Database is always the slice's; Table, Format and
        mapping only where the event does not name its own."""
        if self._routing:
            props = event.properties
            if props is None:
                event.properties = props = {}
            for key, value in self._routing.items():
                if key == DATABASE or key not in props:
                    props[key] = value
        return event


def add(batch: Any, event: Any) -> bool:
    """Add an event to a batch; False when the batch is full. The SDK raises ValueError both
    for a full batch and for an event it cannot encode (an int property beyond 32 bits, say);
    only the first means "start another batch"."""
    try:
        batch.add(event)
    except ValueError as exc:
        if "size limit" in str(exc):
            return False
        raise DevsliceError(f"the event cannot be sent: {exc}",
                            hint="property values must be str, bytes, bool, int (32-bit), "
                            "float, uuid or datetime") from exc
    return True


def too_large(batch: Any) -> DevsliceError:
    return DevsliceError(
        f"one event is larger than a batch may be ({batch.max_size_in_bytes} bytes)",
        hint="Event Hubs Standard takes at most 1 MB per publish, Basic 256 KB")


def _events(events: Any) -> list[Any]:
    from azure.eventhub import EventData  # lazy: azure-eventhub, ~100 ms, only against Event Hubs

    if isinstance(events, EventData | str | bytes):
        events = [events]
    return [e if isinstance(e, EventData) else EventData(e) for e in events]


class SliceProducer:
    """Publishes into the slice's partitions only. Thread-safe if the client is."""

    def __init__(self, client: ProducerClient, ctx: SliceContext | None = None) -> None:
        self.client = client
        self.ctx = ctx or SliceContext.from_env()
        self.router = Router(self.ctx)
        self._checked = False

    @classmethod
    def from_context(cls, eventhub_name: str, ctx: SliceContext | None = None,
                     credential: Any = None) -> SliceProducer:
        ctx = ctx or SliceContext.from_env()
        return cls(_producer_client(ctx, eventhub_name, credential), ctx)

    def _check_partitions(self) -> None:
        if not self._checked and self.ctx.partition_ids is not None:
            self.ctx.own_partitions(self.client.get_partition_ids())
        self._checked = True

    def send(self, events: Any, *, partition_key: str | None = None,
             partition_id: str | None = None) -> int:
        """Send one event or many (EventData, str or bytes) to one partition, in as many
        batches as the SDK's size limit needs; returns the number of batches sent."""
        self._check_partitions()
        pid, key = self.router.target(partition_key, partition_id)
        direct = getattr(self.client, "send_direct", None)  # the embedded hub's client
        if direct is not None and pid is not None:
            if isinstance(events, str | bytes) or hasattr(events, "body"):
                events = [events]
            elif not isinstance(events, list | tuple):
                events = list(events)  # read once: the general path below may need it again
            sent = direct(events, pid, self.router.stamp, self.router.routing_json())
            if sent is not None:
                return int(sent)
        batch = self.client.create_batch(partition_id=pid, partition_key=key)
        sent = 0
        for event in _events(events):
            self.router.stamp(event)
            if not add(batch, event):
                self.client.send_batch(batch)
                sent += 1
                batch = self.client.create_batch(partition_id=pid, partition_key=key)
                if not add(batch, event):
                    raise too_large(batch)
        if len(batch):
            self.client.send_batch(batch)
            sent += 1
        return sent

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SliceProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SliceConsumer:
    """Receives from the slice's partitions only: one receiver per partition, each on its
    own client (one client cannot receive a consumer group twice), in its own thread; over
    the embedded hub's client, one receiver for all of them
    (``EmbeddedConsumerClient.receive_partitions``), in the caller's thread when no lease is
    watched.

    With a ``lease`` (:class:`~devslice.sdk.leases.LeaseWatch`; ``from_context`` sets one up
    when it knows the service's name: the embedded hub's, else a Kubernetes Lease in a pod)
    it steps aside while another holder's lease is live, as ``devslice debug --exclusive``
    asks: its receivers close, and when the lease ends they start again after the last event
    handled per partition (a checkpoint, when the store has one, wins, as always), so nothing
    is lost.
    """

    def __init__(self, client_factory: Callable[[], ConsumerClient],
                 ctx: SliceContext | None = None, lease: LeaseWatch | None = None,
                 eventhub_name: str | None = None) -> None:
        self.client_factory = client_factory
        self.ctx = ctx or SliceContext.from_env()
        self.lease = lease
        # Whose start fences apply; default: the client's own ``eventhub_name`` (the SDK's
        # clients and the embedded hub's have one).
        self.eventhub_name = eventhub_name
        self._clients: list[ConsumerClient] = []
        self._lock = threading.Lock()
        self._closed = False
        self._wake = threading.Event()  # set by close(): ends a wait for a lease at once
        self.paused_by: LeaseInfo | None = None  # the lease this consumer is waiting out

    @classmethod
    def from_context(cls, eventhub_name: str, consumer_group: str = "$Default",
                     ctx: SliceContext | None = None, checkpoint_store: Any = None,
                     credential: Any = None, service: str | None = None,
                     lease_poll: float = 1.0) -> SliceConsumer:
        """``service`` names the service for debug leases (default: ``DEVSLICE_SERVICE``, else
        the Deployment of the pod from HOSTNAME); leases are watched on the embedded hub when
        the slice uses it (its consumers and the debug session share its file), else, in a
        pod, as ``coordination.k8s.io`` Leases in the pod's namespace
        (:mod:`devslice.sdk.kubelease`)."""
        from devslice.sdk.kubelease import pod_lease_store  # lazy: only in a pod

        ctx = ctx or SliceContext.from_env()
        lease = None
        service = service or service_name()
        if ctx.embedded_path and service:
            lease = LeaseWatch.for_service(_embedded(ctx), service, ctx.handle, poll=lease_poll)
        elif service and (in_pod := pod_lease_store()) is not None:
            lease = LeaseWatch.for_service(in_pod, service, ctx.handle, poll=lease_poll)
        return cls(lambda: _consumer_client(ctx, eventhub_name, consumer_group,
                                            checkpoint_store, credential), ctx, lease,
                   eventhub_name)

    def partitions(self) -> tuple[str, ...]:
        probe = self.client_factory()
        try:
            return self.ctx.own_partitions(probe.get_partition_ids())
        finally:
            probe.close()

    def receive(self, on_event: Callable[[Any, Any], None], *,
                starting_position: Any = None,
                on_error: Callable[[Any, Exception], None] | None = None,
                **kwargs: Any) -> None:
        """Block, calling ``on_event(partition_context, event)`` for events of the slice's
        partitions, until :meth:`close`. A receiver that fails ends the others and raises.

        In a shared environment (no slice) it is one plain ``receive`` whose load balancer
        shares all partitions among the service's replicas, as without devslice.

        ``devslice verify``'s canary events (property ``DevsliceCanary``) never reach
        ``on_event``: a service's own code need not know about them. Nor do events below a
        partition's start fence (its previous holder's), whatever ``starting_position`` or
        checkpoint says.
        """
        if self.lease is None:
            self._round(on_event, starting_position, on_error, kwargs)
            return
        started = datetime.now(UTC)  # where "@latest" partitions resume after a pause
        seen: dict[str, int] = {}

        def tracked(context: Any, event: Any) -> None:
            on_event(context, event)
            if event is not None:  # None: max_wait_time passed without an event
                seen[str(context.partition_id)] = int(event.sequence_number)

        position = starting_position
        while not self._closed:
            if not self._wait_out_lease():
                return  # closed while waiting
            if not self._round(tracked, position, on_error, kwargs):
                return  # closed, not paused
            position = _resume_positions(self.partitions(), starting_position, seen, started)

    def _wait_out_lease(self) -> bool:
        """Wait while another holder's lease is live; False when closed meanwhile."""
        assert self.lease is not None
        while not self._closed:
            self.paused_by = self.lease.blocking()
            if self.paused_by is None:
                return True
            self._wake.wait(self.lease.poll)
        return False

    def _round(self, on_event: Callable[[Any, Any], None], starting_position: Any,
               on_error: Callable[[Any, Exception], None] | None,
               kwargs: dict[str, Any]) -> bool:
        """One set of receivers, until close() or (with a lease) another holder's lease;
        True when it ended for a lease."""
        failures: list[BaseException] = []
        stepping_aside = threading.Event()
        kwargs = dict(kwargs)
        given = "starting_position_inclusive" in kwargs  # passed on only when asked or needed
        inclusive = kwargs.pop("starting_position_inclusive", False)

        def run(partition_ids: tuple[str | None, ...], client: ConsumerClient) -> None:
            with self._lock:  # close() may have come first; a closed client must not start
                if self._closed or stepping_aside.is_set():
                    return
            try:
                if partition_ids == (None,):  # shared environment: one load-balanced receive
                    extra = {"starting_position_inclusive": inclusive} if given else {}
                    client.receive(behind_fence(on_event, None),
                                   starting_position=starting_position, on_error=on_error,
                                   **extra, **kwargs)
                    return
                self._receive_own(client, partition_ids, on_event, starting_position,
                                  inclusive if given else None, on_error, kwargs)
            except BaseException as exc:  # handed to the caller below
                failures.append(exc)
                self.close()

        targets: tuple[str | None, ...] = (
            (None,) if self.ctx.partition_ids is None else self.partitions())
        jobs = self._open_clients(targets)
        mine = [client for _, client in jobs]
        if self.lease is None and len(jobs) == 1:
            # One receiver and no lease to watch (the embedded hub's client, say): it runs in
            # this thread, so no GIL is handed between two threads.
            run(*jobs.pop())
        threads = [threading.Thread(target=run, args=job, daemon=True,
                                    name=f"devslice-receive-{','.join(map(str, job[0]))}")
                   for job in jobs]
        for t in threads:
            t.start()
        self._watch(threads, mine, stepping_aside)
        if failures:
            raise failures[0]
        return stepping_aside.is_set() and not self._closed

    def _watch(self, threads: list[threading.Thread], mine: list[ConsumerClient],
               stepping_aside: threading.Event) -> None:
        """Until the round's receiver threads end: watch the lease (if any) and step aside
        for another holder's."""
        next_look = time.monotonic()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
            if self.lease is not None and not stepping_aside.is_set() and not self._closed \
                    and time.monotonic() >= next_look:
                next_look = time.monotonic() + self.lease.poll
                self.paused_by = self.lease.blocking()
                if self.paused_by is not None:
                    with self._lock:
                        stepping_aside.set()
                        self._clients = [c for c in self._clients if c not in mine]
            if self._closed or stepping_aside.is_set():
                # A receiver that started just after close() would run on; closing again
                # stops it (the SDK's close() ends every receive of the client).
                for c in mine:
                    c.close()

    def _open_clients(self, targets: tuple[str | None, ...]
                      ) -> list[tuple[tuple[str | None, ...], ConsumerClient]]:
        """The receivers of one round: partitions and the client that receives them. One
        receiver per partition, each on its own client (one client cannot receive a consumer
        group twice), or, with the embedded hub's client, one for them all. None after
        close()."""
        first = self.client_factory()
        groups: list[tuple[str | None, ...]] = (
            [targets] if targets != (None,) and hasattr(first, "receive_partitions")
            else [(pid,) for pid in targets])
        if not groups:
            first.close()
        jobs: list[tuple[tuple[str | None, ...], ConsumerClient]] = []
        for i, pids in enumerate(groups):
            client = first if i == 0 else self.client_factory()
            with self._lock:
                if self._closed:
                    client.close()
                    break
                self._clients.append(client)
            jobs.append((pids, client))
        return jobs

    def _receive_own(self, client: ConsumerClient, partition_ids: tuple[str | None, ...],
                     on_event: Callable[[Any, Any], None], starting_position: Any,
                     inclusive: Any, on_error: Callable[[Any, Exception], None] | None,
                     kwargs: dict[str, Any]) -> None:
        """Receive the slice's ``partition_ids`` on ``client``, each behind its start fence;
        ``inclusive`` None: ``starting_position_inclusive`` was not given."""
        handlers, starts, inclusives = {}, {}, {}
        for pid in partition_ids:
            assert pid is not None
            fence = self._fence(pid, client)
            handlers[pid] = behind_fence(on_event, fence)
            starts[pid], inclusives[pid] = fenced_start(starting_position, inclusive,
                                                        pid, fence)
        if len(partition_ids) > 1:  # the embedded hub's client: one reader for all
            client.receive_partitions(  # type: ignore[attr-defined]
                handlers, starting_position=starts, starting_position_inclusive=inclusives,
                on_error=on_error, **kwargs)
            return
        [(pid, handler)] = handlers.items()
        extra = ({"starting_position_inclusive": inclusives[pid]}
                 if inclusive is not None or inclusives[pid] else {})
        client.receive(handler, starting_position=starts[pid], on_error=on_error,
                       partition_id=pid, **extra, **kwargs)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, []
        self._wake.set()
        for c in clients:
            c.close()

    def _fence(self, partition_id: str, client: Any) -> Fence | None:
        """The partition's start fence, from the contract. A sequence fence beyond the
        partition's last event means its log started again (an embedded hub's file deleted,
        an event hub recreated): nothing in it is the previous holder's, so no fence."""
        fences = self.ctx.start_fences
        if fences is None:
            return None
        fence = fences.fence(self.eventhub_name or getattr(client, "eventhub_name", None),
                             partition_id)
        if isinstance(fence, int) and fence >= 0 and hasattr(client, "get_partition_properties"):
            try:
                last = int(client.get_partition_properties(partition_id)
                           ["last_enqueued_sequence_number"])
            except Exception:  # unknown: keep the fence, which errs on the side of isolation
                return fence
            if last < fence:
                return -1
        return fence


def _resume_positions(partitions: Iterable[str], original: Any, seen: dict[str, int],
                      started: datetime) -> dict[str, Any]:
    """Per partition, where receiving resumes after a pause: after the last event handled
    (a sequence number, exclusive); else where it was asked to start, with "@latest" pinned
    to when receiving first started (a fresh "@latest" would skip what was published during
    the pause)."""
    out: dict[str, Any] = {}
    for pid in partitions:
        if pid in seen:
            out[pid] = seen[pid]
            continue
        first = original.get(pid) if isinstance(original, dict) else original
        out[pid] = started if first in (None, "@latest") else first
    return out


# -- building clients from the contract -----------------------------------------------------------
def _embedded(ctx: SliceContext) -> Any:
    from devslice.embedded import EmbeddedHub  # lazy: embedded broker, ~90 ms, only offline
    from devslice.embedded.eventhub import RETENTION  # lazy: embedded broker, ~90 ms, only offline

    assert ctx.embedded_path is not None
    options = ctx.embedded_options
    max_bytes = options.get("max_bytes")
    return EmbeddedHub(ctx.embedded_path, partitions=ctx.partition_count or 32,
                       retention=options.get("retention", RETENTION),
                       max_bytes=int(max_bytes) if max_bytes else None)


def _no_connection() -> DevsliceError:
    return DevsliceError(
        "the contract names no Event Hubs connection",
        hint="set LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING or LOCAL_DEV_EVENTHUBS_"
        "FULLYQUALIFIEDNAMESPACE (`devslice env` gives both)",
    )


def _credential(credential: Any) -> Any:
    if credential is not None:
        return credential
    from azure.identity import DefaultAzureCredential  # lazy: azure-identity, ~180 ms

    return DefaultAzureCredential()


def _producer_client(ctx: SliceContext, eventhub_name: str, credential: Any) -> ProducerClient:
    if ctx.embedded_path:
        from devslice.embedded import EmbeddedProducerClient  # lazy: embedded broker, ~90 ms

        return EmbeddedProducerClient(_embedded(ctx), eventhub_name)
    from azure.eventhub import EventHubProducerClient  # lazy: azure-eventhub, ~100 ms

    if ctx.eventhubs_connection_string:
        return EventHubProducerClient.from_connection_string(
            ctx.eventhubs_connection_string, eventhub_name=eventhub_name)
    if ctx.fully_qualified_namespace:
        return EventHubProducerClient(ctx.fully_qualified_namespace, eventhub_name,
                                      _credential(credential))
    raise _no_connection()


def checkpoint_store_for(ctx: SliceContext, container: str = "eventhub-checkpoints",
                         credential: Any = None) -> Any:
    """The official BlobCheckpointStore in the slice's own storage account, its container
    created when missing: the official event processor swallows "The specified container does
    not exist" and retries every ~35 s without ever receiving (issue 15), so a new slice's
    consumer would wait forever for a container nobody made. `devslice up` creates it too."""
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore  # lazy: ~330 ms

    if ctx.storage_connection_string:
        conn = ctx.storage_connection_string
        _ensure_container(lambda: _container_client(conn, None, container, None), container)
        return BlobCheckpointStore.from_connection_string(conn, container)
    if ctx.blob_endpoint:
        endpoint, cred = ctx.blob_endpoint, _credential(credential)
        _ensure_container(lambda: _container_client(None, endpoint, container, cred), container)
        return BlobCheckpointStore(endpoint, container, cred)
    raise DevsliceError("the contract names no storage account for checkpoints",
                        hint="set LOCAL_DEV_STORAGE_BLOBENDPOINT (`devslice env` gives it)")


def _container_client(conn: str | None, endpoint: str | None, container: str,
                      credential: Any) -> Any:
    from azure.storage.blob import ContainerClient  # lazy: storage blob, ~300 ms

    if conn:
        return ContainerClient.from_connection_string(conn, container)
    return ContainerClient(str(endpoint), container, credential=credential)


def _ensure_container(connect: Callable[[], Any], container: str) -> None:
    """Create-if-missing; another consumer creating it at the same moment is fine."""
    from azure.core.exceptions import AzureError, ResourceExistsError  # lazy: azure-core, ~40 ms

    try:
        with connect() as client:
            client.create_container()
    except ResourceExistsError:
        pass
    except AzureError as exc:
        raise DevsliceError(f"cannot create the checkpoint container {container}: "
                            f"{str(exc).splitlines()[0]}",
                            hint="check the slice's storage account (devslice verify), and that "
                            "this identity may create containers there (Storage Blob Data "
                            "Contributor)") from exc


def _consumer_client(ctx: SliceContext, eventhub_name: str, consumer_group: str,
                     checkpoint_store: Any, credential: Any) -> ConsumerClient:
    if ctx.embedded_path:
        from devslice.embedded import EmbeddedConsumerClient  # lazy: embedded broker, ~90 ms

        hub = _embedded(ctx)
        return EmbeddedConsumerClient(hub, eventhub_name, consumer_group,
                                      checkpoint_store=per_claim(checkpoint_store or hub, ctx))
    from azure.eventhub import EventHubConsumerClient  # lazy: azure-eventhub, ~100 ms

    store = per_claim(checkpoint_store or checkpoint_store_for(ctx, credential=credential), ctx)
    if ctx.eventhubs_connection_string:
        return EventHubConsumerClient.from_connection_string(
            ctx.eventhubs_connection_string, consumer_group, eventhub_name=eventhub_name,
            checkpoint_store=store)
    if ctx.fully_qualified_namespace:
        return EventHubConsumerClient(ctx.fully_qualified_namespace, eventhub_name,
                                      consumer_group, _credential(credential),
                                      checkpoint_store=store)
    raise _no_connection()


def partition_properties_client(ctx: SliceContext, eventhub_name: str,
                                credential: Any = None) -> Any:
    """A consumer client that answers ``get_partition_properties`` (start fences): the
    embedded hub's, or the official SDK's for the emulator and shared Event Hubs, with one
    retry, so that an unreachable namespace falls back to a time fence soon."""
    if ctx.embedded_path:
        from devslice.embedded import EmbeddedConsumerClient  # lazy: embedded broker, ~90 ms

        return EmbeddedConsumerClient(_embedded(ctx), eventhub_name)
    from azure.eventhub import EventHubConsumerClient  # lazy: azure-eventhub, ~100 ms

    if ctx.eventhubs_connection_string:
        return EventHubConsumerClient.from_connection_string(
            ctx.eventhubs_connection_string, "$Default", eventhub_name=eventhub_name,
            retry_total=1, retry_backoff_factor=0.2)
    if ctx.fully_qualified_namespace:
        return EventHubConsumerClient(ctx.fully_qualified_namespace, eventhub_name,
                                      "$Default", _credential(credential), retry_total=1,
                                      retry_backoff_factor=0.2)
    raise _no_connection()


def send(eventhub_name: str, events: Iterable[Any], **kwargs: Any) -> int:
    """One-shot publish from the contract in the environment."""
    with SliceProducer.from_context(eventhub_name) as producer:
        return producer.send(events, **kwargs)
