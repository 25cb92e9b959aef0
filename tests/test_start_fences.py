"""Issue 11, part 2: a partition's new holder never sees its previous holder's events.

On the embedded hub end to end (release, gc of an expired CI slice, a new claim of the same
partitions), and against consumer clients of the official SDK's shape for shared Event Hubs.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData, PartitionContext
from azure.eventhub._constants import PROP_OFFSET, PROP_SEQ_NUMBER, PROP_TIMESTAMP
from azure.eventhub._eventprocessor.in_memory_checkpoint_store import InMemoryCheckpointStore
from azure.eventhub.exceptions import ConnectError

from devslice.embedded import EmbeddedConsumerClient, EmbeddedHub
from devslice.errors import DevsliceError
from devslice.ledger.sqlite import SqliteLedger
from devslice.project import Project
from devslice.sdk.context import ContractError, SliceContext, StartFences
from devslice.sdk.eventhubs import (
    ClaimCheckpoints,
    SliceConsumer,
    SliceProducer,
    behind_fence,
    fenced_start,
)
from devslice.services.fences import contract_fences, fence_new_slice, read_start_fences
from devslice.slices import operations as ops
from devslice.slices.model import LedgerState, SliceKind
from devslice.slices.names import HandleRule
from devslice.slices.partitions import NamespaceCapacity, PartitionPool

from .helpers import BASE, SOLO, free_ports

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """Real time plus an offset a test moves forward (a CI slice's lease runs out)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def embedded_project(workdir: Path, clock: Callable[[], datetime], partitions: int = 2
                     ) -> Project:
    (workdir / "devslice.yaml").write_text(BASE + f"""\
eventHubs:
  eventHubs: [orders, payments]
  namespaces: [{{name: embedded, partitions: {partitions}}}]
  partitionsPerSlice: 2
""")
    return Project.load(clock=clock)


def contract(project: Project, handle: str) -> SliceContext:
    values = {v.name: str(v.value) for v in project.variables(handle, secrets=False)}
    return SliceContext.from_env(values)


def publish(ctx: SliceContext, hub: str, bodies: list[str]) -> None:
    with SliceProducer.from_context(hub, ctx) as producer:
        for i, body in enumerate(bodies):
            producer.send(body, partition_key=f"k{i}")


def consume_until(consumer: SliceConsumer, wanted: set[str], **kwargs: Any) -> list[str]:
    """Every body the consumer delivers until all of ``wanted`` arrived. Events of one
    partition arrive in order and old ones were sent first, so any old event a consumer
    would deliver arrives before the last wanted one."""
    got: list[str] = []
    lock = threading.Lock()

    def on_event(context: Any, event: Any) -> None:
        with lock:
            got.append(event.body_as_str())
            if wanted <= set(got):
                consumer.close()

    done = threading.Thread(target=consumer.receive, args=(on_event,), kwargs=kwargs,
                            daemon=True)
    done.start()
    done.join(30)
    consumer.close()
    assert not done.is_alive(), f"still waiting for {sorted(wanted - set(got))}"
    return got


# -- end to end on the embedded hub ----------------------------------------------------------------
def test_a_new_holder_sees_none_of_the_old_holders_events(workdir: Path) -> None:
    clock = Clock()
    project = embedded_project(workdir, clock)
    before_any_claim = datetime.now(UTC)

    aa, _ = project.claim("aa", owner="Ann A")
    assert aa.event_hubs.partitions == (0, 1)
    aa_ctx = contract(project, "aa")
    old = [f"aa-{i}" for i in range(100)]
    publish(aa_ctx, "orders", old)
    # aa's billing handled and checkpointed 40 events, through the SDK and by hand in the
    # consumer group's plain name (a service of another language, or an older devslice)
    handled = 0
    billing = SliceConsumer.from_context("orders", "billing", aa_ctx)

    def checkpointing(context: Any, event: Any) -> None:
        nonlocal handled
        handled += 1
        context.update_checkpoint(event)
        if handled == 40:
            billing.close()

    billing.receive(checkpointing, starting_position="-1")
    hub = EmbeddedHub(workdir / ".devslice" / "eventhubs.db", partitions=2)
    for p in ("0", "1"):
        hub.update_checkpoint({"eventhub_name": "orders", "consumer_group": "billing",
                               "partition_id": p, "sequence_number": 3})
    project.release("aa", owner="Ann A")

    ci, _ = project.claim(kind=SliceKind.ci, ttl=timedelta(minutes=30), owner="pipeline")
    assert ci.event_hubs.partitions == (0, 1)
    publish(contract(project, ci.handle), "orders", [f"ci-{i}" for i in range(20)])
    clock.offset = timedelta(hours=1)  # the CI slice's lease ran out
    assert [s.handle for s in project.gc()] == [ci.handle]

    bb, _ = project.claim("bb", owner="Ben B")
    assert bb.event_hubs.partitions == (0, 1)  # the same partitions, again
    last = {p: hub.last_sequence_number("orders", p) for p in ("0", "1")}
    assert {(f.event_hub, f.partition): f.sequence_number for f in bb.start_fences} == {
        ("orders", 0): int(last["0"]), ("orders", 1): int(last["1"]),
        ("payments", 0): -1, ("payments", 1): -1}
    ctx = contract(project, "bb")
    new = [f"bb-{i}" for i in range(30)]
    publish(ctx, "orders", new)

    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "from -1": ("$Default", {"starting_position": "-1"}),
        "from before the claim": ("$Default", {"starting_position": before_any_claim}),
        "from a sequence number": ("$Default", {"starting_position": 0,
                                                "starting_position_inclusive": True}),
        "in aa's consumer group": ("billing", {"starting_position": "-1"}),
    }
    for name, (group, kwargs) in cases.items():
        got = consume_until(SliceConsumer.from_context("orders", group, ctx), set(new),
                            **kwargs)
        assert [b for b in got if not b.startswith("bb-")] == [], name
        assert sorted(got) == sorted(new), name  # every event bb sent, once

    # A client whose checkpoint store is the hub itself, not kept per claim: aa's checkpoint
    # in group billing says "after 3"; the fence still holds.
    raw = SliceConsumer(lambda: EmbeddedConsumerClient(hub, "orders", "billing"), ctx)
    got = consume_until(raw, set(new), starting_position="-1")
    assert sorted(got) == sorted(new)
    hub.close()


def test_checkpoints_are_kept_per_claim(workdir: Path) -> None:
    project = embedded_project(workdir, Clock())
    project.claim("aa", owner="Ann A")
    ctx = contract(project, "aa")
    assert ctx.claim is not None and ctx.claim.startswith("aa-")
    publish(ctx, "orders", ["one"])
    consumer = SliceConsumer.from_context("orders", "billing", ctx)

    def on_event(context: Any, event: Any) -> None:
        context.update_checkpoint(event)
        consumer.close()

    consumer.receive(on_event, starting_position="-1")
    hub = EmbeddedHub(workdir / ".devslice" / "eventhubs.db", partitions=2)
    assert hub.list_checkpoints("embedded", "orders", "billing") == []
    [kept] = hub.list_checkpoints("embedded", "orders", f"billing/{ctx.claim}")
    assert kept["sequence_number"] == 0
    hub.close()


def test_a_log_that_started_again_is_not_fenced(workdir: Path) -> None:
    """The embedded hub's file deleted after the claim: sequence numbers start at 0 again,
    below the fence; nothing in the new log is the previous holder's."""
    project = embedded_project(workdir, Clock())
    project.claim("aa", owner="Ann A")
    publish(contract(project, "aa"), "orders", [f"aa-{i}" for i in range(10)])
    project.release("aa", owner="Ann A")
    project.claim("bb", owner="Ben B")
    ctx = contract(project, "bb")
    assert ctx.start_fences is not None and ctx.start_fences.fence("orders", "0") != -1
    for suffix in ("", "-wal", "-shm"):
        Path(f"{workdir / '.devslice' / 'eventhubs.db'}{suffix}").unlink(missing_ok=True)
    new = [f"bb-{i}" for i in range(4)]
    publish(ctx, "orders", new)
    got = consume_until(SliceConsumer.from_context("orders", ctx=ctx), set(new),
                        starting_position="-1")
    assert sorted(got) == sorted(new)


def test_a_slice_claimed_before_fences_keeps_its_checkpoints(workdir: Path) -> None:
    """A slice in the ledger from before issue 11 has no claim id: no fence, and its
    consumers keep using the consumer group's plain name."""
    project = embedded_project(workdir, Clock())
    project.claim("aa", owner="Ann A")
    ledger = project.ledger
    assert isinstance(ledger, SqliteLedger)
    ledger.transact(lambda state: ops.Transition(state.model_copy(update={"slices": {
        "aa": state.slices["aa"].model_copy(update={"claim": None, "start_fences": ()})}})))
    names = {v.name for v in project.variables("aa", secrets=False)}
    assert "LOCAL_DEV_EVENTHUBS_STARTFENCE" not in names
    assert "LOCAL_DEV_SLICE_CLAIM" not in names
    assert contract(project, "aa").start_fences is None


# -- reading fences with clients of the official SDK's shape ---------------------------------------
@dataclass
class Partition:
    events: list[EventData] = field(default_factory=list)


class SdkShapedConsumerClient:
    """``azure.eventhub.EventHubConsumerClient``'s surface over an in-memory log, with its
    answers' exact shapes: ``get_partition_properties`` returns the keys of
    ``ClientBase._get_partition_properties``, received events are real ``EventData`` with
    the service's annotations (offsets are byte offsets, not sequence numbers), contexts
    are the SDK's ``PartitionContext``, and the start follows
    ``EventProcessorMixin.get_init_event_position`` (a checkpoint's offset wins). ``receive``
    returns when the log is read, so tests need no threads' timing."""

    def __init__(self, log: dict[str, Partition], eventhub_name: str,
                 consumer_group: str = "$Default", checkpoint_store: Any = None) -> None:
        self.log = log
        self.eventhub_name = eventhub_name
        self.consumer_group = consumer_group
        self.checkpoint_store = checkpoint_store
        self.receives: list[dict[str, Any]] = []

    def get_partition_ids(self) -> list[str]:
        return list(self.log)

    def get_partition_properties(self, partition_id: str) -> dict[str, Any]:
        events = self.log[partition_id].events
        last = events[-1] if events else None
        return {
            "eventhub_name": self.eventhub_name, "id": partition_id,
            "beginning_sequence_number": events[0].sequence_number if events else 0,
            "last_enqueued_sequence_number": last.sequence_number if last else -1,
            "last_enqueued_offset": last.offset if last else "-1",
            "last_enqueued_time_utc": last.enqueued_time if last else datetime(1970, 1, 1,
                                                                              tzinfo=UTC),
            "is_empty": last is None,
        }

    def receive(self, on_event: Callable[[Any, Any], None], *, partition_id: str,
                starting_position: Any = None, starting_position_inclusive: bool = False,
                on_error: Any = None, **kwargs: Any) -> None:
        self.receives.append({"starting_position": starting_position,
                              "starting_position_inclusive": starting_position_inclusive})
        checkpoint = None
        if self.checkpoint_store is not None:
            checkpoint = next((c for c in self.checkpoint_store.list_checkpoints(
                "ns.servicebus.windows.net", self.eventhub_name, self.consumer_group)
                if c["partition_id"] == partition_id), None)
        position = checkpoint["offset"] if checkpoint else (
            "@latest" if starting_position is None else starting_position)
        inclusive = False if checkpoint else starting_position_inclusive
        context = PartitionContext("ns.servicebus.windows.net", self.eventhub_name,
                                   self.consumer_group, partition_id, self.checkpoint_store)
        for event in self.log[partition_id].events:
            if _at_or_after(event, position, inclusive):
                on_event(context, event)

    def close(self) -> None:
        pass


def _at_or_after(event: EventData, position: Any, inclusive: bool) -> bool:
    if position == "-1":
        return True
    if position == "@latest":
        return False
    if isinstance(position, datetime):
        key: Any = event.enqueued_time
    elif isinstance(position, int):
        key = event.sequence_number
    else:
        key, position = int(event.offset or 0), int(position)
    return bool(key >= position if inclusive else key > position)


def received(body: str, seq: int, at: datetime) -> EventData:
    """An event as the SDK hands it to on_event: the service's annotations set."""
    event = EventData(body)
    event._raw_amqp_message.annotations.update({
        PROP_SEQ_NUMBER: seq, PROP_OFFSET: str(4096 * seq).encode(),
        PROP_TIMESTAMP: int(at.timestamp() * 1000)})
    return event


def shared_log(old: int, new: int, claimed: datetime) -> dict[str, Partition]:
    log: dict[str, Partition] = {str(p): Partition() for p in range(4)}
    for p in ("1", "2"):
        events = log[p].events
        for i in range(old):
            events.append(received(f"old-{p}-{i}", i, claimed - timedelta(minutes=old - i)))
        for i in range(new):
            events.append(received(f"new-{p}-{i}", old + i, claimed + timedelta(seconds=i + 1)))
    return log


SHARED = BASE + SOLO + """\
eventHubs:
  mode: shared
  eventHubs: [orders]
  namespaces:
    - {name: company1-ehns1, partitions: 4, reserved: [0],
       connectionString: {fromEnv: TEST_EH_CONNECTION}}
  partitionsPerSlice: 2
"""


@pytest.fixture
def shared_project(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """Shared Event Hubs that refuse connections: a port on this machine where nothing
    listens, so the official SDK's client fails as it does for an unreachable namespace."""
    (workdir / "devslice.yaml").write_text(SHARED)
    [port] = free_ports(1)
    monkeypatch.setenv("TEST_EH_CONNECTION", f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName="
                       "RootManageSharedAccessKey;SharedAccessKey=k3y;UseDevelopmentEmulator=true")
    return Project.load(clock=lambda: T0)


def test_fences_on_shared_event_hubs_are_the_last_enqueued_sequence_numbers(
    shared_project: Project,
) -> None:
    project = shared_project
    s, _ = project.claim("bb", owner="Ben B")
    assert s.event_hubs.partitions == (1, 2) and s.start_fences
    log = shared_log(old=50, new=0, claimed=T0)
    project.ledger.transact(lambda state: ops.Transition(state.model_copy(update={"slices": {
        "bb": state.slices["bb"].model_copy(update={"start_fences": ()})}})))
    fenced, reading = fence_new_slice(project, project.get("bb"),
                                      lambda hub: SdkShapedConsumerClient(log, hub))
    assert reading.fallbacks == ()
    assert [(f.partition, f.sequence_number) for f in fenced.start_fences] == [(1, 49), (2, 49)]
    assert project.get("bb").start_fences == fenced.start_fences
    value = {v.name: v.value for v in project.variables("bb", secrets=False)}
    assert value["LOCAL_DEV_EVENTHUBS_STARTFENCE"] == \
        "orders/1=49,orders/2=49,*=2026-03-01T12:00:00.000000Z"


def test_a_fence_falls_back_to_the_claim_time(shared_project: Project) -> None:
    """The official SDK's client cannot connect: every fence of the claim is its time; one
    partition failing falls back alone; a client that cannot be built, too."""
    project = shared_project
    s, _ = project.claim("bb", owner="Ben B")
    assert {f.enqueued_time for f in s.start_fences} == {T0}
    assert {f.sequence_number for f in s.start_fences} == {None}

    class Flaky(SdkShapedConsumerClient):
        def get_partition_properties(self, partition_id: str) -> dict[str, Any]:
            if partition_id == "2":
                raise ConnectError("amqp:connection-refused")
            return super().get_partition_properties(partition_id)

    log = shared_log(old=5, new=0, claimed=T0)
    reading = read_start_fences(lambda hub: Flaky(log, hub), ["orders"], [1, 2], T0)
    assert [(f.sequence_number, f.enqueued_time) for f in reading.fences] == [(4, None),
                                                                               (None, T0)]
    assert reading.fallbacks == ("orders/2: ConnectError",)

    def unreachable(hub: str) -> Any:
        raise DevsliceError("the contract names no Event Hubs connection")

    reading = read_start_fences(unreachable, ["orders"], [1], T0)
    assert [(f.sequence_number, f.enqueued_time) for f in reading.fences] == [(None, T0)]
    assert reading.fallbacks == ("orders: the contract names no Event Hubs connection",)


def sdk_consumer(log: dict[str, Partition], fences: str, store: Any = None,
                 group: str = "$Default") -> tuple[SliceConsumer, list[SdkShapedConsumerClient]]:
    ctx = SliceContext.from_env({
        "LOCAL_DEV_SLICE": "bb", "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "1,2",
        "LOCAL_DEV_SLICE_CLAIM": "bb-20260301120000000000",
        "LOCAL_DEV_EVENTHUBS_STARTFENCE": fences})
    clients: list[SdkShapedConsumerClient] = []

    def factory() -> SdkShapedConsumerClient:
        clients.append(SdkShapedConsumerClient(log, "orders", group, store))
        return clients[-1]

    return SliceConsumer(factory, ctx), clients


def bodies(consumer: SliceConsumer, **kwargs: Any) -> list[str]:
    got: list[str] = []
    consumer.receive(lambda _c, e: got.append(e.body_as_str()), **kwargs)
    return got


@pytest.mark.parametrize("fences", [
    "orders/1=49,orders/2=49,*=2026-03-01T12:00:00Z",  # sequence numbers read at the claim
    "orders/1=2026-03-01T12:00:00Z,orders/2=2026-03-01T12:00:00Z",  # the claim time
    "*=2026-03-01T12:00:00Z",  # an event hub the claim did not list
])
@pytest.mark.parametrize("start", [
    {"starting_position": "-1"},
    {"starting_position": T0 - timedelta(days=1)},
    {"starting_position": 3, "starting_position_inclusive": True},
    {"starting_position": {"1": "-1", "2": 10}},
    {"starting_position": "4096"},  # an offset inside the old events
])
def test_the_sdks_client_shape_never_delivers_below_the_fence(
    fences: str, start: dict[str, Any]
) -> None:
    log = shared_log(old=50, new=7, claimed=T0)
    consumer, _ = sdk_consumer(log, fences)
    got = bodies(consumer, **start)
    assert sorted(got) == sorted(f"new-{p}-{i}" for p in ("1", "2") for i in range(7))


def test_an_old_holders_checkpoint_is_neither_used_nor_seen() -> None:
    """aa checkpointed at sequence number 10 in the official in-memory store, under the
    consumer group's plain name; bb's consumer, seeing the store through its claim, starts
    at its fence; what bb checkpoints lands under its claim."""
    log = shared_log(old=50, new=3, claimed=T0)
    store = InMemoryCheckpointStore()
    for p in ("1", "2"):
        store.update_checkpoint({
            "fully_qualified_namespace": "ns.servicebus.windows.net", "eventhub_name": "orders",
            "consumer_group": "billing", "partition_id": p, "offset": str(4096 * 10),
            "sequence_number": 10})
    fences = "orders/1=49,orders/2=49,*=2026-03-01T12:00:00Z"
    consumer, clients = sdk_consumer(log, fences, ClaimCheckpoints(store,
                                                                   "bb-20260301120000000000"),
                                     group="billing")
    got: list[str] = []

    def on_event(context: Any, event: Any) -> None:
        got.append(event.body_as_str())
        context.update_checkpoint(event)

    consumer.receive(on_event, starting_position="-1")
    assert sorted(got) == sorted(f"new-{p}-{i}" for p in ("1", "2") for i in range(3))
    # the fence moved the start, so the old events were not even read
    assert {(r["starting_position"], r.get("starting_position_inclusive"))
            for c in clients for r in c.receives} == {(49, False)}
    plain = store.list_checkpoints("ns.servicebus.windows.net", "orders", "billing")
    assert {c["sequence_number"] for c in plain} == {10}  # aa's, untouched
    mine = ClaimCheckpoints(store, "bb-20260301120000000000").list_checkpoints(
        "ns.servicebus.windows.net", "orders", "billing")
    assert {(c["partition_id"], c["sequence_number"], c["consumer_group"]) for c in mine} == {
        ("1", 52, "billing"), ("2", 52, "billing")}
    # and the next start of bb's consumer resumes after its own checkpoint
    consumer, _ = sdk_consumer(log, fences, ClaimCheckpoints(store, "bb-20260301120000000000"),
                               group="billing")
    assert bodies(consumer, starting_position="-1") == []


@pytest.mark.azurite
def test_the_official_blob_store_keeps_checkpoints_and_ownership_per_claim(
    azurite: Any,
) -> None:
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
    from azure.storage.blob import ContainerClient

    name = f"checkpoints-{uuid.uuid4().hex[:12]}"
    ContainerClient.from_connection_string(azurite.connection_string(), name).create_container()
    store = BlobCheckpointStore.from_connection_string(azurite.connection_string(), name)
    scoped = ClaimCheckpoints(store, "bb-20260301120000000000")
    claimed = scoped.claim_ownership([{
        "fully_qualified_namespace": "ns", "eventhub_name": "orders",
        "consumer_group": "billing", "partition_id": "1", "owner_id": "me"}])
    assert [(o["consumer_group"], o["owner_id"]) for o in claimed] == [("billing", "me")]
    scoped.update_checkpoint({"fully_qualified_namespace": "ns", "eventhub_name": "orders",
                              "consumer_group": "billing", "partition_id": "1",
                              "offset": "4096", "sequence_number": 1})
    blobs = sorted(b.name for b in ContainerClient.from_connection_string(
        azurite.connection_string(), name).list_blobs())
    assert blobs == ["ns/orders/billing/bb-20260301120000000000/checkpoint/1",
                     "ns/orders/billing/bb-20260301120000000000/ownership/1"]
    assert list(store.list_ownership("ns", "orders", "billing")) == []
    assert list(store.list_checkpoints("ns", "orders", "billing")) == []
    assert [o["owner_id"] for o in scoped.list_ownership("ns", "orders", "billing")] == ["me"]
    assert [(c["consumer_group"], c["sequence_number"]) for c in scoped.list_checkpoints(
        "ns", "orders", "billing")] == [("billing", 1)]


# -- the pieces ------------------------------------------------------------------------------------
def test_the_contract_value_round_trips_and_bad_values_are_located() -> None:
    raw = ("orders/0=1234,orders/1=-1,payments.v2/3=2026-12-07T02:07:49.123456Z,"
           "*=2026-12-07T02:07:49.123456Z")
    fences = StartFences.parse(raw)
    assert fences.format() == raw
    assert fences.fence("orders", "0") == 1234
    assert fences.fence("payments.v2", "3") == datetime(2026, 12, 7, 2, 7, 49, 123456,
                                                        tzinfo=UTC)
    assert fences.fence("other", "0") == fences.default
    for bad in ("orders/0=12a", "orders=3", "orders/x=3", "*=12", "orders/0=2026-12-07T02:07",
                "orders/0"):
        with pytest.raises(ContractError, match="LOCAL_DEV_EVENTHUBS_STARTFENCE"):
            StartFences.parse(bad)
    with pytest.raises(ContractError, match="EVENTHUBS_STARTFENCE has 'orders/0=x'"):
        SliceContext.from_env({"LOCAL_DEV_SLICE": "ab", "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS":
                               "0", "LOCAL_DEV_EVENTHUBS_STARTFENCE": "orders/0=x"})


def test_start_positions_move_up_to_the_fence() -> None:
    t = T0
    assert fenced_start("-1", False, "0", 9) == (9, False)
    assert fenced_start(-1, True, "0", 9) == (9, False)
    assert fenced_start(5, False, "0", 9) == (9, False)
    assert fenced_start(9, True, "0", 9) == (9, False)
    assert fenced_start(9, False, "0", 9) == (9, False)  # already after the fence
    assert fenced_start(10, True, "0", 9) == (10, True)
    assert fenced_start("@latest", False, "0", 9) == ("@latest", False)
    assert fenced_start({"0": "-1", "1": 20}, {"1": True}, "1", 9) == (20, True)
    assert fenced_start("-1", False, "0", -1) == ("-1", False)  # an empty partition
    assert fenced_start("-1", False, "0", t) == (t, True)
    assert fenced_start(t - timedelta(1), False, "0", t) == (t, True)
    assert fenced_start(t + timedelta(1), False, "0", t) == (t + timedelta(1), False)
    assert fenced_start("-1", False, "0", None) == ("-1", False)


def test_a_time_fence_becomes_a_sequence_number_at_the_first_new_event() -> None:
    got: list[int] = []
    admit = behind_fence(lambda _c, e: got.append(e.sequence_number), T0)
    for seq, at in ((0, T0 - timedelta(1)), (1, T0), (2, T0 - timedelta(1)), (3, T0)):
        admit(None, received("x", seq, at))
    # 2 carries an earlier time, as a skewed clock might: after the first new event the
    # partition's order decides, as for the service
    assert got == [1, 2, 3]
    nothing: list[Any] = []
    behind_fence(lambda _c, e: nothing.append(e), 5)(None, None)  # max_wait_time: passes
    assert nothing == [None]


def test_allocation_prefers_partitions_never_used_then_released_longest_ago() -> None:
    pool = PartitionPool((NamespaceCapacity("company1-ns", 4, frozenset()),))
    rule = HandleRule()
    state = LedgerState()

    def claim(handle: str, at: datetime, n: int = 1) -> tuple[int, ...]:
        nonlocal state
        result = ops.claim(state, ops.ClaimRequest(owner=handle, handle=handle, partitions=n),
                           pool, rule, at, "t")
        state = result.state
        assert result.value is not None
        return result.value[0].event_hubs.partitions

    def release(handle: str, at: datetime) -> None:
        nonlocal state
        state = ops.release(state, handle, handle, at, "t").state

    assert claim("aa", T0, 2) == (0, 1)
    release("aa", T0 + timedelta(minutes=1))
    assert state.released == {
        "company1-ns": {0: T0 + timedelta(minutes=1), 1: T0 + timedelta(minutes=1)}}
    assert claim("bb", T0 + timedelta(minutes=2), 2) == (2, 3)  # never used first
    release("bb", T0 + timedelta(minutes=3))
    assert claim("cc", T0 + timedelta(minutes=4)) == (0,)  # released longest ago
    release("cc", T0 + timedelta(minutes=5))
    assert claim("dd", T0 + timedelta(minutes=6), 2) == (1, 2)
    # gc of an expired slice records its partitions as given back too
    result = ops.claim(state, ops.ClaimRequest(owner="ci", kind=SliceKind.ci,
                                               ttl=timedelta(minutes=1)),
                       pool, rule, T0 + timedelta(minutes=7), "t")
    state = result.state
    assert result.value is not None and result.value[0].event_hubs.partitions == (3,)
    state = ops.collect(state, T0 + timedelta(hours=1), "gc").state
    assert state.released["company1-ns"][3] == T0 + timedelta(hours=1)
    assert state.released["company1-ns"][0] == T0 + timedelta(minutes=5)


def test_release_times_survive_the_sqlite_ledger(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db", team="company1")
    pool = PartitionPool((NamespaceCapacity("company1-ns", 4, frozenset()),))
    request = ops.ClaimRequest(owner="aa", handle="aa", partitions=2)
    ledger.transact(lambda s: ops.claim(s, request, pool, HandleRule(), T0, "t"))
    ledger.transact(lambda s: ops.release(s, "aa", "aa", T0 + timedelta(minutes=1), "t"))
    ledger.close()
    again = SqliteLedger(tmp_path / "ledger.db", team="company1")
    assert again.read().released == {"company1-ns": {0: T0 + timedelta(minutes=1),
                                            1: T0 + timedelta(minutes=1)}}
    request = ops.ClaimRequest(owner="bb", handle="bb", partitions=2)
    result = again.transact(lambda s: ops.claim(s, request, pool, HandleRule(),
                                                T0 + timedelta(minutes=2), "t"))
    assert result.value is not None and result.value[0].event_hubs.partitions == (2, 3)


@pytest.mark.azurite
def test_release_times_and_fences_survive_the_blob_ledger(azurite: Any) -> None:
    from azure.storage.blob import ContainerClient

    from devslice.ledger.azureblob import AzureBlobLedger

    container = ContainerClient.from_connection_string(
        azurite.connection_string(), f"ledger-{uuid.uuid4().hex[:12]}")
    ledger = AzureBlobLedger(container, "ledger.json", "company1")
    pool = PartitionPool((NamespaceCapacity("company1-ns", 4, frozenset()),))
    request = ops.ClaimRequest(owner="aa", handle="aa", partitions=2)
    result = ledger.transact(lambda s: ops.claim(s, request, pool, HandleRule(), T0, "t"))
    assert result.value is not None
    claim = result.value[0].claim
    assert claim == "aa-20260301120000000000"
    fences = read_start_fences(lambda hub: SdkShapedConsumerClient(
        shared_log(old=3, new=0, claimed=T0), hub), ["orders"], [0, 1], T0).fences
    ledger.transact(lambda s: ops.record_fences(s, "aa", claim, fences))
    held = ledger.read().slices["aa"]
    assert held.start_fences == fences
    assert contract_fences(held) is not None
    ledger.transact(lambda s: ops.release(s, "aa", "aa", T0 + timedelta(minutes=1), "t"))
    assert AzureBlobLedger(container, "ledger.json", "company1").read().released == {
        "company1-ns": {0: T0 + timedelta(minutes=1), 1: T0 + timedelta(minutes=1)}}


def test_fences_are_recorded_only_for_the_same_claim() -> None:
    pool = PartitionPool((NamespaceCapacity("company1-ns", 4, frozenset()),))
    request = ops.ClaimRequest(owner="aa", handle="aa")
    state = ops.claim(LedgerState(), request, pool, HandleRule(), T0, "t").state
    fences = read_start_fences(lambda hub: SdkShapedConsumerClient(
        {"0": Partition()}, hub), ["orders"], [0], T0).fences
    assert ops.record_fences(state, "aa", "aa-other", fences).value is None
    assert ops.record_fences(state, "zz", "zz-1", fences).value is None
    fenced = ops.record_fences(state, "aa", ops.claim_id("aa", T0), fences)
    assert fenced.value is not None and fenced.value.start_fences == fences
    assert ops.record_fences(fenced.state, "aa", ops.claim_id("aa", T0), ()).value is None



# -- verify ----------------------------------------------------------------------------------------
FENCE_CHECK = "a consumer of the slice sees nothing from before its claim"


def test_verify_reads_the_slice_from_the_beginning_and_finds_nothing_old(workdir: Path) -> None:
    from devslice.verify import verify

    project = embedded_project(workdir, Clock())
    project.claim("aa", owner="Ann A")
    publish(contract(project, "aa"), "orders", [f"aa-{i}" for i in range(12)])
    project.release("aa", owner="Ann A")
    project.claim("bb", owner="Ben B")
    publish(contract(project, "bb"), "orders", [f"bb-{i}" for i in range(5)])
    [check] = [c for c in verify(project, "bb") if c.name == FENCE_CHECK]
    assert (check.status, check.detail) == (
        "ok", "read 2 event hubs from the beginning: 5 events, none from before the claim")


def test_verify_fails_when_old_events_get_through(workdir: Path) -> None:
    """A ledger whose fences were lost (edited by hand to 'empty'): the contract matches the
    ledger, and the read-back catches the previous holder's events."""
    from devslice.verify import start_fence_check

    project = embedded_project(workdir, Clock())
    project.claim("aa", owner="Ann A")
    publish(contract(project, "aa"), "orders", [f"aa-{i}" for i in range(3)])
    project.release("aa", owner="Ann A")
    project.claim("bb", owner="Ben B")
    project.ledger.transact(lambda state: ops.Transition(state.model_copy(update={"slices": {
        "bb": state.slices["bb"].model_copy(update={"start_fences": tuple(
            f.model_copy(update={"sequence_number": -1}) for f in state.slices["bb"].start_fences
        )})}})))
    check = start_fence_check(project, "bb")
    assert check.status == "failed"
    assert check.detail.startswith("3 events from before the claim (")
    assert "orders/" in check.detail


def test_verify_fails_when_an_override_moves_the_fence(workdir: Path) -> None:
    from devslice.verify import start_fence_check

    project = embedded_project(workdir, Clock())
    project.claim("bb", owner="Ben B")
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: bb\n"
        "env: {LOCAL_DEV_EVENTHUBS_STARTFENCE: 'orders/0=-1'}\n")
    check = start_fence_check(project, "bb")
    assert check.status == "failed"
    assert "LOCAL_DEV_EVENTHUBS_STARTFENCE=orders/0=-1, but the ledger has claim bb-" \
        in check.detail


def test_the_embedded_hub_answers_get_partition_properties_like_the_sdk(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "eh.db", partitions=2)
    client = EmbeddedConsumerClient(hub, "orders")
    empty = client.get_partition_properties("1")
    # the keys azure.eventhub's ClientBase._get_partition_properties returns
    assert empty == {"eventhub_name": "orders", "id": "1", "beginning_sequence_number": 0,
                     "last_enqueued_sequence_number": -1, "last_enqueued_offset": "-1",
                     "last_enqueued_time_utc": datetime(1970, 1, 1, tzinfo=UTC),
                     "is_empty": True}
    hub.append("orders", "1", [EventData("a"), EventData("b")])
    props = client.get_partition_properties("1")
    assert (props["beginning_sequence_number"], props["last_enqueued_sequence_number"],
            props["last_enqueued_offset"], props["is_empty"]) == (0, 1, "1", False)
    assert props["last_enqueued_time_utc"] == hub.read("orders", "1", 0)[0].enqueued_time
    hub.close()


def test_slice_show_says_where_each_partition_begins(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from devslice.cli.app import run

    project = embedded_project(workdir, Clock())
    project.claim("aa", owner="Ann A")
    publish(contract(project, "aa"), "orders", [f"aa-{i}" for i in range(10)])
    project.release("aa", owner="Ann A")
    project.claim("bb", owner="Ben B")
    hub = EmbeddedHub(workdir / ".devslice" / "eventhubs.db", partitions=2)
    last = {p: hub.last_sequence_number("orders", p) for p in ("0", "1")}
    hub.close()
    capsys.readouterr()
    assert run(["slice", "show", "bb"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(claim bb-" in out
    assert f"orders/0 after #{last['0']}" in out and f"orders/1 after #{last['1']}" in out
    assert "payments/0 from its first event (empty when claimed)" in out
