"""`devslice debug` end to end: pods resolved against the wire-level fake Kubernetes API, the
mirrord config checked against mirrord's own JSON Schema, the exact argv a fake `mirrord` that
accepts only mirrord's flags receives, exit codes passed through, IDE files, and the
--exclusive lease on the embedded hub (a pod-side consumer steps aside and resumes, also after
the session is SIGKILLed, without losing an event)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from ruamel.yaml import YAML

from devslice.adapters.kube import FIELD_MANAGER, MANAGED_BY, SLICE_LABEL, Kube
from devslice.cli.app import run
from devslice.debug import (
    DebugError,
    DebugTarget,
    MirrordSettings,
    NoRunningPod,
    find_target,
    mirrord_config,
)
from devslice.embedded import EmbeddedHub
from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import SliceConsumer, SliceProducer
from devslice.sdk.leases import HeldLease, LeaseHeld, LeaseWatch, lease_name, service_name
from devslice.testing.kubeapi import FakeKubeAPI
from devslice.testing.slice import embedded_slice_env

from .helpers import BASE, FAKES, REPO, SHARED, wait_for

SCHEMA = SHARED / "schemas" / "mirrord-config.schema.json"


# -- the world: a project with a slice, a fake cluster, a fake mirrord ---------------------------

class World:
    def __init__(self, root: Path, kube: FakeKubeAPI, log: Path) -> None:
        self.root, self.kube, self.log = root, kube, log

    def mirrord_calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def deployment(self, name: str = "orders", replicas: int = 0,
                   env_from: str | None = None, namespace: str = "default") -> None:
        """A Deployment as `devslice up` leaves it (devslice's labels); replicas 0 so the
        fake's controller makes no pods and the test seeds its own."""
        container: dict[str, Any] = {"name": name, "image": name}
        if env_from:
            container["envFrom"] = [{"configMapRef": {"name": env_from}}]
        self.kube.apply({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {MANAGED_BY: FIELD_MANAGER, SLICE_LABEL: "ab"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, SLICE_LABEL: "ab"}},
                                  "spec": {"containers": [container]}}}})

    def pod(self, name: str, *, phase: str = "Running", ready: bool = True,
            started: str = "2026-01-01T10:00:00Z", waiting: str | None = None,
            terminating: bool = False, app: str = "orders",
            containers: tuple[str, ...] = ("orders",), env_from: str | None = None) -> None:
        """Pods are seeded oldest first: the fake stamps creationTimestamp itself."""
        meta: dict[str, Any] = {"name": name, "namespace": "default",
                                "labels": {"app": app, SLICE_LABEL: "ab"}}
        if terminating:
            meta["deletionTimestamp"] = "2026-01-01T11:00:00Z"
        state: dict[str, Any] = ({"waiting": {"reason": waiting}} if waiting
                                 else {"running": {"startedAt": started}})
        spec_containers: list[dict[str, Any]] = [{"name": c, "image": c} for c in containers]
        if env_from:
            spec_containers[0]["envFrom"] = [{"configMapRef": {"name": env_from}}]
        self.kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                         "spec": {"containers": spec_containers},
                         "status": {"phase": phase, "startTime": started,
                                    "conditions": [{"type": "Ready",
                                                    "status": str(ready)}],
                                    "containerStatuses": [
                                        {"name": c, "ready": ready, "restartCount": 0,
                                         "image": c, "imageID": "", "state": state}
                                        for c in containers]}})


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(FAKES / "mirrord", bin_dir / "mirrord")
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_MIRRORD_LOG", str(tmp_path / "mirrord.log"))
    monkeypatch.setenv("FAKE_MIRRORD_PYTHON", sys.executable)
    monkeypatch.delenv("FAKE_MIRRORD_FAIL", raising=False)
    monkeypatch.delenv("DEVSLICE_LEASE_HOLDER", raising=False)
    monkeypatch.delenv("DEVSLICE_SERVICE", raising=False)
    with FakeKubeAPI() as kube:
        kubeconfig = tmp_path / "kubeconfig"
        YAML().dump(kube.kubeconfig(context="k3d-devslice"), kubeconfig)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        project = tmp_path / "project"
        project.mkdir()
        (project / "devslice.yaml").write_text(BASE)
        monkeypatch.chdir(project)
        assert run(["slice", "claim"]) == 0  # slice "ab" (Anna Berg)
        yield World(project, kube, tmp_path / "mirrord.log")


@pytest.fixture
def kube(world: World) -> Iterator[Kube]:
    adapter = Kube(Client(KubeConfig.from_dict(world.kube.kubeconfig())))
    yield adapter
    adapter.close()


def schema_validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


# -- finding the pod ---------------------------------------------------------------------------

def test_the_newest_running_ready_pod_is_chosen(world: World, kube: Kube) -> None:
    world.deployment()
    world.pod("orders-old", started="2026-01-01T10:00:00Z")
    world.pod("orders-new", started="2026-01-01T10:05:00Z")
    world.pod("orders-unready", started="2026-01-01T10:10:00Z", ready=False)
    world.pod("orders-pending", phase="Pending", ready=False, waiting="ContainerCreating",
              started="2026-01-01T10:15:00Z")
    world.pod("orders-leaving", terminating=True, started="2026-01-01T10:20:00Z")
    world.pod("billing-newest", app="billing", started="2026-01-01T10:30:00Z")

    target = find_target(kube, "orders", "ab", None)

    assert (target.pod, target.namespace, target.container) == ("orders-new", "default", None)
    assert target.path == "deployment/orders"  # not the pod: the next rollout replaces it


def test_a_pod_with_sidecars_names_the_services_container(world: World, kube: Kube) -> None:
    world.deployment()
    world.pod("orders-1", containers=("istio-proxy", "orders"))
    assert find_target(kube, "orders", "ab", None).path == "deployment/orders/container/orders"


def test_no_running_pod_lists_the_pods_and_their_states(
        world: World, kube: Kube, capsys: pytest.CaptureFixture[str]) -> None:
    world.deployment()
    world.pod("orders-a", phase="Pending", ready=False, waiting="ImagePullBackOff")
    world.pod("orders-b", ready=False, waiting="CrashLoopBackOff")

    with pytest.raises(NoRunningPod) as info:
        find_target(kube, "orders", "ab", None)
    assert info.value.message == (
        "Deployment orders in default has no running, ready pod:\n"
        "  orders-a: Pending (ImagePullBackOff)\n"
        "  orders-b: Running, not ready (CrashLoopBackOff)")

    assert run(["debug", "orders", "--", "true"]) == 1  # the CLI says the same, no traceback
    err = capsys.readouterr().err
    assert "orders-a: Pending (ImagePullBackOff)" in err and "devslice status" in err
    assert world.mirrord_calls() == []


def test_an_unknown_service_names_the_slices_deployments(world: World, kube: Kube) -> None:
    world.deployment("billing")
    with pytest.raises(DebugError, match=r"no Deployment orders of slice ab in the cluster "
                                         r"\(its Deployments: billing\)"):
        find_target(kube, "orders", "ab", None)


def test_a_missing_kube_context_says_which_the_slice_uses(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other-kubeconfig"
    YAML().dump(world.kube.kubeconfig(context="aks-shared"), other)
    monkeypatch.setenv("KUBECONFIG", str(other))
    assert run(["debug", "orders", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert "kube context 'k3d-devslice'" in err and "devslice up" in err


# -- the mirrord config ----------------------------------------------------------------------

@pytest.mark.parametrize("settings", [
    MirrordSettings(),
    MirrordSettings(steal=True, env_exclude=("PATH", "HOME"), fs_mode="write",
                    agent_startup_timeout=120, kube_context="k3d-devslice",
                    env_override={"DEVSLICE_LEASE_HOLDER": "me"}),
    MirrordSettings(env_include=("LOCAL_DEV_*",), fs_mode="localwithoverrides"),
])
def test_configs_validate_against_mirrords_schema(settings: MirrordSettings) -> None:
    validator = schema_validator()
    for container in (None, "orders"):
        config = mirrord_config(DebugTarget("orders", "team-ab", "orders-1", container),
                                settings)
        assert list(validator.iter_errors(config)) == []


def test_the_schema_check_is_not_a_formality() -> None:
    validator = schema_validator()
    config = mirrord_config(DebugTarget("orders", "default", "orders-1", None),
                            MirrordSettings())
    config["feature"]["network"]["incoming"] = "borrow"
    assert list(validator.iter_errors(config))


def test_settings_refuse_what_mirrord_would() -> None:
    with pytest.raises(DebugError, match="file system mode 'remote'"):
        MirrordSettings(fs_mode="remote")
    with pytest.raises(DebugError, match="include and exclude"):
        MirrordSettings(env_include=("A",), env_exclude=("B",))


# -- running mirrord -------------------------------------------------------------------------

def test_exact_argv_config_and_exit_code(world: World,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    world.deployment()
    world.pod("orders-1")
    code = run(["debug", "orders", "--steal", "--fs-mode", "write", "--env-exclude", "PATH",
                "--agent-timeout", "90", "--", sys.executable, "-c",
                "import sys; sys.exit(3)", "--flag-of-the-child"])
    assert code == 3
    config_file = world.root / ".mirrord" / "orders.mirrord.json"
    assert world.mirrord_calls() == [[
        "mirrord", "exec", "-f", str(config_file), "--", sys.executable, "-c",
        "import sys; sys.exit(3)", "--flag-of-the-child"]]
    config = json.loads(config_file.read_text())
    assert config == {
        "kube_context": "k3d-devslice",
        "target": {"path": "deployment/orders", "namespace": "default"},
        "feature": {"network": {"incoming": "steal"}, "env": {"exclude": ["PATH"]},
                    "fs": {"mode": "write"}},
        "agent": {"startup_timeout": 90}}
    assert list(schema_validator().iter_errors(config)) == []
    err = capsys.readouterr().err
    assert "deployment/orders in namespace default" in err and "pod now: orders-1" in err


def test_a_successful_child_exits_zero(world: World) -> None:
    world.deployment()
    world.pod("orders-1")
    assert run(["debug", "orders", "--", sys.executable, "-c", "pass"]) == 0


@pytest.mark.parametrize(("failure", "advice"), [
    ("psa", "Pod Security Admission refused the agent"),
    ("timeout", "raise agent.startup_timeout"),
    ("notfound", "the pod may have been replaced"),
])
def test_an_agent_that_does_not_start_is_explained(
        world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        failure: str, advice: str) -> None:
    world.deployment()
    world.pod("orders-1")
    monkeypatch.setenv("FAKE_MIRRORD_FAIL", failure)
    assert run(["debug", "orders", "--", "true"]) == 1
    err = capsys.readouterr().err
    assert "mirrord could not start its agent: Failed to create mirrord-agent" in err
    assert advice in err


def test_mirrord_missing_says_how_to_install_it(
        world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.deployment()
    world.pod("orders-1")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert run(["debug", "orders", "--", "true"]) == 1
    err = capsys.readouterr().err
    assert "mirrord is not installed" in err and "install mirrord" in err


def test_the_fake_accepts_only_mirrords_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text("{}")

    def fake(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(FAKES / "mirrord"), *args], capture_output=True, text=True,
                              env={"FAKE_MIRRORD_PYTHON": sys.executable, "PATH": "/usr/bin"},
                              check=False)

    assert fake("--version").stdout == "mirrord 3.250.0\n"
    assert fake("exec", "-f", str(config), "-n", "ns", "--target", "pod/x", "--steal",
                "--agent-startup-timeout", "5", "--", "sh", "-c", "exit 4").returncode == 4
    refused = fake("exec", "--exclusive", "--", "true")
    assert refused.returncode == 2
    assert "unexpected argument '--exclusive'" in refused.stderr
    assert fake("exec", "--fs-mode", "remote", "--", "true").returncode == 2
    for good in ("deployment/orders", "deployment/orders/container/orders", "pod/x",
                 "targetless"):
        config.write_text(json.dumps({"target": {"path": good}}))
        assert fake("exec", "-f", str(config), "--", "true").returncode == 0, good
    for bad in ("deployments/orders", "deployment/orders/orders", "deployment/"):
        config.write_text(json.dumps({"target": bad}))
        refused = fake("exec", "-f", str(config), "--", "true")
        assert refused.returncode == 1 and "failed to parse the provided target" in \
            refused.stderr, bad
    assert fake("exec", "--target", "pods/x", "--", "true").returncode == 1
    missing = fake("exec", "-f", str(tmp_path / "none.json"), "--", "true")
    assert missing.returncode == 1 and "Couldn't open config file" in missing.stderr
    config.write_text("not json")
    assert fake("exec", "-f", str(config), "--", "true").returncode == 1


# -- warnings ---------------------------------------------------------------------------------

def test_a_service_that_sees_event_hubs_variables_gets_a_warning(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "devslice-ab", "namespace": "default"},
                      "data": {"LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING": "embedded:/x",
                               "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "0",
                               "LOCAL_DEV_SLICE": "ab"}})
    world.deployment(env_from="devslice-ab")
    world.pod("orders-1", env_from="devslice-ab")
    assert run(["debug", "orders", "--", "true"]) == 0
    err = capsys.readouterr().err
    assert "warning: orders sees the slice's Event Hubs variables" in err
    assert "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS" in err and "--exclusive" in err


def test_no_warning_for_a_service_without_event_hubs(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.deployment()
    world.pod("orders-1")
    assert run(["debug", "orders", "--", "true"]) == 0
    assert "warning:" not in capsys.readouterr().err


# -- IDE hand-off ---------------------------------------------------------------------------

def test_vscode_launch_entry_is_written_and_updated(world: World) -> None:
    world.deployment()
    world.pod("orders-1")
    launch = world.root / ".vscode" / "launch.json"
    launch.parent.mkdir()
    launch.write_text(json.dumps({"version": "0.2.0", "configurations": [
        {"name": "mine", "type": "node", "request": "launch"}]}))
    for _ in range(2):  # a second run replaces the entry
        assert run(["debug", "orders", "--ide", "vscode", "--", "python", "app.py", "-v"]) == 0
    doc = json.loads(launch.read_text())
    assert [c["name"] for c in doc["configurations"]] == ["mine", "orders (devslice debug)"]
    entry = doc["configurations"][1]
    assert entry["type"] == "debugpy" and entry["request"] == "launch"
    assert entry["program"] == "${workspaceFolder}/app.py" and entry["args"] == ["-v"]
    assert entry["env"] == {
        "MIRRORD_CONFIG_FILE": "${workspaceFolder}/.mirrord/orders.mirrord.json"}
    assert (world.root / ".mirrord" / "orders.mirrord.json").exists()
    assert world.mirrord_calls() == []  # the IDE runs it, not devslice


def test_vscode_launch_with_comments_is_left_alone(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.deployment()
    world.pod("orders-1")
    launch = world.root / ".vscode" / "launch.json"
    launch.parent.mkdir()
    text = '{\n  // mine\n  "version": "0.2.0", "configurations": []\n}\n'
    launch.write_text(text)
    assert run(["debug", "orders", "--ide", "vscode", "--", "node", "server.js"]) == 1
    assert launch.read_text() == text
    assert '"MIRRORD_CONFIG_FILE"' in capsys.readouterr().err  # the entry to paste


def test_jetbrains_run_configuration(world: World) -> None:
    world.deployment()
    world.pod("orders-1")
    assert run(["debug", "orders", "--ide", "jetbrains", "--", "python", "-m", "orders.main",
                "--port", "8080"]) == 0
    root = ET.parse(world.root / ".run" / "orders.run.xml").getroot()
    conf = root.find("configuration")
    assert conf is not None and conf.get("type") == "PythonConfigurationType"
    options = {o.get("name"): o.get("value") for o in conf.findall("option")}
    assert options["SCRIPT_NAME"] == "orders.main" and options["MODULE_MODE"] == "true"
    assert options["PARAMETERS"] == "--port 8080"
    envs = {e.get("name"): e.get("value") for e in conf.findall("envs/env")}
    assert envs == {"MIRRORD_CONFIG_FILE": "$PROJECT_DIR$/.mirrord/orders.mirrord.json"}


CSPROJ = """<Project Sdk="Microsoft.NET.Sdk.Web">
  <PropertyGroup>
    <TargetFramework>{tfm}</TargetFramework>
    <AssemblyName>Company1.Orders</AssemblyName>
  </PropertyGroup>
  <PropertyGroup Condition="'$(Configuration)' == 'Release'">
    <TargetFramework>ignored</TargetFramework>
  </PropertyGroup>
</Project>
"""


def dotnet_project(root: Path, tfm: str = "net8.0", folder: str = "services/Orders") -> Path:
    path = root / folder / "Orders.csproj"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CSPROJ.format(tfm=tfm))
    return path


def expand(value: str, root: Path) -> Path:
    assert value.startswith("$PROJECT_DIR$/"), value
    return root / value.removeprefix("$PROJECT_DIR$/")


@pytest.mark.parametrize("ide", ["rider", "jetbrains"])
def test_rider_run_configuration_for_dotnet_run(world: World, ide: str) -> None:
    world.deployment()
    world.pod("orders-1")
    project = dotnet_project(world.root)
    assert run(["debug", "orders", "--ide", ide, "--", "dotnet", "run", "--project",
                "services/Orders", "--", "--urls", "http://+:8080"]) == 0

    root = ET.parse(world.root / ".run" / "orders.run.xml").getroot()
    assert root.tag == "component" and root.get("name") == "ProjectRunConfigurationManager"
    (conf,) = root.findall("configuration")
    assert (conf.get("type"), conf.get("factoryName"), conf.get("name")) == (
        "DotNetProject", ".NET Project", "orders (devslice debug)")
    options = {o.get("name"): o.get("value") for o in conf.findall("option")}
    assert expand(options["PROJECT_PATH"], world.root) == project
    assert options["PROJECT_KIND"] == "DotNetCore" and options["PROJECT_TFM"] == "net8.0"
    assert expand(options["EXE_PATH"], world.root) == (
        project.parent / "bin" / "Debug" / "net8.0" / "Company1.Orders.dll")
    assert options["PROGRAM_PARAMETERS"] == "--urls http://+:8080"
    assert options["WORKING_DIRECTORY"] == "$PROJECT_DIR$"  # where `dotnet run` ran
    assert options["PASS_PARENT_ENVS"] == "1" and options["PROJECT_ARGUMENTS_TRACKING"] == "0"
    assert [o.get("name") for o in conf.findall("method/option")] == ["Build"]
    envs = {e.get("name"): e.get("value") for e in conf.findall("envs/env")}
    config = expand(envs["MIRRORD_CONFIG_FILE"], world.root)
    document = json.loads(config.read_text())
    assert list(schema_validator().iter_errors(document)) == []
    assert document["target"]["path"] == "deployment/orders"
    assert world.mirrord_calls() == []


def test_plain_dotnet_run_in_the_projects_folder(world: World,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case, `debug --ide rider -- dotnet run`, run where the project is."""
    world.deployment()
    world.pod("orders-1")
    project = dotnet_project(world.root)
    monkeypatch.chdir(project.parent)  # devslice.yaml is found in a parent folder
    assert run(["debug", "orders", "--ide", "rider", "--", "dotnet", "run"]) == 0
    conf = ET.parse(world.root / ".run" / "orders.run.xml").getroot().find("configuration")
    assert conf is not None
    options = {o.get("name"): o.get("value") for o in conf.findall("option")}
    assert options["PROJECT_PATH"] == "$PROJECT_DIR$/services/Orders/Orders.csproj"
    assert options["WORKING_DIRECTORY"] == "$PROJECT_DIR$/services/Orders"
    assert options["PROGRAM_PARAMETERS"] == ""


def test_a_saved_configuration_survives_a_rollout(world: World) -> None:
    world.deployment()
    world.pod("orders-1")
    dotnet_project(world.root)
    argv = ["debug", "orders", "--ide", "rider", "--", "dotnet", "run", "--project",
            "services/Orders"]
    assert run(argv) == 0
    written = {p: p.read_text() for p in (world.root / ".run" / "orders.run.xml",
                                          world.root / ".mirrord" / "orders.mirrord.json")}
    world.pod("orders-1", terminating=True)  # a rollout: a new pod replaces the old one
    world.pod("orders-2", started="2026-01-01T11:00:00Z")
    assert run(argv) == 0
    assert {p: p.read_text() for p in written} == written  # nothing names the old pod
    assert "orders-1" not in "".join(written.values())
    # and mirrord takes the target as it would (its own target syntax)
    code = run(["debug", "orders", "--", sys.executable, "-c", "pass"])
    assert code == 0 and world.mirrord_calls()[-1][3] == str(
        world.root / ".mirrord" / "orders.mirrord.json")


def test_vscode_gets_coreclr_for_dotnet(world: World) -> None:
    world.deployment()
    world.pod("orders-1")
    project = dotnet_project(world.root)
    assert run(["debug", "orders", "--ide", "vscode", "--", "dotnet", "run", "--project",
                str(project), "-c", "Release", "-f", "net9.0", "--", "-v"]) == 0
    assert run(["debug", "orders", "--ide", "vscode", "--", "dotnet",
                "out/Company1.Orders.dll", "--port", "1"]) == 0  # replaces the entry
    (entry,) = json.loads((world.root / ".vscode" / "launch.json").read_text())[
        "configurations"]
    assert entry["type"] == "coreclr" and entry["request"] == "launch"
    assert entry["program"] == "${workspaceFolder}/out/Company1.Orders.dll"
    assert entry["args"] == ["--port", "1"]
    assert entry["env"]["MIRRORD_CONFIG_FILE"] == (
        "${workspaceFolder}/.mirrord/orders.mirrord.json")


def test_vscode_coreclr_runs_the_assembly_dotnet_run_builds(world: World) -> None:
    world.deployment()
    world.pod("orders-1")
    dotnet_project(world.root)
    assert run(["debug", "orders", "--ide", "vscode", "--", "dotnet", "run", "--project",
                "services/Orders", "-c", "Release", "--", "-v"]) == 0
    (entry,) = json.loads((world.root / ".vscode" / "launch.json").read_text())[
        "configurations"]
    assert entry["program"] == (
        "${workspaceFolder}/services/Orders/bin/Release/net8.0/Company1.Orders.dll")
    assert entry["args"] == ["-v"]


@pytest.mark.parametrize(("setup", "command", "message"), [
    ("several", ["dotnet", "run", "--project", "services/Orders"],
     "targets several frameworks (net8.0, net9.0)"),
    ("none", ["dotnet", "run"], "must hold exactly one project file"),
    ("one", ["dotnet", "run", "--project", "services/Orders", "--launch-profile", "https"],
     "cannot carry `dotnet run --launch-profile`"),
    ("one", ["dotnet", "bin/App.dll"], "Rider launches .NET projects, not an assembly"),
])
def test_dotnet_commands_rider_cannot_take_are_refused_before_anything_is_written(
        world: World, capsys: pytest.CaptureFixture[str], setup: str, command: list[str],
        message: str) -> None:
    world.deployment()
    world.pod("orders-1")
    if setup == "several":
        dotnet_project(world.root, tfm="").write_text(
            "<Project><PropertyGroup><TargetFrameworks>net8.0;net9.0</TargetFrameworks>"
            "</PropertyGroup></Project>")
    elif setup == "one":
        dotnet_project(world.root)
    assert run(["debug", "orders", "--ide", "rider", "--", *command]) == 1
    assert message in capsys.readouterr().err
    assert not (world.root / ".run").exists() and not (world.root / ".mirrord").exists()


def test_the_cli_offers_every_ide_the_library_knows() -> None:
    from devslice.cli.debug import debug
    from devslice.debug import IDES

    (ide,) = [p for p in debug.params if p.name == "ide"]
    assert tuple(ide.type.choices) == IDES  # type: ignore[attr-defined]


def test_an_ide_cannot_take_an_arbitrary_command(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.deployment()
    world.pod("orders-1")
    assert run(["debug", "orders", "--ide", "vscode", "--", "make", "run"]) == 1
    assert "cannot hand `make run` to an IDE debugger" in capsys.readouterr().err


def test_debug_help_has_an_example() -> None:
    from click.testing import CliRunner

    from devslice.cli.app import cli

    out = CliRunner().invoke(cli, ["debug", "--help"]).output
    assert "Example" in out and "devslice debug orders -- python app.py" in out


# -- leases ----------------------------------------------------------------------------------

def test_embedded_hub_leases(tmp_path: Path) -> None:
    hub = EmbeddedHub(tmp_path / "hub.db")
    now = [time.time()]
    hub.clock = lambda: now[0]
    first = hub.acquire_lease("consumers/ab/orders", "me", 30)
    assert first is not None and first.holder == "me" and first.seconds_left > 29
    assert hub.acquire_lease("consumers/ab/orders", "you", 30) is None  # live: refused
    assert hub.acquire_lease("consumers/ab/orders", "me", 30) is not None  # renewed
    hub.release_lease("consumers/ab/orders", "you")  # not yours: nothing happens
    assert hub.live_lease("consumers/ab/orders") is not None
    hub.release_lease("consumers/ab/orders", "me")
    assert hub.live_lease("consumers/ab/orders") is None
    assert hub.acquire_lease("consumers/ab/orders", "me", 0.05) is not None
    now[0] += 0.04
    assert hub.live_lease("consumers/ab/orders") is not None
    now[0] += 0.02
    assert hub.live_lease("consumers/ab/orders") is None  # expired
    taken = hub.acquire_lease("consumers/ab/orders", "you", 30)  # taken over
    assert taken is not None and taken.holder == "you"
    with pytest.raises(LeaseHeld, match="held by you"):
        HeldLease(hub, "consumers/ab/orders", "me", 30).acquire()


def test_service_name_comes_from_the_variable_or_the_pods_hostname() -> None:
    assert service_name({"DEVSLICE_SERVICE": "orders", "HOSTNAME": "x"}) == "orders"
    assert service_name({"HOSTNAME": "orders-api-7d9f8c6b5-xk2lp"}) == "orders-api"
    assert service_name({"HOSTNAME": "laptop"}) is None


class PodConsumer:
    """The pod's side: a SliceConsumer of service "orders" in a thread, recording bodies."""

    def __init__(self, ctx: SliceContext, holder: str | None = None) -> None:
        self.received: list[str] = []
        self.consumer = SliceConsumer.from_context("orders", "billing", ctx=ctx,
                                                   service="orders", lease_poll=0.05)
        if holder is not None:
            assert self.consumer.lease is not None
            self.consumer.lease = LeaseWatch(self.consumer.lease.store,
                                             self.consumer.lease.name, holder, 0.05)
        self.thread = threading.Thread(target=self.consumer.receive, args=(self.on_event,),
                                       kwargs={"starting_position": "-1"}, daemon=True)

    def on_event(self, context: Any, event: Any) -> None:
        self.received.append(event.body_as_str())

    def __enter__(self) -> PodConsumer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.close()
        self.thread.join(10)
        assert not self.thread.is_alive()


def publish(ctx: SliceContext, *bodies: str) -> None:
    with SliceProducer.from_context("orders", ctx=ctx) as producer:
        for body in bodies:
            producer.send(body, partition_id="0")


def test_a_consumer_steps_aside_while_a_lease_is_held_and_resumes(tmp_path: Path) -> None:
    ctx = SliceContext.from_env(embedded_slice_env(tmp_path, handle="ab"))
    hub = EmbeddedHub(tmp_path / "eventhubs.db")
    name = lease_name("orders", "ab")
    now, looks = [time.time()], [0]

    def consumer_clock() -> float:  # the consumer reads it once per look at the lease
        looks[0] += 1
        return now[0]

    def renewed_until(due_ms: int) -> bool:
        info = hub.live_lease(name)
        return info is not None and info.expires_ms == due_ms

    hub.clock = lambda: now[0]
    with PodConsumer(ctx) as pod:
        assert pod.consumer.lease is not None
        pod.consumer.lease.store.clock = consumer_clock  # type: ignore[attr-defined]
        publish(ctx, "e0")
        wait_for(lambda: pod.received == ["e0"], what="e0")
        lease = HeldLease(hub, name, "debugger", ttl=0.6)
        with lease:
            wait_for(lambda: pod.consumer.paused_by is not None, what="the pause")
            publish(ctx, "e1", "e2")
            for _ in range(4):  # over two TTLs pass on the clock: renewals keep it held
                now[0] += 0.4  # under the TTL since the last renewal
                due = int(now[0] * 1000) + 600
                wait_for(lambda: renewed_until(due), what="a renewal")  # noqa: B023
                seen = looks[0]
                wait_for(lambda: looks[0] >= seen + 2,  # noqa: B023
                         what="the consumer looking at the lease again")
                assert pod.received == ["e0"]
        wait_for(lambda: len(pod.received) == 3, what="the resumption")
        assert pod.received == ["e0", "e1", "e2"]  # nothing lost, nothing twice


def test_the_lease_holders_own_consumer_keeps_receiving(tmp_path: Path) -> None:
    ctx = SliceContext.from_env(embedded_slice_env(tmp_path, handle="ab"))
    hub = EmbeddedHub(tmp_path / "eventhubs.db")
    with HeldLease(hub, lease_name("orders", "ab"), "debugger", ttl=5), \
            PodConsumer(ctx, holder="debugger") as local:
        publish(ctx, "e0", "e1")
        wait_for(lambda: local.received == ["e0", "e1"], what="the holder's consumer")


@pytest.mark.parametrize("ending", ["exits", "killed"])
def test_exclusive_session_pauses_the_pods_consumer(world: World, ending: str) -> None:
    world.deployment()
    world.pod("orders-1")
    ctx = SliceContext.from_env(embedded_slice_env(world.root / ".devslice", handle="ab"))
    hub = EmbeddedHub(world.root / ".devslice" / "eventhubs.db")
    name = lease_name("orders", "ab")
    release = world.root / "release"
    # the debugged program runs until the test says so (a file: it is another process)
    child = ("import pathlib, time\n"
             f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.05)\n")
    looks = [0]

    def consumer_clock() -> float:  # the consumer reads it once per look at the lease
        looks[0] += 1
        return time.time()

    with PodConsumer(ctx) as pod:
        assert pod.consumer.lease is not None
        pod.consumer.lease.store.clock = consumer_clock  # type: ignore[attr-defined]
        publish(ctx, "e0")
        wait_for(lambda: pod.received == ["e0"], what="e0")
        session = subprocess.Popen(
            [sys.executable, "-m", "devslice", "debug", "orders", "--exclusive",
             "--lease-ttl", "1.5", "--", sys.executable, "-c", child],
            cwd=world.root, start_new_session=True,  # its own group, as a terminal's job
            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        try:
            wait_for(lambda: hub.live_lease(name) is not None, what="the session's lease")
            wait_for(lambda: pod.consumer.paused_by is not None, what="the pause")
            publish(ctx, "e1", "e2", "e3")
            first = hub.live_lease(name)
            assert first is not None

            def renewed_past_first_ttl() -> bool:  # the running session renews it
                info = hub.live_lease(name)
                return info is not None and info.expires_ms > first.expires_ms + 1500

            wait_for(renewed_past_first_ttl, timeout=15, what="renewals past the first TTL")
            seen = looks[0]
            wait_for(lambda: looks[0] >= seen + 2, what="the consumer looking again")
            assert pod.received == ["e0"]
            if ending == "exits":
                release.touch()
                assert session.wait(20) == 0
                assert hub.live_lease(name) is None  # released at once
            else:
                os.killpg(session.pid, signal.SIGKILL)  # devslice, mirrord and the child
                session.wait(20)
                assert hub.live_lease(name) is not None  # nobody released it: the TTL will
            wait_for(lambda: len(pod.received) == 4, timeout=10, what="the resumption")
            assert pod.received == ["e0", "e1", "e2", "e3"]
        finally:
            if session.poll() is None:
                os.killpg(session.pid, signal.SIGKILL)
                session.wait()
    argv = world.mirrord_calls()[0]
    config = json.loads(Path(argv[3]).read_text())
    assert config["feature"]["env"]["override"]["DEVSLICE_SERVICE"] == "orders"
    assert config["feature"]["env"]["override"]["DEVSLICE_LEASE_HOLDER"].startswith(
        "devslice-debug/orders@")


def test_sigterm_to_devslice_reaches_the_debugged_program(tmp_path: Path) -> None:
    """An IDE's stop button sends SIGTERM to devslice: it goes on to the child (here in place
    of mirrord), and devslice reports the child's exit code instead of dying first."""
    import os
    import signal as signals
    import threading as threads

    from devslice.adapters.mirrord import TerminalRunner

    child = tmp_path / "child.py"
    marker = tmp_path / "got-term"
    child.write_text(
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(marker)!r}, 'w').write('x'), "
        "sys.exit(15)))\n"
        f"open({str(tmp_path / 'ready')!r}, 'w').write('x')\n"
        "time.sleep(30)\n")  # a program that runs until stopped

    def stop_button() -> None:  # once the child listens for SIGTERM
        wait_for((tmp_path / "ready").exists, 20, "the child's SIGTERM handler")
        os.kill(os.getpid(), signals.SIGTERM)

    presser = threads.Thread(target=stop_button, daemon=True)
    presser.start()
    done = TerminalRunner().attach([sys.executable, str(child)])
    presser.join(5)
    assert done.returncode == 15
    assert marker.exists()


# -- `devslice logs` under k3d/kube: the slice's pods through pods/log (issue 16) --------------

def test_logs_of_the_slices_pods(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.deployment("orders")
    world.deployment("billing")
    world.pod("orders-1")
    world.pod("orders-2", containers=("orders", "istio-proxy"))
    world.pod("billing-1", app="billing", containers=("billing",))
    world.pod("billing-2", app="billing", containers=("billing",), phase="Pending",
              ready=False, waiting="ContainerCreating")
    world.kube.write_log("orders-1", ["started", "order 1 placed"])
    world.kube.write_log("orders-2", ["started too"])
    world.kube.write_log("orders-2", ["proxy noise"], container="istio-proxy")
    world.kube.write_log("billing-1", ["invoice 1"])
    assert run(["logs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "billing/billing-1 | invoice 1",
        'billing/billing-2 | (reading the log of billing-2: container "billing" in pod '
        '"billing-2" is waiting to start: '
        "ContainerCreating)",
        "orders/orders-1   | started", "orders/orders-1   | order 1 placed",
        "orders/orders-2   | started too"]
    assert run(["logs", "orders", "--lines", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "orders/orders-1 | order 1 placed", "orders/orders-2 | started too"]


def test_logs_of_an_unknown_service_name_the_slices(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.deployment("orders")
    assert run(["logs", "nope"]) == 1
    assert "no Deployment nope of slice ab" in capsys.readouterr().err
    assert run(["logs", "nope", "-f"]) == 1
    assert "no Deployment nope of slice ab" in capsys.readouterr().err


# -- `devslice logs -f`: following pods/log (follow=true) ----------------------------------------

def _log_path(pod: str, query: str) -> str:
    return f"{'/api/v1/namespaces/default/pods'}/{pod}/log?{query}"


def test_the_fake_streams_a_followed_log_as_the_api_server_does(world: World) -> None:
    """Chunked and open, tailLines first, each new line as it is written, the end when the
    pod goes away; 404 for a missing pod, 400 for an unnamed container of several."""
    import httpx2

    world.deployment("orders")
    world.pod("orders-1")
    world.pod("orders-2", containers=("orders", "worker"))
    world.kube.write_log("orders-1", ["one", "two", "three"])
    with httpx2.Client(base_url=world.kube.url, timeout=10) as http:
        with http.stream("GET", _log_path("orders-1", "follow=true&tailLines=2")) as resp:
            assert resp.status_code == 200
            assert resp.headers["transfer-encoding"] == "chunked"
            assert resp.headers["content-type"] == "text/plain"
            lines = resp.iter_lines()
            assert [next(lines), next(lines)] == ["two", "three"]
            world.kube.write_log("orders-1", ["four"])  # the stream is still open
            assert next(lines) == "four"
            world.kube.handle("DELETE", "/api/v1/namespaces/default/pods/orders-1", None, b"")
            assert list(lines) == []  # ended with the pod
        missing = http.get(_log_path("orders-9", "follow=true"))
        assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
        several = http.get(_log_path("orders-2", "follow=true"))
        assert several.status_code == 400
        assert several.json()["message"] == ("a container name must be specified for pod "
                                             "orders-2, choose one of: [orders worker]")
        world.kube.write_log("orders-2", ["working"], container="worker")
        with http.stream("GET", _log_path("orders-2", "follow=true&container=worker")) as resp:
            lines = resp.iter_lines()
            assert next(lines) == "working"
            world.kube.stop()  # the server going away ends the stream too
            assert list(lines) == []


def test_a_followed_log_ends_when_its_container_stops(world: World) -> None:
    """The kubelet follows one container instance: its exit ends the stream, the pod stays."""
    import httpx2

    world.deployment("orders")
    world.pod("orders-1")
    world.kube.write_log("orders-1", ["started"])
    with httpx2.Client(base_url=world.kube.url, timeout=10) as http:
        with http.stream("GET", _log_path("orders-1", "follow=true")) as resp:
            lines = resp.iter_lines()
            assert next(lines) == "started"
            world.kube.write_log("orders-1", ["panic: boom"])
            world.kube.terminate("orders-1", exit_code=2)
            assert list(lines) == ["panic: boom"]  # what it printed last, then the end
        assert http.get(_log_path("orders-1", "")).text == "started\npanic: boom\n"


def test_logs_follow_says_which_container_stopped_and_follows_the_others(world: World) -> None:
    world.deployment("orders")
    world.pod("orders-1")
    world.pod("orders-2")
    world.kube.write_log("orders-1", ["one"])
    world.kube.write_log("orders-2", ["two"])
    proc = _devslice(world, "logs", "orders", "-f")
    assert proc.stdout is not None and proc.stderr is not None
    assert {proc.stdout.readline(), proc.stdout.readline()} == {
        "orders/orders-1 | one\n", "orders/orders-2 | two\n"}
    world.kube.terminate("orders-1")
    assert "orders/orders-1 | (log ended: orders-1 went away or its container stopped)" \
        in proc.stderr.readline()
    world.kube.write_log("orders-2", ["still here"])
    assert proc.stdout.readline() == "orders/orders-2 | still here\n"
    world.kube.handle("DELETE", "/api/v1/namespaces/default/pods/orders-2", None, b"")
    out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (0, "")
    assert "Traceback" not in err


def _devslice(world: World, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "KUBECONFIG": os.environ["KUBECONFIG"]}
    return subprocess.Popen([sys.executable, "-m", "devslice", *args], cwd=world.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_logs_follow_prefixes_each_pod_and_ends_when_the_pods_go_away(world: World) -> None:
    world.deployment("orders")
    world.pod("orders-1")
    world.pod("orders-2")
    world.kube.write_log("orders-1", ["old", "started"])
    world.kube.write_log("orders-2", ["started too"])
    proc = _devslice(world, "logs", "orders", "-f", "--lines", "1")
    assert proc.stdout is not None and proc.stderr is not None
    first = {proc.stdout.readline(), proc.stdout.readline()}
    assert first == {"orders/orders-1 | started\n", "orders/orders-2 | started too\n"}
    world.kube.write_log("orders-2", ["order 7 placed"])
    assert proc.stdout.readline() == "orders/orders-2 | order 7 placed\n"
    for pod in ("orders-1", "orders-2"):
        world.kube.handle("DELETE", f"/api/v1/namespaces/default/pods/{pod}", None, b"")
    out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (0, "")
    assert "orders/orders-1 | (log ended: orders-1 went away" in err
    assert "orders/orders-2 | (log ended: orders-2 went away" in err
    assert "Traceback" not in err


def test_logs_follow_ends_on_ctrl_c_with_130_and_no_traceback(world: World) -> None:
    world.deployment("orders")
    world.pod("orders-1")
    world.kube.write_log("orders-1", ["started"])
    proc = _devslice(world, "logs", "-f")
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "orders | started\n"  # following now
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (130, "")
    assert "Traceback" not in err and "aborted" not in err


def test_logs_follow_shows_why_a_pod_cannot_be_followed(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.deployment("orders")
    world.pod("orders-1", phase="Pending", ready=False, waiting="ContainerCreating")
    assert run(["logs", "orders", "-f"]) == 0  # nothing to follow: it ends at once
    assert capsys.readouterr().out.splitlines() == [
        'orders | (following the log of orders-1: container "orders" in pod "orders-1" is '
        "waiting to start: ContainerCreating)"]
