"""Local containers (issue 5): plans and applies against the wire-level fake Docker Engine,
driven by the real Docker SDK; the generated MongoDB init, SFTP users and Event Hubs emulator
Config.json checked against tests/data/reference and the emulator's published schema."""

from __future__ import annotations

import json
import re
import socket
import stat
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import jsonschema
import pytest

from devslice.adapters.docker import Docker
from devslice.adapters.dockerdata import KEEP_OUTPUT, PortInUse
from devslice.config.model import Environment
from devslice.engine import Executor
from devslice.engine.plan import Plan, make_plan
from devslice.errors import CommandFailed, ConfigError
from devslice.facts.ports import port_open
from devslice.project import Project
from devslice.resources.containers import (
    LABEL_MANAGED_BY,
    LABEL_SPEC_HASH,
    ContainerResource,
    ContainerSpec,
    NotReady,
    SetupFailed,
)
from devslice.services import container_specs
from devslice.services.eventhubs import EMULATOR_READY
from devslice.services.eventhubs import emulator_config as eventhubs_emulator_config
from devslice.services.mongodb import connection_string as mongodb_connection_string
from devslice.services.sftp import users_conf as sftp_users_conf
from devslice.services.storage import DEV_ACCOUNT as AZURITE_DEV_ACCOUNT
from devslice.services.storage import DEV_KEY as AZURITE_DEV_KEY
from devslice.services.storage import account_key as azurite_account_key
from devslice.testing.dockerapi import FakeContainer, FakeDockerEngine, RecordedRequest

from .helpers import BASE, SHARED, SOLO, env_from, free_port, free_port_block, free_ports


def _reference(name: str) -> str:
    """A reference file (tests/data/reference, copied with its source noted)."""
    return (SHARED / "reference" / name).read_text()

# The emulator's Config-schema.json (Azure/azure-event-hubs-emulator-installer,
# EventHub-Emulator/Schema/Config-schema.json), transcribed without its descriptions.
EMULATOR_SCHEMA = {
    "type": "object", "required": ["UserConfig"],
    "properties": {"UserConfig": {
        "type": "object", "required": ["NamespaceConfig", "LoggingConfig"],
        "properties": {
            "NamespaceConfig": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                "type": "object", "required": ["Type", "Name", "Entities"],
                "properties": {
                    "Type": {"type": "string", "enum": ["EventHub"]},
                    "Name": {"type": "string", "enum": ["emulatorNs1"]},
                    "Entities": {"type": "array", "minItems": 1, "maxItems": 10, "items": {
                        "type": "object", "required": ["Name", "PartitionCount"],
                        "properties": {
                            "Name": {"type": "string"},
                            "PartitionCount": {"type": "string"},
                            "ConsumerGroups": {"type": "array", "minItems": 1, "maxItems": 20,
                                               "items": {"type": "object",
                                                         "required": ["Name"],
                                                         "properties": {"Name": {
                                                             "type": "string",
                                                             "not": {"const": "$default"}}}}},
                        }}},
                }}},
            "LoggingConfig": {"type": "object", "required": ["Type"], "properties": {
                "Type": {"type": "string",
                         "enum": ["File", "Console", "File,Console", "Console,File"]}}},
        }}},
}


@dataclass
class World:
    base: Path
    engine: FakeDockerEngine
    docker: Docker
    scripts: list[list[str]] = field(default_factory=list)

    def resources(self, env: Environment, runtime: str = "kube",
                  environ: dict[str, str] | None = None,
                  accounts: tuple[str, ...] = ()) -> list[ContainerResource]:
        specs = container_specs(env, self.base, runtime=runtime, environ=environ or {},
                                storage_accounts=accounts)
        return [self.resource(s) for s in specs]

    def resource(self, spec: ContainerSpec) -> ContainerResource:
        return ContainerResource(spec, self.docker, self.base, after=(), poll=0.01)

    def apply(self, resources: list[ContainerResource]) -> None:
        self.engine.clear_requests()
        Executor(max_workers=1).apply(resources)

    def changing(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.engine.requests if r.changes]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    with FakeDockerEngine() as engine:
        client = docker.DockerClient(base_url=engine.base_url)
        try:
            yield World(tmp_path / "repo", engine, Docker(client))
        finally:
            client.close()


def custom(port: int, *, image: str = "redis:7", ready: str = "{port: 6379}",
           setup: str = "") -> Environment:
    return env_from(SOLO + textwrap.dedent(f"""\
        storage: {{mode: shared}}  # else storage's default mode, emulator, adds Azurite
        containers:
          custom:
            - name: cache
              image: {image}
              command: [redis-server, --appendonly, "yes"]
              env: {{CACHE_MODE: dev, MAX_CLIENTS: 100}}
              secretEnv: {{CACHE_TOKEN: {{fromEnv: CACHE_TOKEN}}}}
              ports: ["127.0.0.1:{port}:6379"]
              volumes: ["cachedata:/data"]
              ready: {ready}
        """) + textwrap.indent(setup, "      "))


TOKEN = "t0ps3cret-t0ken"


def plan_of(resources: list[ContainerResource]) -> Plan:
    return make_plan(resources)


# -- create, idempotency, drift ----------------------------------------------------------


def test_create_sends_the_exact_request_and_keeps_secrets_out_of_labels(world: World) -> None:
    port = free_port()
    resources = world.resources(custom(port), environ={"CACHE_TOKEN": TOKEN})
    plan = plan_of(resources)
    assert [(a.verb, a.reason) for a in plan.actions] == [
        ("create", "container devslice-cache does not exist")]
    assert plan.actions[0].calls == (
        "POST /volumes/create (Name=cachedata, unless it exists)",
        "POST /images/create?fromImage=redis&tag=7", "POST /containers/create?name=devslice-cache",
        "POST /containers/devslice-cache/start")
    assert TOKEN not in plan.render() and TOKEN not in json.dumps(plan.as_dict())

    world.apply(resources)
    assert world.changing() == ["POST /volumes/create", "POST /images/create",
                                "POST /containers/create", "POST /containers/devslice-cache/start"]
    assert world.engine.volumes["cachedata"]["Labels"] == {"devslice.dev/managed-by": "devslice"}
    create = next(r for r in world.engine.requests if r.path == "/containers/create")
    assert create.query == {"name": ["devslice-cache"]}
    c = world.engine.container("devslice-cache")
    assert c is not None and c.status == "running"
    body = c.config
    assert body["Image"] == "redis:7"
    assert body["Cmd"] == ["redis-server", "--appendonly", "yes"]
    assert sorted(body["Env"]) == ["CACHE_MODE=dev", f"CACHE_TOKEN={TOKEN}", "MAX_CLIENTS=100"]
    host = body["HostConfig"]
    assert host["RestartPolicy"] == {"Name": "unless-stopped"}
    assert host["PortBindings"] == {"6379/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert body["ExposedPorts"] == {"6379/tcp": {}}
    assert host["Mounts"] == [{"Target": "/data", "Source": "cachedata", "Type": "volume",
                               "ReadOnly": False}]
    assert "cachedata" in world.engine.volumes  # the engine made the named volume
    labels = body["Labels"]
    assert labels[LABEL_MANAGED_BY] == "devslice"
    assert re.fullmatch(r"[0-9a-f]{16}", labels[LABEL_SPEC_HASH])
    assert TOKEN not in json.dumps(labels)
    assert "<secret env:CACHE_TOKEN>" in labels["devslice.dev/spec"]


def test_second_plan_is_all_noop_and_only_reads(world: World) -> None:
    port = free_port()
    world.apply(world.resources(custom(port), environ={"CACHE_TOKEN": TOKEN}))
    world.engine.clear_requests()
    plan = plan_of(world.resources(custom(port), environ={"CACHE_TOKEN": TOKEN}))
    assert plan.empty
    assert [a.reason for a in plan.actions] == [
        "container devslice-cache already running with the same spec"]
    assert world.engine.requests and all(r.method == "GET" for r in world.engine.requests)
    # and applying it changes nothing either
    world.apply(world.resources(custom(port), environ={"CACHE_TOKEN": TOKEN}))
    assert world.changing() == []


def test_drift_recreates_with_its_reason_and_keeps_the_volume(world: World) -> None:
    port = free_port()
    world.apply(world.resources(custom(port), environ={"CACHE_TOKEN": TOKEN}))
    old = world.engine.container("devslice-cache")
    assert old is not None
    resources = world.resources(custom(port, image="redis:7.2"), environ={"CACHE_TOKEN": TOKEN})
    plan = plan_of(resources)
    (action,) = plan.changes
    assert action.verb == "recreate"
    assert action.reason == "recreate cache: image redis:7 -> redis:7.2"
    assert action.calls[0] == ("DELETE /containers/devslice-cache?v=False&link=False"
                               "&force=True")
    world.apply(resources)
    assert world.changing() == ["DELETE /containers/devslice-cache", "POST /images/create",
                                "POST /containers/create", "POST /containers/devslice-cache/start"]
    delete = next(r for r in world.engine.requests if r.method == "DELETE")
    assert delete.query["v"] == ["False"]  # named volumes keep the data
    new = world.engine.container("devslice-cache")
    assert new is not None and new.id != old.id and new.image == "redis:7.2"
    assert "cachedata" in world.engine.volumes


def test_changed_secret_recreates_without_showing_it(world: World) -> None:
    port = free_port()
    world.apply(world.resources(custom(port), environ={"CACHE_TOKEN": TOKEN}))
    plan = plan_of(world.resources(custom(port), environ={"CACHE_TOKEN": "an0ther-t0ken"}))
    (action,) = plan.changes
    assert action.reason == "recreate cache: secret env:CACHE_TOKEN changed"
    assert "an0ther" not in plan.render() and TOKEN not in plan.render()
    state = (world.base / ".devslice" / "containers" / "cache.json").read_text()
    assert TOKEN not in state


def test_stopped_container_is_started(world: World) -> None:
    port = free_port()
    world.apply(world.resources(custom(port), environ={"CACHE_TOKEN": TOKEN}))
    world.engine.stop_container("devslice-cache")
    resources = world.resources(custom(port), environ={"CACHE_TOKEN": TOKEN})
    (action,) = plan_of(resources).changes
    assert (action.verb, action.reason) == ("start", "container devslice-cache is exited")
    world.apply(resources)
    assert world.changing() == ["POST /containers/devslice-cache/start"]


def test_a_container_devslice_did_not_make_is_left_alone(world: World) -> None:
    world.engine.add_image("redis:7")
    world.docker.container_create("devslice-cache", "redis:7")
    with pytest.raises(CommandFailed, match="devslice did not create it") as info:
        plan_of(world.resources(custom(free_port()), environ={"CACHE_TOKEN": TOKEN}))
    assert "docker rm -f devslice-cache" in str(info.value)


# -- readiness -------------------------------------------------------------------------------


def test_readiness_waits_for_a_log_line_and_times_out_with_the_logs(world: World) -> None:
    port = free_port()
    world.engine.container_output = lambda c: ["starting", "Ready to accept connections"]
    env = custom(port, ready='{log: "Ready to accept connections", timeout: 5s}')
    world.apply(world.resources(env, environ={"CACHE_TOKEN": TOKEN}))
    assert any(r.path == "/containers/devslice-cache/logs" for r in world.engine.requests)

    world.engine.container_output = lambda c: ["starting", "still loading the dataset"]
    env = custom(port, image="redis:7.2", ready='{log: "Ready to accept", timeout: 1s}')
    with pytest.raises(NotReady) as info:
        world.apply(world.resources(env, environ={"CACHE_TOKEN": TOKEN}))
    message = str(info.value)
    assert "was not ready after 1 s" in message and "still loading the dataset" in message


def test_readiness_looks_again_soon_then_less_often(world: World) -> None:
    """Issue 17: 50 ms after the first look, then doubling up to the poll interval."""
    env = custom(free_port(), ready='{log: "Ready to accept connections", timeout: 60s}')
    [spec] = [r.spec for r in world.resources(env, environ={"CACHE_TOKEN": TOKEN})]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the container is ready after the fifth wait
        slept.append(seconds)
        if len(slept) == 5:
            for c in world.engine.containers.values():
                c.log("Ready to accept connections")

    Executor().apply([ContainerResource(spec, world.docker, world.base, after=(),
                                        sleep=sleep, clock=lambda: 0.0, poll=0.25)])
    assert slept == [0.05, 0.1, 0.2, 0.25, 0.25]


def test_readiness_by_port_sees_through_dockers_proxy(world: World) -> None:
    """docker-proxy accepts on a published port before the process inside listens, then
    closes the connection: that is not ready; a connection the service holds is."""
    port = free_port()
    world.engine.serves_on_start = lambda c: False
    env = custom(port, ready="{port: 6379, timeout: 1s}")
    with pytest.raises(NotReady) as info:
        world.apply(world.resources(env, environ={"CACHE_TOKEN": TOKEN}))
    assert f"a service answers on 127.0.0.1:{port} (not only Docker's proxy)" in str(info.value)
    assert port_open(port)  # a plain connect would have called it ready

    def listens_later(c: FakeContainer) -> bool:
        threading.Timer(0.3, lambda: setattr(c, "serving", True)).start()
        return False

    world.engine.serves_on_start = listens_later
    env = custom(port, image="redis:7.2", ready="{port: 6379, timeout: 5s}")  # a recreate
    started = time.monotonic()
    world.apply(world.resources(env, environ={"CACHE_TOKEN": TOKEN}))  # waits, then ready
    assert time.monotonic() - started >= 0.3


def test_readiness_conditions_must_all_hold(world: World) -> None:
    port = free_port()
    world.engine.container_output = lambda c: ["loading"]
    env = custom(port, ready='{port: 6379, log: "Ready to accept", timeout: 1s}')
    with pytest.raises(NotReady) as info:
        world.apply(world.resources(env, environ={"CACHE_TOKEN": TOKEN}))
    assert (f"waited until a service answers on 127.0.0.1:{port} (not only Docker's proxy) "
            "and its output shows 'Ready to accept'") in str(info.value)
    world.engine.container_output = lambda c: ["Ready to accept connections"]
    env = custom(port, image="redis:7.2", ready='{port: 6379, log: "Ready to accept"}')
    world.apply(world.resources(env, environ={"CACHE_TOKEN": TOKEN}))
    with pytest.raises(ConfigError, match="give at least one of port, command or log"):
        custom(port, ready="{timeout: 5s}")


def test_readiness_port_must_be_published(world: World) -> None:
    with pytest.raises(ConfigError, match=r"containers.custom\[0\].ready.port"):
        world.resources(custom(free_port(), ready="{port: 7000}"), environ={"CACHE_TOKEN": TOKEN})


# -- setup scripts ---------------------------------------------------------------------------


SETUP = """\
setup:
  - {name: schema, file: db/schema.sh}
"""


def test_setup_script_runs_once_and_again_when_it_changes(world: World) -> None:
    port = free_port()
    (world.base / "db").mkdir(parents=True)
    script = world.base / "db" / "schema.sh"
    script.write_text("create-table orders\n")
    env = custom(port, ready="{command: [redis-cli, ping]}", setup=SETUP)
    world.apply(world.resources(env, environ={"CACHE_TOKEN": TOKEN}))
    c = world.engine.container("devslice-cache")
    assert c is not None
    assert [unwrapped(argv) for argv in c.execs] == [["redis-cli", "ping"],
                                                      ["sh", "-c", "create-table orders\n"]]
    assert c.execs[1][:3] == ["sh", "-c", KEEP_OUTPUT]  # its output kept in a file too

    plan = plan_of(world.resources(env, environ={"CACHE_TOKEN": TOKEN}))
    assert plan.empty

    script.write_text("create-table orders\ncreate-table invoices\n")
    resources = world.resources(env, environ={"CACHE_TOKEN": TOKEN})
    (action,) = plan_of(resources).changes
    assert (action.verb, action.reason) == (
        "setup", "run setup script schema in devslice-cache (its script changed)")
    world.apply(resources)
    assert unwrapped(c.execs[-1]) == ["sh", "-c",
                                      "create-table orders\ncreate-table invoices\n"]
    assert world.changing() == ["POST /containers/devslice-cache/exec",
                                f"POST /exec/{_exec_ids(world.engine.requests)[0]}/start",
                                "POST /containers/devslice-cache/exec",
                                f"POST /exec/{_exec_ids(world.engine.requests)[1]}/start"]
    assert plan_of(world.resources(env, environ={"CACHE_TOKEN": TOKEN})).empty


def unwrapped(argv: list[str]) -> list[str]:
    """A setup script's own argv, without the keep_output wrapper around it."""
    return argv[4:] if argv[:3] == ["sh", "-c", KEEP_OUTPUT] else argv


def _exec_ids(requests: list[RecordedRequest]) -> list[str]:
    return [r.path.split("/")[2] for r in requests if r.path.startswith("/exec/")
            and r.path.endswith("/start")]


def test_failing_setup_shows_its_output_and_tears_nothing_down(world: World) -> None:
    port, other_port = free_ports(2)
    (world.base / "db").mkdir(parents=True)
    (world.base / "db" / "schema.sh").write_text("create-table orders\n")

    def handler(c: FakeContainer, argv: list[str]) -> tuple[int, list[tuple[int, str]]]:
        if argv[:2] == ["sh", "-c"]:
            return 3, [(1, "creating orders\n"), (2, "ERROR: relation \"orders\" exists\n")]
        return 0, []

    world.engine.exec_handler = handler
    env = env_from(textwrap.dedent(f"""\
        containers:
          custom:
            - name: cache
              image: redis:7
              ports: ["127.0.0.1:{port}:6379"]
              setup: [{{name: schema, file: db/schema.sh}}]
            - name: queue
              image: rabbitmq:3
              ports: ["127.0.0.1:{other_port}:5672"]
        """) + azurite_on_free_ports())
    with pytest.raises(SetupFailed) as info:
        world.apply(world.resources(env))
    message = str(info.value)
    assert "setup script schema failed in container devslice-cache (exit code 3)" in message
    assert "creating orders" in message and 'ERROR: relation "orders" exists' in message
    assert not any(r.method == "DELETE" for r in world.engine.requests)
    for name in ("devslice-cache", "devslice-queue"):
        c = world.engine.container(name)
        assert c is not None and c.status == "running"
    # the script is still pending: the next up runs it again
    plan = plan_of(world.resources(env))
    assert [(a.resource, a.verb) for a in plan.changes] == [("container:cache", "setup")]


def test_failing_setup_output_the_engine_lost_is_read_from_its_file(world: World) -> None:
    # Engine 20.10 can send no output for an exec that ends at once (issue 13): the exit code
    # comes, the stream is empty. The script's output, also written to a file, still shows.
    port = free_port()
    (world.base / "db").mkdir(parents=True)
    (world.base / "db" / "schema.sh").write_text("create-table orders\n")

    def handler(c: FakeContainer, argv: list[str]) -> tuple[int, list[tuple[int, str]]]:
        if argv[:3] == ["sh", "-c", KEEP_OUTPUT]:
            c.files[argv[3]] = b'ERROR: relation "orders" exists\n'  # what "$@" >"$0" wrote
            return 3, []
        return 0, []

    world.engine.exec_handler = handler
    env = custom(port, setup=SETUP)
    with pytest.raises(SetupFailed) as info:
        world.apply(world.resources(env, environ={"CACHE_TOKEN": TOKEN}))
    assert 'ERROR: relation "orders" exists' in str(info.value)
    assert "(exit code 3)" in str(info.value)


def test_an_image_without_a_command_is_refused_as_the_engine_refuses_it(world: World) -> None:
    world.engine.add_image("imported:1", cmd=None)  # as `docker import` makes: no CMD
    env = env_from(f"""\
        storage: {{mode: shared}}
        containers:
          custom:
            - name: tool
              image: imported:1
              ports: ["127.0.0.1:{free_port()}:8080"]
        """)
    with pytest.raises(CommandFailed, match="answered 400: No command specified"):
        world.apply(world.resources(env))
    assert world.engine.container("devslice-tool") is None
    given = env_from(f"""\
        storage: {{mode: shared}}
        containers:
          custom:
            - name: tool
              image: imported:1
              command: [sh, -c, "exec sleep 600"]
              ports: ["127.0.0.1:{free_port()}:8080"]
        """)
    world.apply(world.resources(given))  # a command of its own: created
    assert world.engine.container("devslice-tool") is not None


# -- ports -------------------------------------------------------------------------------------


def test_a_host_port_already_taken_is_a_clear_error(world: World) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse) as info:
            plan_of(world.resources(custom(port), environ={"CACHE_TOKEN": TOKEN}))
    message = str(info.value)
    assert f"cannot publish host port {port}" in message and "already in use" in message
    assert info.value.port == port
    assert not [r for r in world.engine.requests if r.changes]


def test_the_engine_refusing_a_port_names_it(world: World) -> None:
    port = free_port()
    world.engine.add_image("redis:7")
    from devslice.adapters.dockerdata import PortBinding

    world.docker.container_run("devslice-a", "redis:7", ports=[PortBinding(6379, port)])
    world.docker.container_create("devslice-b", "redis:7", ports=[PortBinding(6379, port)])
    with pytest.raises(PortInUse, match=f"host port {port} is already in use"):
        world.docker.container_start("devslice-b")


# -- MongoDB ---------------------------------------------------------------------------------


def _facts_initiate(host: str) -> str:
    m = re.search(r"rs\.initiate\(\{_id:\"rs0\", members:\[\{_id:0,"
                  r"\s*host:\"<host>:27017\"\}\]\}\)", _reference("facts.md"))
    assert m is not None, "facts.md no longer shows the rs.initiate call"
    return re.sub(r"\s+", "", m.group(0).replace("<host>", host))


def test_mongodb_is_a_one_node_replica_set_both_sides_reach(world: World) -> None:
    env = env_from(SOLO + "storage: {mode: shared}\n"
                   "containers:\n  mongodb: {replicaSet: rs0, oplogSizeMB: 50}\n")
    (k3d,) = container_specs(env, world.base, runtime="k3d")
    assert k3d.command == ("mongod", "--replSet", "rs0", "--bind_ip_all", "--oplogSize", "50")
    assert "--replSet rs0 --bind_ip_all" in _reference("facts.md")
    assert k3d.after == ("cluster",)  # the gateway exists once the k3d network does
    init = k3d.setup[0]
    assert init.name == "replica-set" and init.argv[:3] == ("mongosh", "--quiet", "--eval")
    script = re.sub(r"\s+", "", init.argv[3])
    assert _facts_initiate("172.18.0.1") in script  # the k3d subnet's gateway
    assert "NotYetInitialized" in init.argv[3]  # initiated once, not on every up
    (kube,) = container_specs(env, world.base, runtime="kube")
    assert _facts_initiate("127.0.0.1") in re.sub(r"\s+", "", kube.setup[0].argv[3])
    assert env.containers.mongodb is not None
    assert env.containers.mongodb is not None
    assert mongodb_connection_string(env.containers.mongodb.port) == \
        "mongodb://127.0.0.1:27017/?directConnection=true"
    assert "directConnection=true" in _reference("facts.md")


def test_mongodb_apply_initiates_after_ready_then_runs_ddl(world: World) -> None:
    port = free_port()
    (world.base / "db").mkdir(parents=True)
    (world.base / "db" / "ddl.js").write_text("db.getSiblingDB('orders').createCollection('o')\n")
    env = env_from(SOLO + textwrap.dedent(f"""\
        storage: {{mode: shared}}
        containers:
          mongodb:
            port: {port}
            volume: mongodata
            setup: [{{name: ddl, file: db/ddl.js}}]
        """))
    resources = world.resources(env)
    assert [a.verb for a in plan_of(resources).actions] == ["create", "setup", "setup"]
    world.apply(resources)
    c = world.engine.container("devslice-mongodb")
    assert c is not None
    assert c.config["HostConfig"]["Mounts"][0]["Source"] == "mongodata"
    assert c.config["HostConfig"]["PortBindings"] == {
        "27017/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    assert [unwrapped(argv)[3].split("\n")[0] for argv in c.execs] == [
        "db.adminCommand('ping').ok", "let status = null;",
        "db.getSiblingDB('orders').createCollection('o')"]
    assert plan_of(world.resources(env)).empty


def test_contract_gives_host_clients_the_mongodb_connection_string(
        workdir: Path) -> None:
    (workdir / "devslice.yaml").write_text(BASE + "containers:\n  mongodb: {port: 27018}\n")
    project = Project.load()
    project.claim("ab")
    values = {v.name: v.value for v in project.variables("ab")}
    assert values["LOCAL_DEV_MONGODB_CONNECTIONSTRING"] == \
        "mongodb://127.0.0.1:27018/?directConnection=true"


# -- SFTP ------------------------------------------------------------------------------------


SFTP = """\
storage: {{mode: shared}}  # not emulator: its Azurite would publish the fixed 10000
containers:
  sftp:
    port: {port}
    users:
      - name: foo
        password: {{fromEnv: SFTP_FOO_PASSWORD}}
        folders: [upload, upload/processed]
"""


def test_sftp_users_match_the_seed_article_format() -> None:
    m = re.search(r"atmoz/sftp (\S+)", _reference("seed-article.txt"))
    assert m is not None
    env = env_from(SFTP.format(port=2222))
    assert env.containers.sftp is not None
    assert sftp_users_conf(env.containers.sftp, ["pass"]) == m.group(1) + "\n"


def azurite_on_free_ports() -> str:
    """Azurite (storage's default mode brings it) on ephemeral host ports, under
    ``containers:``: the machine may run another Azurite on 10000-10002."""
    blob, queue, table = free_ports(3)
    return f"  azurite: {{blobPort: {blob}, queuePort: {queue}, tablePort: {table}}}\n"


def test_sftp_passwords_reach_only_a_private_file(world: World) -> None:
    port = free_port()
    password = "Sup3r-s3cret"
    env = env_from(SFTP.format(port=port) + azurite_on_free_ports())
    resources = world.resources(env, environ={"SFTP_FOO_PASSWORD": password})
    plan = plan_of(resources)
    assert password not in plan.render()
    world.apply(resources)
    conf = world.base / ".devslice" / "containers" / "sftp" / "users.conf"
    assert conf.read_text() == f"foo:{password}:::upload,upload/processed\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    c = world.engine.container("devslice-sftp")
    assert c is not None
    assert password not in json.dumps(c.config)  # not in Cmd, Env or Labels
    assert c.config["HostConfig"]["Mounts"][0] == {
        "Target": "/etc/sftp/users.conf", "Source": str(conf), "Type": "bind", "ReadOnly": True}
    assert c.config["HostConfig"]["PortBindings"] == {
        "22/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    assert plan_of(world.resources(env, environ={"SFTP_FOO_PASSWORD": password})).empty
    (action,) = plan_of(world.resources(env, environ={"SFTP_FOO_PASSWORD": "other"})).changes
    assert action.reason == "recreate sftp: secret env:SFTP_FOO_PASSWORD changed"


def test_sftp_password_with_a_colon_is_refused(world: World) -> None:
    env = env_from(SFTP.format(port=2222))
    with pytest.raises(ConfigError, match=r"containers.sftp.users\[0\].password") as info:
        world.resources(env, environ={"SFTP_FOO_PASSWORD": "a:b"})
    assert "a:b" not in str(info.value)


# -- Azurite and the Event Hubs emulator ---------------------------------------------------


EMULATOR = """\
eventHubs:
  mode: emulator
  eventHubs: [orders, audit]
  namespaces: [{{name: local-emulator, partitions: 4}}]
containers:
  eventHubsEmulator: {{acceptEula: true, consumerGroups: [billing, reporting], port: {port}}}
  azurite: {{blobPort: {blob}, queuePort: {queue}, tablePort: {table}}}
"""


def emulator_env(port: int = 5672, blob: int = 10000) -> Environment:
    return env_from(EMULATOR.format(port=port, blob=blob, queue=blob + 1, table=blob + 2))


def test_emulator_config_follows_the_published_schema() -> None:
    env = emulator_env()
    assert env.containers.event_hubs_emulator is not None
    config = eventhubs_emulator_config(env.event_hubs,
                                       env.containers.event_hubs_emulator.consumer_groups)
    jsonschema.validate(config, EMULATOR_SCHEMA)
    groups = [{"Name": "billing"}, {"Name": "reporting"}]
    assert config == {"UserConfig": {
        "NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1", "Entities": [
            {"Name": "orders", "PartitionCount": "4", "ConsumerGroups": groups},
            {"Name": "audit", "PartitionCount": "4", "ConsumerGroups": groups}]}],
        "LoggingConfig": {"Type": "File"}}}
    # facts.md: one namespace, 1-10 event hubs, 1-32 partitions, 1-20 consumer groups
    assert "1-10\n  event hubs, 1-32 partitions, 1-20 consumer groups" in _reference("facts.md")


@pytest.mark.parametrize(("extra", "where", "message"), [
    ("eventHubs:\n  mode: emulator\n  eventHubs: [" + ", ".join(f"h{i}" for i in range(11))
     + "]\n", "eventHubs", "1 to 10 event hubs, found 11"),
    ("eventHubs: {mode: emulator}\n", "eventHubs", "1 to 10 event hubs, found 0"),
    ("eventHubs:\n  mode: emulator\n  eventHubs: [a]\n  namespaces: [{name: first-ns}, "
     "{name: second-ns}]\n", "eventHubs", "runs one namespace, found 2"),
    ("containers:\n  eventHubsEmulator:\n    consumerGroups: ["
     + ", ".join(f"cg{i}" for i in range(21)) + "]\n",
     "containers.eventHubsEmulator.consumerGroups",
     "at most 20 consumer groups per event hub, found 21"),
    ("containers:\n  eventHubsEmulator: {consumerGroups: [$Default]}\n",
     "containers.eventHubsEmulator.consumerGroups", "$Default exists on every event hub"),
])
def test_emulator_limits_are_config_errors(extra: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        env_from(extra)
    text = str(info.value)
    assert "devslice.yaml:" in text and where in text and message in text


def test_emulator_needs_its_eula_accepted(world: World) -> None:
    env = env_from("eventHubs: {mode: emulator, eventHubs: [orders]}\n")
    with pytest.raises(ConfigError, match=r"containers\.eventHubsEmulator\.acceptEula"):
        world.resources(env)


def test_emulator_mode_runs_azurite_and_the_emulator_and_the_contract_follows(
        world: World) -> None:
    blob = free_port_block(3)  # blob, queue and table ports
    port = next(p for p in free_ports(4) if p not in range(blob, blob + 3))
    env = emulator_env(port, blob)
    world.engine.container_output = lambda c: (
        [EMULATOR_READY] if "eventhubs-emulator" in c.image else [])
    resources = world.resources(env, accounts=("company1stacc4ab",))
    assert [(r.key, r.spec.after) for r in resources] == [
        ("container:azurite", ()), ("container:eventhubs-emulator", ("container:azurite",))]
    # the executor's order and waits come from `after`, so apply them with it
    resources[1].after = resources[1].spec.after
    world.apply(resources)

    azurite = world.engine.container("devslice-azurite")
    assert azurite is not None
    accounts = dict(a.split(":", 1) for a in _env(azurite)["AZURITE_ACCOUNTS"].split(";"))
    assert accounts == {AZURITE_DEV_ACCOUNT: AZURITE_DEV_KEY,
                        "company1stacc4ab": azurite_account_key("company1stacc4ab")}
    assert "--skipApiVersionCheck" in azurite.config["Cmd"]

    emulator = world.engine.container("devslice-eventhubs-emulator")
    assert emulator is not None
    assert _env(emulator) == {"BLOB_SERVER": f"host.docker.internal:{blob}",
                              "METADATA_SERVER": f"host.docker.internal:{blob + 2}",
                              "ACCEPT_EULA": "Y"}
    assert emulator.config["HostConfig"]["ExtraHosts"] == ["host.docker.internal:host-gateway"]
    (mount,) = emulator.config["HostConfig"]["Mounts"]
    assert mount["Target"] == "/Eventhubs_Emulator/ConfigFiles/Config.json" and mount["ReadOnly"]
    written = json.loads(Path(mount["Source"]).read_text())
    jsonschema.validate(written, EMULATOR_SCHEMA)

    # a new slice's account: Azurite is recreated, and says why
    resources = world.resources(env, accounts=("company1stacc4ab", "company1stacc4cd"))
    plan = plan_of(resources)
    assert [a.reason for a in plan.changes] == [
        "recreate azurite: accounts devstoreaccount1, company1stacc4ab -> devstoreaccount1, "
        "company1stacc4ab, company1stacc4cd"]


def _env(c: FakeContainer) -> dict[str, str]:
    return dict(item.split("=", 1) for item in c.env)


def test_contract_in_emulator_mode_uses_the_emulators_connection_string(
        workdir: Path) -> None:
    (workdir / "devslice.yaml").write_text(BASE + EMULATOR.format(
        port=5672, blob=10000, queue=10001, table=10002))
    project = Project.load()
    project.claim("ab")
    variables = {v.name: v for v in project.variables("ab")}
    conn = variables["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"]
    assert not conn.is_secret
    assert conn.value == ("Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;"
                          "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;")
    assert "UseDevelopmentEmulator=true" in _reference("facts.md")
    assert variables["LOCAL_DEV_EVENTHUBS_MODE"].value == "emulator"


def test_environment_adds_the_containers_with_the_slices_accounts(workdir: Path) -> None:
    from devslice.engine.environment import Tools, container_resources

    (workdir / "devslice.yaml").write_text(BASE + EMULATOR.format(
        port=5672, blob=10000, queue=10001, table=10002))
    project = Project.load()
    project.claim("ab")
    tools = Tools(k3d=None, docker=None, registry=None, kube=None)  # type: ignore[arg-type]
    resources = container_resources(project, tools, "k3d")
    assert [r.key for r in resources] == ["container:azurite", "container:eventhubs-emulator"]
    azurite = resources[0]
    assert isinstance(azurite, ContainerResource)
    assert "company1stacc4ab" in azurite.spec.notes["accounts"]


# -- down and destroy ------------------------------------------------------------------------

TWO = """\
storage: {{mode: shared}}
containers:
  custom:
    - {{name: web, image: nginx:1, ports: ["{a}:80"], volumes: ["shared:/data", "weblogs:/logs"]}}
    - {{name: api, image: nginx:1, ports: ["{b}:80"], volumes: ["shared:/data"]}}
"""


def test_down_stops_every_running_state_and_destroy_removes_only_devslices_volumes(
        world: World) -> None:
    from devslice.resources.containers import remove_actions, stop_actions
    from devslice.services import container_names

    a, b = free_ports(2)
    env = env_from(SOLO + TWO.format(a=a, b=b))
    world.engine.volumes["weblogs"] = {"Name": "weblogs", "Labels": None}  # the team's own
    world.apply(world.resources(env))
    names = container_names(env)
    web = world.engine.container("devslice-web")
    assert web is not None
    web.status = "restarting"  # a crash loop keeps running under unless-stopped
    stops = stop_actions(world.docker, names)
    assert [(a.resource, a.verb) for a in stops] == [("container:api", "stop"),
                                                     ("container:web", "stop")]
    for a in stops:
        assert a.execute is not None
        a.execute()
    assert [a.verb for a in stop_actions(world.docker, names)] == ["noop", "noop"]

    actions = remove_actions(world.docker, ["api"], world.base)
    assert [(a.resource, a.verb, a.reason) for a in actions] == [
        ("container:api", "delete", "remove container devslice-api"),
        ("volume:shared", "noop", "volume shared kept: devslice-web still uses it")]
    actions = remove_actions(world.docker, names, world.base)
    assert [(a.resource, a.verb, a.reason) for a in actions] == [
        ("container:api", "delete", "remove container devslice-api"),
        ("container:web", "delete", "remove container devslice-web"),
        ("volume:shared", "delete", "remove volume shared and its data"),
        ("volume:weblogs", "noop", "volume weblogs kept: devslice did not create it")]
    for a in actions:
        if a.execute is not None:
            a.execute()
    assert world.engine.container("devslice-web") is None
    assert "shared" not in world.engine.volumes and "weblogs" in world.engine.volumes


def test_down_without_a_docker_engine_says_so_and_stops_the_rest(
        workdir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from devslice.cli.app import run

    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("DEVSLICE_RUNTIME", "kube")
    (workdir / "devslice.yaml").write_text(BASE + "storage: {mode: emulator}\n")
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["down"]) == 0
    out = capsys.readouterr().out
    assert "azurite: not running, the Docker engine does not answer" in out
    assert "the shared cluster keeps running" in out


def test_the_fake_gives_built_images_the_command_the_dockerfile_gives(
        world: World, tmp_path: Path) -> None:
    """As moby's builder: CMD/ENTRYPOINT of the last stage, else its base's; scratch has none."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "app").write_text("x")
    for tag, dockerfile, runs in [
            ("bare:1", "FROM scratch\nCOPY app /app\n", False),
            ("cmd:1", 'FROM scratch\nCOPY app /app\nCMD ["/app"]\n', True),
            ("entry:1", "FROM scratch\nENTRYPOINT /app\n", True),
            ("inherits:1", "FROM cmd:1\nCOPY app /app2\n", True),
            ("reset:1", 'FROM cmd:1\nENTRYPOINT ["/app"]\nFROM bare:1\n', False)]:
        (ctx / "Dockerfile").write_text(dockerfile)
        world.docker.image_build(ctx, "Dockerfile", tag)
        name = f"devslice-{tag.split(':')[0]}"
        if runs:
            world.docker.container_create(name, tag)
        else:
            with pytest.raises(CommandFailed, match="No command specified"):
                world.docker.container_create(name, tag)
