"""The cluster network's subnet (issue 13, item 2): ``subnet: auto`` (the default) is a free
/16 chosen against the Docker engine's networks and kept; an explicit one that overlaps a
network is refused at plan time. The fake engine and the fake k3d share their networks (a JSON
file) and refuse an overlap as Docker's IPAM does."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from devslice.adapters.docker import Docker
from devslice.adapters.k3d import K3d
from devslice.adapters.runner import SubprocessRunner
from devslice.config.model import ClusterSettings
from devslice.engine import Executor
from devslice.engine.plan import make_plan
from devslice.errors import CommandFailed, ConfigError
from devslice.resources.k3d import (
    ClusterResource,
    RegistryResource,
    cluster_subnet,
    destroy_actions,
    host_gateway,
    subnet_path,
)
from devslice.testing.dockerapi import POOL_OVERLAPS, FakeDockerEngine

from .helpers import FAKES


@dataclass
class World:
    base: Path
    engine: FakeDockerEngine
    docker: Docker
    k3d: K3d

    def resources(self, subnet: str = "auto") -> list[object]:
        s = ClusterSettings(subnet=subnet)
        return [ClusterResource(self.k3d, s, self.base, self.docker.network_subnets),
                RegistryResource(self.k3d, s.registry)]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(FAKES / "k3d", bin_dir / "k3d")
    networks = tmp_path / "networks.json"
    monkeypatch.setenv("FAKE_K3D_STATE", str(tmp_path / "k3d.json"))
    monkeypatch.setenv("FAKE_K3D_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_DOCKER_NETWORKS", str(networks))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    base = tmp_path / "project"
    base.mkdir()
    with FakeDockerEngine(networks_file=networks) as engine:
        client = docker.DockerClient(base_url=engine.base_url)
        try:
            yield World(base, engine, Docker(client),
                        K3d(SubprocessRunner(path=str(bin_dir))))
        finally:
            client.close()


def test_the_fake_engine_refuses_an_overlapping_network_as_docker_does(world: World) -> None:
    world.docker.client.api.create_network("compose_default",
                                           ipam=docker.types.IPAMConfig(pool_configs=[
                                               docker.types.IPAMPool(subnet="172.18.0.0/16")]))
    with pytest.raises(docker.errors.APIError, match=POOL_OVERLAPS) as info:
        world.docker.client.api.create_network(
            "other", ipam=docker.types.IPAMConfig(pool_configs=[
                docker.types.IPAMPool(subnet="172.18.5.0/24")]))
    assert info.value.status_code == 403
    assert world.docker.network_subnets()["compose_default"] == ["172.18.0.0/16"]


def test_the_fake_k3d_refuses_a_cluster_network_over_an_engine_network(world: World) -> None:
    world.engine.add_network("compose_default", "172.18.0.0/16")
    world.k3d.registry_create("devslice-registry", 5050)
    with pytest.raises(CommandFailed, match="Pool overlaps with other one on this address"):
        world.k3d._run(["k3d", "cluster", "create", "dev", "--subnet", "172.18.0.0/16"])
    world.k3d._run(["k3d", "cluster", "create", "dev", "--subnet", "172.20.0.0/16"])
    assert world.docker.network_subnets()["k3d-dev"] == ["172.20.0.0/16"]  # shared state


def test_auto_chooses_a_free_16_keeps_it_and_the_gateway_follows(world: World) -> None:
    world.engine.add_network("compose_default", "172.18.0.0/16")  # Docker's first pool
    world.engine.add_network("other_default", "172.19.0.0/16")
    resources = world.resources()
    plan = make_plan(resources)
    assert [a.verb for a in plan.changes] == ["create", "create"]
    Executor().apply(resources)
    assert subnet_path(world.base, "devslice").read_text() == "172.20.0.0/16\n"
    assert world.docker.network_subnets()["k3d-devslice"] == ["172.20.0.0/16"]
    assert host_gateway(cluster_subnet(ClusterSettings(), world.base)) == "172.20.0.1"
    assert make_plan(world.resources()).empty  # its own network is no overlap
    # Destroyed, then 172.18 is free again: the kept subnet stays (pods' gateway unchanged).
    world.engine.add_network("late_default", "10.200.0.0/16")
    for action in destroy_actions(world.k3d, ClusterSettings(), world.base):
        assert action.execute is not None
        action.execute()
    assert cluster_subnet(ClusterSettings(), world.base, world.docker.network_subnets()) == \
        "172.20.0.0/16"


def test_a_kept_subnet_another_network_took_is_chosen_afresh(world: World) -> None:
    subnet_path(world.base, "devslice").parent.mkdir(parents=True)
    subnet_path(world.base, "devslice").write_text("172.18.0.0/16\n")
    world.engine.add_network("compose_default", "172.18.0.0/16")
    assert cluster_subnet(ClusterSettings(), world.base, world.docker.network_subnets()) == \
        "172.19.0.0/16"


def test_an_explicit_subnet_over_an_engine_network_is_refused_at_plan(world: World) -> None:
    world.engine.add_network("compose_default", "172.18.0.0/16")
    with pytest.raises(ConfigError, match=r"cluster\.subnet: 172\.18\.0\.0/16 overlaps Docker "
                                          r"network compose_default \(172\.18\.0\.0/16\)") as info:
        make_plan(world.resources("172.18.0.0/16"))
    assert "subnet: auto" in str(info.value.hint)
    assert make_plan(world.resources("10.99.0.0/16")).changes  # a free one plans a create
