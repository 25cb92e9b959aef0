"""Wire-level fakes of the Docker Engine API and of a local OCI registry, for tests.

Both are real HTTP servers on 127.0.0.1, each in a thread, so the official clients talk to them
unchanged::

    with FakeRegistry() as registry, FakeDockerEngine(registries=[registry]) as engine:
        client = docker.DockerClient(base_url=engine.base_url)
        ...                                  # build, push: the registry then holds the tag
        assert registry.has("orders", "ds-0123456789ab")
        assert [r.path for r in engine.requests] == ["/version", "/build", ...]

Shapes follow moby (Engine API 1.4x, checked against moby's master: ``postBuild``,
``postImagesPush``, the classic builder's "Step i/n : ..." output, ``emitImageID``,
``streamformatter.FormatError``) and distribution's manifest handler. Streams are sent chunked
with ``\\r\\n`` after each JSON object, as the engine's WriteFlusher does; an error before any
output is an HTTP error with ``{"message": ...}``, an error after it an ``errorDetail`` line
with status 200.

Containers (Engine API ``/containers``, ``/exec``, ``/volumes``, ``/images/create``) follow moby's
router shapes: create answers 201 ``{"Id", "Warnings"}`` or 404 "No such image" / 409 name in
use; start publishes each ``PortBindings`` entry by really listening on that host port (so a
readiness check can connect, and a port another program holds fails the start with moby's
"bind: address already in use" message); while a container's ``serving`` is False its ports
behave as docker-proxy's do before the process inside listens: accept, then close; ``exec``
start hijacks the connection (101 UPGRADED, then the multiplexed stdout/stderr frames); logs
come as multiplexed frames. The fake runs nothing: ``exec_handler`` decides what a command
prints and exits with, and ``container_output`` what a started container logs.

Networks: ``GET /networks`` and ``POST /networks/create``, with IPAM's refusal of an overlapping
subnet (403 "Pool overlaps with other one on this address space"); with ``networks_file`` (the
fake k3d's ``FAKE_DOCKER_NETWORKS``) the networks live in a JSON file the fake k3d shares, so a
cluster network overlapping another is refused there as Docker refuses it for k3d.

Not faked: BuildKit (``version=2`` builds need a session), remote contexts, auth,
multi-platform pushes. The engine does not run instructions; ``BuildFailure`` makes a build fail
at its first ``RUN`` as the classic builder reports it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import ipaddress
import json
import os
import re
import socket
import struct
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")
# distribution's reference grammar, without digests (enough to refuse what the engine refuses)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>[A-Za-z0-9.-]+(?::\d+)?)/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?$")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the /v1.xx prefix, e.g. /images/localhost:5050/orders/push
    query: dict[str, list[str]]
    headers: dict[str, str]
    api_version: str | None = None  # from the /v1.xx prefix; None when unversioned

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    @property
    def changes(self) -> bool:
        """Whether the request may change something (a read is GET or HEAD)."""
        return self.method not in ("GET", "HEAD")


# -- plumbing shared by both fakes ---------------------------------------------------------


class _Exchange:
    """One request and the helpers to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self.handler = handler
        url = urlsplit(handler.path)
        self.method = handler.command
        self.path = unquote(url.path)
        self.query = parse_qs(url.query, keep_blank_values=True)
        self.headers = {k: v for k, v in handler.headers.items()}
        self.body = self._read_body()

    def _read_body(self) -> bytes:
        h = self.handler
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(h.rfile.read(size))
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    def send(self, status: int, body: bytes = b"", content_type: str | None = None,
             headers: dict[str, str] | None = None) -> None:
        h = self.handler
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if content_type:
            h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if self.method != "HEAD":
            h.wfile.write(body)

    def json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(obj).encode() + b"\n", "application/json", headers)

    def stream(self, headers: dict[str, str] | None = None) -> _Stream:
        h = self.handler
        h.send_response(200)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        return _Stream(h)


class _Stream:
    """A chunked JSON-lines answer: one chunk per message, like the engine's flushes."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self.wfile = handler.wfile

    def line(self, obj: dict[str, Any]) -> None:
        data = json.dumps(obj, separators=(",", ":")).encode() + b"\r\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def error(self, message: str, code: int | None = None) -> None:
        # streamformatter.FormatError: errorDetail plus the legacy top-level "error" field.
        detail: dict[str, Any] = {"message": message}
        if code:
            detail["code"] = code
        self.line({"errorDetail": detail, "error": message})

    def close(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked answers, as the real servers
    # headers and body go out in two writes; with Nagle on, every answer after a connection's
    # first waits ~40 ms for the client's delayed ACK (Go's servers, dockerd and the
    # registry, set TCP_NODELAY), as FakeKubeAPI's handler says too
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.fake._lock:
                self.server.connections.discard(self.connection)

    def _dispatch(self) -> None:
        self.server.fake._handle(_Exchange(self))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read .requests instead of stderr


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: _HTTPFake) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _Handler)


class _HTTPFake:
    """Start/stop and request recording for a fake HTTP server in a thread."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=type(self).__name__)
        self._thread.start()

    def stop(self) -> None:
        """Stop answering; ``port`` is kept, so clients now meet a refused connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._lock:
            open_connections = list(server.connections)
        for conn in open_connections:  # idle keep-alive connections would block their threads
            with contextlib.suppress(OSError):  # the client may have closed it already
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> _HTTPFake:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _record(self, ex: _Exchange, path: str, api_version: str | None = None) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(ex.method, path, ex.query, ex.headers,
                                                 api_version))

    def _handle(self, ex: _Exchange) -> None:
        raise NotImplementedError


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- the registry --------------------------------------------------------------------------


@dataclass
class _Manifest:
    media_type: str
    payload: bytes

    @property
    def digest(self) -> str:
        return _sha256(self.payload)


class FakeRegistry(_HTTPFake):
    """An OCI distribution registry that only knows manifests (no blobs).

    ``host`` is the name images are tagged with (``localhost:5050``); the server itself
    listens on ``url``. A :class:`FakeDockerEngine` given this registry stores pushed
    manifests here.
    """

    def __init__(self, host: str = "localhost:5050") -> None:
        super().__init__()
        self.host = host
        self._repos: dict[str, dict[str, _Manifest]] = {}

    def __enter__(self) -> FakeRegistry:
        self.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, name: str, tag: str, media_type: str = DOCKER_MANIFEST,
            config_digest: str | None = None) -> tuple[str, int]:
        """Store a manifest for ``name:tag``; returns its digest and size."""
        config = config_digest or _sha256(f"{name}:{tag}".encode())
        payload = json.dumps({
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": config, "size": 1024},
            "layers": [],
        }, indent=3).encode()
        manifest = _Manifest(media_type, payload)
        with self._lock:
            self._repos.setdefault(name, {})[tag] = manifest
        return manifest.digest, len(payload)

    def has(self, name: str, tag: str) -> bool:
        with self._lock:
            return tag in self._repos.get(name, {})

    def tags(self, name: str) -> list[str]:
        with self._lock:
            return sorted(self._repos.get(name, {}))

    def clear(self) -> None:
        """Forget every image, as a recreated registry would."""
        with self._lock:
            self._repos.clear()

    _MANIFEST_PATH = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
    _TAGS_PATH = re.compile(r"^/v2/(?P<name>.+)/tags/list$")

    def _handle(self, ex: _Exchange) -> None:
        self._record(ex, ex.path)
        api = {"Docker-Distribution-Api-Version": "registry/2.0"}
        if ex.path in ("/v2", "/v2/") and ex.method in ("GET", "HEAD"):
            return ex.json(200, {}, api)
        m = self._MANIFEST_PATH.match(ex.path)
        if m and ex.method in ("GET", "HEAD"):
            return self._get_manifest(ex, m["name"], m["ref"], api)
        m = self._TAGS_PATH.match(ex.path)
        if m and ex.method == "GET":
            if m["name"] not in self._repos:
                return self._error(ex, 404, "NAME_UNKNOWN", "repository name not known to "
                                   "registry", api)
            return ex.json(200, {"name": m["name"], "tags": self.tags(m["name"])}, api)
        ex.send(404, b"404 page not found\n", "text/plain; charset=utf-8")

    def _get_manifest(self, ex: _Exchange, name: str, ref: str, api: dict[str, str]) -> None:
        with self._lock:
            repo = self._repos.get(name)
            manifest = None
            if repo is not None:
                manifest = repo.get(ref) or next(
                    (m for m in repo.values() if m.digest == ref), None)
        if repo is None:
            return self._error(ex, 404, "NAME_UNKNOWN", "repository name not known to registry",
                               api)
        if manifest is None:
            return self._error(ex, 404, "MANIFEST_UNKNOWN", "manifest unknown", api)
        accepted = {part.split(";")[0].strip() for value in [ex.headers.get("Accept", "")]
                    for part in value.split(",")}
        # distribution refuses OCI types the client did not ask for (registry/handlers/
        # manifests.go); a schema 2 manifest is served regardless.
        if manifest.media_type == OCI_MANIFEST and OCI_MANIFEST not in accepted:
            return self._error(ex, 404, "MANIFEST_UNKNOWN", "OCI manifest found, but accept "
                               "header does not support OCI manifests", api)
        if manifest.media_type == OCI_INDEX and OCI_INDEX not in accepted:
            return self._error(ex, 404, "MANIFEST_UNKNOWN", "OCI index found, but accept "
                               "header does not support OCI indexes", api)
        ex.send(200, manifest.payload, manifest.media_type, {
            **api, "Docker-Content-Digest": manifest.digest, "Etag": f'"{manifest.digest}"'})

    @staticmethod
    def _error(ex: _Exchange, status: int, code: str, message: str,
               headers: dict[str, str]) -> None:
        ex.json(status, {"errors": [{"code": code, "message": message, "detail": None}]},
                headers)


# -- the engine ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildRecord:
    """What a ``POST /build`` asked for and sent."""

    tags: tuple[str, ...]
    dockerfile: str
    buildargs: dict[str, str]
    files: tuple[str, ...]  # member names of the context tar, in tar order
    image_id: str | None  # None when the build failed


@dataclass(frozen=True)
class BuildFailure:
    """Makes builds fail at their first ``RUN`` (or last step) with the classic builder's
    message, after printing ``output``."""

    code: int = 1
    output: Sequence[str] = ()


@dataclass
class FakeImage:
    id: str
    tags: list[str]
    digests: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"))
    # The image config's Cmd and Entrypoint. Images pulled from a registry have a command (as
    # the emulators' and base images do); an image made by `docker import` or built FROM
    # scratch has none, and the engine refuses a container of it without one.
    cmd: tuple[str, ...] | None = ("sh",)
    entrypoint: tuple[str, ...] | None = None


@dataclass
class FakeContainer:
    """A container as the fake engine keeps it: what it was created with, and its state."""

    id: str
    name: str
    image: str  # the reference given at create, e.g. mongo:7
    image_id: str
    config: dict[str, Any]  # the create body (Cmd, Env, Labels, ExposedPorts, HostConfig...)
    status: str = "created"  # created | running | exited
    created: str = field(default_factory=lambda: _now())
    started_at: str = "0001-01-01T00:00:00Z"
    exit_code: int = 0
    logs: list[tuple[int, str]] = field(default_factory=list)  # (1 stdout | 2 stderr, text)
    execs: list[list[str]] = field(default_factory=list)  # argv of each exec, in order
    # Files in the container's filesystem by absolute path, served by GET .../archive (`docker
    # cp`); the fake runs nothing, so an exec_handler writes here what a command would.
    files: dict[str, bytes] = field(default_factory=dict)
    # Whether the process inside listens yet. While it does not, a published port behaves as
    # docker-proxy does: it accepts, fails to dial the container, and closes the connection.
    serving: bool = True
    _listeners: list[socket.socket] = field(default_factory=list, repr=False)
    _held: list[socket.socket] = field(default_factory=list, repr=False)
    _sockets: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def env(self) -> list[str]:
        return list(self.config.get("Env") or [])

    @property
    def host_config(self) -> dict[str, Any]:
        return dict(self.config.get("HostConfig") or {})

    def log(self, text: str, stream: int = 1) -> None:
        """Append output, as the container's process would write it."""
        self.logs.append((stream, text if text.endswith("\n") else text + "\n"))


# (container, argv) -> (exit code, [(stream, text), ...]); stream 1 stdout, 2 stderr
ExecHandler = Callable[[FakeContainer, list[str]], tuple[int, list[tuple[int, str]]]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Exec:
    id: str
    container: FakeContainer
    cmd: list[str]
    running: bool = False
    exit_code: int | None = None


class FakeDockerEngine(_HTTPFake):
    """A Docker Engine that builds (without running anything), tags, inspects and pushes,
    pulls, and keeps containers, execs and named volumes.

    ``base_url`` (``tcp://127.0.0.1:PORT``) goes to ``docker.DockerClient(base_url=...)``.
    Pushes to a registry host given in ``registries`` store the manifest there; other hosts
    fail in the stream as an unresolvable host does.
    """

    def __init__(self, registries: Iterable[FakeRegistry] = (), *, version: str = "27.0.1",
                 api_version: str = "1.47", min_api_version: str = "1.24",
                 push_media_type: str = DOCKER_MANIFEST,
                 networks_file: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        # {name: IPv4 subnet}; Docker's default bridge holds 172.17.0.0/16
        self.networks_file = Path(networks_file) if networks_file is not None else None
        self._networks: dict[str, str | None] = {"bridge": "172.17.0.0/16", "host": None,
                                                 "none": None}
        self.registries = {r.host: r for r in registries}
        self.version = version
        self.api_version = api_version
        self.min_api_version = min_api_version
        # schema 2 as the graph-driver image store pushes; OCI_INDEX for the containerd store
        self.push_media_type = push_media_type
        self.images: dict[str, FakeImage] = {}  # by id
        self.builds: list[BuildRecord] = []
        self.build_failure: BuildFailure | None = None
        self.containers: dict[str, FakeContainer] = {}  # by id
        self.volumes: dict[str, dict[str, Any]] = {}  # by name
        self._execs: dict[str, _Exec] = {}
        self.exec_handler: ExecHandler = lambda container, argv: (0, [])
        # What a container logs when it starts, e.g. the emulator's "...Successfully Up!"
        self.container_output: Callable[[FakeContainer], list[str]] = lambda container: []
        # Whether a started container's process listens at once (see FakeContainer.serving).
        self.serves_on_start: Callable[[FakeContainer], bool] = lambda container: True
        # (container, container port) -> a port on 127.0.0.1 that plays the process inside
        # (a test's fake service), which published connections are relayed to; None holds them.
        self.forward_to: Callable[[FakeContainer, int], int | None] = lambda c, port: None
        self.unknown_images: set[str] = set()  # references a pull cannot find

    def __enter__(self) -> FakeDockerEngine:
        self.start()
        return self

    @property
    def base_url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def image(self, ref: str) -> FakeImage | None:
        """The image a name:tag, full id or short id refers to, as the engine resolves it."""
        with self._lock:
            for img in self.images.values():
                if ref in (img.id, img.id.removeprefix("sha256:")[:12]) or \
                        _with_tag(ref) in img.tags:
                    return img
        return None

    @property
    def networks(self) -> dict[str, str | None]:
        if self.networks_file is not None and self.networks_file.exists():
            data: dict[str, str | None] = json.loads(self.networks_file.read_text())
            return data
        return dict(self._networks)

    def add_network(self, name: str, subnet: str | None) -> None:
        """A network as `docker network create --subnet` makes it (IPAM's overlap check
        included: ValueError with the engine's message)."""
        networks = self.networks
        overlapping = network_overlap(subnet, networks) if subnet else None
        if overlapping is not None:
            raise ValueError(POOL_OVERLAPS)
        networks[name] = subnet
        if self.networks_file is not None:
            self.networks_file.write_text(json.dumps(networks))
        else:
            self._networks = networks

    def remove_all_images(self) -> None:
        """As `docker image prune -a`: the local cache is gone."""
        with self._lock:
            self.images.clear()

    def add_image(self, ref: str, cmd: Sequence[str] | None = ("sh",),
                  entrypoint: Sequence[str] | None = None) -> FakeImage:
        """An image in the local cache, as if pulled earlier; ``cmd=None`` (and no
        ``entrypoint``) makes one without a command, as `docker import` does."""
        img = FakeImage(_sha256(f"image:{_with_tag(ref)}".encode()), [],
                        cmd=None if cmd is None else tuple(cmd),
                        entrypoint=None if entrypoint is None else tuple(entrypoint))
        with self._lock:
            img = self.images.get(img.id) or img
            self._set_tag(img, _with_tag(ref))
        return img

    def container(self, ref: str) -> FakeContainer | None:
        """The container a name, full id or id prefix refers to, as the engine resolves it."""
        ref = ref.lstrip("/")
        with self._lock:
            for c in self.containers.values():
                if ref in (c.name, c.id) or (len(ref) >= 12 and c.id.startswith(ref)):
                    return c
        return None

    def stop_container(self, ref: str, exit_code: int = 0) -> None:
        """As ``docker stop``: the container exits and its ports are closed."""
        c = self.container(ref)
        if c is None:
            raise KeyError(ref)
        with self._lock:
            self._unpublish(c)
            c.status, c.exit_code = "exited", exit_code

    def close(self) -> None:
        with self._lock:
            for c in self.containers.values():
                self._unpublish(c)

    def stop(self) -> None:
        self.close()  # release the host ports containers published
        super().stop()

    def _handle(self, ex: _Exchange) -> None:
        path, api_version = ex.path, None
        m = _VERSIONED.match(path)
        if m:
            api_version, path = m.group(1), m.group(2)
        self._record(ex, path, api_version)
        headers = {"Api-Version": self.api_version, "Ostype": "linux",
                   "Server": f"Docker/{self.version} (linux)"}
        if api_version is not None:
            problem = self._version_problem(api_version)
            if problem:
                return ex.json(400, {"message": problem}, headers)
        route = self._route(ex.method, path)
        if route is None:
            return ex.json(404, {"message": "page not found"}, headers)
        handler, name = route
        handler(ex, name, headers)

    def _route(self, method: str, path: str) -> tuple[Any, str] | None:
        if path == "/_ping" and method in ("GET", "HEAD"):
            return self._ping, ""
        if path == "/version" and method == "GET":
            return self._version, ""
        if path == "/build" and method == "POST":
            return self._build, ""
        if path == "/images/create" and method == "POST":
            return self._pull, ""
        for suffix, verb, handler in (("/json", "GET", self._inspect),
                                      ("/tag", "POST", self._tag),
                                      ("/push", "POST", self._push)):
            if method == verb and path.startswith("/images/") and path.endswith(suffix):
                name = path[len("/images/"):-len(suffix)]
                if name:
                    return handler, name
        return self._container_route(method, path)

    _CONTAINER = re.compile(r"^/containers/(?P<ref>[^/]+)(?P<rest>/[a-z]+)?$")
    _EXEC = re.compile(r"^/exec/(?P<id>[^/]+)/(?P<verb>start|json)$")

    def _container_route(self, method: str, path: str) -> tuple[Any, str] | None:
        if path == "/networks" and method == "GET":
            return self._networks_list, ""
        if path == "/networks/create" and method == "POST":
            return self._network_create, ""
        if path == "/containers/json" and method == "GET":
            return self._containers_list, ""
        if path == "/containers/create" and method == "POST":
            return self._container_create, ""
        if path == "/volumes" and method == "GET":
            return self._volumes_list, ""
        if path == "/volumes/create" and method == "POST":
            return self._volume_create, ""
        if path.startswith("/volumes/") and method == "DELETE":
            return self._volume_delete, unquote(path[len("/volumes/"):])
        if path.startswith("/volumes/") and method == "GET":
            return self._volume_inspect, unquote(path[len("/volumes/"):])
        m = self._EXEC.match(path)
        if m:
            if m["verb"] == "start" and method == "POST":
                return self._exec_start, m["id"]
            if m["verb"] == "json" and method == "GET":
                return self._exec_inspect, m["id"]
            return None
        m = self._CONTAINER.match(path)
        if m is None:
            return None
        routes = {("GET", "/json"): self._container_inspect,
                  ("POST", "/start"): self._container_start,
                  ("POST", "/stop"): self._container_stop,
                  ("DELETE", None): self._container_delete,
                  ("POST", "/exec"): self._exec_create,
                  ("GET", "/logs"): self._container_logs,
                  ("GET", "/archive"): self._container_archive}
        handler = routes.get((method, m["rest"]))
        return (handler, m["ref"]) if handler else None

    def _version_problem(self, requested: str) -> str | None:
        # moby's VersionMiddleware
        if _vtuple(requested) < _vtuple(self.min_api_version):
            return (f"client version {requested} is too old. Minimum supported API version is "
                    f"{self.min_api_version}, please upgrade your client to a newer version")
        if _vtuple(requested) > _vtuple(self.api_version):
            return (f"client version {requested} is too new. Maximum supported API version is "
                    f"{self.api_version}")
        return None

    # -- system --

    def _ping(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        ex.send(200, b"OK", "text/plain; charset=utf-8", {
            **headers, "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache", "Builder-Version": "2", "Swarm": "inactive"})

    def _version(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        ex.json(200, {
            "Platform": {"Name": "Docker Engine - Community"},
            "Components": [{"Name": "Engine", "Version": self.version,
                            "Details": {"ApiVersion": self.api_version,
                                        "MinAPIVersion": self.min_api_version}}],
            "Version": self.version, "ApiVersion": self.api_version,
            "MinAPIVersion": self.min_api_version, "GitCommit": "fakefake",
            "GoVersion": "go1.22.7", "Os": "linux", "Arch": "amd64",
            "KernelVersion": "6.8.0-fake", "BuildTime": "2024-09-20T11:41:19.000000000+00:00",
        }, headers)

    # -- images --

    def _inspect(self, ex: _Exchange, name: str, headers: dict[str, str]) -> None:
        img = self.image(name)
        if img is None:
            return ex.json(404, {"message": f"No such image: {_with_tag(name)}"}, headers)
        ex.json(200, {
            "Id": img.id, "RepoTags": list(img.tags), "RepoDigests": list(img.digests),
            "Parent": "", "Comment": "", "Created": img.created, "DockerVersion": "",
            "Author": "", "Architecture": "amd64", "Os": "linux", "Size": 1024,
            "Config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"],
                       "Cmd": None if img.cmd is None else list(img.cmd),
                       "Entrypoint": None if img.entrypoint is None else list(img.entrypoint),
                       "Labels": None},
            "RootFS": {"Type": "layers", "Layers": [_sha256(img.id.encode())]},
            "Metadata": {"LastTagTime": img.created},
        }, headers)

    def _tag(self, ex: _Exchange, name: str, headers: dict[str, str]) -> None:
        repo = (ex.query.get("repo") or [""])[-1]
        tag = (ex.query.get("tag") or [""])[-1] or "latest"
        if not _REFERENCE.match(f"{repo}:{tag}"):
            return ex.json(400, {"message": "invalid reference format"}, headers)
        img = self.image(name)
        if img is None:
            return ex.json(404, {"message": f"No such image: {_with_tag(name)}"}, headers)
        self._set_tag(img, f"{repo}:{tag}")
        ex.send(201, b"", None, headers)

    def _set_tag(self, img: FakeImage, ref: str) -> None:
        with self._lock:
            for other in self.images.values():  # a tag names one image; retagging moves it
                if ref in other.tags:
                    other.tags.remove(ref)
            img.tags.append(ref)
            self.images[img.id] = img

    def _build(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        q = ex.query
        dockerfile = (q.get("dockerfile") or [""])[-1] or "Dockerfile"
        tags = tuple(t for t in q.get("t", []) if t)
        try:
            buildargs = json.loads((q.get("buildargs") or ["{}"])[-1] or "{}")
        except ValueError:
            return ex.json(400, {"message": "invalid buildargs specified"}, headers)
        for t in tags:
            if not _REFERENCE.match(t):
                return ex.json(500, {"message": "invalid reference format"}, headers)
        try:
            members = _read_tar(ex.body)
        except tarfile.TarError as exc:
            return ex.json(500, {"message": f"failed to read build context: {exc}"}, headers)
        files = dict(members)
        source = files.get(dockerfile.removeprefix("./"))
        record = BuildRecord(tags, dockerfile, buildargs, tuple(n for n, _ in members), None)
        if source is None:
            with self._lock:
                self.builds.append(record)
            # remotecontext.Detect, before any output: a plain HTTP error
            return ex.json(500, {"message": f"Cannot locate specified Dockerfile: {dockerfile}"},
                           headers)
        text = source.decode(errors="replace")
        unknown = _unknown_instruction(text)
        if unknown is not None:  # the classic builder's parser, before any output
            with self._lock:
                self.builds.append(record)
            return ex.json(400, {"message": f"dockerfile parse error line {unknown[0]}: "
                                 f"unknown instruction: {unknown[1].upper()}"}, headers)
        steps = _instructions(text)
        image_id = _sha256(json.dumps([sorted(members), buildargs], default=repr).encode())
        out = ex.stream(headers)
        failed = self._run_steps(out, steps, image_id, self.build_failure)
        if failed:
            forcerm = (q.get("forcerm") or [""])[-1] in ("1", "True", "true")
            with self._lock:
                self.builds.append(record)
                if failed == "run" and not forcerm:
                    # The failed RUN's container stays, stopped, unless forcerm is set
                    # (moby builder/dockerfile: rm removes only after success).
                    cid = _sha256(f"{image_id}/leftover/{len(self.builds)}".encode())
                    self.containers[cid] = FakeContainer(
                        cid, f"builder-{_short(cid)}", image_id, image_id, {"Labels": {}},
                        status="exited", exit_code=1)
            out.close()  # after the record: a client reading to EOF sees the leftover
            return
        out.line({"aux": {"ID": image_id}})  # emitImageID, API >= 1.30
        out.line({"stream": f"Successfully built {_short(image_id)}\n"})
        with self._lock:
            img = self.images.get(image_id) or FakeImage(image_id, [])
            img.cmd, img.entrypoint = self._built_command(steps, img)
            for t in tags:
                self._set_tag(img, _with_tag(t))
            self.images[image_id] = img
            self.builds.append(BuildRecord(tags, dockerfile, buildargs, record.files, image_id))
        for t in tags:
            out.line({"stream": f"Successfully tagged {_with_tag(t)}\n"})
        out.close()

    def _built_command(self, steps: list[str], img: FakeImage
                       ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        """The built image's Cmd and Entrypoint: the last stage's CMD/ENTRYPOINT, else its
        base's (``scratch`` has none; a base the fake never saw is taken to have one)."""
        cmd, entrypoint, cmd_set = img.cmd, img.entrypoint, False
        for step in steps:
            word, _, rest = step.partition(" ")
            word, rest = word.upper(), rest.strip()
            if word == "FROM":
                base_ref = rest.split()[0] if rest else ""
                base = None if base_ref == "scratch" else self.image(base_ref)
                cmd, entrypoint = ((None, None) if base_ref == "scratch" else
                                   (base.cmd, base.entrypoint) if base is not None
                                   else (("sh",), None))
                cmd_set = False
            elif word in ("CMD", "ENTRYPOINT"):
                try:
                    value = json.loads(rest)
                    argv = tuple(str(a) for a in value) if isinstance(value, list) else None
                except ValueError:
                    argv = None
                argv = argv if argv is not None else ("/bin/sh", "-c", rest)
                if word == "CMD":
                    cmd, cmd_set = argv, True
                else:  # ENTRYPOINT drops a CMD this stage did not set (moby dispatchers.go)
                    entrypoint, cmd = argv, cmd if cmd_set else None
        return cmd, entrypoint

    @staticmethod
    def _run_steps(out: _Stream, steps: list[str], image_id: str,
                   failure: BuildFailure | None) -> str | None:
        """Print the classic builder's progress; what stopped the build ("run": ``failure``
        at a RUN, "buildkit": a BuildKit-only flag), or None."""
        fail_at = None
        if failure is not None:
            runs = [i for i, s in enumerate(steps) if s.split(None, 1)[0].upper() == "RUN"]
            fail_at = runs[0] if runs else len(steps) - 1
        for i, step in enumerate(steps):
            out.line({"stream": f"Step {i + 1}/{len(steps)} : {step}"})
            out.line({"stream": "\n"})  # printCommand writes the newline separately
            layer = _short(_sha256(f"{image_id}/{i}".encode()))
            flag = _buildkit_flag(step)
            if flag is not None:
                out.error(f"the {flag} option requires BuildKit. Refer to https://docs.docker"
                          ".com/go/buildkit/ to learn how to build images with BuildKit enabled")
                return "buildkit"
            if step.split(None, 1)[0].upper() == "RUN":
                out.line({"stream": f" ---> Running in {_short(_sha256(layer.encode()))}\n"})
            if i == fail_at and failure is not None:
                for line in failure.output:
                    out.line({"stream": line + "\n"})
                cmd = step.split(None, 1)[1] if " " in step else step
                out.error(f"The command '/bin/sh -c {cmd}' returned a non-zero code: "
                          f"{failure.code}", failure.code)
                return "run" if step.split(None, 1)[0].upper() == "RUN" else "step"
            out.line({"stream": f" ---> {layer}\n"})
        return None

    def _push(self, ex: _Exchange, name: str, headers: dict[str, str]) -> None:
        tag = (ex.query.get("tag") or [""])[-1]
        m = _REFERENCE.match(name)
        if m is None or m["tag"]:
            return ex.json(400, {"message": "invalid reference format"}, headers)
        domain, path = _split_domain(name)
        out = ex.stream(headers)
        # push.go: this line goes out before the tag is even looked up
        out.line({"status": f"The push refers to repository [{domain}/{path}]"})
        with self._lock:
            repo_tags = [t for img in self.images.values() for t in img.tags
                         if t.rsplit(":", 1)[0] == name]
        wanted = [f"{name}:{tag}"] if tag else repo_tags
        if not repo_tags:
            out.error(f"An image does not exist locally with the tag: {name}")
            return out.close()
        registry = self.registries.get(domain)
        if registry is None or not registry.running:
            host, _, port = domain.partition(":")
            reason = (f"dial tcp: lookup {host}: no such host" if registry is None
                      else f"dial tcp 127.0.0.1:{port or 443}: connect: connection refused")
            scheme = "http" if host in ("localhost", "127.0.0.1") else "https"
            out.error(f'Get "{scheme}://{domain}/v2/": {reason}')
            return out.close()
        for ref in wanted:
            img = self.image(ref)
            if img is None:
                out.error(f"tag does not exist: {ref}")
                return out.close()
            self._push_one(out, registry, path, ref.rsplit(":", 1)[1], img)
        out.close()

    def _push_one(self, out: _Stream, registry: FakeRegistry, path: str, tag: str,
                  img: FakeImage) -> None:
        layer = _short(_sha256(img.id.encode()))
        out.line({"status": "Preparing", "progressDetail": {}, "id": layer})
        if registry.has(path, tag):
            out.line({"status": "Layer already exists", "progressDetail": {}, "id": layer})
        else:
            out.line({"status": "Pushing", "progressDetail": {"current": 512, "total": 1024},
                      "id": layer})
            out.line({"status": "Pushed", "progressDetail": {}, "id": layer})
        digest, size = registry.put(path, tag, self.push_media_type, img.id)
        with self._lock:
            repo_digest = f"{registry.host}/{path}@{digest}"
            if repo_digest not in img.digests:
                img.digests.append(repo_digest)
        out.line({"status": f"{tag}: digest: {digest} size: {size}"})
        out.line({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}})


    # -- pulls --

    def _pull(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        image = (ex.query.get("fromImage") or [""])[-1]
        tag = (ex.query.get("tag") or [""])[-1] or "latest"
        ref = f"{image}:{tag}"
        if not _REFERENCE.match(ref):
            return ex.json(400, {"message": "invalid reference format"}, headers)
        _, path = _split_domain(image)
        if ref in self.unknown_images:
            # distribution answers before any output: a plain HTTP error
            return ex.json(404, {"message": f"pull access denied for {image}, repository does "
                                 "not exist or may require 'docker login'"}, headers)
        out = ex.stream(headers)
        out.line({"status": f"Pulling from {path}", "id": tag})
        layer = _short(_sha256(ref.encode()))
        out.line({"status": "Pulling fs layer", "progressDetail": {}, "id": layer})
        out.line({"status": "Pull complete", "progressDetail": {}, "id": layer})
        img = self.add_image(ref)
        out.line({"status": f"Digest: {_sha256(img.id.encode())}"})
        out.line({"status": f"Status: Downloaded newer image for {ref}"})
        out.close()

    # -- containers --

    def _containers_list(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        every = (ex.query.get("all") or ["0"])[-1] in ("1", "true", "True")
        try:
            filters = json.loads((ex.query.get("filters") or ["{}"])[-1] or "{}")
        except ValueError:
            return ex.json(400, {"message": "invalid filter"}, headers)
        wanted = filters.get("label") or []
        if isinstance(wanted, dict):  # the older map form: {"label": {"k=v": true}}
            wanted = list(wanted)
        with self._lock:
            rows = [c for c in self.containers.values()
                    if (every or c.status == "running") and _labels_match(c.labels, wanted)]
            ex.json(200, [self._summary(c) for c in rows], headers)

    def _summary(self, c: FakeContainer) -> dict[str, Any]:
        ports = [{"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(key.split("/")[0]),
                  "PublicPort": int(b["HostPort"]), "Type": key.split("/")[1]}
                 for key, bs in (c.host_config.get("PortBindings") or {}).items()
                 for b in bs or [] if c.status == "running" and b.get("HostPort")]
        return {"Id": c.id, "Names": [f"/{c.name}"], "Image": c.image, "ImageID": c.image_id,
                "Command": " ".join(c.config.get("Cmd") or []), "Created": 0,
                "State": c.status, "Status": "Up" if c.status == "running" else
                f"Exited ({c.exit_code})" if c.status == "exited" else "Created",
                "Ports": ports, "Labels": c.labels, "Mounts": self._mounts(c)}

    @staticmethod
    def _mounts(c: FakeContainer) -> list[dict[str, Any]]:
        out = []
        for m in c.host_config.get("Mounts") or []:
            out.append({"Type": m.get("Type", "volume"), "Name": m.get("Source"),
                        "Source": m.get("Source"), "Destination": m.get("Target"),
                        "RW": not m.get("ReadOnly", False)})
        for bind in c.host_config.get("Binds") or []:
            src, dst, *mode = bind.split(":")
            out.append({"Type": "bind" if src.startswith("/") else "volume", "Source": src,
                        "Destination": dst, "RW": "ro" not in mode})
        return out

    def _container_create(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        name = (ex.query.get("name") or [""])[-1]
        try:
            body = json.loads(ex.body or b"{}")
        except ValueError:
            return ex.json(400, {"message": "invalid JSON"}, headers)
        ref = str(body.get("Image") or "")
        if not ref:
            return ex.json(400, {"message": "no image specified"}, headers)
        if name and not re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
            return ex.json(400, {"message": f"Invalid container name ({name}), only "
                                 "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"}, headers)
        img = self.image(ref)
        if img is None:
            return ex.json(404, {"message": f"No such image: {_with_tag(ref)}"}, headers)
        # moby merges the image's Cmd/Entrypoint into the create body and refuses a container
        # with neither (daemon/create.go; engine 20.10 answers 400 "No command specified").
        cmd = body.get("Cmd") or (None if body.get("Entrypoint") else img.cmd)
        entrypoint = (body["Entrypoint"] if body.get("Entrypoint") is not None
                      else img.entrypoint)
        if not cmd and not entrypoint:
            return ex.json(400, {"message": "No command specified"}, headers)
        with self._lock:
            taken = self.container(name) if name else None
            if taken is not None and taken.name == name.lstrip("/"):
                return ex.json(409, {"message": f'Conflict. The container name "/{taken.name}" '
                                     f'is already in use by container "{taken.id}". You have to '
                                     "remove (or rename) that container to be able to reuse "
                                     "that name."}, headers)
            cid = hashlib.sha256(f"{name}/{len(self.requests)}/{time.time_ns()}".encode()
                                 ).hexdigest()
            c = FakeContainer(cid, name.lstrip("/") or f"fake_{cid[:8]}", ref, img.id, body)
            for m in (body.get("HostConfig") or {}).get("Mounts") or []:
                if m.get("Type", "volume") == "volume" and m.get("Source"):
                    self.volumes.setdefault(m["Source"], self._volume(m["Source"], {}))
            self.containers[cid] = c
        ex.json(201, {"Id": cid, "Warnings": []}, headers)

    @staticmethod
    def _volume(name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {"Name": name, "Driver": "local", "Mountpoint":
                f"/var/lib/docker/volumes/{name}/_data", "Labels": labels or None,
                "Scope": "local", "Options": None, "CreatedAt": _now()}

    def _lookup(self, ex: _Exchange, ref: str, headers: dict[str, str]) -> FakeContainer | None:
        c = self.container(ref)
        if c is None:
            ex.json(404, {"message": f"No such container: {ref}"}, headers)
        return c

    def _container_start(self, ex: _Exchange, ref: str, headers: dict[str, str]) -> None:
        c = self._lookup(ex, ref, headers)
        if c is None:
            return
        with self._lock:
            if c.status == "running":
                return ex.send(304, b"", None, headers)
            c.serving = self.serves_on_start(c)
            problem = self._publish(c)
            if problem:
                return ex.json(500, {"message": problem}, headers)
            c.status, c.started_at = "running", _now()
            for line in self.container_output(c):
                c.log(line)
        ex.send(204, b"", None, headers)

    def _publish(self, c: FakeContainer) -> str | None:
        """Listen on each published host port, as docker-proxy does; moby's message on failure."""
        for key, bindings in (c.host_config.get("PortBindings") or {}).items():
            for b in bindings or []:
                if not b.get("HostPort") or not key.endswith("/tcp"):
                    continue
                ip, port = b.get("HostIp") or "0.0.0.0", int(b["HostPort"])
                holder = next((o for o in self.containers.values() if o is not c and
                               o.status == "running" and port in _host_ports(o)), None)
                if holder is not None:
                    self._unpublish(c)
                    return (f"driver failed programming external connectivity on endpoint "
                            f"{c.name} ({c.id}): Bind for {ip}:{port} failed: port is already "
                            "allocated")
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's net.Listen
                try:
                    sock.bind((ip, port))
                    sock.listen(16)
                except OSError:
                    sock.close()
                    self._unpublish(c)
                    return (f"driver failed programming external connectivity on endpoint "
                            f"{c.name} ({c.id}): Error starting userland proxy: listen tcp4 "
                            f"{ip}:{port}: bind: address already in use")
                c._listeners.append(sock)
                backend = self.forward_to(c, int(key.split("/")[0]))
                threading.Thread(target=self._proxy, args=(c, sock, backend), daemon=True,
                                 name=f"fake-docker-proxy-{port}").start()
        return None

    @staticmethod
    def _proxy(c: FakeContainer, listener: socket.socket, backend: int | None) -> None:
        """docker-proxy: accept; when the container serves, relay to what plays its process
        (``forward_to``) or just hold the connection; else close it at once (its dial to the
        container was refused)."""
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # unpublished
            if not c.serving:
                conn.close()
                continue
            with c._sockets:
                c._held.append(conn)
            if backend is not None:
                try:
                    upstream = socket.create_connection(("127.0.0.1", backend), timeout=5)
                except OSError:
                    conn.close()
                    continue
                with c._sockets:
                    c._held.append(upstream)
                for a, b in ((conn, upstream), (upstream, conn)):
                    threading.Thread(target=_relay, args=(a, b), daemon=True).start()

    @staticmethod
    def _unpublish(c: FakeContainer) -> None:
        with c._sockets:
            sockets = [*c._listeners, *c._held]
            c._listeners.clear()
            c._held.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _container_stop(self, ex: _Exchange, ref: str, headers: dict[str, str]) -> None:
        c = self._lookup(ex, ref, headers)
        if c is None:
            return
        if c.status not in ("running", "restarting", "paused"):  # moby: 304 when not running
            return ex.send(304, b"", None, headers)
        self.stop_container(c.id)
        ex.send(204, b"", None, headers)

    def _container_inspect(self, ex: _Exchange, ref: str, headers: dict[str, str]) -> None:
        c = self._lookup(ex, ref, headers)
        if c is None:
            return
        cmd = list(c.config.get("Cmd") or [])
        running = c.status == "running"
        ports = {key: [{"HostIp": b.get("HostIp") or "0.0.0.0", "HostPort": b["HostPort"]}
                       for b in bs or []] if running else None
                 for key, bs in (c.host_config.get("PortBindings") or {}).items()}
        ex.json(200, {
            "Id": c.id, "Created": c.created, "Path": cmd[0] if cmd else "", "Args": cmd[1:],
            "State": {"Status": c.status, "Running": running, "Paused": False,
                      "Restarting": False, "OOMKilled": False, "Dead": False,
                      "Pid": 4242 if running else 0, "ExitCode": c.exit_code, "Error": "",
                      "StartedAt": c.started_at, "FinishedAt": "0001-01-01T00:00:00Z"},
            "Image": c.image_id, "Name": f"/{c.name}", "RestartCount": 0, "Driver": "overlay2",
            "HostConfig": {"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                           "NetworkMode": "bridge", **c.host_config},
            "Mounts": self._mounts(c),
            "Config": {"Hostname": c.id[:12], "Image": c.image, "Cmd": cmd or None,
                       "Env": c.env, "Labels": c.labels, "Tty": bool(c.config.get("Tty")),
                       "ExposedPorts": c.config.get("ExposedPorts"), "OpenStdin": False},
            "NetworkSettings": {"Ports": ports},
        }, headers)

    def _container_delete(self, ex: _Exchange, ref: str, headers: dict[str, str]) -> None:
        c = self._lookup(ex, ref, headers)
        if c is None:
            return
        force = (ex.query.get("force") or ["0"])[-1] in ("1", "true", "True")
        if c.status == "running" and not force:
            return ex.json(409, {"message": f"cannot remove container \"/{c.name}\": container "
                                 "is running: stop the container before removing or force "
                                 "remove"}, headers)
        with self._lock:
            self._unpublish(c)
            del self.containers[c.id]
        ex.send(204, b"", None, headers)

    def _container_logs(self, ex: _Exchange, ref: str, headers: dict[str, str]) -> None:
        c = self._lookup(ex, ref, headers)
        if c is None:
            return
        wanted = {1} if _truthy(_param(ex, "stdout")) else set()
        wanted |= {2} if _truthy(_param(ex, "stderr")) else set()
        tail = _param(ex, "tail") or "all"
        with self._lock:
            lines = [(s, t) for s, t in c.logs if s in wanted]
        if tail != "all" and int(tail) >= 0:
            lines = lines[len(lines) - int(tail):] if int(tail) else []
        body = b"".join(_frame(s, t.encode()) for s, t in lines)
        ex.send(200, body, "application/vnd.docker.multiplexed-stream", headers)

    def _container_archive(self, ex: _Exchange, ref: str, headers: dict[str, str]) -> None:
        """``docker cp NAME:PATH -``: a tar of the one file (moby archive.go), 404 without."""
        c = self._lookup(ex, ref, headers)
        if c is None:
            return
        path = _param(ex, "path") or ""
        with self._lock:
            data = c.files.get(path)
        if data is None:
            return ex.json(404, {"message": f"Could not find the file {path} in container "
                                 f"{ref}"}, headers)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo(path.rstrip("/").rsplit("/", 1)[-1])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        stat = base64.b64encode(json.dumps({"name": info.name, "size": len(data), "mode": 420,
                                            "mtime": _now(), "linkTarget": ""}).encode())
        ex.send(200, out.getvalue(), "application/x-tar",
                {**headers, "X-Docker-Container-Path-Stat": stat.decode()})

    # -- exec --

    def _exec_create(self, ex: _Exchange, ref: str, headers: dict[str, str]) -> None:
        c = self._lookup(ex, ref, headers)
        if c is None:
            return
        if c.status != "running":
            return ex.json(409, {"message": f"container {c.id} is not running"}, headers)
        body = json.loads(ex.body or b"{}")
        cmd = body.get("Cmd")
        if not cmd:
            return ex.json(400, {"message": "No exec command specified"}, headers)
        exec_id = hashlib.sha256(f"exec/{c.id}/{len(self._execs)}".encode()).hexdigest()
        with self._lock:
            self._execs[exec_id] = _Exec(exec_id, c, [str(a) for a in cmd])
        ex.json(201, {"Id": exec_id}, headers)

    def _exec_start(self, ex: _Exchange, exec_id: str, headers: dict[str, str]) -> None:
        e = self._execs.get(exec_id)
        if e is None:
            return ex.json(404, {"message": f"No such exec instance: {exec_id}"}, headers)
        with self._lock:
            e.container.execs.append(list(e.cmd))
        code, output = self.exec_handler(e.container, list(e.cmd))
        h = ex.handler
        # moby hijacks the connection: 101, then raw multiplexed frames until the process ends
        h.send_response(101, "UPGRADED")
        for k, v in {**headers, "Content-Type": "application/vnd.docker.raw-stream",
                     "Connection": "Upgrade", "Upgrade": "tcp"}.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.flush()
        # The real process needs a moment before it prints; without one the frames may land in
        # the client's header buffer, which the SDK skips when it reads the raw socket.
        time.sleep(0.02)
        for stream, text in output:
            h.wfile.write(_frame(stream, text.encode()))
        h.wfile.flush()
        with self._lock:
            e.exit_code = code
        h.close_connection = True

    def _exec_inspect(self, ex: _Exchange, exec_id: str, headers: dict[str, str]) -> None:
        e = self._execs.get(exec_id)
        if e is None:
            return ex.json(404, {"message": f"No such exec instance: {exec_id}"}, headers)
        ex.json(200, {"ID": e.id, "Running": False, "ExitCode": e.exit_code,
                      "ProcessConfig": {"entrypoint": e.cmd[0], "arguments": e.cmd[1:],
                                        "tty": False, "privileged": False},
                      "OpenStdin": False, "OpenStderr": True, "OpenStdout": True,
                      "ContainerID": e.container.id, "Pid": 0}, headers)

    # -- volumes --

    def _networks_list(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        rows = [{"Name": name, "Id": _sha256(name.encode()).removeprefix("sha256:"),
                 "Driver": "bridge" if subnet else name,
                 "IPAM": {"Driver": "default", "Options": None,
                          "Config": [{"Subnet": subnet, "Gateway": _gateway(subnet)}]
                          if subnet else []}}
                for name, subnet in self.networks.items()]
        ex.json(200, rows, headers)

    def _network_create(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        body = json.loads(ex.body or b"{}")
        name = str(body.get("Name") or "")
        configs = (body.get("IPAM") or {}).get("Config") or []
        subnet = str(configs[0]["Subnet"]) if configs and configs[0].get("Subnet") else None
        if name in self.networks:
            return ex.json(409, {"message": f"network with name {name} already exists"},
                           headers)
        try:
            self.add_network(name, subnet)
        except ValueError as exc:
            return ex.json(403, {"message": str(exc)}, headers)
        ex.json(201, {"Id": _sha256(name.encode()).removeprefix("sha256:"), "Warning": ""},
                headers)

    def _volumes_list(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        try:
            filters = json.loads((ex.query.get("filters") or ["{}"])[-1] or "{}")
        except ValueError:
            return ex.json(400, {"message": "invalid filter"}, headers)
        wanted = filters.get("label") or []
        with self._lock:
            vols = [v for v in self.volumes.values() if _labels_match(v["Labels"] or {}, wanted)]
            ex.json(200, {"Volumes": vols, "Warnings": []}, headers)

    def _volume_create(self, ex: _Exchange, _: str, headers: dict[str, str]) -> None:
        body = json.loads(ex.body or b"{}")
        name = str(body.get("Name") or hashlib.sha256(str(time.time_ns()).encode()).hexdigest())
        with self._lock:
            vol = self.volumes.setdefault(name, self._volume(name, body.get("Labels") or {}))
        ex.json(201, vol, headers)

    def _volume_inspect(self, ex: _Exchange, name: str, headers: dict[str, str]) -> None:
        with self._lock:
            vol = self.volumes.get(name)
        if vol is None:
            return ex.json(404, {"message": f"get {name}: no such volume"}, headers)
        ex.json(200, vol, headers)

    def _volume_delete(self, ex: _Exchange, name: str, headers: dict[str, str]) -> None:
        """moby's volume router: 204; 404 ``get NAME: no such volume``; 409 while a container
        (running or not) still mounts it."""
        with self._lock:
            if name not in self.volumes:
                return ex.json(404, {"message": f"get {name}: no such volume"}, headers)
            users = [c.id for c in self.containers.values()
                     if any(m.get("Source") == name for m in
                            c.host_config.get("Mounts") or [])]
            if users:
                return ex.json(409, {"message": f"remove {name}: volume is in use - "
                                     f"[{', '.join(users)}]"}, headers)
            del self.volumes[name]
        ex.send(204, b"", None, headers)


def _relay(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes one way until either side closes, then close both (as docker-proxy does)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _param(ex: _Exchange, name: str) -> str | None:
    values = ex.query.get(name)
    return values[-1] if values else None


def _truthy(value: str | None) -> bool:
    return value in ("1", "true", "True")


def _frame(stream: int, data: bytes) -> bytes:
    """One frame of moby's stdcopy multiplexing: stream id, 3 zero bytes, big-endian size."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def _labels_match(labels: dict[str, str], wanted: Iterable[str]) -> bool:
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def _host_ports(c: FakeContainer) -> set[int]:
    return {int(b["HostPort"]) for bs in (c.host_config.get("PortBindings") or {}).values()
            for b in bs or [] if b.get("HostPort")}


def _read_tar(body: bytes) -> list[tuple[str, bytes]]:
    """(name, content) of each member; the engine accepts plain, gzip, bzip2 and xz tars."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member) if member.isfile() else None
            out.append((member.name, f.read() if f is not None else b""))
    return out


_INSTRUCTIONS = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
                 "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
                 "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}


def _unknown_instruction(dockerfile: str) -> tuple[int, str] | None:
    """The first line the classic parser refuses: a heredoc's body reads as instructions
    (``RUN <<EOF`` then ``echo hi``: "unknown instruction: ECHO", as engine 20.10 says)."""
    continued = False
    for number, raw in enumerate(dockerfile.splitlines(), 1):
        line = raw.strip()
        if not continued and line and not line.startswith("#"):
            word = line.split(None, 1)[0]
            if word.upper() not in _INSTRUCTIONS:
                return number, word
        continued = line.endswith("\\") or (continued and not line)
    return None


def _buildkit_flag(step: str) -> str | None:
    """``--mount`` and friends, which the classic builder refuses at their step."""
    parts = step.split()
    if parts and parts[0].upper() == "RUN":
        for part in parts[1:]:
            if not part.startswith("--"):
                break
            name = part.split("=", 1)[0]
            if name in ("--mount", "--network", "--security"):
                return name
    return None


POOL_OVERLAPS = "Pool overlaps with other one on this address space"  # moby IPAM, 403


def network_overlap(subnet: str, networks: dict[str, str | None]) -> str | None:
    """The first network whose subnet overlaps ``subnet``, as Docker's IPAM checks it."""
    wanted = ipaddress.ip_network(subnet, strict=False)
    for name, other in networks.items():
        if other and wanted.overlaps(ipaddress.ip_network(other, strict=False)):
            return name
    return None


def _gateway(subnet: str) -> str:
    return str(ipaddress.ip_network(subnet, strict=False).network_address + 1)


def _instructions(dockerfile: str) -> list[str]:
    """Dockerfile instructions as the classic builder prints them (continuations joined)."""
    steps: list[str] = []
    current = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        steps.append((current + line).strip())
        current = ""
    if current.strip():
        steps.append(current.strip())
    return steps


def _split_domain(name: str) -> tuple[str, str]:
    """distribution's splitDockerDomain: the first part is a registry host only when it looks
    like one (has ``.`` or ``:``, or is ``localhost``)."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", name if "/" in name else f"library/{name}"


def _with_tag(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or ref.startswith("sha256:") else f"{ref}:latest"


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))
