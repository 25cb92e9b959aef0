"""Plans as tables: facts in, actions out (after pyinfra's operation tests).

Each resource's ``plan(facts)`` is a function of its desired state and the facts its
``read`` gathered; these tests hand in facts directly, with adapters that fail on any call,
so a plan that reads the world (or a registry change inside a plan) fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devslice.adapters.dockerdata import (
    ContainerFact,
    Mount,
    PortBinding,
    PortInUse,
    create_call,
    pull_call,
    remove_call,
    start_call,
    volume_create_call,
)
from devslice.adapters.k3d import ClusterFact, K3dVersion, NodeFact, RegistryFact
from devslice.adapters.kube import KubeView
from devslice.config.model import ClusterSettings, ImageSettings, ManifestLayer, RegistrySettings
from devslice.errors import CommandFailed, ToolMissing
from devslice.facts.world import Reader
from devslice.resources.containers import (
    ContainerFacts,
    ContainerResource,
    ContainerSpec,
    GeneratedFile,
    Setup,
)
from devslice.resources.dataexplorer import DatabaseFacts, EmulatorDatabaseResource
from devslice.resources.images import ImageFacts, ImageResource
from devslice.resources.k3d import (
    ClusterFacts,
    ClusterResource,
    RegistryFacts,
    RegistryResource,
    aspects,
    k3d_config,
)
from devslice.resources.manifests import (
    HASH_ANNOTATION,
    LAYER_LABEL,
    Manifest,
    ManifestsFacts,
    ManifestsResource,
    render,
)
from devslice.sdk.dataexplorer import DataExplorer, DataExplorerUnreachable


class Untouchable:
    """An adapter a pure plan never calls."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"plan() called the adapter: .{name}")


NEW = K3dVersion((5, 7, 4), "v5.7.4")
OLD = K3dVersion((4, 4, 8), "v4.4.8")
REG = RegistrySettings(name="devslice-registry", port=5050)


def registry(port: int | None = 5050, running: bool = True,
             networks: tuple[str, ...] = ("k3d-dev",)) -> RegistryFact:
    return RegistryFact("k3d-devslice-registry", port, "0.0.0.0", running,
                        "running" if running else "exited", networks)


def cluster(servers_running: int = 1, agents: int = 0, subnet: str = "172.28.0.0/16"
            ) -> ClusterFact:
    nodes = (NodeFact("k3d-dev-server-0", "server", servers_running > 0,
                      "running" if servers_running else "exited"),)
    return ClusterFact("dev", servers_running, 1, 0, agents, nodes, "k3d-dev", subnet)


@pytest.mark.parametrize(("fact", "verb", "reason"), [
    (None, "create", "registry k3d-devslice-registry does not exist"),
    (registry(port=5000), "recreate", "recreate registry: port 5000 -> 5050"),
    (registry(running=False), "recreate",
     "recreate registry: k3d-devslice-registry is exited (k3d 5.x cannot start a registry)"),
    (registry(), "noop", "registry k3d-devslice-registry already running on 5050"),
])
def test_registry_plans(fact: RegistryFact | None, verb: str, reason: str) -> None:
    resource = RegistryResource(Untouchable(), REG)  # type: ignore[arg-type]
    [action] = resource.plan(RegistryFacts(registry=fact, version=NEW))
    assert (action.verb, action.reason) == (verb, reason)


def test_registry_plan_refuses_an_old_k3d_only_when_it_would_act() -> None:
    resource = RegistryResource(Untouchable(), REG)  # type: ignore[arg-type]
    with pytest.raises(ToolMissing, match=r"k3d v4\.4\.8 is installed"):
        resource.plan(RegistryFacts(registry=None, version=OLD))
    assert resource.plan(RegistryFacts(registry=registry()))[0].verb == "noop"


SETTINGS = ClusterSettings(name="dev", subnet="172.28.0.0/16", registry=REG)


def cluster_resource(tmp_path: Path) -> ClusterResource:
    return ClusterResource(Untouchable(), SETTINGS, tmp_path,  # type: ignore[arg-type]
                           networks=Untouchable())  # type: ignore[arg-type]


def applied(**changes: Any) -> dict[str, Any]:
    return {**k3d_config(SETTINGS), **changes}


@pytest.mark.parametrize(("facts", "verb", "reason"), [
    (ClusterFacts(cluster=None, subnet="172.28.0.0/16", networks={}, version=NEW),
     "create", "cluster dev does not exist"),
    (ClusterFacts(cluster=cluster(), subnet="172.28.0.0/16", applied=applied(),
                  registry=registry()),
     "noop", "cluster dev already running (1/1 servers, 0/0 agents running)"),
    (ClusterFacts(cluster=cluster(servers_running=0), subnet="172.28.0.0/16",
                  applied=applied(), registry=registry(), version=NEW),
     "start", "cluster dev is stopped (0/1 servers, 0/0 agents running)"),
    (ClusterFacts(cluster=cluster(), subnet="172.28.0.0/16",
                  applied=applied(ports=[{"port": "8080:80"}]), registry=registry(),
                  version=NEW),
     "recreate", "recreate cluster dev: ports 8080:80 -> none"),
    (ClusterFacts(cluster=cluster(), subnet="172.28.0.0/16", applied=applied(),
                  registry=registry(networks=("bridge",)), version=NEW),
     "recreate", "recreate cluster dev: registry k3d-devslice-registry not on network "
     "k3d-dev (k3d connects it only in cluster create)"),
])
def test_cluster_plans(tmp_path: Path, facts: ClusterFacts, verb: str, reason: str) -> None:
    [action] = cluster_resource(tmp_path).plan(facts)
    assert (action.verb, action.reason) == (verb, reason)


def test_cluster_plan_without_a_record_compares_what_k3d_reports(tmp_path: Path) -> None:
    facts = ClusterFacts(cluster=cluster(agents=0), subnet="172.28.0.0/16", registry=registry())
    [action] = cluster_resource(tmp_path).plan(facts)
    assert action.verb == "noop" and "so only servers, agents and subnet compared" in \
        action.reason
    assert aspects(applied())["agents"] == "0"


ORDERS = ImageSettings(name="orders", context="services/orders")


@pytest.mark.parametrize(("facts", "verbs", "reason"), [
    (ImageFacts("ds-abc", True), ["noop"], "orders:ds-abc already in localhost:5050"),
    (ImageFacts("ds-abc", False, True), ["push"], "built locally, no image ds-abc in the "
     "registry"),
    (ImageFacts("ds-abc", False, False), ["build", "push"], "context changed: no image ds-abc "
     "in the registry"),
    (ImageFacts("ds-abc", None, False), ["build", "push"], "context changed: registry "
     "localhost:5050 not running yet"),
])
def test_image_plans(tmp_path: Path, facts: ImageFacts, verbs: list[str], reason: str) -> None:
    resource = ImageResource(ORDERS, tmp_path, "localhost:5050", Untouchable(),  # type: ignore[arg-type]
                             Untouchable())  # type: ignore[arg-type]
    actions = resource.plan(facts)
    assert [a.verb for a in actions] == verbs
    assert actions[0].reason == reason


LAYER = ManifestLayer(name="services", path="deploy/services")


def config_map(name: str, value: str) -> Manifest:
    return Manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                     "data": {"k": value}}, "deploy/services/x.yaml", 1)


def live(manifest: Manifest, resource: ManifestsResource) -> dict[str, Any]:
    [rendered] = render([manifest], handle="ab", layer=LAYER.name, images={})
    return rendered.obj


def test_manifest_plans(tmp_path: Path) -> None:
    resource = ManifestsResource(LAYER, tmp_path, Untouchable(), "ab")  # type: ignore[arg-type]
    view = KubeView({})
    kept, changed, added = config_map("kept", "1"), config_map("changed", "2"), \
        config_map("added", "3")
    gone = live(config_map("gone", "4"), resource)
    old = live(config_map("changed", "old"), resource)
    facts = ManifestsFacts([kept, changed, added], {("v1", "ConfigMap")},
                           [live(kept, resource), old, gone], view)
    actions = resource.plan(facts)
    assert [(a.verb, a.reason) for a in actions] == [
        ("noop", "1 object from deploy/services up to date"),
        ("apply", "configmap changed: changed in deploy/services"),
        ("apply", "configmap added: new in deploy/services"),
        ("prune", "configmap gone: removed from deploy/services"),
    ]
    assert actions[1].calls == ("PATCH /api/v1/namespaces/default/configmaps/changed?"
                                "fieldManager=devslice (server-side apply)",)
    assert actions[3].calls == ("DELETE /api/v1/namespaces/default/configmaps/gone",)
    assert gone["metadata"]["labels"][LAYER_LABEL] == "services"
    assert HASH_ANNOTATION in old["metadata"]["annotations"]


def test_manifest_plan_records_a_new_kind_before_applying_it(tmp_path: Path) -> None:
    resource = ManifestsResource(LAYER, tmp_path, Untouchable(), "ab")  # type: ignore[arg-type]
    facts = ManifestsFacts([config_map("a", "1")], None, [], KubeView({}))
    actions = resource.plan(facts)
    assert [(a.verb, a.reason) for a in actions] == [
        ("apply", "inventory devslice-ab-layer-services: record the kinds it applies "
         "(kinds ConfigMap)"),
        ("apply", "configmap a: new in deploy/services"),
    ]


def test_manifest_plan_offline_plans_everything_new(tmp_path: Path) -> None:
    resource = ManifestsResource(LAYER, tmp_path, Untouchable(), "ab",  # type: ignore[arg-type]
                                 cluster_may_be_absent=True)
    actions = resource.plan(ManifestsFacts([config_map("a", "1")], offline=True))
    assert [a.reason for a in actions][1:] == ["configmap a: new in deploy/services (no "
                                               "cluster yet)"]


def test_a_plan_teaches_lightkube_no_kind(tmp_path: Path) -> None:
    """CRDs are registered where facts are read (and once while the resources are built),
    never in plan(): planning a layer that defines a kind leaves lightkube's registry as it
    was, and the kind's calls fall back to a plain description."""
    from lightkube.core.resource_registry import resource_registry

    crd = Manifest({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": "gadgets.plans.example.com"},
                    "spec": {"group": "plans.example.com", "scope": "Namespaced",
                             "names": {"kind": "Gadget", "plural": "gadgets"},
                             "versions": [{"name": "v1", "served": True, "storage": True}]}},
                   "deploy/services/crd.yaml", 1)
    gadget = Manifest({"apiVersion": "plans.example.com/v1", "kind": "Gadget",
                       "metadata": {"name": "g"}}, "deploy/services/g.yaml", 1)
    resource = ManifestsResource(LAYER, tmp_path, Untouchable(), "ab",  # type: ignore[arg-type]
                                 cluster_may_be_absent=True)
    actions = resource.plan(ManifestsFacts([crd, gadget], offline=True))
    assert resource_registry.get("plans.example.com/v1", "Gadget") is None
    assert ("PATCH Gadget g (server-side apply)",) in [a.calls for a in actions]


# -- local containers and the Kusto emulator's database ------------------------------------


def mongo_spec(tmp_path: Path, image: str = "mongo:7", *,
               setup: tuple[Setup, ...] = ()) -> ContainerSpec:
    return ContainerSpec("mongodb", image, ports=(PortBinding(27017, 27017, "127.0.0.1"),),
                         mounts=(Mount("devslice-mongodb-data", "/data/db"),), setup=setup,
                         files=(GeneratedFile(tmp_path / "mongo.conf", "net: {}\n"),))


def mongo_fact(spec: ContainerSpec, status: str = "running", *,
               labels: dict[str, str] | None = None) -> ContainerFact:
    return ContainerFact("c1", spec.container_name, spec.image, status,
                         spec.labels() if labels is None else labels, (27017,))


def container_plan(tmp_path: Path, spec: ContainerSpec, facts: ContainerFacts
                   ) -> list[tuple[str, str, tuple[str, ...]]]:
    resource = ContainerResource(spec, Untouchable(), tmp_path)  # type: ignore[arg-type]
    return [(a.verb, a.reason, a.calls) for a in resource.plan(facts)]


MONGO = "devslice-mongodb"
SAME = {"state": {"container": "c1", "setup": {}, "secrets": {}}}


@pytest.mark.parametrize(("case", "facts", "expected"), [
    ("missing, image absent", {}, [(
        "create", "container devslice-mongodb does not exist",
        (volume_create_call("devslice-mongodb-data"), pull_call("mongo:7"),
         create_call(MONGO), start_call(MONGO)))]),
    ("missing, image present", dict(image_present=True), [(
        "create", "container devslice-mongodb does not exist",
        (volume_create_call("devslice-mongodb-data"), create_call(MONGO),
         start_call(MONGO)))]),
    ("running, same", dict(fact="running", files="same", **SAME), [(
        "noop", "container devslice-mongodb already running with the same spec", ())]),
    ("stopped, same", dict(fact="exited", files="same", **SAME), [(
        "start", "container devslice-mongodb is exited", (start_call(MONGO),))]),
    ("file gone", dict(fact="running", files="missing", image_present=True, **SAME), [(
        "recreate", "recreate mongodb: generated file mongo.conf is missing",
        (remove_call(MONGO), volume_create_call("devslice-mongodb-data"),
         create_call(MONGO), start_call(MONGO)))]),
    ("file edited", dict(fact="running", files="differs", image_present=True, **SAME), [(
        "recreate", "recreate mongodb: generated file mongo.conf differs on disk",
        (remove_call(MONGO), volume_create_call("devslice-mongodb-data"),
         create_call(MONGO), start_call(MONGO)))]),
])
def test_container_plans(tmp_path: Path, case: str, facts: dict[str, Any],
                         expected: list[tuple[str, str, tuple[str, ...]]]) -> None:
    spec = mongo_spec(tmp_path)
    facts = dict(facts)
    status, on_disk = facts.pop("fact", None), facts.pop("files", None)
    fact = None if status is None else mongo_fact(spec, status)
    files = {} if on_disk is None else {str(tmp_path / "mongo.conf"): on_disk}
    got = container_plan(tmp_path, spec, ContainerFacts(fact, files=files, **facts))
    assert got == expected, case


def test_container_plan_names_the_drift_and_pending_setup(tmp_path: Path) -> None:
    old = mongo_spec(tmp_path)
    new = mongo_spec(tmp_path, "mongo:8", setup=(Setup("users", ("sh", "-c", "true")),))
    files = {str(tmp_path / "mongo.conf"): "same"}
    drift = container_plan(tmp_path, new, ContainerFacts(
        mongo_fact(new, labels=old.labels()), SAME["state"], files, image_present=True))
    assert [(v, r) for v, r, _ in drift] == [
        ("recreate", "recreate mongodb: image mongo:7 -> mongo:8"),
        ("setup", "run setup script users in devslice-mongodb (recreated container)")]
    pending = container_plan(tmp_path, new, ContainerFacts(mongo_fact(new), SAME["state"],
                                                           files))
    assert [(v, r) for v, r, _ in pending] == [
        ("setup", "run setup script users in devslice-mongodb (not run yet in this container)")]


def test_container_plan_refuses_ports_held_and_containers_not_its_own(tmp_path: Path) -> None:
    spec = mongo_spec(tmp_path)
    with pytest.raises(PortInUse, match="host port 27017"):
        container_plan(tmp_path, spec, ContainerFacts(None, ports_taken=frozenset({27017})))
    with pytest.raises(CommandFailed, match="devslice did not create it"):
        container_plan(tmp_path, spec, ContainerFacts(mongo_fact(spec, labels={})))


def test_containers_share_one_listing_and_read_images_only_to_create(tmp_path: Path) -> None:
    """Every container resource of a gathering shares one `docker ps -a`; the image is
    looked up only by a plan that creates, and a stopped container is inspected for its
    published ports."""
    a, b = mongo_spec(tmp_path), ContainerSpec("sftp", "atmoz/sftp")
    calls: list[str] = []

    class Engine:
        def container_list(self, labels: dict[str, str]) -> list[ContainerFact]:
            calls.append(f"list {labels}")
            return [mongo_fact(a, "exited")]

        def container_get(self, name: str) -> ContainerFact:
            calls.append(f"inspect {name}")
            return mongo_fact(a, "exited")

        def image_get(self, ref: str) -> None:
            calls.append(f"image {ref}")

    reader = Reader()
    engine = Engine()
    for spec in (a, b):
        ContainerResource(spec, engine, tmp_path).read(reader)  # type: ignore[arg-type]
    assert calls == ["list {}", "inspect devslice-mongodb", "image mongo:7",
                     "image atmoz/sftp"]  # mongo.conf is missing, so mongodb is recreated


class Kusto:
    def __init__(self, databases: list[str] | None) -> None:
        self._databases = databases

    def __enter__(self) -> Kusto:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def create_command(self, database: str) -> str:
        return f".create database {database} persist"

    def databases(self) -> list[str]:
        if self._databases is None:
            raise DataExplorerUnreachable("connection refused")
        return self._databases


@pytest.mark.parametrize(("present", "expected"), [
    (True, [("noop", "database db4ab exists in the Kusto emulator", ())]),
    (False, [("create", "database db4ab is missing in the Kusto emulator",
              (".create database db4ab persist",))]),
    (None, [("create", "database db4ab: the Kusto emulator at http://127.0.0.1:1 does not "
             "answer yet", (".create database db4ab persist",))]),
])
def test_emulator_database_plans(present: bool | None,
                                 expected: list[tuple[str, str, tuple[str, ...]]]) -> None:
    def untouchable(url: str) -> DataExplorer:
        raise AssertionError("plan() connected to the emulator")

    resource = EmulatorDatabaseResource("db4ab", "http://127.0.0.1:1", connect=untouchable)
    facts = DatabaseFacts(present, ".create database db4ab persist")
    assert [(a.verb, a.reason, a.calls) for a in resource.plan(facts)] == expected
    listed = {True: ["db4ab"], False: ["other"], None: None}[present]
    reading = EmulatorDatabaseResource("db4ab", "http://127.0.0.1:1",
                                       connect=lambda url: Kusto(listed))  # type: ignore[arg-type,return-value]
    assert reading.read(Reader()) == facts
