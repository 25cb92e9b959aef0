from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from devslice.errors import DevsliceError
from devslice.facts.tools import DockerEndpoint, docker_endpoint
from devslice.testing import Azurite, AzuriteNotFound, find_azurite

from .helpers import REPO


@pytest.fixture(autouse=True)
def _identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's git identity or current slice."""
    monkeypatch.setenv("DEVSLICE_OWNER", "Anna Berg <anna@example.com>")
    monkeypatch.setenv("DEVSLICE_ACTOR", "tester@ci")
    monkeypatch.delenv("DEVSLICE_SLICE", raising=False)
    monkeypatch.delenv("DEVSLICE_CONFIG", raising=False)
    # Nor the developer's Docker engine (its networks would move `subnet: auto`): tests that
    # want an engine set DOCKER_HOST to a fake, or use the real_engine fixture's endpoint.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/devslice-tests-no-engine.sock")


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite for the whole session, with the dev account and two slice accounts."""
    try:
        find_azurite(REPO)
    except AzuriteNotFound:
        if os.environ.get("DEVSLICE_REQUIRE_AZURITE"):
            raise
        pytest.skip("azurite is not installed (npm install); CI sets DEVSLICE_REQUIRE_AZURITE")
    with Azurite(accounts=["devstoreaccount1", "company1stacc4ab", "company1stacc4cd"]) as az:
        yield az


# -- a real Docker engine (issue 13): `scripts/docker-engine.sh start` gives one --------------

BUSYBOX_IMAGE = "devslice-test/busybox:2"  # imported from the machine's busybox-static


def _no_engine(why: str) -> None:
    if os.environ.get("DEVSLICE_REQUIRE_DOCKER"):
        pytest.fail(f"DEVSLICE_REQUIRE_DOCKER is set, but {why}", pytrace=False)
    pytest.skip(f"{why} (`eval \"$(scripts/docker-engine.sh start)\"` starts one; CI sets "
                "DEVSLICE_REQUIRE_DOCKER)")


@pytest.fixture(scope="session")
def real_engine() -> Iterator[DockerEndpoint]:
    """The engine DOCKER_HOST (or the Docker CLI's context) names, when it answers; tests
    marked ``docker`` skip without one, and fail instead under DEVSLICE_REQUIRE_DOCKER=1."""
    try:
        endpoint = docker_endpoint()
        client = docker.DockerClient(base_url=endpoint.host, timeout=10)
        client.ping()
        client.close()
    except (DevsliceError, docker.errors.DockerException, OSError) as exc:
        _no_engine(f"no Docker engine answers: {exc}")
    yield endpoint


@pytest.fixture(scope="session")
def busybox_image(real_engine: DockerEndpoint) -> str:
    """A base image without Docker Hub: ``docker import`` of a rootfs holding the machine's
    static busybox and a link per applet (under a second)."""
    client = docker.DockerClient(base_url=real_engine.host, timeout=120)
    try:
        try:
            client.images.get(BUSYBOX_IMAGE)
            return BUSYBOX_IMAGE
        except docker.errors.ImageNotFound:
            pass
        busybox = shutil.which("busybox")
        if busybox is None:
            _no_engine("busybox is not installed (apt-get install busybox-static)")
        assert busybox is not None
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            for folder in ("bin", "tmp", "etc", "data"):
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
                tar.addfile(info)
            tar.add(busybox, "bin/busybox")
            for applet in applets:
                if applet != "busybox":
                    info = tarfile.TarInfo(f"bin/{applet}")
                    info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                    tar.addfile(info)
        repository, tag = BUSYBOX_IMAGE.split(":")
        client.api.import_image_from_data(data.getvalue(), repository=repository, tag=tag,
                                          changes=["ENV PATH=/bin"])
        return BUSYBOX_IMAGE
    finally:
        client.close()


@pytest.fixture(scope="session")
def real_registry(real_engine: DockerEndpoint) -> str:
    """``127.0.0.1:PORT`` of a registry the engine pushes to (DEVSLICE_TEST_REGISTRY, set by
    scripts/docker-engine.sh)."""
    host = os.environ.get("DEVSLICE_TEST_REGISTRY")
    if not host:
        _no_engine("DEVSLICE_TEST_REGISTRY (a registry's 127.0.0.1:PORT) is not set")
    assert host is not None
    return host


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path
