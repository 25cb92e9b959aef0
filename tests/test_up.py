"""`devslice plan` / `up` / `status` / `down` / `destroy` end to end through the CLI, with
every system the engine drives replaced by a wire-level fake: the k3d executable (exact
flags, real output shapes), the Docker engine and registry (HTTP), and the Kubernetes API
server (HTTP). A second `up` changes nothing and makes only read calls."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from devslice.cli.app import run
from devslice.testing.dockerapi import FakeDockerEngine, FakeRegistry
from devslice.testing.kubeapi import FakeKubeAPI

from .helpers import BASE, DEPLOYMENT, FAKES, SOLO, free_ports

PLATFORM = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: traefik-settings}
data: {entryPoint: web}
"""


class World:
    def __init__(self, root: Path, registry: FakeRegistry, engine: FakeDockerEngine,
                 kube: FakeKubeAPI) -> None:
        self.root, self.registry, self.engine, self.kube = root, registry, engine, kube
        self.k3d_log = root.parent / "k3d.log"

    def k3d_calls(self) -> list[list[str]]:
        if not self.k3d_log.exists():
            return []
        return [json.loads(line)[1:] for line in self.k3d_log.read_text().splitlines()]

    def forget_calls(self) -> None:
        self.k3d_log.unlink(missing_ok=True)
        self.kube.clear_requests()
        self.engine.requests.clear()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(FAKES / "k3d", bin_dir / "k3d")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_K3D_STATE", str(tmp_path / "k3d.json"))
    monkeypatch.setenv("FAKE_K3D_LOG", str(tmp_path / "k3d.log"))
    monkeypatch.setenv("FAKE_K3D_PYTHON", sys.executable)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))  # no proxy args
    with FakeRegistry() as registry:
        registry.host = f"localhost:{registry.port}"  # the name images are pushed to
        with FakeDockerEngine(registries=[registry]) as engine, FakeKubeAPI() as kube:
            monkeypatch.setenv("DOCKER_HOST", engine.base_url)
            kubeconfig = tmp_path / "kubeconfig"
            YAML().dump(kube.kubeconfig(context="k3d-devslice"), kubeconfig)
            monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
            project = tmp_path / "project"
            (project / "services" / "orders").mkdir(parents=True)
            (project / "services" / "orders" / "Dockerfile").write_text(
                "FROM python:3.11-slim\nCOPY app.py /app.py\n")
            (project / "services" / "orders" / "app.py").write_text("print('orders')\n")
            for layer, text in (("platform", PLATFORM), ("services", DEPLOYMENT)):
                (project / "deploy" / layer).mkdir(parents=True)
                (project / "deploy" / layer / "objects.yaml").write_text(text)
            # Shared services: pods reach them wherever they run (the emulator modes, with
            # their containers, are tested in test_pod_contract.py).
            (project / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent(f"""\
                eventHubs:
                  mode: shared
                  namespaces: [{{name: company1-ehns1, partitions: 4}}]
                storage: {{mode: shared}}
                cluster:
                  registry: {{name: devslice-registry, port: {registry.port}}}
                images:
                  - {{name: orders, context: services/orders}}
                manifests:
                  - {{name: platform, path: deploy/platform}}
                  - {{name: services, path: deploy/services}}
                """))
            monkeypatch.chdir(project)
            yield World(project, registry, engine, kube)


def use_azurite(world: World) -> int:
    """storage.mode: emulator with Azurite as a container; returns its blob port."""
    blob, queue, table = free_ports(3)
    config = world.root / "devslice.yaml"
    config.write_text(config.read_text().replace("storage: {mode: shared}\n", textwrap.dedent(f"""\
        storage:
          mode: emulator
          blobEndpointTemplate: "http://127.0.0.1:{blob}/{{account}}"
          queueEndpointTemplate: "http://127.0.0.1:{queue}/{{account}}"
        containers:
          azurite: {{blobPort: {blob}, queuePort: {queue}, tablePort: {table}}}
        """)))
    return blob


def plan_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert run(["plan", "-o", "json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_up_from_nothing_then_nothing_to_do(world: World,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["slice", "claim"]) == 0
    first = plan_json(capsys)
    verbs = {(a["resource"], a["verb"]) for a in first["actions"]}  # type: ignore[index,union-attr]
    assert ("registry", "create") in verbs and ("cluster", "create") in verbs
    assert any(r == "image:orders" and v != "noop" for r, v in verbs)
    assert world.k3d_calls() and all(  # planning only reads
            c in (["version"], ["node", "list", "-o", "json"])
        for c in world.k3d_calls())
    assert [r for r in world.engine.requests if r.changes] == []

    assert run(["up", "-o", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "ready" and events[-1]["changes"] > 0
    done = {e["resource"] for e in events if e["event"] == "done"}
    rollout = [e["line"] for e in events if e["event"] == "progress"]
    assert any(line.startswith("deployment orders: ") for line in rollout), rollout
    assert done == {"registry", "cluster", "host-dns", "image:orders", "slice-config",
                    "manifests:platform", "manifests:services"}
    changing = [c for c in world.k3d_calls() if c[0] in ("registry", "cluster")
                and c[1] in ("create", "start", "delete")]
    assert changing[0] == ["registry", "create", "devslice-registry", "-p",
                           str(world.registry.port)]
    assert changing[1][:3] == ["cluster", "create", "--config"]
    tag = next(t for t in world.registry.tags("orders"))
    deployment = world.kube.get("apps/v1", "Deployment", "orders", "default")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"k3d-devslice-registry:{world.registry.port}/orders:{tag}"
    assert {"configMapRef": {"name": "devslice-ab"}} in container["envFrom"]
    config_map = world.kube.get("v1", "ConfigMap", "devslice-ab", "default")
    assert config_map is not None
    assert config_map["data"]["LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"] == "0"

    world.forget_calls()
    second = plan_json(capsys)
    assert second["changes"] == 0
    assert run(["up", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["changes"] == 0
    assert all(c[1] in ("list",) or c == ["version"] for c in world.k3d_calls())
    assert {r.method for r in world.kube.requests} <= {"GET"}
    assert [r for r in world.engine.requests if r.changes] == []


def test_changed_source_rebuilds_and_rolls_out(world: World,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["slice", "claim"]) == 0
    assert run(["up", "-o", "json"]) == 0
    (world.root / "services" / "orders" / "app.py").write_text("print('orders v2')\n")
    changed = plan_json(capsys)
    lines = {(a["resource"], a["verb"]) for a in changed["actions"]  # type: ignore[union-attr]
             if a["verb"] != "noop"}  # type: ignore[index]
    # Only the changed image and the Deployment that uses it: the rest stays as it is.
    assert sorted(lines) == [("image:orders", "build"), ("image:orders", "push"),
                             ("manifests:services", "apply"), ("manifests:services", "wait")]


def test_down_stops_and_status_says_so_then_destroy(world: World,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["slice", "claim"]) == 0
    assert run(["up", "-o", "json"]) == 0
    world.forget_calls()
    assert run(["down"]) == 0
    assert ["cluster", "stop", "devslice"] in world.k3d_calls()
    capsys.readouterr()
    assert run(["status", "-o", "json"]) == 1  # not ready: exit 1
    rows = {r["resource"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["cluster"]["ready"] is False and "start" in rows["cluster"]["detail"]
    assert rows["registry"]["ready"] is True
    assert run(["destroy", "-y"]) == 0
    calls = world.k3d_calls()
    assert ["cluster", "delete", "devslice"] in calls
    assert any(c[:2] == ["registry", "delete"] for c in calls)


def test_the_laptop_sleep_bug_is_seen_and_repaired(world: World,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """After a sleep, k3s rewrites CoreDNS's NodeHosts without host.k3d.internal (k3d issues
    1221, 1360): status shows it, up puts the gateway entry back, the next plan is quiet."""
    assert run(["slice", "claim"]) == 0
    assert run(["up", "-o", "json"]) == 0
    world.kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "coredns", "namespace": "kube-system"},
                      "data": {"NodeHosts": "172.18.0.2 k3d-devslice-server-0\n"}})
    capsys.readouterr()
    assert run(["status", "-o", "json"]) == 1  # not ready: exit 1
    rows = {r["resource"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["host-dns"]["ready"] is False
    assert "host.k3d.internal is missing from CoreDNS NodeHosts" in rows["host-dns"]["detail"]
    assert run(["up", "-o", "json"]) == 0
    coredns = world.kube.get("v1", "ConfigMap", "coredns", "kube-system")
    assert coredns is not None
    assert coredns["data"]["NodeHosts"] == ("172.18.0.2 k3d-devslice-server-0\n"
                                            "172.18.0.1 host.k3d.internal\n")
    assert plan_json(capsys)["changes"] == 0


def test_layers_wait_only_for_the_images_they_use(world: World) -> None:
    from devslice.engine.environment import Tools, build
    from devslice.project import Project

    project = Project.load()
    s, _ = project.claim()
    tools = Tools.real(project, "k3d")
    try:
        after = {r.key: r.after for r in build(project, s.handle, tools, "k3d")}
    finally:
        tools.close()
    assert after["slice-config"] == ("cluster",)
    assert after["manifests:platform"] == ("slice-config",)  # no image of its own to wait for
    assert after["manifests:services"] == ("manifests:platform", "image:orders")


def test_plan_on_a_fresh_machine_without_the_clusters_kube_context(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path
) -> None:
    """Before `up`, k3d has not written the k3d-devslice context: plan still shows what `up`
    would do for the slice's objects, instead of failing on the missing context."""
    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    monkeypatch.setenv("KUBECONFIG", str(empty))
    assert run(["slice", "claim"]) == 0
    plan = plan_json(capsys)
    config = [a for a in plan["actions"] if a["resource"] == "slice-config"]  # type: ignore[union-attr,index]
    assert config and all(a["verb"] == "apply" for a in config)  # type: ignore[index]
    assert "the cluster does not run yet" in config[0]["reason"]  # type: ignore[index]



def test_emulators_run_beside_the_cluster_and_follow_down_and_destroy(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """storage.mode: emulator brings Azurite up as a container before the slice's objects;
    pods find it at the gateway; `down` stops it, `up` starts it again, `destroy --keep-data`
    removes it and keeps its volume, `destroy` removes the volume too."""
    blob = use_azurite(world)
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["up", "-o", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    done = [e["resource"] for e in events if e["event"] == "done"]
    assert done.index("container:azurite") < done.index("slice-config")
    azurite = world.engine.container("devslice-azurite")
    assert azurite is not None and azurite.status == "running"
    assert "AZURITE_ACCOUNTS=devstoreaccount1:" in " ".join(azurite.env)
    assert "company1stacc4ab:" in " ".join(azurite.env)
    config_map = world.kube.get("v1", "ConfigMap", "devslice-ab", "default")
    assert config_map is not None
    assert config_map["data"]["LOCAL_DEV_STORAGE_BLOBENDPOINT"] == \
        f"http://172.18.0.1:{blob}/company1stacc4ab"

    assert run(["down"]) == 0
    assert world.engine.container("devslice-azurite").status == "exited"  # type: ignore[union-attr]
    assert run(["up", "-o", "json"]) == 0
    assert world.engine.container("devslice-azurite").status == "running"  # type: ignore[union-attr]

    assert run(["destroy", "-y", "--keep-data"]) == 0
    assert world.engine.container("devslice-azurite") is None
    assert "devslice-azurite-data" in world.engine.volumes
    assert run(["up", "-o", "json"]) == 0  # the same data comes back with a new container
    assert run(["destroy", "-y"]) == 0
    assert world.engine.container("devslice-azurite") is None
    assert "devslice-azurite-data" not in world.engine.volumes


def test_data_explorer_emulator_gets_the_slices_database(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """dataExplorer.mode: emulator runs the Kusto emulator beside the cluster (here a fake
    engine behind the fake docker-proxy), creates the slice's database in its data volume,
    and pods find it at the gateway; a second `up` leaves the database alone."""
    from devslice.services.dataexplorer import EMULATOR_READY as KUSTO_READY
    from devslice.testing.kusto import FakeKusto

    (port,) = free_ports(1)
    config = world.root / "devslice.yaml"
    config.write_text(config.read_text() + textwrap.dedent(f"""\
        dataExplorer: {{mode: emulator}}
        containers:
          kustoEmulator: {{acceptEula: true, port: {port}}}
        """))
    with FakeKusto() as kusto:
        kusto_port = int(kusto.url.rsplit(":", 1)[1])
        world.engine.forward_to = lambda c, p: kusto_port if p == 8080 else None
        world.engine.container_output = lambda c: [KUSTO_READY] if "kusto" in c.name else []
        assert run(["slice", "claim"]) == 0
        capsys.readouterr()
        assert run(["up", "-o", "json"]) == 0
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        done = [e["resource"] for e in events if e["event"] == "done"]
        assert done.index("container:kusto-emulator") < done.index("database:db4ab") < \
            done.index("slice-config")
        assert "db4ab" in kusto.databases
        assert kusto.storage["db4ab"].startswith('persist (@"/kustodata/dbs/db4ab/')
        config_map = world.kube.get("v1", "ConfigMap", "devslice-ab", "default")
        assert config_map is not None
        assert config_map["data"]["LOCAL_DEV_DATAEXPLORER_CLUSTERURL"] == \
            f"http://172.18.0.1:{port}"
        kusto.databases["db4ab"].add("Orders")  # what `devslice adx apply` would have made
        assert run(["up", "-o", "json"]) == 0
        assert kusto.databases["db4ab"] == {"Orders"}
        creates = [c for _, c in kusto.commands if c.startswith(".create database")]
        assert len(creates) == 1


def test_a_no_op_up_reads_each_system_once(world: World,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Facts are gathered once (issue 14): one `k3d node list` (clusters and registries),
    one registry HEAD per image, one Kubernetes LIST per kind and no GET twice, one Docker
    container listing for the emulator containers."""
    use_azurite(world)
    assert run(["slice", "claim"]) == 0
    assert run(["up", "-o", "json"]) == 0
    world.forget_calls()
    world.registry.clear_requests()
    capsys.readouterr()
    assert run(["up", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["changes"] == 0
    assert world.k3d_calls() == [["node", "list", "-o", "json"]]  # one k3d call (issue 17)
    reads = [f"{r.method} {r.path}?{r.query}" for r in world.kube.requests]
    assert len(reads) == len(set(reads)), reads  # nothing read twice
    assert all(r.startswith("GET ") for r in reads), reads
    # collections (a path ending in the kind's plural): one LIST per kind, across namespaces
    lists = [r.path.rsplit("/", 1)[-1] for r in world.kube.requests
             if r.path.rsplit("/", 1)[-1] in ("namespaces", "configmaps", "secrets",
                                              "deployments")]
    assert sorted(lists) == ["configmaps", "deployments", "namespaces", "secrets"], reads
    assert len(reads) == len(lists) + 1, reads  # and CoreDNS's ConfigMap (host-dns)
    assert [r.method for r in world.registry.requests] == ["HEAD"]  # the one image
    containers = [f"{r.method} {r.path}" for r in world.engine.requests
                  if r.path.split("/")[-2:-1] == ["containers"] or "/containers/" in r.path]
    assert containers == ["GET /containers/json"], containers  # no inspect, no second list


def test_plans_are_pure_once_facts_are_gathered(world: World) -> None:
    """After gathering, every resource plans with adapters that fail on any call."""
    from devslice.engine.environment import Tools, build
    from devslice.engine.plan import gather, plan_of, reads
    from devslice.project import Project

    assert run(["slice", "claim"]) == 0
    assert run(["up"]) == 0
    project = Project.load()
    handle = project.slices()[0].handle
    tools = Tools.real(project, "k3d")
    try:
        resources = build(project, handle, tools, "k3d")
        facts = gather(resources)
    finally:
        tools.close()

    class Raising:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"a plan called .{name} after facts were gathered")

        def __call__(self, *args: object) -> object:
            raise AssertionError("a plan read the world after facts were gathered")

    readers = [r for r in resources if reads(r)]
    assert {r.key for r in readers} >= {"registry", "cluster", "host-dns", "image:orders",
                                        "slice-config", "manifests:platform",
                                        "manifests:services"}
    for r in readers:
        for attr in ("k3d", "kube", "docker", "registry", "networks"):
            if attr in vars(r):
                setattr(r, attr, Raising())
        actions = plan_of(r, facts[r.key])
        assert actions and not [a for a in actions if a.changes], (r.key, actions)


def test_a_first_up_asks_for_k3d_version_beside_the_node_list(
        world: World, tmp_path: Path) -> None:
    """Issue 17: with no cluster made from this folder yet, the create's version gate is read
    in the first gathering, at the same time as `k3d node list`, not after it. The k3d here
    holds `node list` until `version` has been asked (and gives up after 10 s)."""
    real = tmp_path / "real-k3d"
    shutil.move(tmp_path / "bin" / "k3d", real)
    mark = tmp_path / "version-asked"
    wrapper = tmp_path / "bin" / "k3d"
    wrapper.write_text(f"""#!/bin/sh
case "$1" in
  version) : > {mark} ;;
  node) i=0
        while [ ! -e {mark} ]; do
          i=$((i + 1)); [ $i -gt 1000 ] && {{ echo "node list: no version asked" >&2; exit 1; }}
          sleep 0.01
        done ;;
esac
exec {real} "$@"
""")
    wrapper.chmod(0o755)
    assert run(["slice", "claim"]) == 0
    assert run(["up"]) == 0
    calls = world.k3d_calls()
    assert calls.count(["version"]) == 1 and ["node", "list", "-o", "json"] in calls
    world.forget_calls()
    assert run(["up"]) == 0  # the cluster's applied config is recorded: no gate to read
    assert world.k3d_calls() == [["node", "list", "-o", "json"]]


def test_the_slices_config_hash_waits_for_the_first_plan(world: World) -> None:
    """Issue 17: scrypt (the sealed hash of the slice's Secret) runs once, in the layers'
    facts reading, not while the resources are built before the first step."""
    from devslice.engine.environment import Tools, build
    from devslice.project import Project
    from devslice.resources.manifests import (
        ManifestsResource,
        SealedConfigHash,
        slice_config_hash,
    )

    assert run(["slice", "claim"]) == 0
    project = Project.load()
    tools = Tools.real(project, "k3d")
    try:
        layers = [r for r in build(project, project.slices()[0].handle, tools, "k3d")
                  if isinstance(r, ManifestsResource)]
        sealed = layers[0].config_hash
        assert isinstance(sealed, SealedConfigHash) and all(
            layer.config_hash is sealed for layer in layers)  # one hash for every layer
        assert sealed._value is None  # not computed while building
        assert str(sealed) == slice_config_hash(sealed._objects)
    finally:
        tools.close()


def test_the_sealed_config_hash_is_kept_by_an_hmac_of_its_inputs(world: World) -> None:
    """Issue 17: a no-op skips scrypt when the slice's config and secrets did not change: the
    last hash is kept in `.devslice/config-hash.json` (0600) under an HMAC with a random key;
    the file holds no secret value, and a changed secret or setting gets scrypt's hash."""
    import stat

    from devslice.contract.render import k8s_objects
    from devslice.project import Project
    from devslice.resources.manifests import SealedConfigHash, slice_config_hash

    assert run(["slice", "claim"]) == 0
    assert run(["up"]) == 0
    project = Project.load()
    handle = project.current_handle()
    objects = k8s_objects(project.variables(handle), handle)
    memo = world.root / ".devslice" / "config-hash.json"
    assert stat.S_IMODE(memo.stat().st_mode) == 0o600
    assert json.loads(memo.read_text())["hash"] == slice_config_hash(objects)

    def with_secret(value: str) -> list[dict[str, Any]]:
        secret = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"KEY": value}}
        return [o for o in objects if o["kind"] != "Secret"] + [
            {**o, "stringData": {**o.get("stringData", {}), "KEY": value}}
            for o in objects if o["kind"] == "Secret"] or [secret]

    first = with_secret("first-s3cret")
    assert str(SealedConfigHash(first, memo=memo)) == slice_config_hash(first)
    kept = json.loads(memo.read_text())
    assert "first-s3cret" not in memo.read_text()
    # the kept hash is what a matching HMAC gives (seen by marking it) ...
    memo.write_text(json.dumps({**kept, "hash": "marked"}))
    assert str(SealedConfigHash(first, memo=memo)) == "marked"
    # ... and a changed secret or setting does not match: scrypt runs and the memo follows
    changed = with_secret("second-s3cret")
    assert slice_config_hash(changed) != slice_config_hash(first)
    assert str(SealedConfigHash(changed, memo=memo)) == slice_config_hash(changed)
    assert json.loads(memo.read_text())["key"] == kept["key"]  # the same key
    assert "second-s3cret" not in memo.read_text()
    plain = [{**o, "data": {**o.get("data", {}), "EXTRA": "1"}} if o["kind"] == "ConfigMap"
             else o for o in changed]
    assert slice_config_hash(plain) != slice_config_hash(changed)
    assert str(SealedConfigHash(plain, memo=memo)) == slice_config_hash(plain)
    # a memo that cannot be read is no error
    memo.write_text("{not json")
    assert str(SealedConfigHash(objects, memo=memo)) == slice_config_hash(objects)


def test_a_first_up_searches_the_prune_kinds_once_for_every_layer(world: World) -> None:
    """Issue 17: with no inventory yet, kubectl's prune allowlist is searched once per command
    and shared by the layers (a layer's objects are made only by its own apply, which records
    its inventory first); each layer's own kinds are still read afresh."""
    assert run(["slice", "claim"]) == 0
    world.forget_calls()
    assert run(["up"]) == 0
    lists = [r.path for r in world.kube.requests if r.method == "GET" and "labelSelector" in
             r.query]
    assert lists.count("/apis/batch/v1/cronjobs") == 1, lists  # no layer has CronJobs
    assert lists.count("/apis/apps/v1/deployments") >= 2, lists  # the services' own kind
    world.forget_calls()
    assert run(["up"]) == 0  # inventories recorded: only the kinds they name
    assert not [r for r in world.kube.requests if r.path == "/apis/batch/v1/cronjobs"]


# Runs the CLI as `devslice ARGS` does and prints the modules it loaded, last line.
LOADED = """\
import atexit, json, sys
atexit.register(lambda: print("\\nMODULES " + json.dumps(sorted(sys.modules))))
import devslice.cli
devslice.cli.main(sys.argv[1:])
"""

# Not loaded by a no-op `up` on the k3d path (issue 17): the applied cluster config is kept as
# JSON, and the config's YAML data is kept, so no YAML is read with ruamel; the engine's
# version and listings are read over httpx2, and a context without .dockerignore patterns is
# hashed without the SDK's matcher, so neither the Docker SDK nor requests loads.
NEVER_NOOP_K3D = ("ruamel.yaml", "docker", "requests", "urllib3",
                  # commands `up` does not run (cli.app's LazyGroup)
                  "devslice.cli.debug", "devslice.cli.adx", "devslice.adapters.mirrord")


def test_a_no_op_up_on_the_k3d_path_loads_no_ruamel_or_docker_sdk_and_sees_changes(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import subprocess

    use_azurite(world)  # a container: the engine's listing is read too
    assert run(["slice", "claim"]) == 0
    assert run(["up", "-o", "json"]) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVSLICE_")}
    repo = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(repo / "src"), str(repo)])

    def up() -> tuple[set[str], dict[str, object]]:
        done = subprocess.run([sys.executable, "-c", LOADED, "up", "-o", "json"],
                              cwd=world.root, env=env, capture_output=True, text=True,
                              timeout=120)
        lines = done.stdout.rstrip().splitlines()
        assert lines[-1].startswith("MODULES "), (done.stdout, done.stderr)
        events = [json.loads(line) for line in lines[:-1] if line.startswith("{")]
        ready = events[-1] if events else {}
        assert "changes" in ready, (done.stdout, done.stderr)
        return set(json.loads(lines[-1][len("MODULES "):])), ready

    modules, ready = up()
    assert ready["changes"] == 0, ready
    assert "devslice.resources.k3d" in modules  # the k3d path was taken
    heavy = sorted(m for m in NEVER_NOOP_K3D if m in modules)
    assert heavy == [], f"a no-op `devslice up` loaded {heavy}"
    # ... and still notices a stopped container (and starts it, through the SDK) ...
    azurite = world.engine.container("devslice-azurite")
    assert azurite is not None and azurite.status == "running"
    world.engine.stop_container("devslice-azurite")
    modules, ready = up()
    assert ready["changes"] >= 1, ready
    assert world.engine.container("devslice-azurite").status == "running"  # type: ignore[union-attr]
    assert "docker" in modules  # the SDK, for the start
    # ... and a changed cluster config (compared with the applied record)
    config = world.root / "devslice.yaml"
    config.write_text(config.read_text().replace("cluster:\n", "cluster:\n  agents: 1\n"))
    _modules, ready = up()
    assert ready["changes"] >= 1, ready
    assert [c[:2] for c in world.k3d_calls()][-2:] == [["cluster", "delete"],
                                                        ["cluster", "create"]]


def test_the_command_freezes_what_it_loaded_before_python_shuts_down() -> None:
    """The shutdown collections skip the objects every command keeps to its end (issue 17);
    exit handlers registered before the command's still run after it."""
    import os
    import subprocess

    code = ("import atexit, gc, devslice.cli\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
            "devslice.cli.main(['--help'])\n")
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(repo)])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("frozen True"), done.stdout[-300:]
