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

Not faked: BuildKit (``version=2`` builds need a session), remote contexts, pulls, auth,
multi-platform pushes. The engine does not run instructions; ``BuildFailure`` makes a build fail
at its first ``RUN`` as the classic builder reports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import socket
import tarfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class FakeDockerEngine(_HTTPFake):
    """A Docker Engine that builds (without running anything), tags, inspects and pushes.

    ``base_url`` (``tcp://127.0.0.1:PORT``) goes to ``docker.DockerClient(base_url=...)``.
    Pushes to a registry host given in ``registries`` store the manifest there; other hosts
    fail in the stream as an unresolvable host does.
    """

    def __init__(self, registries: Iterable[FakeRegistry] = (), *, version: str = "27.0.1",
                 api_version: str = "1.47", min_api_version: str = "1.24",
                 push_media_type: str = DOCKER_MANIFEST) -> None:
        super().__init__()
        self.registries = {r.host: r for r in registries}
        self.version = version
        self.api_version = api_version
        self.min_api_version = min_api_version
        # schema 2 as the graph-driver image store pushes; OCI_INDEX for the containerd store
        self.push_media_type = push_media_type
        self.images: dict[str, FakeImage] = {}  # by id
        self.builds: list[BuildRecord] = []
        self.build_failure: BuildFailure | None = None

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

    def remove_all_images(self) -> None:
        """As `docker image prune -a`: the local cache is gone."""
        with self._lock:
            self.images.clear()

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
        for suffix, verb, handler in (("/json", "GET", self._inspect),
                                      ("/tag", "POST", self._tag),
                                      ("/push", "POST", self._push)):
            if method == verb and path.startswith("/images/") and path.endswith(suffix):
                name = path[len("/images/"):-len(suffix)]
                if name:
                    return handler, name
        return None

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
                       "Cmd": None, "Labels": None},
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
        steps = _instructions(source.decode(errors="replace"))
        image_id = _sha256(json.dumps([sorted(members), buildargs], default=repr).encode())
        out = ex.stream(headers)
        failed = self._run_steps(out, steps, image_id, self.build_failure)
        if failed:
            out.close()
            with self._lock:
                self.builds.append(record)
            return
        out.line({"aux": {"ID": image_id}})  # emitImageID, API >= 1.30
        out.line({"stream": f"Successfully built {_short(image_id)}\n"})
        with self._lock:
            img = self.images.get(image_id) or FakeImage(image_id, [])
            for t in tags:
                self._set_tag(img, _with_tag(t))
            self.images[image_id] = img
            self.builds.append(BuildRecord(tags, dockerfile, buildargs, record.files, image_id))
        for t in tags:
            out.line({"stream": f"Successfully tagged {_with_tag(t)}\n"})
        out.close()

    @staticmethod
    def _run_steps(out: _Stream, steps: list[str], image_id: str,
                   failure: BuildFailure | None) -> bool:
        """Print the classic builder's progress; True when ``failure`` stopped the build."""
        fail_at = None
        if failure is not None:
            runs = [i for i, s in enumerate(steps) if s.split(None, 1)[0].upper() == "RUN"]
            fail_at = runs[0] if runs else len(steps) - 1
        for i, step in enumerate(steps):
            out.line({"stream": f"Step {i + 1}/{len(steps)} : {step}"})
            out.line({"stream": "\n"})  # printCommand writes the newline separately
            layer = _short(_sha256(f"{image_id}/{i}".encode()))
            if step.split(None, 1)[0].upper() == "RUN":
                out.line({"stream": f" ---> Running in {_short(_sha256(layer.encode()))}\n"})
            if i == fail_at and failure is not None:
                for line in failure.output:
                    out.line({"stream": line + "\n"})
                cmd = step.split(None, 1)[1] if " " in step else step
                out.error(f"The command '/bin/sh -c {cmd}' returned a non-zero code: "
                          f"{failure.code}", failure.code)
                return True
            out.line({"stream": f" ---> {layer}\n"})
        return False

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


def _read_tar(body: bytes) -> list[tuple[str, bytes]]:
    """(name, content) of each member; the engine accepts plain, gzip, bzip2 and xz tars."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member) if member.isfile() else None
            out.append((member.name, f.read() if f is not None else b""))
    return out


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
