"""One word per service moves it between laptop and cloud, and the contract follows: pods get
the emulators at the cluster network's gateway, embedded stand-ins are refused for pods with
the mode to change, a shared cluster gets no address on this machine, and `runtime: auto`
says why it runs processes when a stand-in is embedded."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from devslice.cli.app import run
from devslice.contract.variables import PodsCannotReach, Reach, for_pods
from devslice.engine.environment import runtime
from devslice.errors import ConfigError
from devslice.project import Project
from devslice.services import container_names, container_specs
from devslice.testing.azurite import Azurite

from .helpers import BASE, FAKES, SOLO, env_from

GATEWAY = "172.18.0.1"

EMULATORS = """\
eventHubs:
  mode: emulator
  eventHubs: [orders]
  namespaces: [{name: emulatorNs1, partitions: 4}]
storage: {mode: emulator}
dataExplorer: {mode: emulator}
signalR: {mode: emulator, hubs: [notifications]}
containers:
  mongodb: {port: 27017}
  eventHubsEmulator: {acceptEula: true}
  kustoEmulator: {acceptEula: true}
"""


def claimed(workdir: Path, text: str) -> Project:
    (workdir / "devslice.yaml").write_text(BASE + textwrap.dedent(text) + SOLO)
    project = Project.load()
    project.claim("ab")
    return project


def values(variables: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {v.name: v.value if isinstance(v.value, str) else v.value.reveal()
            for v in variables}


def test_pods_reach_each_emulator_at_the_gateway(workdir: Path) -> None:
    project = claimed(workdir, EMULATORS)
    host = values(project.variables("ab"))
    pods = values(for_pods(project.variables("ab"), "k3d", GATEWAY))
    account = "company1stacc4ab"
    assert host["LOCAL_DEV_STORAGE_BLOBENDPOINT"] == f"http://127.0.0.1:10000/{account}"
    assert pods["LOCAL_DEV_STORAGE_BLOBENDPOINT"] == f"http://{GATEWAY}:10000/{account}"
    assert pods["LOCAL_DEV_STORAGE_QUEUEENDPOINT"] == f"http://{GATEWAY}:10001/{account}"
    assert (f"BlobEndpoint=http://{GATEWAY}:10000/{account};QueueEndpoint=http://{GATEWAY}:"
            f"10001/{account};") in pods["LOCAL_DEV_STORAGE_CONNECTIONSTRING"]
    assert pods["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"].startswith(f"Endpoint=sb://{GATEWAY};")
    assert "UseDevelopmentEmulator=true" in pods["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"]
    assert pods["LOCAL_DEV_MONGODB_CONNECTIONSTRING"] == \
        f"mongodb://{GATEWAY}:27017/?directConnection=true"
    assert host["LOCAL_DEV_DATAEXPLORER_CLUSTERURL"] == "http://127.0.0.1:8080"
    assert pods["LOCAL_DEV_DATAEXPLORER_CLUSTERURL"] == f"http://{GATEWAY}:8080"
    assert pods["LOCAL_DEV_SIGNALR_ENDPOINT"] == f"http://{GATEWAY}:8888"
    assert pods["LOCAL_DEV_SIGNALR_CONNECTIONSTRING"].startswith(
        f"Endpoint=http://{GATEWAY};Port=8888;AccessKey=")
    # what does not address this machine is the same on both sides
    same = {k for k, v in host.items() if "127.0.0.1" not in v and "localhost" not in v}
    assert same and all(pods[k] == host[k] for k in same)
    assert not [k for k, v in pods.items() if "127.0.0.1" in v or "//localhost" in v]
    # and the explanation says where a rewritten value came from
    explained = {v.name: v.source for v in for_pods(project.variables("ab"), "k3d", GATEWAY)}
    assert explained["LOCAL_DEV_DATAEXPLORER_CLUSTERURL"].endswith(
        f"for pods at the gateway {GATEWAY}")


def test_each_emulator_mode_brings_its_container(workdir: Path) -> None:
    env = env_from(EMULATORS)
    assert container_names(env) == ["mongodb", "azurite", "eventhubs-emulator", "kusto-emulator",
                                    "signalr-emulator"]
    specs = {s.name: s for s in container_specs(env, workdir, runtime="k3d",
                                                 environ={})}
    kusto = specs["kusto-emulator"]
    # the install docs' `docker run -e ACCEPT_EULA=Y -p 8080:8080 ... kustainer-linux`
    assert kusto.image == "mcr.microsoft.com/azuredataexplorer/kustainer-linux:latest"
    assert dict(kusto.env) == {"ACCEPT_EULA": "Y"}
    assert [(p.container_port, p.host_port) for p in kusto.ports] == [(8080, 8080)]
    assert [(m.source, m.target) for m in kusto.mounts] == [("devslice-kusto-data",
                                                             "/kustodata")]
    assert kusto.readiness is not None and kusto.readiness.port == 8080
    # storage alone implies Azurite; shared storage does not
    assert container_names(env_from("storage: {mode: emulator}\n")) == ["azurite"]
    assert container_names(env_from("storage: {mode: shared}\n")) == []


def test_the_kusto_emulator_needs_its_license_accepted(workdir: Path) -> None:
    env = env_from("storage: {mode: shared}\ndataExplorer: {mode: emulator}\n")
    with pytest.raises(ConfigError) as info:
        container_specs(env, workdir, runtime="k3d")
    assert "containers.kustoEmulator.acceptEula" in str(info.value)
    assert "ACCEPT_EULA" in str(info.value)


def test_data_explorer_has_no_embedded_mode(workdir: Path) -> None:
    (workdir / "devslice.yaml").write_text(BASE + "dataExplorer: {mode: embedded}\n")
    with pytest.raises(ConfigError) as info:
        Project.load()
    message = str(info.value)
    assert "devslice.yaml:4:" in message and "dataExplorer.mode" in message, message
    assert "'shared' or 'emulator'" in message, message


@pytest.mark.parametrize(("text", "key"), [
    ("", "eventHubs.mode"),  # the defaults: the embedded event hub
    ("eventHubs: {mode: shared, namespaces: [{name: company1-ehns1}]}\nstorage: {mode: embedded}\n",
     "storage.mode"),
    ("eventHubs: {mode: shared, namespaces: [{name: company1-ehns1}]}\nstorage: {mode: shared}\n"
     "signalR: {mode: embedded}\n", "signalR.mode"),
])
def test_embedded_stand_ins_are_refused_for_pods(workdir: Path, text: str, key: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    project = claimed(workdir, text)
    with pytest.raises(PodsCannotReach) as info:
        for_pods(project.variables("ab"), "k3d", GATEWAY)
    assert key in info.value.message
    assert info.value.hint is not None and f"{key}: emulator" in info.value.hint
    # the CLI says the same, and --for host still writes the manifest for this machine
    capsys.readouterr()
    assert run(["env", "-o", "k8s", "--to-file", "-"]) == 1
    err = capsys.readouterr().err
    assert key in err and "pods cannot" in err
    assert run(["env", "-o", "k8s", "--for", "host", "--to-file", "-"]) == 0


def test_a_shared_cluster_gets_nothing_of_this_machine(workdir: Path) -> None:
    project = claimed(workdir, EMULATORS + "cluster: {runtime: kube}\n")
    with pytest.raises(PodsCannotReach) as info:
        for_pods(project.variables("ab"), "kube", None)
    assert "storage.mode" in info.value.message and "containers.mongodb" in info.value.message
    assert info.value.hint is not None and "storage.mode: shared" in info.value.hint
    shared = claimed(workdir, "eventHubs: {mode: shared, namespaces: [{name: company1-ehns1}]}\n"
                              "storage: {mode: shared, blobEndpointTemplate: "
                              "'https://{account}.blob.core.windows.net'}\n"
                              "cluster: {runtime: kube}\n")
    assert values(for_pods(shared.variables("ab"), "kube", None)) == \
        values(shared.variables("ab"))


def test_a_personal_override_is_left_as_written(workdir: Path) -> None:
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ab\n"
        "env: {LOCAL_DEV_STORAGE_BLOBENDPOINT: 'http://127.0.0.1:20000/mine'}\n")
    project = claimed(workdir, EMULATORS)
    pods = values(for_pods(project.variables("ab"), "k3d", GATEWAY))
    assert pods["LOCAL_DEV_STORAGE_BLOBENDPOINT"] == "http://127.0.0.1:20000/mine"


def test_the_pods_storage_string_works_at_an_address_that_is_not_loopback(
        workdir: Path) -> None:
    """The Python SDK reads the account from the URL path only for 127.0.0.1 and localhost;
    pods address Azurite at the gateway. 127.0.0.2 takes that same non-localhost path here."""
    account = "company1stacc4ab"
    with Azurite(accounts=[account], host="127.0.0.2") as azurite:
        project = claimed(workdir, f"""\
            eventHubs: {{mode: shared, namespaces: [{{name: company1-ehns1}}]}}
            storage:
              mode: emulator
              blobEndpointTemplate: "http://127.0.0.1:{azurite.blob_port}/{{account}}"
              queueEndpointTemplate: "http://127.0.0.1:{azurite.queue_port}/{{account}}"
            """)
        pods = values(for_pods(project.variables("ab"), "k3d", "127.0.0.2"))
        with BlobServiceClient.from_connection_string(
                pods["LOCAL_DEV_STORAGE_CONNECTIONSTRING"]) as client:
            assert client.account_name == account
            client.create_container("orders").upload_blob("o1.json", b"{}")
            assert [b.name for b in client.get_container_client("orders").list_blobs()] == \
                ["o1.json"]


def test_auto_runs_processes_when_a_stand_in_is_embedded(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVSLICE_RUNTIME", raising=False)
    project = claimed(workdir, "cluster: {runtime: auto}\nstorage: {mode: embedded}\n"
                               "eventHubs: {mode: shared, namespaces: [{name: company1-ehns1}]}\n")
    chosen, why = runtime(project)
    assert chosen == "local"
    assert why == "auto: storage.mode is embedded, which pods cannot reach, so services run " \
                  "as processes"


def test_the_local_runtime_refuses_emulators_that_come_only_as_images(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claimed(workdir, """\
        cluster: {runtime: local}
        storage: {mode: shared}
        eventHubs: {mode: emulator, eventHubs: [orders],
                    namespaces: [{name: emulatorNs1, partitions: 2}]}
        dataExplorer: {mode: emulator}
        """)
    capsys.readouterr()
    assert run(["plan"]) == 2  # a config error
    err = capsys.readouterr().err
    assert "devslice.yaml:6:13: eventHubs.mode: emulator" in err.replace("\n", ""), err
    assert "devslice.yaml:8:16: dataExplorer.mode: emulator" in err.replace("\n", ""), err
    assert "only as a container image" in err and "expected embedded here" in err


def test_emulator_values_are_marked_with_whom_they_serve(workdir: Path) -> None:
    project = claimed(workdir, EMULATORS)
    reach = {v.name: v.reach for v in project.variables("ab")}
    assert reach["LOCAL_DEV_STORAGE_ACCOUNT"] is None
    assert reach["LOCAL_DEV_STORAGE_BLOBENDPOINT"] is Reach.published
    assert reach["LOCAL_DEV_DATAEXPLORER_DATABASE"] is None



def test_the_signalr_emulator_container_installs_the_tool_once(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The container's command, run by a real sh with a fake `dotnet` (it installs the fake
    asrs-emulator where --tool-path says): the first start installs, the next one does not,
    a new version installs again; the emulator starts on all addresses."""
    import os
    import shutil
    import subprocess
    import sys

    from devslice.services.signalr import TOOLS as SIGNALR_TOOLS

    (spec,) = [s for s in container_specs(env_from(
        "storage: {mode: shared}\nsignalR: {mode: emulator, emulatorPort: 18888}\n"),
        workdir, runtime="k3d") if s.name == "signalr-emulator"]
    assert spec.image == "mcr.microsoft.com/dotnet/sdk:8.0"
    assert [(p.container_port, p.host_port) for p in spec.ports] == [(8888, 18888)]
    assert spec.readiness is not None and spec.readiness.port == 18888
    assert spec.readiness.log == "The Azure SignalR Emulator was successfully started."
    assert spec.command[:2] == ("sh", "-c")
    tools, bin_dir, log = workdir / "tools", workdir / "bin", workdir / "dotnet.log"
    bin_dir.mkdir()
    (bin_dir / "dotnet").write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> {log}\n"
        "while [ $# -gt 0 ]; do [ \"$1\" = --tool-path ] && dir=$2; shift; done\n"
        f"mkdir -p \"$dir\" && cp {FAKES / 'asrs-emulator'} \"$dir/asrs-emulator\"\n")
    (bin_dir / "dotnet").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "FAKE_ASRS_PYTHON": sys.executable}

    def start(command: tuple[str, ...]) -> str:
        script = command[2].replace(SIGNALR_TOOLS, str(tools)).replace("-p 8888", "-p 0")
        # the fake emulator serves until stopped; read its banner and stop it
        with subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.PIPE,
                              text=True) as proc:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(3)]
            proc.terminate()
        return "".join(lines)

    assert spec.command[2].endswith("start -p 8888 -i 0.0.0.0")  # not loopback only
    assert "successfully started" in start(spec.command)
    assert start(spec.command) and len(log.read_text().splitlines()) == 1  # installed once
    assert "--tool-path /tools/1.6.1" in spec.command[2]
    assert "--version 1.6.1" in log.read_text()
    (newer,) = [s for s in container_specs(env_from(
        "storage: {mode: shared}\nsignalR: {mode: emulator}\n"
        "containers: {signalrEmulator: {version: 1.7.0}}\n"), workdir, runtime="k3d")]
    assert "successfully started" in start(newer.command)
    assert log.read_text().splitlines()[-1].endswith("--version 1.7.0")
    assert shutil.which("asrs-emulator", path=str(tools / "1.7.0"))
    # an install cut short: dotnet's package store is there, the shim is not
    (tools / "1.7.0" / "asrs-emulator").unlink()
    (tools / "1.7.0" / ".store" / "stale").mkdir(parents=True)
    assert "successfully started" in start(newer.command)
    assert len(log.read_text().splitlines()) == 3 and not (tools / "1.7.0" / ".store").exists()


def test_a_shared_cluster_refuses_a_laptop_database_with_a_way_out(workdir: Path) -> None:
    project = claimed(workdir, "eventHubs: {mode: shared, namespaces: [{name: company1-ehns1}]}\n"
                               "storage: {mode: shared}\ncontainers: {mongodb: {}}\n"
                               "cluster: {runtime: kube}\n")
    with pytest.raises(PodsCannotReach) as info:
        for_pods(project.variables("ab"), "kube", None)
    assert info.value.message.startswith(
        "runtime kube: LOCAL_DEV_MONGODB_CONNECTIONSTRING points at this machine "
        "(containers.mongodb)")
    assert info.value.hint == ("remove containers.mongodb and give pods a mongodb they reach "
                               "(e.g. a shared one, in a variable of contract.env)")


def test_an_issue_found_after_loading_points_at_its_own_list_item(tmp_path: Path) -> None:
    from devslice.config.load import locate
    from devslice.errors import ConfigIssue

    path = tmp_path / "devslice.yaml"
    path.write_text(BASE + "images:\n  - {name: web, context: a}\n  - name: orders\n"
                           "    context: b\n")
    where = str(path)
    assert [i.line for i in locate([
        ConfigIssue(where, None, None, "images[name=orders].context", "x"),
        ConfigIssue(where, None, None, "images[1].context", "x"),
        ConfigIssue(where, None, None, "images[0].context", "x"),
        # a section the file does not write at all: the document (1:1), as for a missing
        # required key, so that every config error has a line (issue 12)
        ConfigIssue(where, None, None, "containers.mongodb", "x"),
        # a relative path may be another file than the one loaded
        ConfigIssue("devslice.yaml", None, None, "images", "x")])] == [7, 7, 5, 1, None]


@pytest.mark.parametrize(("template", "pods"), [
    ("http://LOCALHOST:10000/{account}", f"http://{GATEWAY}:10000/company1stacc4ab"),
    ("http://[::1]:10000/{account}", f"http://{GATEWAY}:10000/company1stacc4ab"),
    ("http://127.0.0.2:10000/{account}", None),  # another loopback address: refused
    ("http://devbox.localhost:10000/{account}", None),
])
def test_loopback_hosts_of_a_team_template(workdir: Path, template: str,
                                           pods: str | None) -> None:
    project = claimed(workdir, f"storage: {{mode: emulator, blobEndpointTemplate: '{template}'}}\n"
                               "eventHubs: {mode: shared, namespaces: [{name: company1-ehns1}]}\n")
    if pods is None:
        with pytest.raises(PodsCannotReach, match=r"LOCAL_DEV_STORAGE_BLOBENDPOINT names this "
                           r"machine as '.*', which devslice does not rewrite for pods"):
            for_pods(project.variables("ab"), "k3d", GATEWAY)
    else:
        assert values(for_pods(project.variables("ab"), "k3d", GATEWAY))[
            "LOCAL_DEV_STORAGE_BLOBENDPOINT"] == pods


def test_auto_with_an_embedded_and_a_container_only_service_says_both(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVSLICE_RUNTIME", raising=False)
    project = claimed(workdir, "cluster: {runtime: auto}\n"
                               "dataExplorer: {mode: emulator}\n")  # eventHubs: embedded
    with pytest.raises(ConfigError) as info:
        runtime(project)
    assert "dataExplorer.mode: emulator: the Kusto emulator comes only as a container image" \
        in info.value.message
    assert info.value.hint is not None
    assert "eventHubs.mode is embedded, which pods cannot reach" in info.value.hint
