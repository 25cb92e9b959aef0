"""The local runtime for real: services as processes with the slice's environment, readiness,
restart on crash, logs prefixed by service, a second `up` that changes nothing, and `down`
leaving no process behind, even after the supervisor itself was killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devslice.cli.app import run
from devslice.local.state import read_json

from .helpers import BASE, FAKES, SOLO, free_port, free_ports, gone

WORKER = """\
import os, sys, time
open("slice.txt", "w").write(os.environ["LOCAL_DEV_SLICE"] + " " +
                             os.environ["LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"])
print("worker ready", flush=True)
while True:
    time.sleep(1)
"""
CRASHER = """\
import time
print("crasher up", flush=True)
time.sleep(0.3)
raise SystemExit(3)
"""




@pytest.fixture
def project(workdir: Path) -> Iterator[Path]:
    port = free_port()
    (workdir / "worker.py").write_text(WORKER)
    (workdir / "crasher.py").write_text(CRASHER)
    (workdir / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent(f"""\
        cluster: {{runtime: local}}
        storage: {{mode: shared}}
        services:
          - name: web
            run: {sys.executable} -m http.server {port} --bind 127.0.0.1
            ready: {{port: {port}}}
          - name: worker
            run: {sys.executable} worker.py
            ready: {{log: worker ready}}
          - name: crasher
            run: {sys.executable} crasher.py
        """))
    assert run(["slice", "claim"]) == 0
    yield workdir
    run(["down"])  # whatever a failing test left running


def state(project: Path) -> dict[str, dict[str, object]]:
    data = read_json(project / ".devslice" / "local" / "ab" / "state.json")
    return data["services"]  # type: ignore[no-any-return]


def test_up_runs_services_with_the_slice_and_down_leaves_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["up", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["changes"] == 1
    services = state(project)
    assert services["web"]["state"] == services["worker"]["state"] == "ready"
    assert (project / "slice.txt").read_text() == "ab 0"  # the contract reached the process
    pids = [int(s["pid"]) for s in services.values() if s["pid"]]  # type: ignore[call-overload]
    local = read_json(project / ".devslice" / "local" / "ab" / "state.json")
    supervisor = local["supervisor"]["pid"]

    assert run(["up", "--json"]) == 0  # nothing changed: nothing to do
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["changes"] == 0
    assert run(["plan"]) == 0
    assert "nothing to do" in capsys.readouterr().out

    deadline = time.monotonic() + 10  # the crasher is restarted, with backoff
    while int(state(project)["crasher"]["restarts"]) < 2 and time.monotonic() < deadline:  # type: ignore[call-overload]
        time.sleep(0.05)
    assert int(state(project)["crasher"]["restarts"]) >= 2  # type: ignore[call-overload]

    assert run(["logs", "--lines", "20"]) == 0
    out = capsys.readouterr().out
    assert "worker  | worker ready" in out
    assert "crasher | [devslice] crasher exited with 3; restart 1 in 0.5s" in out

    assert run(["down"]) == 0
    for pid in [*pids, supervisor]:
        assert gone(pid), f"process {pid} is still running after down"


def test_down_after_the_supervisor_was_killed(project: Path) -> None:
    assert run(["up", "--json"]) == 0
    data = read_json(project / ".devslice" / "local" / "ab" / "state.json")
    os.kill(data["supervisor"]["pid"], signal.SIGKILL)  # its children live on, orphaned
    children = [int(s["pid"]) for s in data["services"].values() if s["pid"]]
    time.sleep(0.2)
    assert not all(gone(p) for p in children)
    assert run(["down"]) == 0
    for pid in children:
        assert gone(pid)


def test_a_port_already_taken_is_a_clear_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = (project / "devslice.yaml").read_text()
    port = int(config.split("ready: {port: ")[1].split("}")[0])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        assert run(["up"]) == 1
    err = capsys.readouterr().err
    assert f"error: port {port} for web is already taken by another process" in err


def test_a_service_without_run_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent("""\
        cluster: {runtime: local}
        storage: {mode: shared}
        services:
          - name: web
        """))
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["plan"]) == 2
    assert "services[0].run: service 'web' has no run: command" in capsys.readouterr().err


def test_two_slices_of_one_checkout_run_side_by_side(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "worker.py").write_text(
        "import os, time\n"
        "open('slice-' + os.environ['LOCAL_DEV_SLICE'] + '.txt', 'w').write("
        "os.environ['LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS'])\n"
        "print('worker ready', flush=True)\n"
        "while True: time.sleep(1)\n")
    (workdir / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent(f"""\
        cluster: {{runtime: local}}
        storage: {{mode: shared}}
        services:
          - name: worker
            run: {sys.executable} worker.py
            ready: {{log: worker ready}}
        """))
    assert run(["slice", "claim"]) == 0
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    try:
        assert run(["up", "--json"]) == 0
        capsys.readouterr()
        assert run(["plan", "--slice", "cd"]) == 0
        assert "+ local: start (run worker as local processes)" in capsys.readouterr().out
        assert run(["up", "--slice", "cd", "--json"]) == 0, capsys.readouterr().err
        ab = read_json(workdir / ".devslice" / "local" / "ab" / "state.json")["services"]
        cd = read_json(workdir / ".devslice" / "local" / "cd" / "state.json")["services"]
        assert ab["worker"]["pid"] != cd["worker"]["pid"]
        assert not gone(ab["worker"]["pid"]) and not gone(cd["worker"]["pid"])
        assert (workdir / "slice-ab.txt").read_text() == "0"
        assert (workdir / "slice-cd.txt").read_text() == "1"
    finally:
        run(["down", "--slice", "cd"])
        run(["down"])


FAKE_MONGOD = """\
import socket, sys, time
# Fake mongod: accepts mongod's flags used here and listens on --port until killed.
args = sys.argv[1:]
known = {"--replSet", "--bind_ip", "--port", "--dbpath", "--oplogSize"}
for flag in args[::2]:
    if flag not in known:
        print(f"Error parsing command line: unrecognised option '{flag}'", file=sys.stderr)
        raise SystemExit(2)
opts = dict(zip(args[::2], args[1::2]))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((opts["--bind_ip"], int(opts["--port"])))
s.listen()
print("Waiting for connections", flush=True)
while True:
    time.sleep(1)
"""


def test_mongod_runs_as_a_process_and_its_replica_set_is_initiated(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """containers.mongodb with MongoDB installed (fakes here: a mongod that listens, a mongosh
    that records what it was asked): the local runtime runs mongod and initiates the set with
    a member host this machine reaches."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    (bin_dir / "mongod").write_text(f"#!{sys.executable}\n" + FAKE_MONGOD)
    log = workdir / "mongosh.log"
    (bin_dir / "mongosh").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    for tool in ("mongod", "mongosh"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    port = free_port()
    (workdir / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent(f"""\
        cluster: {{runtime: local}}
        storage: {{mode: shared}}
        containers:
          mongodb: {{port: {port}}}
        """))
    assert run(["slice", "claim"]) == 0
    try:
        assert run(["up", "--json"]) == 0
        shared = read_json(workdir / ".devslice" / "local" / "_emulators" / "state.json")
        assert shared["services"]["mongodb"]["state"] == "ready"
        (call,) = [json.loads(line) for line in log.read_text().splitlines()]
        assert call[:3] == ["--quiet", "--port", str(port)] and call[3] == "--eval"
        assert f'rs.initiate({{_id: "rs0", members: [{{_id: 0, host: "127.0.0.1:{port}"}}]}})' \
            in call[4]
        pid = int(shared["services"]["mongodb"]["pid"])
    finally:
        assert run(["down"]) == 0
    assert gone(pid)


def test_without_mongod_the_plan_says_so(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no mongod there
    (workdir / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent("""\
        cluster: {runtime: local}
        storage: {mode: shared}
        containers:
          mongodb: {}
        """))
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["plan"]) == 0
    assert "mongod is not installed, so MongoDB does not run here" in capsys.readouterr().out


def test_a_crash_looping_service_is_not_reported_ready(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The crasher exits every time: once it has crashed three times, status shows it and
    the plan restarts the slice's processes instead of calling them healthy."""
    assert run(["up", "--json"]) == 0
    deadline = time.monotonic() + 15
    while int(state(project)["crasher"]["restarts"]) < 3 and time.monotonic() < deadline:  # type: ignore[call-overload]
        time.sleep(0.05)
    capsys.readouterr()
    assert run(["status", "--json"]) == 0
    rows = {r["resource"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["local"]["ready"] is False
    assert "not healthy: crasher" in rows["local"]["detail"]
    assert "exited with 3" in rows["local"]["detail"]



def test_signalr_and_storage_emulators_run_as_processes_and_services_use_them(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """signalR.mode: emulator starts asrs-emulator (a wire-level fake of the .NET tool, same
    flags, banner and REST surface) and storage.mode: embedded starts Azurite from npm; a
    service sends through the SDK with nothing but the contract; down stops both."""
    import shutil

    from devslice.project import Project
    from devslice.sdk.context import SliceContext
    from devslice.sdk.signalr import SliceSignalR

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(FAKES / "asrs-emulator", bin_dir / "asrs-emulator")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ASRS_PYTHON", sys.executable)
    messages = tmp_path / "messages.jsonl"
    monkeypatch.setenv("FAKE_ASRS_MESSAGES", str(messages))
    signalr, blob, queue = free_ports(3)
    (workdir / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent(f"""\
        cluster: {{runtime: local}}
        signalR: {{mode: emulator, emulatorPort: {signalr}, hubs: [notifications]}}
        storage:
          mode: embedded
          blobEndpointTemplate: "http://127.0.0.1:{blob}/{{account}}"
          queueEndpointTemplate: "http://127.0.0.1:{queue}/{{account}}"
        """))
    assert run(["slice", "claim"]) == 0
    try:
        assert run(["up"]) == 0
        shared = read_json(workdir / ".devslice" / "local" / "_emulators" / "state.json")
        assert {n: s["state"] for n, s in shared["services"].items()} == \
            {"signalr": "ready", "azurite": "ready"}
        contract = {v.name: v.value if isinstance(v.value, str) else v.value.reveal()
                    for v in Project.load().variables("ab")}
        assert contract["LOCAL_DEV_SIGNALR_ENDPOINT"] == f"http://127.0.0.1:{signalr}"
        ctx = SliceContext.from_env(contract)
        with SliceSignalR(contract["LOCAL_DEV_SIGNALR_CONNECTIONSTRING"], ctx) as hub:
            hub.send_to_all("notifications", "orderPlaced", [{"id": 1}])
        sent = [json.loads(line) for line in messages.read_text().splitlines()]
        assert sent == [{"hub": "notifications_ab", "user": None, "target": "orderPlaced",
                         "arguments": [{"id": 1}]}]

        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(
                contract["LOCAL_DEV_STORAGE_CONNECTIONSTRING"]) as storage:
            storage.create_container("invoices")
            assert [c.name for c in storage.list_containers()] == ["invoices"]
    finally:
        pids = [int(s["pid"]) for s in (read_json(
            workdir / ".devslice" / "local" / "_emulators" / "state.json") or {})
            .get("services", {}).values() if s.get("pid")]
        assert run(["down"]) == 0
    assert pids and all(gone(p) for p in pids)


def test_signalr_emulator_mode_without_the_tool_says_how_to_install_it(
        workdir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    (workdir / "devslice.yaml").write_text(BASE + SOLO + "cluster: {runtime: local}\n"
                                           "storage: {mode: shared}\n"
                                           "signalR: {mode: emulator}\n")
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["plan"]) == 1
    err = capsys.readouterr().err
    assert "asrs-emulator is not installed" in err
    assert "dotnet tool install -g Microsoft.Azure.SignalR.Emulator" in err
