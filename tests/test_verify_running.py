"""`devslice verify` checks what running services use (issue 11): the environment of the
local runtime's processes (/proc/PID/environ) and the slice's ConfigMap and Secret in the
cluster, each compared with the ledger."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from devslice.cli.app import run
from devslice.facts.processes import environ_readable, process_environment
from devslice.local.state import read_json
from devslice.testing.kubeapi import FakeKubeAPI

from .helpers import BASE, SOLO

LOCAL = "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ab\n"
RUNNING = "running services use the slice's contract"
WORKER = """\
import time
print("worker ready", flush=True)
while True:
    time.sleep(1)  # a service that stays up until stopped
"""

linux = pytest.mark.skipif(not environ_readable(), reason="/proc/PID/environ is Linux only")


def checks(capsys: pytest.CaptureFixture[str], code: int) -> dict[str, dict[str, str]]:
    capsys.readouterr()
    assert run(["verify", "-o", "json"]) == code
    return {c["check"]: c for c in json.loads(capsys.readouterr().out)}


@linux
def test_a_process_environment_is_read_as_it_was_started(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; print('up', flush=True); "
                             "sys.stdin.read()"],
                            env={"LOCAL_DEV_SLICE": "cd", "EMPTY": "", "EQ": "a=b"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"up\n"  # it runs: the kernel has set its environ up
        got = process_environment(proc.pid)
        assert got.environ is not None
        assert {k: got.environ[k] for k in ("LOCAL_DEV_SLICE", "EMPTY", "EQ")} == {
            "LOCAL_DEV_SLICE": "cd", "EMPTY": "", "EQ": "a=b"}
    finally:
        proc.communicate(b"")
    assert process_environment(proc.pid).why == f"process {proc.pid} does not run"
    done = subprocess.Popen([sys.executable, "-c", "pass"], env={"A": "1"})
    os.waitid(os.P_PID, done.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert process_environment(done.pid).why == f"process {done.pid} has exited"
    done.wait()
    assert process_environment(1, proc=tmp_path).why == (
        "no /proc/PID/environ on this system (Linux only)")


@pytest.fixture
def local_project(workdir: Path) -> Iterator[Path]:
    (workdir / "worker.py").write_text(WORKER)
    (workdir / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent(f"""\
        cluster: {{runtime: local}}
        storage: {{mode: shared}}
        eventHubs:
          eventHubs: [orders]
          namespaces: [{{name: embedded, partitions: 4}}]
        services:
          - name: worker
            run: {sys.executable} worker.py
            ready: {{log: worker ready}}
        """))
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0  # partition 0
    assert run(["slice", "claim"]) == 0  # ab: partition 1
    yield workdir
    run(["down", "--slice", "ab"])


def worker_pid(project: Path) -> int:
    state = read_json(project / ".devslice" / "local" / "ab" / "state.json")
    return int(state["services"]["worker"]["pid"])


@linux
def test_a_service_started_with_another_slices_partitions_turns_it_red(
    local_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ab's worker started while an override gave it cd's partition; the override is gone,
    the contract is green again, and the process still reads cd's partition."""
    (local_project / "devslice.local.yaml").write_text(
        LOCAL + "env: {LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS: '0'}\n")
    assert run(["up", "--slice", "ab"]) == 0
    pid = worker_pid(local_project)
    assert process_environment(pid).environ["LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"] == "0"  # type: ignore[index]
    (local_project / "devslice.local.yaml").unlink()

    result = checks(capsys, 1)
    assert result["services use the slice's partitions"]["status"] == "ok"
    running = result[RUNNING]
    assert running["status"] == "failed"
    assert running["detail"] == (
        f"service worker (pid {pid}): LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS=0, but the "
        "ledger gave 1: partition 0 is slice cd's (fix: the process was started with it: "
        "`devslice down`, then `devslice up` restarts it with the slice's contract)")

    assert run(["down", "--slice", "ab"]) == 0  # the fix it names makes it green
    assert run(["up", "--slice", "ab"]) == 0
    running = checks(capsys, 0)[RUNNING]
    assert running == {"check": RUNNING, "status": "ok", "detail": (
        "local runtime: 1 service processes started with the slice's values")}


@linux
def test_a_renamed_partition_variable_read_from_the_shell_turns_it_red(
    local_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The override renames the partition variable to one the contract does not set; the
    shell `up` ran in holds cd's partition under that name, and the service inherits it."""
    (local_project / "devslice.local.yaml").write_text(
        LOCAL + "env: {DEVSLICE_PARTITIONIDS_VARIABLE: MY_IDS}\n")
    monkeypatch.setenv("MY_IDS", "0")
    assert run(["up", "--slice", "ab"]) == 0
    monkeypatch.delenv("MY_IDS")
    pid = worker_pid(local_project)

    result = checks(capsys, 1)
    assert "MY_IDS is not set (services read it because DEVSLICE_PARTITIONIDS_VARIABLE=MY_IDS" \
        in result["services use the slice's partitions"]["detail"]
    assert result[RUNNING]["detail"] == (
        f"service worker (pid {pid}): MY_IDS=0 (services read it because "
        "DEVSLICE_PARTITIONIDS_VARIABLE=MY_IDS; devslice.yaml names "
        "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS), but the ledger gave 1: partition 0 is "
        "slice cd's (fix: the process was started with it: `devslice down`, then `devslice "
        "up` restarts it with the slice's contract; MY_IDS is not in the contract, it came "
        "from the environment `devslice up` ran in: unset it there first)")


CLUSTER = BASE + SOLO + """\
cluster: {runtime: k3d}
eventHubs: {mode: emulator, eventHubs: [orders]}
storage:
  mode: shared
  connectionString: {fromEnv: STORAGE_CS}
"""


def connection_string(account: str) -> str:
    return (f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey=S3CRETKEY{account};"
            "EndpointSuffix=core.windows.net")


def test_the_clusters_configmap_and_secret_are_compared_with_the_ledger(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from devslice.contract.render import k8s_objects
    from devslice.contract.variables import for_pods
    from devslice.project import Project
    from devslice.resources.manifests import _as_data

    monkeypatch.setenv("STORAGE_CS", connection_string("company1stacc4ab"))
    (workdir / "devslice.yaml").write_text(CLUSTER)
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    assert run(["slice", "claim"]) == 0
    with FakeKubeAPI() as kube:
        kubeconfig = workdir / "kubeconfig"
        YAML().dump(kube.kubeconfig(context="k3d-devslice"), kubeconfig)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        assert checks(capsys, 0)[RUNNING] == {"check": RUNNING, "status": "skipped", "detail": (
            "k3d: the cluster holds no ConfigMap devslice-ab (`devslice up` applies it)")}

        # what `up` applies: the slice's own contract, as pods see it
        project = Project.load()
        objects = k8s_objects(for_pods(project.variables("ab"), "k3d", "172.28.0.1"), "ab")
        for obj in objects:
            kube.apply({**_as_data(obj), "metadata": {**obj["metadata"], "namespace": "shop"}})
        assert checks(capsys, 0)[RUNNING]["detail"] == (
            "k3d: ConfigMap and Secret devslice-ab in shop hold the slice's values")

        # someone edited them: cd's partition and cd's storage account
        config_map, secret = (_as_data(o) for o in objects)
        config_map["data"]["LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"] = "0"
        secret["data"]["LOCAL_DEV_STORAGE_CONNECTIONSTRING"] = base64.b64encode(
            connection_string("company1stacc4cd").encode()).decode()
        for obj in (config_map, secret):
            kube.apply({**obj, "metadata": {**obj["metadata"], "namespace": "shop"}})
        capsys.readouterr()
        assert run(["verify", "-o", "json"]) == 1
        out = capsys.readouterr().out
        assert "S3CRETKEY" not in out
        detail = {c["check"]: c for c in json.loads(out)}[RUNNING]["detail"]
        assert detail == (
            "ConfigMap/Secret devslice-ab in shop: LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS=0, "
            "but the ledger gave 1: partition 0 is slice cd's (fix: fix the contract, then "
            "`devslice up` applies it again); ConfigMap/Secret devslice-ab in shop: "
            "LOCAL_DEV_STORAGE_CONNECTIONSTRING (its AccountName) addresses account "
            "company1stacc4cd, slice cd's storage account (the slice's is company1stacc4ab) "
            "(fix: fix the contract, then `devslice up` applies it again)")


def test_an_unreachable_cluster_is_said_not_checked(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_CS", connection_string("company1stacc4ab"))
    monkeypatch.setenv("KUBECONFIG", str(workdir / "none"))
    (workdir / "devslice.yaml").write_text(CLUSTER)
    assert run(["slice", "claim"]) == 0
    running = checks(capsys, 0)[RUNNING]
    assert running["status"] == "skipped"
    assert running["detail"].startswith("k3d: not checked: ")


@linux
def test_a_recorded_pid_now_running_another_program_is_not_judged(
    local_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state names a pid that the system gave to a program devslice did not start (no
    contract in its environment): verify says so rather than calling it a leak."""
    from devslice.local.state import write_json

    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             env={"PATH": "/usr/bin"}, stdin=subprocess.PIPE)
    try:
        state = local_project / ".devslice" / "local" / "ab" / "state.json"
        state.parent.mkdir(parents=True)
        write_json(state, {"supervisor": {"pid": None, "spec": None}, "services": {
            "worker": {"pid": other.pid, "pgid": other.pid, "state": "ready"}}})
        running = checks(capsys, 0)[RUNNING]
    finally:
        other.communicate(b"")
    assert running["status"] == "ok"
    assert running["detail"] == (
        "local runtime: 0 service processes started with the slice's values; not checked: "
        f"worker: process {other.pid} carries no slice contract (no LOCAL_DEV_SLICE; not the "
        "process devslice started)")
