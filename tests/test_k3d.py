"""The k3d adapter and the registry/cluster resources, against the stateful fake k3d
(tests/fakes/k3d) on a private PATH: exact argv, real `-o json` shapes, golden plans, and
idempotency (a second plan is empty and only reads)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devslice.adapters.k3d import (
    K3d,
    NodeListing,
    argv_for_cluster_create,
    argv_for_cluster_delete,
    argv_for_cluster_list,
    argv_for_cluster_start,
    argv_for_cluster_stop,
    argv_for_registry_create,
    argv_for_registry_delete,
    argv_for_registry_list,
    argv_for_version,
    parse_version,
)
from devslice.adapters.runner import SubprocessRunner
from devslice.config.model import ClusterSettings, K3sArg, RegistrySettings
from devslice.engine import Executor
from devslice.engine.plan import Plan, make_plan
from devslice.errors import CommandFailed, ConfigError, ToolMissing
from devslice.resources.k3d import (
    ClusterResource,
    RegistryResource,
    applied_path,
    config_path,
    destroy_actions,
    dump_config,
    host_gateway,
    k3d_config,
    read_config,
    stop_actions,
    write_applied,
)

from .helpers import FAKES, SHARED

SCHEMA = SHARED / "schemas" / "k3d-config-v1alpha5.schema.json"
READS = {("k3d", "version"), ("k3d", "cluster", "list"), ("k3d", "registry", "list"),
         ("k3d", "node", "list")}


def changing(calls: list[list[str]]) -> list[list[str]]:
    """The calls that are not reads (`version`, `cluster list`, `registry list`, `node list`)."""
    return [c for c in calls if tuple(c[:3]) not in READS]


@dataclass
class FakeK3d:
    bin: Path
    state: Path
    log: Path

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def clear_log(self) -> None:
        self.log.unlink(missing_ok=True)

    def world(self) -> dict[str, Any]:
        return dict(json.loads(self.state.read_text()))

    def edit(self, world: dict[str, Any]) -> None:
        self.state.write_text(json.dumps(world))

    def k3d(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the fake directly (to arrange the world), with the same environment."""
        return subprocess.run([str(self.bin / "k3d"), *args], capture_output=True, text=True,
                              env={**os.environ, "PATH": str(self.bin)}, check=False)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeK3d:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(FAKES / "k3d", bin_dir / "k3d")
    f = FakeK3d(bin_dir, tmp_path / "k3d-state.json", tmp_path / "k3d-calls.jsonl")
    monkeypatch.setenv("FAKE_K3D_STATE", str(f.state))
    monkeypatch.setenv("FAKE_K3D_LOG", str(f.log))
    monkeypatch.setenv("FAKE_K3D_PYTHON", sys.executable)  # has ruamel.yaml for configs
    monkeypatch.delenv("FAKE_K3D_VERSION", raising=False)
    monkeypatch.delenv("FAKE_K3D_FAIL", raising=False)
    return f


@pytest.fixture
def k3d(fake: FakeK3d) -> K3d:
    return K3d(SubprocessRunner(path=str(fake.bin)))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    base = tmp_path / "project"
    base.mkdir()
    (base / "devslice.yaml").write_text("apiVersion: devslice.dev/v1alpha1\n")
    return base


def settings(**changes: Any) -> ClusterSettings:
    return ClusterSettings().model_copy(update=changes)


def resources(k3d: K3d, s: ClusterSettings, base: Path) -> list[Any]:
    # networks: none besides the clusters (tests/test_subnet.py gives the engine some)
    return [ClusterResource(k3d, s, base, networks=dict), RegistryResource(k3d, s.registry)]


def render(plan: Plan | list[Any], base: Path) -> str:
    text = plan.render() if isinstance(plan, Plan) else Plan(tuple(plan)).render()
    return text.replace(str(base), "<project>")


def up(k3d: K3d, s: ClusterSettings, base: Path) -> None:
    Executor().apply(resources(k3d, s, base))


# ---------------------------------------------------------------------- adapter


def test_argv_is_exactly_what_k3d_5_takes() -> None:
    assert argv_for_version() == ("k3d", "version")
    assert argv_for_cluster_list() == ("k3d", "cluster", "list", "-o", "json")
    assert argv_for_registry_list() == ("k3d", "registry", "list", "-o", "json")
    assert argv_for_registry_create("devslice-registry", 5050) == (
        "k3d", "registry", "create", "devslice-registry", "-p", "5050")
    assert argv_for_registry_delete("devslice-registry") == (
        "k3d", "registry", "delete", "k3d-devslice-registry")
    assert argv_for_cluster_create(Path("/p/.devslice/k3d-dev.yaml")) == (
        "k3d", "cluster", "create", "--config", "/p/.devslice/k3d-dev.yaml")
    assert argv_for_cluster_start("dev") == ("k3d", "cluster", "start", "dev")
    assert argv_for_cluster_stop("dev") == ("k3d", "cluster", "stop", "dev")
    assert argv_for_cluster_delete("dev") == ("k3d", "cluster", "delete", "dev")


def test_version_is_parsed_from_k3d_version(k3d: K3d, fake: FakeK3d) -> None:
    v = k3d.version()
    assert (v.parts, str(v), v.k3s) == ((5, 7, 4), "v5.7.4", "v1.30.4-k3s1")
    assert k3d.version() is v  # asked once per adapter
    assert fake.calls() == [["k3d", "version"]]
    assert parse_version("k3d version v5.8.0-rc.1\nk3s version v1.31.1-k3s1 (default)\n"
                         ).text == "v5.8.0-rc.1"
    with pytest.raises(CommandFailed, match="no k3d version"):
        parse_version("command not found")


def test_listings_read_the_real_json_shapes(k3d: K3d, fake: FakeK3d) -> None:
    assert k3d.cluster_list() == [] and k3d.registry_list() == []
    k3d.registry_create("devslice-registry", 5050)
    path = fake.bin.parent / "c.yaml"
    path.write_text(dump_config(k3d_config(settings(agents=2))))
    k3d.cluster_create(path)

    [reg] = k3d.registry_list()
    assert (reg.name, reg.short_name, reg.host_port, reg.host_ip, reg.running) == (
        "k3d-devslice-registry", "devslice-registry", 5050, "0.0.0.0", True)
    [cluster] = k3d.cluster_list()
    assert (cluster.name, cluster.servers_count, cluster.agents_count) == ("devslice", 1, 2)
    assert cluster.running and not cluster.stopped
    assert (cluster.network, cluster.subnet) == ("k3d-devslice", "172.18.0.0/16")
    assert sorted((n.name, n.role) for n in cluster.nodes) == [
        ("k3d-devslice-agent-0", "agent"), ("k3d-devslice-agent-1", "agent"),
        ("k3d-devslice-server-0", "server"), ("k3d-devslice-serverlb", "loadbalancer")]
    # what the parser relies on, in k3d's own key spelling
    raw = json.loads(fake.k3d("cluster", "list", "-o", "json").stdout)[0]
    assert {"name", "nodes", "serversRunning", "serversCount", "agentsRunning",
            "agentsCount"} <= set(raw)
    assert raw["nodes"][0]["State"] == {"Running": True, "Status": "running", "Started": ""}

    k3d.cluster_stop("devslice")
    [cluster] = k3d.cluster_list()
    assert cluster.stopped and not cluster.running
    assert cluster.describe_state() == "0/1 servers, 0/2 agents running"
    assert {n.status for n in cluster.nodes} == {"exited"}


def test_one_node_list_gives_what_cluster_list_and_registry_list_give(
        k3d: K3d, fake: FakeK3d) -> None:
    """Issue 17: one k3d call per command. k3d derives both listings from the same containers
    (pkg/client/cluster.go ClusterList groups the cluster roles by the k3d.cluster label)."""
    assert k3d.node_list() == NodeListing([], [])
    k3d.registry_create("devslice-registry", 5050)
    k3d.registry_create("other", 5051)
    for name, agents in (("devslice", 2), ("second", 0)):
        path = fake.bin.parent / f"{name}.yaml"
        config = k3d_config(settings(agents=agents, name=name),
                            subnet="172.18.0.0/16" if name == "devslice" else "172.19.0.0/16")
        path.write_text(dump_config(config))
        k3d.cluster_create(path)
    k3d.cluster_stop("second")

    listing = k3d.node_list()
    assert listing.clusters == k3d.cluster_list()  # the same facts, nodes and all
    assert listing.registries == k3d.registry_list()
    assert [(c.name, c.running, c.stopped, c.network, c.subnet) for c in listing.clusters] == [
        ("devslice", True, False, "k3d-devslice", "172.18.0.0/16"),
        ("second", False, True, "k3d-second", "172.19.0.0/16")]
    raw = json.loads(fake.k3d("node", "list", "-o", "json").stdout)
    assert [n["name"] for n in raw] == sorted(n["name"] for n in raw)  # util.PrintNodes
    assert {n["role"] for n in raw} == {"server", "agent", "loadbalancer", "registry"}
    missing = fake.k3d("node", "list", "nope")
    assert missing.returncode == 1 and "failed to get node 'nope'" in missing.stderr


def test_the_fake_refuses_flags_k3d_does_not_have(fake: FakeK3d) -> None:
    bad = fake.k3d("cluster", "create", "--registry", "x")
    assert (bad.returncode, bad.stderr.splitlines()[0]) == (1, "Error: unknown flag: --registry")
    bad = fake.k3d("registry", "create", "r", "-x", "1")
    assert (bad.returncode, bad.stderr.splitlines()[0]) == (
        1, "Error: unknown shorthand flag: 'x' in -x")
    bad = fake.k3d("cluster", "frob")
    assert bad.stderr.startswith('Error: unknown command "frob" for "k3d cluster"')
    unmodeled = fake.k3d("cluster", "create", "--gpus", "all")  # real, but not modeled
    assert unmodeled.returncode == 3 and "does not model" in unmodeled.stderr
    missing = fake.k3d("cluster", "start", "nope")
    assert (missing.returncode, missing.stderr) == (
        1, "FATA[0000] No nodes found for given cluster\n")


def test_a_cluster_needs_its_registry_to_exist(k3d: K3d, fake: FakeK3d, project: Path) -> None:
    path = config_path(project, "devslice")
    path.parent.mkdir()
    path.write_text(dump_config(k3d_config(settings())))
    with pytest.raises(CommandFailed, match="Failed to find registry node "
                                            "'k3d-devslice-registry'"):
        k3d.cluster_create(path)


def test_missing_k3d_says_how_to_install_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ToolMissing) as err:
        K3d(SubprocessRunner(path=str(empty))).cluster_list()
    assert "k3d is not installed" in err.value.message
    assert "install k3d 5.5 or newer" in str(err.value.hint)


@pytest.mark.parametrize(("version", "message"), [
    ("v5.4.6", "k3d v5.4.6 is installed, but a k3d.io/v1alpha5 cluster config needs k3d "
               "5.5.0 or newer"),
    ("v4.4.8", "k3d v4.4.8 is installed, but devslice needs k3d 5.0.0 or newer"),
])
def test_old_k3d_is_refused_before_anything_changes(
    k3d: K3d, fake: FakeK3d, project: Path, monkeypatch: pytest.MonkeyPatch, version: str,
    message: str,
) -> None:
    monkeypatch.setenv("FAKE_K3D_VERSION", version)
    with pytest.raises(ToolMissing) as err:
        make_plan(resources(k3d, settings(), project))
    assert err.value.message == message
    assert fake.calls() and changing(fake.calls()) == []


def test_k3d_4_cannot_even_create_a_registry(
    k3d: K3d, fake: FakeK3d, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_K3D_VERSION", "v4.4.8")
    with pytest.raises(ToolMissing, match=r"needs k3d 5\.0\.0 or newer"):
        k3d.registry_create("devslice-registry", 5050)
    assert fake.calls() == [["k3d", "version"]]


# ---------------------------------------------------------------------- config


def test_generated_config() -> None:
    s = settings(agents=2, ports=["8080:80@loadbalancer", "8443:443"],
                 k3s_args=[K3sArg(arg="--disable=traefik"),
                           K3sArg(arg="--node-label=pool=x", node_filters=["agent:0", "agent:1"])])
    assert k3d_config(s, subnet="172.18.0.0/16") == {
        "apiVersion": "k3d.io/v1alpha5",
        "kind": "Simple",
        "metadata": {"name": "devslice"},
        "servers": 1,
        "agents": 2,
        "subnet": "172.18.0.0/16",
        "ports": [{"port": "8080:80", "nodeFilters": ["loadbalancer"]}, {"port": "8443:443"}],
        "registries": {"use": ["k3d-devslice-registry:5050"]},
        "options": {"k3s": {"extraArgs": [
            {"arg": "--disable=traefik", "nodeFilters": ["server:*"]},
            {"arg": "--node-label=pool=x", "nodeFilters": ["agent:0", "agent:1"]},
        ]}},
    }


@pytest.mark.parametrize("s", [
    settings(),
    settings(name="team-a", servers=3, agents=2, subnet="10.42.0.0/16",
             ports=["8080:80@loadbalancer", "30000-30010:30000-30010@server:0"],
             registry=RegistrySettings(name="registry.localhost", port=5111)),
    settings(k3s_args=[]),
])
def test_generated_config_validates_against_k3d_schema(s: ClusterSettings) -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    config = k3d_config(s)
    assert [e.message for e in validator.iter_errors(config)] == []
    # and so does what is written to disk, read back
    assert [e.message for e in validator.iter_errors(read_config_text(dump_config(config)))] == []


def read_config_text(text: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


def test_written_config_is_readable_yaml(tmp_path: Path) -> None:
    config = k3d_config(settings(ports=["8080:30@loadbalancer"]))
    text = dump_config(config)
    assert text.startswith("# Generated by devslice")
    assert '- port: "8080:30"' in text  # a YAML 1.1 reader would see 8080:30 as base 60
    assert "  use:\n    - k3d-devslice-registry:5050\n" in text
    path = tmp_path / "k3d.yaml"
    path.write_text(text)
    assert read_config(path) == config
    assert read_config(tmp_path / "missing.yaml") is None


def test_the_applied_record_is_json_yaml_readers_read_and_old_yaml_records_still_read(
        tmp_path: Path) -> None:
    """The record of the applied config is JSON (no YAML parser on a no-op `up`, issue 17),
    which YAML readers read as the same data; records written as YAML before still read."""
    config = k3d_config(settings(ports=["8080:30@loadbalancer"], agents=2))
    path = write_applied(tmp_path / "k3d.applied.yaml", config)
    assert json.loads("".join(line for line in path.read_text().splitlines(keepends=True)
                              if not line.startswith("#"))) == config
    assert read_config_text(path.read_text()) == config  # still a YAML document
    assert read_config(path) == config
    path.write_text(dump_config(config))  # a record from before: YAML
    assert read_config(path) == config
    path.write_text("# a flow mapping that is not JSON\n{servers: 1, agents: 0}\n")
    assert read_config(path) == {"servers": 1, "agents": 0}
    path.write_text("{not: [closed\n")
    assert read_config(path) is None


def test_host_gateway_is_the_first_address_of_the_subnet() -> None:
    assert host_gateway("172.18.0.0/16") == "172.18.0.1"
    assert host_gateway("10.5.7.0/24") == "10.5.7.1"
    assert ClusterSettings().subnet == "auto"  # resolved by cluster_subnet, then kept
    with pytest.raises(ConfigError, match=r"cluster\.subnet: 'auto' is not a subnet"):
        host_gateway("auto")
    with pytest.raises(ConfigError, match="has host bits set"):
        host_gateway("172.18.5.0/16")


# ---------------------------------------------------------------------- golden plans

FRESH = """\
+ registry: create (registry k3d-devslice-registry does not exist)
    $ k3d registry create devslice-registry -p 5050
+ cluster: create (cluster devslice does not exist)
    $ k3d cluster create --config <project>/.devslice/k3d-devslice.yaml
2 changes
"""

UNCHANGED = """\
= registry: registry k3d-devslice-registry already running on 5050
= cluster: cluster devslice already running (1/1 servers, 0/0 agents running)
nothing to do
"""

STOPPED = """\
= registry: registry k3d-devslice-registry already running on 5050
+ cluster: start (cluster devslice is stopped (0/1 servers, 0/0 agents running))
    $ k3d cluster start devslice
1 change
"""

CHANGED_SPEC = """\
= registry: registry k3d-devslice-registry already running on 5050
+ cluster: recreate (recreate cluster devslice: agents 0 -> 2; ports none -> \
8080:80@loadbalancer)
    $ k3d cluster delete devslice
    $ k3d cluster create --config <project>/.devslice/k3d-devslice.yaml
1 change
"""

REGISTRY_PORT = """\
+ registry: recreate (recreate registry: port 5000 -> 5050)
    $ k3d registry delete k3d-devslice-registry
    $ k3d registry create devslice-registry -p 5050
+ cluster: recreate (recreate cluster devslice: registries k3d-devslice-registry:5000 -> \
k3d-devslice-registry:5050)
    $ k3d cluster delete devslice
    $ k3d cluster create --config <project>/.devslice/k3d-devslice.yaml
2 changes
"""


def test_plan_on_a_fresh_machine(k3d: K3d, fake: FakeK3d, project: Path) -> None:
    plan = make_plan(resources(k3d, settings(), project))
    assert render(plan, project) == FRESH
    assert not (project / ".devslice").exists()  # planning writes nothing
    assert fake.calls() and changing(fake.calls()) == []


def test_up_runs_exactly_these_commands_and_keeps_the_config(
    k3d: K3d, fake: FakeK3d, project: Path
) -> None:
    up(k3d, settings(), project)
    assert changing(fake.calls()) == [
        ["k3d", "registry", "create", "devslice-registry", "-p", "5050"],
        ["k3d", "cluster", "create", "--config",
         str(project / ".devslice" / "k3d-devslice.yaml")],
    ]
    written = read_config(config_path(project, "devslice"))
    assert written == k3d_config(settings(), subnet="172.18.0.0/16")  # auto: the first free
    assert read_config(applied_path(project, "devslice")) == written
    world = fake.world()
    assert world["clusters"]["devslice"]["k3sArgs"] == [
        {"arg": "--disable=traefik", "nodeFilters": ["server:*"]}]
    assert "k3d-devslice" in world["registries"]["k3d-devslice-registry"]["networks"]


def test_second_up_plans_nothing_and_only_reads(k3d: K3d, fake: FakeK3d, project: Path) -> None:
    up(k3d, settings(), project)
    fake.clear_log()
    again = K3d(SubprocessRunner(path=str(fake.bin)))  # a new run: nothing cached
    plan = make_plan(resources(again, settings(), project))
    assert plan.empty
    assert render(plan, project) == UNCHANGED
    Executor().apply(resources(again, settings(), project))
    assert fake.calls() and changing(fake.calls()) == []  # only version and list calls


def test_stopped_cluster_is_started_not_recreated(
    k3d: K3d, fake: FakeK3d, project: Path
) -> None:
    up(k3d, settings(), project)
    k3d.cluster_stop("devslice")
    assert render(make_plan(resources(k3d, settings(), project)), project) == STOPPED
    fake.clear_log()
    up(k3d, settings(), project)
    assert changing(fake.calls()) == [["k3d", "cluster", "start", "devslice"]]
    assert make_plan(resources(k3d, settings(), project)).empty


def test_partly_running_cluster_after_sleep_is_started(
    k3d: K3d, fake: FakeK3d, project: Path
) -> None:
    up(k3d, settings(agents=1), project)
    world = fake.world()
    world["clusters"]["devslice"]["running"]["k3d-devslice-agent-0"] = False
    fake.edit(world)
    [action] = ClusterResource(k3d, settings(agents=1), project).plan()
    assert (action.verb, action.reason) == (
        "start", "cluster devslice is partly running (1/1 servers, 0/1 agents running)")


def test_changed_spec_recreates_and_says_why(k3d: K3d, fake: FakeK3d, project: Path) -> None:
    up(k3d, settings(), project)
    changed = settings(agents=2, ports=["8080:80@loadbalancer"])
    assert render(make_plan(resources(k3d, changed, project)), project) == CHANGED_SPEC
    fake.clear_log()
    up(k3d, changed, project)
    assert changing(fake.calls()) == [
        ["k3d", "cluster", "delete", "devslice"],
        ["k3d", "cluster", "create", "--config",
         str(project / ".devslice" / "k3d-devslice.yaml")],
    ]
    assert fake.world()["clusters"]["devslice"]["agents"] == 2
    assert make_plan(resources(k3d, changed, project)).empty


def test_changed_spec_of_a_stopped_cluster_recreates(
    k3d: K3d, fake: FakeK3d, project: Path
) -> None:
    up(k3d, settings(), project)
    k3d.cluster_stop("devslice")
    [action] = ClusterResource(k3d, settings(k3s_args=[]), project).plan()
    assert (action.verb, action.reason) == (
        "recreate", "recreate cluster devslice: k3s args --disable=traefik@server:* -> none")


def test_registry_port_change_recreates_registry_and_cluster(
    k3d: K3d, fake: FakeK3d, project: Path
) -> None:
    old = settings(registry=RegistrySettings(port=5000))
    up(k3d, old, project)
    new = settings(registry=RegistrySettings(port=5050))
    assert render(make_plan(resources(k3d, new, project)), project) == REGISTRY_PORT
    up(k3d, new, project)
    assert fake.world()["registries"]["k3d-devslice-registry"]["hostPort"] == "5050"
    assert make_plan(resources(k3d, new, project)).empty


REGISTRY_GONE = """\
+ registry: create (registry k3d-devslice-registry does not exist)
    $ k3d registry create devslice-registry -p 5050
+ cluster: recreate (recreate cluster devslice: registry k3d-devslice-registry not on network \
k3d-devslice (k3d connects it only in cluster create))
    $ k3d cluster delete devslice
    $ k3d cluster create --config <project>/.devslice/k3d-devslice.yaml
2 changes
"""


def test_a_registry_made_afresh_needs_the_cluster_made_afresh(
    k3d: K3d, fake: FakeK3d, project: Path
) -> None:
    up(k3d, settings(), project)
    [reg] = k3d.registry_list()
    assert reg.networks == ("bridge", "k3d-devslice")
    assert fake.k3d("registry", "delete", "devslice-registry").returncode == 0
    assert render(make_plan(resources(k3d, settings(), project)), project) == REGISTRY_GONE
    up(k3d, settings(), project)
    assert make_plan(resources(k3d, settings(), project)).empty


def test_stopped_registry_is_recreated(k3d: K3d, fake: FakeK3d, project: Path) -> None:
    up(k3d, settings(), project)
    world = fake.world()
    world["registries"]["k3d-devslice-registry"]["running"] = False
    fake.edit(world)
    [action] = RegistryResource(k3d, settings().registry).plan()
    assert (action.verb, action.reason) == (
        "recreate", "recreate registry: k3d-devslice-registry is exited "
                    "(k3d 5.x cannot start a registry)")


def test_without_an_applied_record_live_facts_are_still_compared(
    k3d: K3d, fake: FakeK3d, project: Path
) -> None:
    up(k3d, settings(), project)
    applied_path(project, "devslice").unlink()
    [action] = ClusterResource(k3d, settings(), project).plan()
    assert action.verb == "noop"
    assert action.reason.endswith("no record of its applied config at .devslice/"
                                  "k3d-devslice.applied.yaml, so only servers, agents and "
                                  "subnet compared")
    [action] = ClusterResource(k3d, settings(servers=3), project).plan()
    assert action.reason == "recreate cluster devslice: servers 1 -> 3"


def test_a_failed_create_leaves_no_applied_record(
    k3d: K3d, fake: FakeK3d, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_K3D_FAIL", "cluster create")
    with pytest.raises(CommandFailed, match="injected failure"):
        up(k3d, settings(), project)
    assert config_path(project, "devslice").exists()  # there for the user to read
    assert not applied_path(project, "devslice").exists()
    monkeypatch.delenv("FAKE_K3D_FAIL")
    [action] = ClusterResource(k3d, settings(), project).plan()
    assert action.verb == "create"


# ---------------------------------------------------------------------- down, destroy


def test_down_stops_and_deletes_nothing(k3d: K3d, fake: FakeK3d, project: Path) -> None:
    up(k3d, settings(), project)
    actions = stop_actions(k3d, settings())
    assert render(actions, project) == (
        "+ cluster: stop (stop cluster devslice (1/1 servers, 0/0 agents running); nothing is "
        "deleted)\n"
        "    $ k3d cluster stop devslice\n"
        "= registry: registry k3d-devslice-registry left as it is (it holds pushed images; "
        "k3d 5.x cannot stop a registry)\n"
        "1 change\n")
    for a in actions:
        if a.execute is not None:
            a.execute()
    world = fake.world()
    assert set(world["clusters"]) == {"devslice"}
    assert not any(world["clusters"]["devslice"]["running"].values())
    assert stop_actions(k3d, settings())[0].reason == (
        "cluster devslice already stopped")


def test_destroy_deletes_cluster_then_registry(k3d: K3d, fake: FakeK3d, project: Path) -> None:
    up(k3d, settings(), project)
    actions = destroy_actions(k3d, settings(), project)
    assert render(actions, project) == (
        "+ cluster: delete (delete cluster devslice with its nodes, network and volumes)\n"
        "    $ k3d cluster delete devslice\n"
        "+ registry: delete (delete registry k3d-devslice-registry and the images pushed to "
        "it)\n"
        "    $ k3d registry delete k3d-devslice-registry\n"
        "2 changes\n")
    fake.clear_log()
    for a in actions:
        if a.execute is not None:
            a.execute()
    assert fake.calls() == [["k3d", "cluster", "delete", "devslice"],
                            ["k3d", "registry", "delete", "k3d-devslice-registry"]]
    assert fake.world() == {"clusters": {}, "registries": {}}
    assert not applied_path(project, "devslice").exists()
    assert [a.verb for a in destroy_actions(k3d, settings(), project)] == ["noop", "noop"]

