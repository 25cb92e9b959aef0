"""The local runtime for real: services as processes with the slice's environment, readiness,
restart on crash, logs prefixed by service, a second `up` that changes nothing, and `down`
leaving no process behind, even after the supervisor itself was killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devslice.cli.app import run
from devslice.local.state import read_json

from .helpers import (
    BASE,
    FAKES,
    SOLO,
    free_port,
    free_ports,
    gone,
    local_with_azurite,
    supervisors,
    wait_for,
)

# The sleeps inside the services' scripts below are what those fake services do (stay alive,
# crash after a moment, ignore SIGTERM); the tests wait on readiness lines and wait_for.
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
time.sleep(0.3)  # up a moment, then it crashes: what the restart tests need
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
    assert run(["up", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["changes"] == 1
    services = state(project)
    assert services["web"]["state"] == services["worker"]["state"] == "ready"
    assert (project / "slice.txt").read_text() == "ab 0"  # the contract reached the process
    pids = [int(s["pid"]) for s in services.values() if s["pid"]]  # type: ignore[call-overload]
    local = read_json(project / ".devslice" / "local" / "ab" / "state.json")
    supervisor = local["supervisor"]["pid"]

    assert run(["up", "-o", "json"]) == 0  # nothing changed: nothing to do
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["changes"] == 0
    assert run(["plan"]) == 0
    assert "nothing to do" in capsys.readouterr().out

    wait_for(lambda: int(state(project)["crasher"]["restarts"]) >= 2,  # type: ignore[call-overload]
             what="the crasher restarted twice, with backoff")

    assert run(["logs", "--lines", "20"]) == 0
    out = capsys.readouterr().out
    assert "worker  | worker ready" in out
    assert "crasher | [devslice] crasher exited with 3; restart 1 in 0.5s" in out

    assert run(["down"]) == 0
    for pid in [*pids, supervisor]:
        assert gone(pid), f"process {pid} is still running after down"


def test_down_after_the_supervisor_was_killed(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["up", "-o", "json"]) == 0
    data = read_json(project / ".devslice" / "local" / "ab" / "state.json")
    os.kill(data["supervisor"]["pid"], signal.SIGKILL)  # its children live on, orphaned
    wait_for(lambda: gone(data["supervisor"]["pid"]), what="the supervisor to die")
    children = {n: int(s["pid"]) for n, s in data["services"].items() if s["pid"]}
    alive = {n: p for n, p in children.items() if not gone(p)}
    assert "web" in alive and "worker" in alive
    capsys.readouterr()
    assert run(["status"]) == 1  # orphaned processes are not a ready slice
    out = " ".join(capsys.readouterr().out.split())
    assert f"the supervisor (pid {data['supervisor']['pid']}) is gone" in out
    assert f"web (pid {alive['web']})" in out and f"worker (pid {alive['worker']})" in out
    assert run(["down"]) == 0
    for pid in children.values():
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
        assert run(["up", "-o", "json"]) == 0
        capsys.readouterr()
        assert run(["plan", "--slice", "cd"]) == 0
        assert "+ local: start (run worker as local processes)" in capsys.readouterr().out
        assert run(["up", "--slice", "cd", "-o", "json"]) == 0, capsys.readouterr().err
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
        assert run(["up", "-o", "json"]) == 0
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
    assert run(["up", "-o", "json"]) == 0
    wait_for(lambda: int(state(project)["crasher"]["crashes"]) >= 3,  # type: ignore[call-overload]
             what="three crashes in a row")
    capsys.readouterr()
    assert run(["status", "-o", "json"]) == 1  # not ready: a non-zero exit, for scripts
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


# --- One `up` at a time per slice; orphans; shared emulators (issue 11, items 4 and 5) ---

STARTER = """\
import os, sys, time
with open("starts.txt", "a") as f:
    f.write(f"{os.getpid()}\\n")
print("starter ready", flush=True)
while True:
    time.sleep(1)
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "devslice", *args]


@pytest.fixture
def starter(workdir: Path) -> Iterator[Path]:
    port = free_port()
    (workdir / "starter.py").write_text(STARTER)
    (workdir / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent(f"""\
        cluster: {{runtime: local}}
        storage: {{mode: shared}}
        services:
          - name: web
            run: {sys.executable} -m http.server {port} --bind 127.0.0.1
            ready: {{port: {port}}}
          - name: starter
            run: {sys.executable} starter.py
            ready: {{log: starter ready}}
        """))
    assert run(["slice", "claim"]) == 0
    yield workdir
    run(["down"])


def test_three_concurrent_ups_start_one_supervisor_and_one_down_stops_all(
    starter: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three `devslice up` of one slice at once, as real CLI processes: the slice's lock
    lets one start the supervisor; the others wait for it and find nothing to do."""
    # A loaded laptop: each supervisor takes a second to start, so all three `up` plan while
    # nothing runs yet (without the lock each then starts a supervisor of its own).
    slow = starter / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(
        "import time\n"
        "if b'devslice.local.supervisor' in open('/proc/self/cmdline', 'rb').read():\n"
        "    time.sleep(1)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(slow), *filter(None, [os.environ.get("PYTHONPATH")])])}
    ups = [subprocess.Popen(_cli("up", "-o", "json"), cwd=starter, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in ups]
    assert [p.returncode for p in ups] == [0, 0, 0], [err for _, err in outs]
    changes = sorted(json.loads(out.splitlines()[-1])["changes"] for out, _ in outs)
    directory = starter / ".devslice" / "local" / "ab"
    assert len(supervisors(directory)) == 1
    assert len((starter / "starts.txt").read_text().splitlines()) == 1  # one set of services
    assert any("waiting for devslice up of slice ab (pid" in out for out, _ in outs)
    assert changes == [0, 0, 1]  # the two that waited found nothing to do
    services = state(starter)
    assert {n: s["state"] for n, s in services.items()} == {"web": "ready", "starter": "ready"}
    assert services["web"]["restarts"] == 0  # no second web server lost a port race
    assert run(["status"]) == 0  # all ready: exit 0
    pids = [int(s["pid"]) for s in services.values()]  # type: ignore[call-overload]

    down = subprocess.run(_cli("down"), cwd=starter, capture_output=True, text=True,
                          timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert not supervisors(directory)
    for pid in pids:
        assert gone(pid), f"process {pid} is still running after down"


def test_a_busy_slice_is_waited_for_or_refused(starter: Path) -> None:
    """While another command holds the slice (here: this test, through the same lock),
    `up --fail-if-busy` exits 75 naming it, and `down` says whom it waits for and goes on
    once the holder is done."""
    from devslice.local.state import locked

    directory = starter / ".devslice" / "local" / "ab"
    with locked(directory, "devslice up of slice ab"):
        busy = subprocess.run(_cli("up", "--fail-if-busy"), cwd=starter, capture_output=True,
                              text=True, timeout=60, check=False)
        assert busy.returncode == 75, busy.stderr
        assert f"devslice up of slice ab (pid {os.getpid()}) is running" in busy.stderr
        down = subprocess.Popen(_cli("down"), cwd=starter, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert down.stderr is not None
        line = down.stderr.readline()  # blocks until it says it waits: an event, no sleep
        assert f"waiting for devslice up of slice ab (pid {os.getpid()}) to finish" in line
        assert down.poll() is None  # still waiting while the lock is held
    _out, err = down.communicate(timeout=60)
    assert down.returncode == 0, err
    assert not (starter / "starts.txt").exists()  # the refused up started nothing


def test_a_recycled_pid_is_neither_an_orphan_nor_stopped(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """state.json names a pid that now belongs to another program (it started later than the
    recorded process): status does not call it an orphan and down does not kill it."""
    from devslice.local.state import write_json

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                             start_new_session=True)  # its own group, like a service
    try:
        write_json(project / ".devslice" / "local" / "ab" / "state.json", {
            "supervisor": {"pid": None, "spec": None},
            "services": {"web": {"pid": other.pid, "pgid": other.pid,
                                 "started": "an-earlier-boot:12345", "state": "ready",
                                 "restarts": 0, "detail": ""}}})
        capsys.readouterr()
        code = run(["status"])
        assert "orphaned" not in capsys.readouterr().out
        assert run(["down"]) == 0
        assert other.poll() is None, "down killed a process that only reused a recorded pid"
        assert code == 1  # nothing of the slice runs: not ready
    finally:
        other.kill()
        other.wait()


def test_process_start_tells_a_process_from_a_later_one(tmp_path: Path) -> None:
    from devslice.local.state import process_start

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for root in (Path("/proc"), tmp_path / "no-proc"):  # Linux, and `ps` elsewhere
            first = process_start(proc.pid, root)
            assert first is not None and first == process_start(proc.pid, root)
    finally:
        proc.kill()
        proc.wait()
    assert process_start(proc.pid) is None
    assert process_start(proc.pid, tmp_path / "no-proc") is None


def test_shared_azurite_stays_while_a_killed_supervisors_services_use_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Slices ab and cd share one Azurite. ab's supervisor is killed (SIGKILL), its services
    run on: `down` of cd leaves Azurite running for them, status of ab names the orphans,
    and `down` of ab, the last user, stops Azurite too."""
    blob, queue = free_ports(2)
    (workdir / "starter.py").write_text(STARTER)
    (workdir / "devslice.yaml").write_text(
        BASE + local_with_azurite(blob, queue) + textwrap.dedent(f"""\
        services:
          - name: starter
            run: {sys.executable} starter.py
            ready: {{log: starter ready}}
        """))
    assert run(["slice", "claim"]) == 0
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    local = workdir / ".devslice" / "local"
    try:
        assert run(["up", "-o", "json"]) == 0
        assert run(["up", "--slice", "cd", "-o", "json"]) == 0
        azurite = int(read_json(local / "_emulators" / "state.json")
                      ["services"]["azurite"]["pid"])
        ab = read_json(local / "ab" / "state.json")
        os.kill(ab["supervisor"]["pid"], signal.SIGKILL)
        wait_for(lambda: gone(ab["supervisor"]["pid"]), what="ab's supervisor to die")
        worker = int(ab["services"]["starter"]["pid"])

        assert run(["down", "--slice", "cd"]) == 0
        assert not gone(azurite), "down of cd stopped the Azurite ab's services use"
        assert not gone(worker)
        from devslice.facts.ports import port_open

        assert port_open(blob)
        capsys.readouterr()
        assert run(["status"]) == 1
        out = " ".join(capsys.readouterr().out.split())
        assert f"orphaned processes it left running: starter (pid {worker})" in out
    finally:
        assert run(["down"]) == 0
    assert gone(worker) and gone(azurite)


# --- The supervisor's readiness and backoff (issue 13, item 8) ---

def test_a_ready_line_printed_before_the_watcher_reads_is_seen(tmp_path: Path) -> None:
    """A loaded machine runs the service before the supervisor looks at its log: the spawn
    given to the Service returns only once the service has printed its ready line. The line
    is after the offset the watcher reads from, so the service is ready."""
    from devslice.local.supervisor import Service

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "quick.log").write_text("quick ready (an earlier run: does not count)\n" * 3)
    log = logs / "quick.log"
    before = log.stat().st_size

    def spawn_then_let_it_print(*args: object, **kw: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(*args, **kw)  # type: ignore[call-overload]
        wait_for(lambda: log.stat().st_size > before, what="the service's first line")
        return proc  # type: ignore[no-any-return]

    svc = Service({"name": "quick", "cwd": str(tmp_path), "env": {},
                   "argv": [sys.executable, "-c",
                            "import time; print('quick ready', flush=True); time.sleep(60)"],
                   "ready": {"log": "quick ready", "timeout": 3}},
                  logs, spawn=spawn_then_let_it_print)
    svc.start()
    try:
        wait_for(lambda: svc.state != "starting", what="a verdict on readiness")
        assert svc.state == "ready", svc.detail
    finally:
        svc.terminate()
        svc.stop(time.monotonic() + 5)


def test_an_earlier_runs_ready_line_does_not_count(tmp_path: Path) -> None:
    from devslice.local.supervisor import Service

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "slow.log").write_text("slow ready\n")  # the previous run's
    svc = Service({"name": "slow", "cwd": str(tmp_path), "env": {},
                   "argv": [sys.executable, "-c", "import time; time.sleep(60)"],
                   "ready": {"log": "slow ready", "timeout": 0.5}}, logs)
    svc.start()
    try:
        wait_for(lambda: svc.state != "starting", what="a verdict on readiness")
        assert svc.state == "unready"
    finally:
        svc.terminate()
        svc.stop(time.monotonic() + 5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_restart_backoff_grows_and_resets_after_a_healthy_run(tmp_path: Path) -> None:
    """A real process that exits at once, on an injected clock: the delays before each
    restart double, and a run of HEALTHY_RUN seconds starts them again from 0.5 s."""
    from devslice.local.supervisor import HEALTHY_RUN, Service

    clock = FakeClock()
    svc = Service({"name": "crasher", "cwd": str(tmp_path), "env": {}, "ready": {},
                   "argv": [sys.executable, "-c", "raise SystemExit(3)"]},
                  tmp_path, clock=clock)

    def crash_after(seconds: float) -> float:
        """The process ran ``seconds`` and exited; the delay the supervisor chose."""
        assert svc.proc is not None
        svc.proc.wait()
        clock.now += seconds
        svc.check(clock.now)
        assert svc.state == "crashed"
        delay = svc.next_start - clock.now
        clock.now = svc.next_start
        svc.check(clock.now)  # restarted now
        return delay

    svc.start()
    delays = [crash_after(0.1) for _ in range(4)]
    assert delays == pytest.approx([0.5, 1.0, 2.0, 4.0])
    delays = [crash_after(HEALTHY_RUN + 1), crash_after(0.1)]
    assert delays == pytest.approx([0.5, 1.0])
    assert svc.record()["restarts"] == 6 and svc.record()["crashes"] == 2
    assert svc.proc is not None
    svc.proc.wait()


class Renames:
    """Counts files renamed into a folder (inotify IN_MOVED_TO): how often the supervisor
    replaced state.json. A thread reads each event as it comes, since inotify merges an
    event into an identical one still unread."""

    IN_MOVED_TO = 0x80

    def __init__(self, directory: Path) -> None:
        import ctypes
        import threading

        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(0)
        assert self.fd >= 0
        assert libc.inotify_add_watch(self.fd, str(directory).encode(), self.IN_MOVED_TO) >= 0
        self.names: list[str] = []
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        import select
        import struct

        while not self.done.is_set():
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            data = os.read(self.fd, 65536)
            at = 0
            while at < len(data):
                size = struct.unpack_from("iIII", data, at)[3]
                self.names.append(data[at + 16:at + 16 + size].rstrip(b"\0").decode())
                at += 16 + size

    def count(self, name: str) -> int:
        return self.names.count(name)

    def close(self) -> None:
        self.done.set()
        self.reader.join()
        os.close(self.fd)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="inotify is Linux's")
def test_state_is_written_only_when_it_changes(project: Path) -> None:
    """The supervisor looks at its services ten times a second; state.json is replaced only
    when something changed. Between the crasher's second crash and its third there are some
    1.3 s of looking (a backoff of 1 s and a run of 0.3 s) and only three changes."""
    directory = project / ".devslice" / "local" / "ab"
    directory.mkdir(parents=True)
    renames = Renames(directory)
    try:
        assert run(["up", "-o", "json"]) == 0
        wait_for(lambda: int(state(project)["crasher"]["crashes"]) >= 2,  # type: ignore[call-overload]
                 what="the crasher's second crash")
        before = renames.count("state.json")
        wait_for(lambda: int(state(project)["crasher"]["crashes"]) >= 3,  # type: ignore[call-overload]
                 what="the crasher's third crash")
        # crashed -> starting -> ready -> crashed: three changes; ten a second before the fix
        assert renames.count("state.json") - before <= 4
    finally:
        renames.close()


def test_services_that_ignore_sigterm_are_stopped_together(tmp_path: Path) -> None:
    """Three services ignore SIGTERM: they get one grace period between them, then SIGKILL,
    not one each."""
    from devslice.local.supervisor import Service, stop_all

    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ignoring', flush=True); time.sleep(60)")
    services = [Service({"name": f"s{i}", "cwd": str(tmp_path), "env": {}, "ready": {},
                         "argv": [sys.executable, "-c", stubborn]}, tmp_path) for i in range(3)]
    for s in services:
        s.start()
    for s in services:
        wait_for(lambda s=s: b"ignoring" in s.log_path.read_bytes(), what="SIGTERM ignored")
    started = time.monotonic()
    stop_all(services, grace=1.0)
    took = time.monotonic() - started
    assert all(s.proc is not None and s.proc.returncode == -signal.SIGKILL for s in services)
    # one grace period each, in series, cannot take less than 3 s
    assert 1.0 <= took < 3.0, f"stopping took {took:.1f}s: one grace period each?"
