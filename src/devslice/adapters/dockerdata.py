"""What the Docker adapter reads and sends, as plain data: ports, mounts, container and image
facts, and the engine calls plans show. No Docker SDK here: the services and the container
resources describe containers with these types in every command, also where no engine is
used (the local runtime), and importing the SDK (``docker`` -> ``requests``) costs ~100 ms of
start-up (issue 17)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from devslice.errors import CommandFailed


@dataclass(frozen=True)
class EngineVersion:
    version: str  # e.g. 27.0.1
    api_version: str  # the highest API version the engine speaks, e.g. 1.47
    os: str
    arch: str


@dataclass(frozen=True)
class ImageFact:
    id: str  # sha256:...
    tags: tuple[str, ...]


@dataclass(frozen=True)
class PortBinding:
    """``-p [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTOCOL]``; an empty ``host_ip`` publishes on
    every interface, as ``docker run -p`` does."""

    container_port: int
    host_port: int
    host_ip: str = ""
    protocol: str = "tcp"

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.protocol}"

    def __str__(self) -> str:
        ip = f"{self.host_ip}:" if self.host_ip else ""
        proto = "" if self.protocol == "tcp" else f"/{self.protocol}"
        return f"{ip}{self.host_port}:{self.container_port}{proto}"


@dataclass(frozen=True)
class Mount:
    """A named volume (``kind="volume"``, created by the engine on first use) or a host file
    or folder (``kind="bind"``, an absolute path) at ``target`` inside the container."""

    source: str
    target: str
    kind: str = "volume"  # volume | bind
    read_only: bool = False

    def __str__(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class ContainerFact:
    id: str
    name: str  # without the leading "/" the engine reports
    image: str  # the reference it was created from, e.g. mongo:7
    status: str  # created | running | paused | restarting | removing | exited | dead
    labels: Mapping[str, str]
    host_ports: tuple[int, ...] = ()  # published host ports
    volumes: tuple[str, ...] = ()  # named volumes it mounts

    @property
    def running(self) -> bool:
        return self.status == "running"


# Runs "$@" with its output also in the file "$0" (container_exec's keep_output).
KEEP_OUTPUT = '"$@" >"$0" 2>&1; status=$?; cat "$0"; exit $status'


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str  # stdout and stderr, interleaved as the engine sent them


class PortInUse(CommandFailed):
    """A host port a container publishes is held by another program or container."""

    def __init__(self, message: str, port: int | None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.port = port


def create_call(name: str) -> str:
    """The ``POST /containers/create`` that :meth:`Docker.container_create` sends."""
    return f"POST /containers/create?name={name}"


def start_call(name: str) -> str:
    return f"POST /containers/{name}/start"


def remove_call(name: str) -> str:
    """What :meth:`Docker.container_remove` sends: force, keep named volumes."""
    return f"DELETE /containers/{name}?v=False&link=False&force=True"


def stop_call(name: str, timeout: int = 10) -> str:
    return f"POST /containers/{name}/stop?t={timeout}"


def volume_create_call(name: str) -> str:
    """What :meth:`Docker.volume_ensure` sends when the volume is missing."""
    return f"POST /volumes/create (Name={name}, unless it exists)"


def volume_remove_call(name: str) -> str:
    return f"DELETE /volumes/{name}"


def exec_call(name: str) -> str:
    return f"POST /containers/{name}/exec"


def pull_call(ref: str) -> str:
    repository, tag = split_tag(ref)
    return f"POST /images/create?fromImage={repository}&tag={tag}"


def build_call(tag: str, dockerfile: str, build_args: Mapping[str, str]) -> str:
    """The ``POST /build`` that :meth:`Docker.image_build` sends, for plans (query unencoded).

    The SDK also sends its boolean defaults (``q``, ``nocache``, ``pull``...) and, like the
    docker CLI, proxy settings from ``~/.docker/config.json`` as extra build args; those are
    left out here because they do not depend on the image.
    """
    query = f"t={tag}&dockerfile={dockerfile}&rm=True&forcerm=True"
    if build_args:
        query += f"&buildargs={json.dumps(dict(build_args))}"
    return f"POST /build?{query}"


def push_call(repository: str, tag: str) -> str:
    """The ``POST /images/{name}/push`` that :meth:`Docker.image_push` sends."""
    return f"POST /images/{repository}/push?tag={tag}"


def split_tag(ref: str) -> tuple[str, str]:
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = ref.rpartition(":")
        return repository, tag
    return ref, "latest"
