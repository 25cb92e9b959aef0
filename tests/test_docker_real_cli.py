"""`devslice up` / `down` / `destroy` through the CLI with the real Docker engine and registry
(issue 13): the image is built by dockerd and pushed to a real registry, the team's container
runs for real; the cluster side stays faked (tests/fakes/k3d and the fake Kubernetes API)."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest
from ruamel.yaml import YAML

from devslice.cli.app import run
from devslice.facts.tools import DockerEndpoint
from devslice.testing.kubeapi import FakeKubeAPI

from .helpers import BASE, DEPLOYMENT, FAKES, SOLO, free_port

pytestmark = pytest.mark.docker



@dataclass
class World:
    root: Path
    kube: FakeKubeAPI
    client: docker.DockerClient
    registry: str  # 127.0.0.1:PORT
    cache: str  # the container's name
    volume: str
    port: int

    def tags(self) -> list[str]:
        r = httpx.get(f"http://{self.registry}/v2/orders-{self.cache[-8:]}/tags/list",
                      timeout=5)
        return list(r.json().get("tags") or []) if r.status_code == 200 else []

    def status(self) -> str | None:
        try:
            return str(self.client.api.inspect_container(self.cache)["State"]["Status"])
        except docker.errors.NotFound:
            return None

    def volumes(self) -> set[str]:
        return {v["Name"] for v in self.client.api.volumes()["Volumes"] or []}


@pytest.fixture
def world(real_engine: DockerEndpoint, busybox_image: str, real_registry: str,
          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(FAKES / "k3d", bin_dir / "k3d")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_K3D_STATE", str(tmp_path / "k3d.json"))
    monkeypatch.setenv("FAKE_K3D_LOG", str(tmp_path / "k3d.log"))
    monkeypatch.setenv("FAKE_K3D_PYTHON", sys.executable)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("DOCKER_HOST", real_engine.host)
    uid = uuid.uuid4().hex[:8]
    port = free_port()
    registry_port = int(real_registry.rsplit(":", 1)[1])
    client = docker.DockerClient(base_url=real_engine.host)
    with FakeKubeAPI() as kube:
        kubeconfig = tmp_path / "kubeconfig"
        YAML().dump(kube.kubeconfig(context="k3d-devslice"), kubeconfig)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        project = tmp_path / "project"
        (project / "services" / "orders").mkdir(parents=True)
        (project / "services" / "orders" / "Dockerfile").write_text(
            f"FROM {busybox_image}\nCOPY app.sh /app.sh\n")
        (project / "services" / "orders" / "app.sh").write_text("echo orders\n")
        (project / "deploy" / "services").mkdir(parents=True)
        (project / "deploy" / "services" / "orders.yaml").write_text(
            DEPLOYMENT.replace("image: orders", f"image: orders-{uid}"))
        (project / "devslice.yaml").write_text(BASE + SOLO + textwrap.dedent(f"""\
            eventHubs:
              mode: shared
              namespaces: [{{name: company1-ehns1, partitions: 4}}]
            storage: {{mode: shared}}
            cluster:
              runtime: k3d
              registry: {{name: devslice-registry, port: {registry_port}}}
            images:
              - {{name: orders-{uid}, context: services/orders}}
            manifests:
              - {{name: services, path: deploy/services}}
            containers:
              custom:
                - name: cache-{uid}
                  image: {busybox_image}
                  command: [sh, -c, "sleep 0.2; exec httpd -f -p 8080 -h /data"]
                  ports: ["127.0.0.1:{port}:8080"]
                  volumes: ["cachedata-{uid}:/data"]
                  ready: {{port: 8080}}
            """))
        monkeypatch.chdir(project)
        world = World(project, kube, client, real_registry, f"devslice-cache-{uid}",
                      f"cachedata-{uid}", port)
        try:
            yield world
        finally:
            for c in client.api.containers(all=True, filters={"name": world.cache}):
                client.api.remove_container(c["Id"], force=True)
            if world.volume in world.volumes():
                client.api.remove_volume(world.volume, force=True)
            for image in client.api.images(name=f"{real_registry}/orders-{uid}"):
                for ref in image.get("RepoTags") or []:
                    client.api.remove_image(ref, noprune=True)
            client.close()


def events(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def test_up_builds_pushes_and_runs_then_nothing_to_do(world: World,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["up", "-o", "json"]) == 0, capsys.readouterr()
    done = {e["resource"] for e in events(capsys) if e["event"] == "done"}
    assert {f"image:orders-{world.cache[-8:]}", f"container:cache-{world.cache[-8:]}",
            "manifests:services"} <= done
    (tag,) = world.tags()
    assert world.status() == "running"
    deployment = world.kube.get("apps/v1", "Deployment", "orders", "default")
    assert deployment is not None
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(f"/orders-{world.cache[-8:]}:{tag}")
    assert httpx.get(f"http://127.0.0.1:{world.port}/", timeout=5).status_code == 404  # httpd

    assert run(["plan", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["changes"] == 0
    assert run(["up", "-o", "json"]) == 0
    assert events(capsys)[-1]["changes"] == 0


def test_down_then_up_then_destroy_keep_data_then_destroy(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["slice", "claim"]) == 0
    assert run(["up", "-o", "json"]) == 0
    world.client.api.exec_start(world.client.api.exec_create(
        world.cache, ["sh", "-c", "echo kept > /data/keep"]))
    capsys.readouterr()
    assert run(["down"]) == 0
    assert world.status() == "exited"
    assert run(["up", "-o", "json"]) == 0
    assert world.status() == "running"
    assert run(["destroy", "-y", "--keep-data"]) == 0
    assert world.status() is None and world.volume in world.volumes()
    assert run(["up", "-o", "json"]) == 0
    stream, _ = world.client.api.get_archive(world.cache, "/data/keep")  # docker cp
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("keep")
        assert member is not None and member.read() == b"kept\n"
    assert run(["destroy", "-y"]) == 0
    assert world.status() is None and world.volume not in world.volumes()


def test_a_foreign_container_of_the_same_name_fails_up_clearly(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.client.api.create_container("devslice-test/busybox:2", ["sleep", "60"],
                                      name=world.cache)
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["up"]) != 0
    err = capsys.readouterr().err
    assert "devslice did not create it" in err and "Traceback" not in err
    assert world.status() == "created"
