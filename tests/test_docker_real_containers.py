"""Local containers against a real Docker engine (issue 13): the same paths as
test_containers.py drives through the fake, here with dockerd answering. Images are a
busybox-static rootfs (``docker import``), so nothing comes from Docker Hub.

Every test names its containers and volumes with a suffix of its own, so tests running in
parallel (``-n 2``) on one engine never meet; a finaliser removes what a test made."""

from __future__ import annotations

import io
import re
import socket
import tarfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devslice.adapters.docker import Docker, connect
from devslice.adapters.dockerdata import Mount, PortInUse
from devslice.engine import Executor
from devslice.engine.plan import make_plan
from devslice.errors import CommandFailed
from devslice.facts.tools import DockerEndpoint
from devslice.resources.containers import (
    LABEL_MANAGED_BY,
    ContainerResource,
    ContainerSpec,
    GeneratedFile,
    NotReady,
    Readiness,
    SetupFailed,
    remove_actions,
    stop_actions,
)
from devslice.services import container_specs

from .helpers import env_from, free_port, wait_for

pytestmark = pytest.mark.docker


@dataclass
class Real:
    base: Path
    docker: Docker
    image: str
    uid: str
    calls: list[str] = field(default_factory=list)  # "METHOD /path" the engine answered

    def name(self, stem: str) -> str:
        return f"{stem}-{self.uid}"

    def specs(self, yaml: str, environ: dict[str, str] | None = None) -> list[ContainerSpec]:
        env = env_from("storage: {mode: shared}\n" + textwrap.dedent(yaml))
        return container_specs(env, self.base, runtime="k3d", environ=environ or {})

    def resources(self, yaml: str, environ: dict[str, str] | None = None
                  ) -> list[ContainerResource]:
        return [ContainerResource(s, self.docker, self.base, after=(), poll=0.05)
                for s in self.specs(yaml, environ)]

    def apply(self, resources: list[ContainerResource]) -> None:
        self.calls.clear()
        Executor(max_workers=4).apply(resources)

    def changing(self) -> list[str]:
        return [c for c in self.calls if not c.startswith(("GET ", "HEAD "))]

    def inspect(self, stem: str) -> dict[str, Any]:
        cname = f"devslice-{self.name(stem)}"
        data: dict[str, Any] = self.docker.client.api.inspect_container(cname)
        return data

    def read(self, stem: str, *paths: str) -> str:
        """Files' text, copied out of the container (``docker cp``): not through an exec,
        whose output engine 20.10 can lose when the process ends at once under load."""
        out = ""
        for path in paths:
            stream, _ = self.docker.client.api.get_archive(f"devslice-{self.name(stem)}", path)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.extractfile(tar.getmembers()[0])
                assert member is not None
                out += member.read().decode()
        return out

    def exec(self, stem: str, *argv: str) -> tuple[int, str]:
        r = self.docker.container_exec(f"devslice-{self.name(stem)}", argv)
        return r.exit_code, r.output


@pytest.fixture
def real(real_engine: DockerEndpoint, busybox_image: str, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Real]:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    adapter = connect(endpoint=real_engine)
    uid = uuid.uuid4().hex[:8]
    world = Real(tmp_path / "repo", adapter, busybox_image, uid)

    def record(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        path = re.sub(r"^/v[0-9.]+", "", request.path_url.split("?")[0])
        world.calls.append(f"{request.method} {path}")

    adapter.client.api.hooks["response"].append(record)
    try:
        yield world
    finally:
        api = adapter.client.api
        for c in api.containers(all=True):
            if any(uid in n for n in c.get("Names") or []):
                api.remove_container(c["Id"], force=True)
        for v in (api.volumes() or {}).get("Volumes") or []:
            if uid in v["Name"]:
                api.remove_volume(v["Name"], force=True)
        adapter.close()


def cache(real: Real, port: int, *, ready: str = "{port: 8080}", env: str = "dev",
          extra: str = "", restart: str = "unless-stopped") -> str:
    """A small web server (busybox httpd) on a named volume, like a team's cache."""
    return f"""\
        containers:
          custom:
            - name: {real.name('cache')}
              image: {real.image}
              command: [sh, -c, "echo starting; sleep 0.3; echo $CACHE_MODE > /data/mode; \
        exec httpd -f -v -p 8080 -h /data"]
              env: {{CACHE_MODE: {env}}}
              secretEnv: {{CACHE_TOKEN: {{fromEnv: CACHE_TOKEN}}}}
              ports: ["127.0.0.1:{port}:8080"]
              volumes: ["{real.name('cachedata')}:/data"]
              restart: {restart}
              ready: {ready}
        """.rstrip() + "\n" + textwrap.indent(textwrap.dedent(extra), " " * 12)


TOKEN = "t0ps3cret-t0ken"
ENV = {"CACHE_TOKEN": TOKEN}


def answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"GET /mode HTTP/1.0\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.")


# -- create, idempotency, drift ----------------------------------------------------------


def test_create_runs_it_ready_with_labels_restart_volume_and_a_loopback_port(real: Real) -> None:
    port = free_port()
    resources = real.resources(cache(real, port), ENV)
    plan = make_plan(resources)
    assert [a.verb for a in plan.changes] == ["create"]
    real.apply(resources)
    assert answers(port)  # ready means the service answers, not only docker-proxy
    data = real.inspect("cache")
    assert data["State"]["Status"] == "running"
    assert data["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert data["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1",
                                                               "HostPort": str(port)}]}
    labels = data["Config"]["Labels"]
    assert labels[LABEL_MANAGED_BY] == "devslice"
    assert TOKEN not in str(labels) and f"CACHE_TOKEN={TOKEN}" in data["Config"]["Env"]
    volume = real.docker.client.api.inspect_volume(real.name("cachedata"))
    assert volume["Labels"] == {LABEL_MANAGED_BY: "devslice"}
    assert [m["Name"] for m in data["Mounts"]] == [real.name("cachedata")]


def test_second_plan_is_all_noop_and_only_reads(real: Real) -> None:
    port = free_port()
    real.apply(real.resources(cache(real, port), ENV))
    real.calls.clear()
    plan = make_plan(real.resources(cache(real, port), ENV))
    assert plan.empty, plan.render()
    assert real.calls and real.changing() == []
    real.apply(real.resources(cache(real, port), ENV))
    assert real.changing() == []


def test_drift_recreates_and_the_volume_keeps_its_data(real: Real) -> None:
    port = free_port()
    real.apply(real.resources(cache(real, port), ENV))
    old = real.inspect("cache")["Id"]
    assert real.exec("cache", "sh", "-c", "echo kept > /data/keep")[0] == 0
    resources = real.resources(cache(real, port, env="test"), ENV)
    (action,) = make_plan(resources).changes
    assert action.reason == f"recreate {real.name('cache')}: env CACHE_MODE changed"
    real.apply(resources)
    assert real.inspect("cache")["Id"] != old
    assert real.read("cache", "/data/keep", "/data/mode") == "kept\ntest\n"


def test_changed_secret_recreates_without_showing_it(real: Real) -> None:
    port = free_port()
    real.apply(real.resources(cache(real, port), ENV))
    plan = make_plan(real.resources(cache(real, port), {"CACHE_TOKEN": "an0ther-t0ken"}))
    (action,) = plan.changes
    assert action.reason == f"recreate {real.name('cache')}: secret env:CACHE_TOKEN changed"
    assert TOKEN not in plan.render() and "an0ther" not in plan.render()


def test_a_stopped_container_is_started_and_ready_again(real: Real) -> None:
    port = free_port()
    real.apply(real.resources(cache(real, port), ENV))
    real.docker.container_stop(f"devslice-{real.name('cache')}", timeout=1)
    resources = real.resources(cache(real, port), ENV)
    (action,) = make_plan(resources).changes
    assert (action.verb, action.reason) == (
        "start", f"container devslice-{real.name('cache')} is exited")
    real.apply(resources)
    assert real.changing() == [f"POST /containers/devslice-{real.name('cache')}/start"]
    assert answers(port)


def test_a_foreign_container_of_the_same_name_is_refused_and_left_alone(real: Real) -> None:
    cname = f"devslice-{real.name('cache')}"
    real.docker.client.api.create_container(real.image, ["sleep", "60"], name=cname)
    with pytest.raises(CommandFailed, match="devslice did not create it") as info:
        make_plan(real.resources(cache(real, free_port()), ENV))
    assert f"docker rm -f {cname}" in str(info.value)
    assert real.inspect("cache")["State"]["Status"] == "created"  # untouched


def test_a_missing_image_is_the_engines_error(real: Real, real_registry: str) -> None:
    image = f"{real_registry}/nothing-{real.uid}:1"
    resources = real.resources(f"""\
        containers:
          custom: [{{name: {real.name('gone')}, image: "{image}"}}]
        """)
    with pytest.raises(CommandFailed, match=rf"docker pull {image} failed: .*(not found|unknown)"):
        real.apply(resources)


# -- readiness ----------------------------------------------------------------------------


def test_readiness_by_log_line(real: Real) -> None:
    resources = real.resources(f"""\
        containers:
          custom:
            - name: {real.name('logger')}
              image: {real.image}
              command: [sh, -c, "sleep 0.5; echo accepting connections; exec sleep 600"]
              ready: {{log: accepting connections}}
        """)
    t = time.monotonic()
    real.apply(resources)
    assert time.monotonic() - t >= 0.5
    assert "accepting connections" in real.docker.container_logs(
        f"devslice-{real.name('logger')}")


def test_readiness_timeout_shows_the_logs(real: Real) -> None:
    resources = real.resources(f"""\
        containers:
          custom:
            - name: {real.name('slow')}
              image: {real.image}
              command: [sh, -c, "echo still loading; exec sleep 600"]
              ready: {{log: never printed, timeout: 1s}}
        """)
    with pytest.raises(NotReady, match=r"not ready after 1 s(.|\n)*still loading"):
        real.apply(resources)


def test_readiness_by_port_waits_past_dockers_proxy(real: Real) -> None:
    # httpd starts 0.3 s after the container; docker-proxy accepts at once, before.
    port = free_port()
    real.apply(real.resources(cache(real, port), ENV))
    assert answers(port)
    assert "starting" in real.docker.container_logs(f"devslice-{real.name('cache')}")


def test_readiness_by_command(real: Real) -> None:
    resources = real.resources(f"""\
        containers:
          custom:
            - name: {real.name('flag')}
              image: {real.image}
              command: [sh, -c, "sleep 0.4; touch /tmp/ready; exec sleep 600"]
              ready: {{command: [test, -f, /tmp/ready]}}
        """)
    real.apply(resources)
    assert real.exec("flag", "test", "-f", "/tmp/ready")[0] == 0


def test_a_container_that_exits_before_ready_says_so(real: Real) -> None:
    resources = real.resources(f"""\
        containers:
          custom:
            - name: {real.name('crash')}
              image: {real.image}
              command: [sh, -c, "echo bad config; exit 3"]
              restart: "no"
              ready: {{log: listening}}
        """)
    with pytest.raises(NotReady, match=r"stopped \(exited\) before it was ready(.|\n)*bad config"):
        real.apply(resources)


# -- restart policy ---------------------------------------------------------------------


@pytest.mark.parametrize(("restart", "restarted"), [("unless-stopped", True), ("no", False)])
def test_restart_policy_is_the_engines(real: Real, restart: str, restarted: bool) -> None:
    resources = real.resources(f"""\
        containers:
          custom:
            - name: {real.name('flaky')}
              image: {real.image}
              command: [sh, -c, "echo up; sleep 0.3; exit 1"]
              restart: {restart}
              ready: {{log: up}}
        """)
    real.apply(resources)
    if restarted:
        wait_for(lambda: real.inspect("flaky")["RestartCount"] >= 1, 15, "a restart")
    else:
        wait_for(lambda: real.inspect("flaky")["State"]["Status"] == "exited", 15, "exit")
        assert real.inspect("flaky")["RestartCount"] == 0


# -- setup scripts ------------------------------------------------------------------------


def setup_yaml(real: Real, script: str) -> str:
    return f"""\
        containers:
          custom:
            - name: {real.name('db')}
              image: {real.image}
              command: [sh, -c, "echo ready; exec sleep 600"]
              volumes: ["{real.name('dbdata')}:/data"]
              ready: {{log: ready}}
              setup:
                - name: schema
                  run: [sh, -c, "{script}"]
        """


def test_setup_runs_once_per_content_and_again_after_a_recreate(real: Real) -> None:
    script = "echo run >> /data/runs"
    real.apply(real.resources(setup_yaml(real, script)))
    assert real.read("db", "/data/runs") == "run\n"
    real.apply(real.resources(setup_yaml(real, script)))  # same script: not again
    assert real.read("db", "/data/runs") == "run\n"
    changed = "echo run2 >> /data/runs"
    (action,) = make_plan(real.resources(setup_yaml(real, changed))).changes
    assert "its script changed" in action.reason
    real.apply(real.resources(setup_yaml(real, changed)))
    assert real.read("db", "/data/runs") == "run\nrun2\n"
    real.docker.container_remove(f"devslice-{real.name('db')}")  # gone: created anew
    real.apply(real.resources(setup_yaml(real, changed)))
    assert real.read("db", "/data/runs") == "run\nrun2\nrun2\n"


def test_failing_setup_shows_its_output_and_leaves_the_container(real: Real) -> None:
    with pytest.raises(SetupFailed, match=r"exit code 4(.|\n)*no such table") as info:
        # exits at once: the output survives engine 20.10 through the kept file
        real.apply(real.resources(setup_yaml(real, "echo no such table; exit 4")))
    assert "no such table" in info.value.output
    assert real.inspect("db")["State"]["Status"] == "running"
    (action,) = make_plan(real.resources(setup_yaml(real, "true"))).changes
    assert action.verb == "setup"  # a fixed script runs; nothing is recreated


def test_output_of_setup_scripts_that_fail_at_once_is_never_lost(real: Real) -> None:
    # Engine 20.10 loses the output of an exec that ends at once about 1 time in 200-600 on a
    # loaded machine (issue 13): the exit code comes, the stream is empty. keep_output reads a
    # failing script's output back from a file in the container instead.
    cname = f"devslice-{real.name('quick')}"
    real.docker.container_run(cname, real.image, command=["sh", "-c", "exec sleep 600"],
                              labels={"x": real.uid})

    def run(i: int) -> tuple[int, str]:
        r = real.docker.container_exec(cname, ["sh", "-c", f"echo no such table {i}; exit 4"],
                                       keep_output=f"/tmp/quick-{i}.log")
        return r.exit_code, r.output

    with ThreadPoolExecutor(8) as pool:  # concurrent, as a loaded engine sees them
        results = list(pool.map(run, range(150)))
    assert [code for code, _ in results] == [4] * 150
    lost = [i for i, (_, out) in enumerate(results) if out != f"no such table {i}\n"]
    assert lost == []


def test_setup_without_sh_in_the_container_runs_the_script_as_it_is(real: Real) -> None:
    # keep_output needs sh; without it (exit 127, no file) the argv runs unwrapped
    cname = f"devslice-{real.name('nosh')}"
    real.docker.container_run(cname, real.image, command=["sh", "-c", "exec sleep 600"],
                              labels={"x": real.uid})
    real.docker.container_exec(cname, ["mv", "/bin/sh", "/bin/sh-gone"])
    r = real.docker.container_exec(cname, ["/bin/busybox", "sh", "-c", "echo plain; exit 3"],
                                   keep_output="/tmp/nosh.log")
    assert (r.exit_code, r.output) == (3, "plain\n")


def test_an_image_without_a_command_is_refused(real: Real) -> None:
    # `docker import` makes an image with no CMD (the busybox base here): moby refuses it,
    # and the fake engine answers the same (tests/test_containers.py)
    assert real.docker.client.api.inspect_image(real.image)["Config"]["Cmd"] is None
    with pytest.raises(CommandFailed, match="answered 400: No command specified"):
        real.docker.container_create(f"devslice-{real.name('nocmd')}", real.image)


# -- ports the engine refuses ---------------------------------------------------------------


def test_a_port_held_by_a_program_is_refused_at_plan(real: Real) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse, match=f"host port {port}") as info:
            make_plan(real.resources(cache(real, port), ENV))
    assert info.value.port == port


def test_the_engines_own_bind_error_is_port_in_use(real: Real) -> None:
    # Taken between plan and apply: the engine's "address already in use" is what reports it.
    port = free_port()
    resources = real.resources(cache(real, port), ENV)
    make_plan(resources)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(PortInUse, match=f"host port {port} is already in use") as info:
            resources[0]._create()
    assert info.value.port == port
    assert "address already in use" in str(info.value.__cause__)


def test_a_port_another_container_holds_is_port_in_use(real: Real) -> None:
    port = free_port()
    other = f"devslice-other-{real.uid}"
    api = real.docker.client.api
    resources = real.resources(cache(real, port), ENV)
    make_plan(resources)
    api.create_container(real.image, ["sleep", "600"], name=other, ports=[8080],
                         host_config=api.create_host_config(
                             port_bindings={8080: ("127.0.0.1", port)}))
    api.start(other)
    with pytest.raises(PortInUse, match=f"host port {port}") as info:
        resources[0]._create()
    assert info.value.port == port


# -- down, destroy, --keep-data -------------------------------------------------------------


def two(real: Real) -> tuple[str, list[str]]:
    yaml = cache(real, free_port()) + textwrap.indent(textwrap.dedent(f"""\
        - name: {real.name('stubborn')}
          image: {real.image}
          command: [sh, -c, "trap '' TERM; echo ready; while :; do sleep 1; done"]
          volumes: ["{real.name('stubdata')}:/data"]
          ready: {{log: ready}}
        """), " " * 12)
    return yaml, [real.name("cache"), real.name("stubborn")]


def run(actions: list[Any]) -> None:
    for a in actions:
        if a.changes and a.execute is not None:
            a.execute()


def test_down_stops_and_up_starts_again_with_the_data(real: Real) -> None:
    yaml, names = two(real)
    real.apply(real.resources(yaml, ENV))
    assert real.exec("cache", "sh", "-c", "echo kept > /data/keep")[0] == 0
    actions = stop_actions(real.docker, names, timeout=1)
    assert sorted(a.verb for a in actions) == ["stop", "stop"]
    run(actions)
    assert {real.inspect(s)["State"]["Status"] for s in ("cache", "stubborn")} == {"exited"}
    assert [a.verb for a in stop_actions(real.docker, names, timeout=1)] == ["noop", "noop"]
    plan = make_plan(real.resources(yaml, ENV))
    assert sorted(a.verb for a in plan.changes) == ["start", "start"]
    real.apply(real.resources(yaml, ENV))
    assert real.read("cache", "/data/keep") == "kept\n"


def test_down_stops_containers_in_parallel(real: Real) -> None:
    """Two containers that ignore SIGTERM cost one stop timeout, not two (issue 13, item 9)."""
    yaml, names = two(real)
    yaml += textwrap.indent(textwrap.dedent(f"""\
        - name: {real.name('stubborn2')}
          image: {real.image}
          command: [sh, -c, "trap '' TERM; echo ready; while :; do sleep 1; done"]
          ready: {{log: ready}}
        """), " " * 12)
    real.apply(real.resources(yaml, ENV))
    names.append(real.name("stubborn2"))
    actions = stop_actions(real.docker, names, timeout=2)
    t = time.monotonic()
    Executor(max_workers=8).run_actions(actions)
    took = time.monotonic() - t
    assert {real.inspect(s)["State"]["Status"] for s in ("stubborn", "stubborn2")} == {"exited"}
    # each waits its 2 s before SIGKILL: in series that cannot take less than 4 s
    assert 2 <= took < 4, took


def test_destroy_removes_containers_and_only_devslices_volumes(real: Real) -> None:
    yaml, names = two(real)
    api = real.docker.client.api
    team = real.name("teamdata")
    api.create_volume(team)  # the team's own volume, mounted by a devslice container
    yaml = yaml.replace(f'"{real.name("stubdata")}:/data"', f'"{team}:/data"')
    real.apply(real.resources(yaml, ENV))
    actions = remove_actions(real.docker, names, real.base)
    verbs = {(a.resource, a.verb) for a in actions}
    assert (f"volume:{team}", "noop") in verbs
    assert (f"volume:{real.name('cachedata')}", "delete") in verbs
    run(actions)
    assert all(not any(real.uid in n for n in c["Names"]) for c in api.containers(all=True))
    volumes = {v["Name"] for v in api.volumes()["Volumes"] or []}
    assert team in volumes and real.name("cachedata") not in volumes
    assert not (real.base / ".devslice" / "containers" / f"{real.name('cache')}.json").exists()


def test_destroy_keep_data_keeps_the_volumes(real: Real) -> None:
    yaml, names = two(real)
    real.apply(real.resources(yaml, ENV))
    assert real.exec("cache", "sh", "-c", "echo kept > /data/keep")[0] == 0
    actions = remove_actions(real.docker, names, real.base, keep_volumes=True)
    assert [a.resource.split(":")[0] for a in actions] == ["container", "container"]
    run(actions)
    volumes = {v["Name"] for v in real.docker.client.api.volumes()["Volumes"] or []}
    assert {real.name("cachedata"), real.name("stubdata")} <= volumes
    real.apply(real.resources(yaml, ENV))  # up again: the data is there
    assert real.read("cache", "/data/keep") == "kept\n"


# -- the adapter's verbs, one by one -----------------------------------------------------------


def test_readiness_conditions_must_all_hold(real: Real) -> None:
    resources = real.resources(f"""\
        containers:
          custom:
            - name: {real.name('both')}
              image: {real.image}
              command: [sh, -c, "echo loaded; sleep 0.5; touch /tmp/ok; exec sleep 600"]
              ready: {{log: loaded, command: [test, -f, /tmp/ok]}}
        """)
    real.apply(resources)  # the log line alone came 0.5 s before the file
    assert real.exec("both", "test", "-f", "/tmp/ok")[0] == 0


def test_an_image_change_recreates_keeping_the_named_volume(real: Real) -> None:
    port = free_port()
    real.apply(real.resources(cache(real, port), ENV))
    assert real.exec("cache", "sh", "-c", "echo kept > /data/keep")[0] == 0
    alias = f"devslice-test/busybox:{real.uid}"
    real.docker.image_tag(real.image, *alias.split(":"))
    try:
        yaml = cache(real, port).replace(f"image: {real.image}", f"image: {alias}")
        (action,) = make_plan(real.resources(yaml, ENV)).changes
        assert action.reason == (f"recreate {real.name('cache')}: image {real.image} -> "
                                 f"{alias}")
        real.apply(real.resources(yaml, ENV))
        assert real.inspect("cache")["Config"]["Image"] == alias
        assert real.read("cache", "/data/keep") == "kept\n"
    finally:
        real.docker.container_remove(f"devslice-{real.name('cache')}")
        real.docker.client.api.remove_image(alias, noprune=True)


def test_a_generated_file_is_bind_mounted_read_only(real: Real) -> None:
    spec = ContainerSpec(
        name=real.name("files"), image=real.image,
        command=("sh", "-c", "echo up; exec sleep 600"),
        mounts=(Mount(str(real.base / "conf" / "app.conf"), "/etc/app.conf", "bind", True),),
        files=(GeneratedFile(real.base / "conf" / "app.conf", "mode=dev\n"),),
        readiness=Readiness(log="up"))
    real.apply([ContainerResource(spec, real.docker, real.base, after=(), poll=0.05)])
    assert real.read("files", "/etc/app.conf") == "mode=dev\n"
    code, out = real.exec("files", "sh", "-c", "echo x > /etc/app.conf")
    assert code != 0 and "Read-only file system" in out
    (real.base / "conf" / "app.conf").write_text("mode=edited\n")  # drift on disk
    (action,) = make_plan([ContainerResource(spec, real.docker, real.base)]).changes
    assert action.reason == (f"recreate {real.name('files')}: generated file app.conf differs "
                             "on disk")


def test_exec_logs_and_removal_of_what_is_gone(real: Real) -> None:
    cname = f"devslice-{real.name('verbs')}"
    real.docker.container_run(cname, real.image,
                              command=["sh", "-c", "echo out; echo err >&2; exec sleep 600"],
                              labels={"x": real.uid})
    wait_for(lambda: "err" in real.docker.container_logs(cname), 10, "logs")
    assert real.docker.container_logs(cname, tail=1).strip() in ("out", "err")
    # (a moment before exiting: a plain exec's output of a process that ends at once can be
    # lost by engine 20.10; setup scripts use keep_output for that)
    result = real.docker.container_exec(cname, ["sh", "-c",
                                                "echo a; echo b >&2; sleep 0.2; exit 5"])
    assert (result.exit_code, sorted(result.output.split())) == (5, ["a", "b"])
    (fact,) = real.docker.container_list({"x": real.uid})
    assert (fact.name, fact.running, fact.image) == (cname, True, real.image)
    real.docker.container_remove(cname)
    real.docker.container_remove(cname)  # gone already: fine
    real.docker.volume_remove(real.name("never-made"))  # likewise
    assert real.docker.container_get(cname) is None


def test_volume_ensure_creates_once_with_labels(real: Real) -> None:
    name = real.name("vol")
    assert real.docker.volume_ensure(name, {LABEL_MANAGED_BY: "devslice"}) is True
    assert real.docker.volume_ensure(name, {"other": "x"}) is False  # left as it is
    assert name in real.docker.volume_list({LABEL_MANAGED_BY: "devslice"})
    real.docker.volume_remove(name)
    assert name not in real.docker.volume_list()


def test_ping_and_version(real: Real) -> None:
    assert real.docker.ping()
    v = real.docker.version()
    assert v.version and v.os == "linux" and float(v.api_version) >= 1.41
