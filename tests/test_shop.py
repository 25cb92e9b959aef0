"""The shop example (examples/shop) end to end for one slice, for real, in the local runtime:
`devslice slice claim` and `up` start Azurite and the three services as processes; orders
placed over HTTP become events on the slice's own partitions of the embedded event hub, an
invoice blob each in the slice's container on Azurite, and a push each to the slice's SignalR
hub (a recording HTTP server stands in for Azure SignalR's REST API); `down` leaves no
process behind. And for the k3d runtime: its manifests, as devslice renders them, are valid
Kubernetes 1.30 objects using the example's images."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import jwt
import kubernetes_validate
import pytest
from azure.storage.blob import ContainerClient

from devslice.cli.app import run
from devslice.embedded import EmbeddedHub
from devslice.facts.ports import port_open
from devslice.local.state import read_json
from devslice.project import Project
from devslice.resources.images import image_refs
from devslice.resources.manifests import load_layer, render
from devslice.sdk.eventhubs import partition_for_key
from devslice.secrets import MASK
from devslice.testing import AzuriteNotFound, find_azurite

from .helpers import REPO, SOLO, free_ports, gone

EXAMPLE = REPO / "examples" / "shop"
SIGNALR_KEY = "c2hvcC10ZXN0LWFjY2Vzcy1rZXktMzItYnl0ZXMtbG9uZw=="  # shaped like an AccessKey
ORDERS = [("c-anna", 10), ("c-ben", 20.5), ("c-cara", 7.25), ("c-dan", 99),
          ("c-eve", 1), ("c-anna", 30)]

T = TypeVar("T")




def eventually(probe: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(0.1)  # the poll of a wait on a condition, with a deadline


@dataclass
class SignalRHub:
    """What Azure SignalR's REST API would receive: (path, authorization, body) per send."""

    port: int = 0
    sends: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def connection_string(self) -> str:
        return f"Endpoint=http://127.0.0.1:{self.port};AccessKey={SIGNALR_KEY};Version=1.0;"


@pytest.fixture
def signalr() -> Iterator[SignalRHub]:
    hub = SignalRHub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hub.sends.append((self.path, self.headers.get("Authorization", ""),
                              json.loads(body)))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hub
    server.shutdown()
    server.server_close()
    thread.join()


@dataclass
class Shop:
    root: Path
    web_port: int
    blob_port: int


def rewrite(text: str, old: str, new: str, count: int = 1) -> str:
    assert text.count(old) == count, f"examples/shop/devslice.yaml no longer has {old!r}"
    return text.replace(old, new)


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signalr: SignalRHub) -> Iterator[Shop]:
    """A copy of the example on free ports, in the local runtime, with SignalR configured."""
    try:
        azurite = find_azurite(REPO)
    except AzuriteNotFound:
        if os.environ.get("DEVSLICE_REQUIRE_AZURITE"):
            raise
        pytest.skip("azurite is not installed (npm install); CI sets DEVSLICE_REQUIRE_AZURITE")
    root = tmp_path / "shop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(
        ".devslice", "devslice.local.yaml", "__pycache__", "vendor"))
    web, blob, queue = free_ports(3)
    config = (root / "devslice.yaml").read_text()
    config = rewrite(config, "runtime: auto", "runtime: local")  # k3d is for another test
    config = rewrite(config, "127.0.0.1:10000/", f"127.0.0.1:{blob}/")
    config = rewrite(config, "127.0.0.1:10001/", f"127.0.0.1:{queue}/")
    config = rewrite(config, 'PORT: "8080"', f'PORT: "{web}"')
    config = rewrite(config, "ready: {port: 8080}", f"ready: {{port: {web}}}")
    config = rewrite(config, "  hubs: [notifications]\n", "  hubs: [notifications]\n"
                     "  connectionString: {fromEnv: SHOP_SIGNALR_CONNECTION_STRING}\n")
    (root / "devslice.yaml").write_text(config + SOLO)  # SignalR is shared (a fake here)
    monkeypatch.setenv("SHOP_SIGNALR_CONNECTION_STRING", signalr.connection_string)
    # The example's `run: python -m ...` finds the interpreter on PATH, as from an activated
    # venv; and the copy has no node_modules above it to find Azurite in.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AZURITE_BIN", azurite)
    monkeypatch.chdir(root)
    yield Shop(root, web, blob)
    run(["down"])  # whatever a failing test left running


def post_order(port: int, body: object) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/orders", json.dumps(body),
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def contract(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    capsys.readouterr()
    assert run(["env", "-o", "json"]) == 0
    data: dict[str, str] = json.loads(capsys.readouterr().out)
    return data


def test_the_manifests_render_to_valid_kubernetes_objects_with_the_example_images() -> None:
    project = Project.load(EXAMPLE / "devslice.yaml")
    env = project.env
    assert [i.name for i in env.images] == ["orders", "billing", "notifier"]
    refs = image_refs(env.images, EXAMPLE, "k3d-devslice-registry:5050")  # Dockerfiles exist
    images: set[str] = set()
    kinds: set[str] = set()
    for layer in env.manifests:
        loaded = load_layer(EXAMPLE / layer.path, layer.path)
        for m in [*loaded, *render(loaded, handle="ab", layer=layer.name, images=refs)]:
            kubernetes_validate.validate(m.obj, "1.30", strict=True)
        for m in render(loaded, handle="ab", layer=layer.name, images=refs):
            kinds.add(f"{m.obj['kind']}/{m.obj['metadata']['name']}")
            for c in m.obj.get("spec", {}).get("template", {}).get("spec", {}).get(
                    "containers", []):
                images.add(c["image"])
                assert {"configMapRef": {"name": "devslice-ab"}} in c["envFrom"]
    assert images == set(refs.values())  # every image used, every reference rewritten
    assert kinds == {"ConfigMap/traefik-settings", "Deployment/orders", "Service/orders",
                     "Deployment/billing", "Deployment/notifier"}


@pytest.mark.azurite
def test_orders_become_invoices_in_the_slice_and_down_leaves_nothing(
    shop: Shop, signalr: SignalRHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["slice", "claim"]) == 0
    assert run(["up", "-o", "json"]) == 0
    state = read_json(shop.root / ".devslice" / "local" / "ab" / "state.json")
    shared = read_json(shop.root / ".devslice" / "local" / "_emulators" / "state.json")
    services = state["services"]
    assert {n: s["state"] for n, s in services.items()} == dict.fromkeys(
        ["orders", "billing", "notifier"], "ready")
    assert shared["services"]["azurite"]["state"] == "ready"  # one per checkout, all slices'
    pids = [state["supervisor"]["pid"], shared["supervisor"]["pid"],
            *(s["pid"] for s in services.values()), shared["services"]["azurite"]["pid"]]

    env = contract(capsys)
    own = env["LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"].split(",")
    assert (env["LOCAL_DEV_SLICE"], own) == ("ab", ["0", "1"])
    # Azurite's key for the slice's account is derived by a public formula: not a secret, so
    # JSON shows it; the SignalR connection string is one, and stays masked.
    storage_cs = env["LOCAL_DEV_STORAGE_CONNECTIONSTRING"]
    assert "AccountName=shopstacc4ab;" in storage_cs and MASK not in storage_cs
    assert env["LOCAL_DEV_SIGNALR_CONNECTIONSTRING"] == MASK

    # -- orders: 202 with an id; a bad order is refused and publishes nothing ------------
    placed: dict[str, tuple[str, float]] = {}
    for customer, amount in ORDERS:
        status, body = post_order(shop.web_port, {"customer": customer, "amount": amount})
        assert (status, body["slice"]) == (202, "ab"), body
        placed[body["orderId"]] = (customer, float(amount))
    assert post_order(shop.web_port, {"customer": "c-x", "amount": -1})[0] == 400

    # -- billing: an invoice per order in the slice's container on Azurite -----------------
    assert env["LOCAL_DEV_NAME_INVOICES"] == "invoices-ab"
    wanted = {f"invoices/{order_id}.json" for order_id in placed}
    with ContainerClient.from_connection_string(
            storage_cs, container_name=env["LOCAL_DEV_NAME_INVOICES"]) as invoices:
        def all_invoices() -> set[str] | None:
            names = {b.name for b in invoices.list_blobs()} if invoices.exists() else set()
            return names if names >= wanted else None

        assert eventually(all_invoices, "an invoice for every order") == wanted
        for order_id, (customer, amount) in placed.items():
            invoice = json.loads(invoices.download_blob(f"invoices/{order_id}.json").readall())
            assert (invoice["customer"], invoice["net"], invoice["total"], invoice["slice"]) \
                == (customer, amount, round(amount * 1.2, 2), "ab")

    # -- the events stayed in the slice's partitions, keyed by customer --------------------
    hub = EmbeddedHub(env["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"].removeprefix("embedded:"),
                      partitions=int(env["LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT"]))
    try:
        where: dict[str, str] = {}
        for pid in hub.partition_ids("orders"):
            for event in hub.read("orders", pid, -1):
                order = event.body_as_json()
                where[order["orderId"]] = pid
                assert event.properties[b"Database"] == "db4ab"
        assert where.keys() == placed.keys()  # nothing else was published, nothing lost
        assert set(where.values()) <= set(own)
        for order_id, (customer, _) in placed.items():
            assert where[order_id] == partition_for_key(customer, own)
        # checkpoints are kept per claim of the slice (issue 11)
        group = f"billing/{env['LOCAL_DEV_SLICE_CLAIM']}"
        checkpoints = {c["partition_id"]: c["sequence_number"] for c in hub.list_checkpoints(
            "embedded", "orders", group)}
        assert set(checkpoints) <= set(own) and sum(s + 1 for s in checkpoints.values()) \
            == len(placed)  # billing checkpointed every event it handled
    finally:
        hub.close()

    # -- notifier: a push per order to the slice's hub, signed for exactly that URL ---------
    def all_pushes() -> list[tuple[str, str, dict[str, Any]]] | None:
        return list(signalr.sends) if len(signalr.sends) >= len(placed) else None

    sends = eventually(all_pushes, "a SignalR push for every order")
    path = "/api/v1/hubs/notifications_ab"
    assert {p for p, _, _ in sends} == {path}
    assert sorted(body["arguments"][0]["orderId"] for _, _, body in sends) == sorted(placed)
    assert {body["target"] for _, _, body in sends} == {"orderPlaced"}
    token = sends[0][1].removeprefix("Bearer ")
    jwt.decode(token, SIGNALR_KEY.encode(), algorithms=["HS256"],
               audience=f"http://127.0.0.1:{signalr.port}{path}")

    # -- down: every process it started is gone, and nothing listens any more --------------
    assert run(["down"]) == 0
    for pid in pids:
        assert gone(pid), f"process {pid} is still running after down"
    assert not port_open(shop.web_port) and not port_open(shop.blob_port)


@pytest.mark.azurite
def test_two_developers_on_one_machine_nothing_leaks(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    """Slices ab and cd of the example run at once: each one's orders become invoices in its
    own storage only, no event crosses, `verify` is green for both, and `down` for both leaves
    nothing running."""
    config = (shop.root / "devslice.yaml").read_text()
    config = rewrite(config, f'env: {{PORT: "{shop.web_port}"}}\n    '
                             f"ready: {{port: {shop.web_port}}}", "port: auto")
    (shop.root / "devslice.yaml").write_text(config)
    assert run(["slice", "claim", "ab"]) == 0
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    placed: dict[str, dict[str, str]] = {"ab": {}, "cd": {}}
    pids: list[int] = []
    try:
        for handle in ("ab", "cd"):
            assert run(["up", "--slice", handle, "-o", "json"]) == 0
        for handle in ("ab", "cd"):
            local = shop.root / ".devslice" / "local" / handle
            port = int(read_json(local / "spec.json")["services"][0]["env"]["PORT"])
            pids += [int(s["pid"]) for s in read_json(local / "state.json")["services"].values()]
            for customer, amount in ORDERS:
                status, body = post_order(port, {"customer": f"{handle}-{customer}",
                                                 "amount": amount})
                assert (status, body["slice"]) == (202, handle)
                placed[handle][body["orderId"]] = f"{handle}-{customer}"
        envs = {}
        for handle in ("ab", "cd"):
            capsys.readouterr()
            assert run(["env", "--slice", handle, "-o", "json"]) == 0
            envs[handle] = json.loads(capsys.readouterr().out)
        for handle in ("ab", "cd"):
            env = envs[handle]
            with ContainerClient.from_connection_string(
                    env["LOCAL_DEV_STORAGE_CONNECTIONSTRING"],
                    container_name=env["LOCAL_DEV_NAME_INVOICES"]) as invoices:
                wanted = {f"invoices/{o}.json" for o in placed[handle]}

                def mine(c: ContainerClient = invoices,
                         w: set[str] = wanted) -> set[str] | None:
                    names = {b.name for b in c.list_blobs()} if c.exists() else set()
                    return names if names >= w else None

                assert eventually(mine, f"{handle}'s invoices") == wanted  # and no other
        hub = EmbeddedHub(envs["ab"]["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"]
                          .removeprefix("embedded:"), partitions=8)
        try:
            crossing = 0
            for handle in ("ab", "cd"):
                own = envs[handle]["LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"].split(",")
                for pid in own:
                    for event in hub.read("orders", pid, -1):
                        crossing += event.body_as_json()["orderId"] not in placed[handle]
            assert crossing == 0
        finally:
            hub.close()
        for handle in ("ab", "cd"):
            capsys.readouterr()
            assert run(["verify", "--slice", handle]) == 0, capsys.readouterr().out
        shared = read_json(shop.root / ".devslice" / "local" / "_emulators" / "state.json")
        pids.append(int(shared["services"]["azurite"]["pid"]))
    finally:
        run(["down", "--slice", "cd"])
        run(["down", "--slice", "ab"])
    for pid in pids:
        assert gone(pid), f"process {pid} is still running after down"
