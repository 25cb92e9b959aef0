"""Consumer leases as coordination.k8s.io/v1 Leases (devslice.sdk.kubelease), against the
wire-level fake Kubernetes API with a real lightkube Client: acquire, renew, take-over after
expiry, refusal while live, release, racing acquirers (one wins through a resourceVersion
conflict), the SDK picking the store in a pod, and a SliceConsumer on the embedded hub that
steps aside while a Kubernetes lease is held and resumes after it without losing an event."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig

from devslice.adapters.kube import FIELD_MANAGER, MANAGED_BY, SLICE_LABEL, Kube
from devslice.debug import hold_lease
from devslice.embedded import EmbeddedHub
from devslice.sdk import SliceContext, kubelease
from devslice.sdk.eventhubs import SliceConsumer, SliceProducer
from devslice.sdk.kubelease import KubeLeaseStore, kube_lease_name, pod_namespace
from devslice.sdk.leases import HeldLease, LeaseHeld, LeaseWatch, lease_name
from devslice.testing.kubeapi import FakeKubeAPI
from devslice.testing.slice import embedded_slice_env

from .helpers import wait_for

NAME = lease_name("orders", "ab")
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI(namespaces=("default", "team-ab")) as fake:
        yield fake


@pytest.fixture
def client(api: FakeKubeAPI) -> Iterator[Client]:
    c = Client(KubeConfig.from_dict(api.kubeconfig()))
    yield c
    c.close()


class Clock:
    """A clock the test moves: leases expire without waiting out their TTL."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def the_lease(api: FakeKubeAPI, namespace: str = "team-ab") -> dict[str, Any] | None:
    return api.get("coordination.k8s.io/v1", "Lease", kube_lease_name(NAME), namespace)


def test_the_fake_serves_leases_with_create_and_replace(api: FakeKubeAPI) -> None:
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "x"}, "spec": {"holderIdentity": "a"}}
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    code, _, out = api.handle("POST", path, "application/json", json.dumps(body).encode())
    assert code == 200
    rv = json.loads(out)["metadata"]["resourceVersion"]
    code, _, out = api.handle("POST", path, "application/json", json.dumps(body).encode())
    assert code == 409 and json.loads(out)["reason"] == "AlreadyExists"
    stale = {**body, "metadata": {"name": "x", "resourceVersion": "0"}}
    code, _, out = api.handle("PUT", f"{path}/x", "application/json", json.dumps(stale).encode())
    assert code == 409 and json.loads(out)["reason"] == "Conflict"
    # a replace that changes something moves the resourceVersion (a no-op one does not, as
    # the real store skips writing identical bytes)
    fresh = {**body, "metadata": {"name": "x", "resourceVersion": rv},
             "spec": {"holderIdentity": "b"}}
    code, _, out = api.handle("PUT", f"{path}/x", "application/json", json.dumps(fresh).encode())
    assert code == 200 and json.loads(out)["metadata"]["resourceVersion"] != rv


def test_acquire_renew_refuse_release(api: FakeKubeAPI, client: Client) -> None:
    clock = Clock()
    store = KubeLeaseStore(client, "team-ab", clock)
    first = store.acquire_lease(NAME, "me", 30)
    assert first is not None and first.holder == "me" and first.seconds_left > 29
    obj = the_lease(api)
    assert obj is not None and DNS1123.match(obj["metadata"]["name"])
    spec = obj["spec"]
    assert spec["holderIdentity"] == "me" and spec["leaseDurationSeconds"] == 30
    assert MICRO.match(spec["renewTime"]) and MICRO.match(spec["acquireTime"])

    assert store.acquire_lease(NAME, "you", 30) is None  # live: refused
    with pytest.raises(LeaseHeld, match="held by me"):
        HeldLease(store, NAME, "you", 30).acquire()
    clock.advance(5)
    assert store.acquire_lease(NAME, "me", 30) is not None  # renewed
    renewed = the_lease(api)
    assert renewed is not None
    assert renewed["spec"]["renewTime"] > spec["renewTime"]
    assert renewed["spec"]["acquireTime"] == spec["acquireTime"]

    store.release_lease(NAME, "you")  # not yours: nothing happens
    live = store.live_lease(NAME)
    assert live is not None and live.holder == "me"
    store.release_lease(NAME, "me")
    assert the_lease(api) is None and store.live_lease(NAME) is None
    store.release_lease(NAME, "me")  # already gone: fine


def test_an_expired_lease_is_taken_over(api: FakeKubeAPI, client: Client) -> None:
    clock = Clock()
    store = KubeLeaseStore(client, "team-ab", clock)
    assert store.acquire_lease(NAME, "me", 0.3) is not None  # whole seconds: 1
    clock.advance(0.9)
    assert store.live_lease(NAME) is not None
    clock.advance(0.2)
    assert store.live_lease(NAME) is None  # expired
    taken = store.acquire_lease(NAME, "you", 30)
    assert taken is not None and taken.holder == "you"
    obj = the_lease(api)
    assert obj is not None and obj["spec"]["leaseTransitions"] == 1


def test_racing_acquirers_one_wins_through_the_resource_version(
        api: FakeKubeAPI, client: Client) -> None:
    clock = Clock()
    store = KubeLeaseStore(client, "team-ab", clock)
    assert store.acquire_lease(NAME, "old", 1) is not None
    clock.advance(1.1)  # expired: both may take it over
    stale = the_lease(api)
    assert stale is not None
    a, b = KubeLeaseStore(client, "team-ab", clock), KubeLeaseStore(client, "team-ab", clock)
    reads: list[dict[str, Any] | None] = [stale]
    real_get = b._get
    b._get = lambda name: reads.pop() if reads else real_get(name)  # type: ignore[method-assign]
    assert a.acquire_lease(NAME, "a", 30) is not None
    api.clear_requests()
    assert b.acquire_lease(NAME, "b", 30) is None  # its PUT conflicts; read again: a's
    assert [line.split(" ")[0] for line in api.calls()] == ["PUT", "GET"]
    puts = [r for r in api.requests if r.method == "PUT"]
    assert json.loads(puts[0].body)["metadata"]["resourceVersion"] == \
        stale["metadata"]["resourceVersion"]
    live = store.live_lease(NAME)
    assert live is not None and live.holder == "a"


def test_many_threads_racing_for_a_new_lease_one_wins(api: FakeKubeAPI, client: Client
                                                      ) -> None:
    barrier = threading.Barrier(6)
    won: list[str] = []

    def take(holder: str) -> None:
        store = KubeLeaseStore(client, "team-ab")
        barrier.wait()
        if store.acquire_lease(NAME, holder, 30) is not None:
            won.append(holder)

    threads = [threading.Thread(target=take, args=(f"h{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(won) == 1
    live = KubeLeaseStore(client, "team-ab").live_lease(NAME)
    assert live is not None and live.holder == won[0]


def test_an_unreachable_cluster_does_not_stop_a_consumer(tmp_path: Path) -> None:
    store = KubeLeaseStore(None, "team-ab")  # in-cluster, but there is no service account
    assert LeaseWatch(store, NAME).blocking() is None


# -- the SDK in a pod --------------------------------------------------------------------------

def test_the_pods_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubelease, "NAMESPACE_FILE", tmp_path / "namespace")
    assert pod_namespace({"POD_NAMESPACE": "x"}) is None  # not in a pod
    pod = {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "POD_NAMESPACE": "from-env"}
    assert pod_namespace(pod) == "from-env"
    (tmp_path / "namespace").write_text("team-ab\n")
    assert pod_namespace(pod) == "team-ab"


def test_a_consumer_in_a_pod_watches_a_kubernetes_lease(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubelease, "NAMESPACE_FILE", tmp_path / "namespace")
    monkeypatch.delenv("DEVSLICE_LEASE_HOLDER", raising=False)
    shared = SliceContext.from_env({
        "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING":
            "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s"})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert SliceConsumer.from_context("orders", ctx=shared, service="orders").lease is None
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.43.0.1")
    monkeypatch.setenv("POD_NAMESPACE", "team-ab")
    lease = SliceConsumer.from_context("orders", ctx=shared, service="orders").lease
    assert lease is not None and isinstance(lease.store, KubeLeaseStore)
    assert lease.store.namespace == "team-ab" and lease.name == lease_name("orders", None)
    embedded = SliceContext.from_env(embedded_slice_env(tmp_path, handle="ab"))
    lease = SliceConsumer.from_context("orders", ctx=embedded, service="orders").lease
    assert lease is not None and isinstance(lease.store, EmbeddedHub)  # its hub's file


def publish(ctx: SliceContext, *bodies: str) -> None:
    with SliceProducer.from_context("orders", ctx=ctx) as producer:
        for body in bodies:
            producer.send(body, partition_id="0")


@pytest.mark.parametrize("ending", ["released", "expired"])
def test_a_consumer_steps_aside_while_a_kubernetes_lease_is_held(
        tmp_path: Path, api: FakeKubeAPI, client: Client, ending: str) -> None:
    ctx = SliceContext.from_env(embedded_slice_env(tmp_path, handle="ab"))
    clock = Clock()
    store = KubeLeaseStore(client, "team-ab", clock)
    consumer = SliceConsumer.from_context("orders", "billing", ctx=ctx, service="orders")
    consumer.lease = LeaseWatch(store, NAME, None, 0.05)
    received: list[str] = []
    lease_path = f"/leases/{kube_lease_name(NAME)}"

    def count(method: str) -> int:
        return sum(1 for r in list(api.requests)
                   if r.method == method and r.path.endswith(lease_path))

    def looks_again() -> None:
        """Until the consumer has read the lease twice more (its poll: it decided again)."""
        seen = count("GET")
        wait_for(lambda: count("GET") >= seen + 2, what="the consumer looking at the lease")

    def renewed_now() -> bool:
        """The holder renewed the lease at the clock's present time."""
        obj = the_lease(api)
        stamp = clock.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return obj is not None and obj["spec"]["renewTime"] == stamp

    thread = threading.Thread(target=consumer.receive,
                              args=(lambda _c, e: received.append(e.body_as_str()),),
                              kwargs={"starting_position": "-1"}, daemon=True)
    thread.start()
    try:
        publish(ctx, "e0")
        wait_for(lambda: received == ["e0"], what="e0")
        if ending == "released":
            with HeldLease(store, NAME, "debugger", ttl=1):
                wait_for(lambda: consumer.paused_by is not None, what="the pause")
                publish(ctx, "e1", "e2")
                for _ in range(4):  # over two TTLs pass on the clock: renewals keep it held
                    clock.advance(0.6)  # under the TTL since the last renewal
                    wait_for(renewed_now, what="a renewal")
                    looks_again()
                    assert received == ["e0"]
        else:  # a killed session: nobody renews, nobody releases
            assert store.acquire_lease(NAME, "debugger", 1) is not None
            wait_for(lambda: consumer.paused_by is not None, what="the pause")
            publish(ctx, "e1", "e2")
            looks_again()
            assert received == ["e0"]
            clock.advance(1.1)  # the TTL ran out
        wait_for(lambda: len(received) == 3, what="the resumption")
        assert received == ["e0", "e1", "e2"]  # nothing lost, nothing twice
    finally:
        consumer.close()
        thread.join(10)
    assert not thread.is_alive()


# -- the debug side ----------------------------------------------------------------------------

def test_on_k3d_the_lease_goes_to_the_namespace_of_the_services_deployment(
        api: FakeKubeAPI, client: Client) -> None:
    api.apply({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "orders", "namespace": "team-ab",
                            "labels": {MANAGED_BY: FIELD_MANAGER, SLICE_LABEL: "ab"}},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "orders"}},
                        "template": {"metadata": {"labels": {"app": "orders"}},
                                     "spec": {"containers": [{"name": "o", "image": "o"}]}}}})
    held = hold_lease(KubeLeaseStore(Kube(client), None), "ab", "orders", ttl=5)
    assert isinstance(held.store, KubeLeaseStore) and held.store.namespace == "team-ab"
    with held:
        obj = the_lease(api)
        assert obj is not None and obj["spec"]["holderIdentity"].startswith(
            "devslice-debug/orders@")
    assert the_lease(api) is None
