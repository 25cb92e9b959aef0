"""The Docker Engine, through the official Docker SDK (``docker`` package, 7.x).

Verbs mirror the engine's own: ``image_build``, ``image_push``, ``image_tag``, ``image_pull``,
``container_create``/``start``/``run``/``remove``/``exec``/``logs``, and the facts
``image_get``, ``container_get``, ``container_list``, ``volume_list``, ``ping``, ``version``.
The SDK client is passed in (``connect()`` builds the real one), so tests point it at
:class:`devslice.testing.dockerapi.FakeDockerEngine`.

Build and push answer with a stream of JSON lines and report failure *inside* that stream with
HTTP 200 once output has started (moby ``postBuild``/``postImagesPush`` write an ``errorDetail``
line after the first flush), so both verbs read the whole stream and turn such lines into
:class:`CommandFailed` with the last lines of output.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devslice.adapters.dockerdata import (
    KEEP_OUTPUT,
    ContainerFact,
    EngineVersion,
    ExecResult,
    ImageFact,
    Mount,
    PortBinding,
    PortInUse,
    split_tag,
)
from devslice.adapters.endpoint import DockerEndpoint, docker_endpoint
from devslice.adapters.plainhttp import trusting_nothing
from devslice.errors import CommandFailed, DevsliceError, ToolMissing

if TYPE_CHECKING:
    import docker
    import httpx2

START_DOCKER = "start Docker Desktop, or the engine with `sudo systemctl start docker`"
TAIL_LINES = 15  # build output shown when a build fails

Output = Callable[[str], None]


def connect(base_url: str | None = None, *, timeout: int = 600,
            endpoint: DockerEndpoint | None = None) -> Docker:
    """The real engine: ``endpoint`` (resolved as the Docker CLI does, with its context:
    :func:`devslice.adapters.endpoint.docker_endpoint`), or ``base_url`` (``tcp://``, ``unix://``).

    ``docker.from_env()`` alone would ignore the CLI's current context and reach another
    engine, or none, under Colima, Rancher Desktop or rootless Docker (issue 13). The engine
    is asked for its API version here, as the SDK does while constructing its client, so an
    engine that is not running fails here already. An engine reached without TLS or ssh (a
    unix socket, ``tcp://``) answers that and the listings through :class:`EngineReads`; the
    SDK client is made on the first other call (issue 17).
    """
    if base_url is None:
        endpoint = endpoint or docker_endpoint()
        base_url = endpoint.host
    where = f" at {base_url}" + (f" ({endpoint.source})" if endpoint else "")
    if base_url.startswith("unix://") and not os.path.exists(base_url[len("unix://"):]):
        # Said at once (docker-py would leave the socket it tried unclosed).
        raise ToolMissing(f"the Docker engine{where} is not running: no such socket",
                          hint=START_DOCKER)
    tls_dir = endpoint.tls_dir if endpoint is not None else None
    if tls_dir or not base_url.startswith(PLAIN_SCHEMES):
        return Docker(_sdk_client(base_url, timeout, where, endpoint))
    reads = EngineReads.open(base_url, timeout, where)
    return Docker(None, reads=reads, make_client=lambda: _sdk_client(
        base_url, timeout, where, endpoint, version=reads.api_version))


PLAIN_SCHEMES = ("unix://", "tcp://", "http://")  # what EngineReads reaches (no TLS, no ssh)


def _sdk_client(base_url: str, timeout: int, where: str, endpoint: DockerEndpoint | None,
                version: str | None = None) -> docker.DockerClient:
    import docker  # lazy: the SDK, requests and urllib3 (~55 ms), only when a call needs them
    import docker.errors  # lazy: as docker above
    import docker.tls  # lazy: as docker above

    try:
        tls: docker.tls.TLSConfig | bool = False
        if endpoint is not None and endpoint.tls_dir:
            d = Path(endpoint.tls_dir)
            tls = docker.tls.TLSConfig(
                client_cert=(str(d / "cert.pem"), str(d / "key.pem")),
                ca_cert=str(d / "ca.pem") if endpoint.tls_verify else None,
                verify=endpoint.tls_verify)
        return docker.DockerClient(base_url=base_url, timeout=timeout, tls=tls, version=version,
                                   use_ssh_client=base_url.startswith("ssh://"))
    except docker.errors.DockerException as exc:
        raise ToolMissing(f"the Docker engine{where} is not running or cannot be reached: "
                          f"{exc}", hint=START_DOCKER) from exc


def _sdk_errors() -> Any:
    """``docker.errors``, for the verbs that go through the SDK client."""
    import docker.errors  # lazy: the SDK, loaded with the client these verbs use

    return docker.errors


class EngineAnswered(Exception):
    """An error status from the engine to a call of :class:`EngineReads`."""

    def __init__(self, status_code: int, explanation: str) -> None:
        super().__init__(f"{status_code}: {explanation}")
        self.status_code, self.explanation = status_code, explanation


class EngineReads:
    """The engine's read-only calls a no-op command makes (its API version, the container and
    network listings), as the SDK sends them, over plain HTTP with httpx2, which the
    Kubernetes and registry adapters load anyway (issue 17): the Docker SDK with requests and
    urllib3 loads only when a command acts on the engine or reads anything else. Only for an
    engine reached without TLS or ssh (a unix socket, ``tcp://``); ``open`` asks the API
    version (``GET /version``) as the SDK's handshake does, so an engine that does not answer
    fails there."""

    def __init__(self, http: httpx2.Client, where: str, info: Mapping[str, Any]) -> None:
        self.http, self.where, self.info = http, where, dict(info)
        self.api_version = str(info["ApiVersion"])

    @classmethod
    def open(cls, base_url: str, timeout: float, where: str = "") -> EngineReads:
        import httpx2  # lazy: only for an engine reached this way (the kube adapter's stack)

        if base_url.startswith("unix://"):
            url, shown, uds = "http://localhost", "the local Docker socket", base_url[7:]
        else:
            url = shown = "http://" + base_url.split("://", 1)[1].rstrip("/")
            uds = None
        http = httpx2.Client(base_url=url, timeout=timeout, trust_env=False,
                             transport=httpx2.HTTPTransport(uds=uds, verify=trusting_nothing(),
                                                            trust_env=False))  # plain HTTP
        try:
            response = http.get("/version")
            response.raise_for_status()
            info = response.json()
            return cls(http, shown, info)
        except (httpx2.HTTPError, ValueError, KeyError, TypeError) as exc:
            http.close()
            raise ToolMissing(f"the Docker engine{where} is not running or cannot be reached: "
                              f"Error while fetching server API version: {exc}",
                              hint=START_DOCKER) from exc

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: Mapping[str, Any]) -> Any:
        """``GET /v<api version><path>``'s JSON; an error status raises EngineAnswered."""
        response = self.http.get(f"/v{self.api_version}{path}", params=dict(params))
        if response.status_code >= 400:
            try:
                explanation = str(response.json().get("message") or response.text)
            except (ValueError, AttributeError):
                explanation = response.text
            raise EngineAnswered(response.status_code, explanation)
        return response.json()


def _filters(filters: Mapping[str, Any]) -> str:
    """The SDK's ``utils.convert_filters``: every value a list of text, as JSON."""
    out = {}
    for k, v in filters.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, list):
            v = [v]
        out[k] = [item if isinstance(item, str) else str(item) for item in v]
    return json.dumps(out)


class Docker:
    """One Docker Engine. ``on_output`` receives build and push progress as text lines."""

    def __init__(self, client: docker.DockerClient | None, on_output: Output | None = None, *,
                 reads: EngineReads | None = None,
                 make_client: Callable[[], docker.DockerClient] | None = None) -> None:
        """``client``: the SDK's; or ``reads`` for the listings and ``make_client`` for the SDK
        client, made on first use (:func:`connect`)."""
        if client is None and make_client is None:
            raise ValueError("Docker needs an SDK client or a way to make one")
        self._client = client
        self._make_client = make_client
        self._client_lock = threading.Lock()
        self.reads = reads
        self.on_output: Output = on_output or (lambda line: None)

    @property
    def client(self) -> docker.DockerClient:
        """The SDK client (made on first use when :func:`connect` answered through reads)."""
        with self._client_lock:
            if self._client is None:
                assert self._make_client is not None
                self._client = self._make_client()
            return self._client

    # -- facts ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connection pool (the CLI closes adapters when a command ends)."""
        if self._client is not None:
            self._client.close()
        if self.reads is not None:
            self.reads.close()

    def ping(self) -> bool:
        with self._translate("ping the Docker engine"):
            return bool(self.client.ping())

    def version(self) -> EngineVersion:
        with self._translate("ask the Docker engine for its version"):
            v = self.client.version()
        return EngineVersion(str(v.get("Version", "")), str(v.get("ApiVersion", "")),
                             str(v.get("Os", "")), str(v.get("Arch", "")))

    def image_get(self, ref: str) -> ImageFact | None:
        """The local image ``ref`` (name:tag or id), or None when the engine has no such image."""
        with self._translate(f"inspect image {ref}"):
            try:
                data = self.client.api.inspect_image(ref)
            except _sdk_errors().NotFound:  # ImageNotFound is a NotFound
                return None
        return ImageFact(str(data["Id"]), tuple(data.get("RepoTags") or ()))

    def container_get(self, name: str) -> ContainerFact | None:
        """The container ``name`` (or id), or None when the engine has none."""
        with self._translate(f"inspect container {name}"):
            try:
                data = self.client.api.inspect_container(name)
            except _sdk_errors().NotFound:
                return None
        return _container_fact(data)

    def container_list(self, labels: Mapping[str, str | None]) -> list[ContainerFact]:
        """Containers, running or not, carrying every label (``None``: any value)."""
        wanted = [k if v is None else f"{k}={v}" for k, v in labels.items()]
        with self._translate("list containers"):
            if self.reads is not None and self._client is None:
                rows = self.reads.get("/containers/json", {
                    "limit": -1, "all": 1, "size": 0, "trunc_cmd": 0,
                    "filters": _filters({"label": wanted})})
            else:
                rows = self.client.api.containers(all=True, filters={"label": wanted})
        return [ContainerFact(
            str(r["Id"]), str((r.get("Names") or ["/"])[0]).lstrip("/"), str(r.get("Image", "")),
            str(r.get("State", "")), dict(r.get("Labels") or {}),
            tuple(sorted({int(p["PublicPort"]) for p in r.get("Ports") or []
                          if p.get("PublicPort")})), _volumes(r)) for r in rows]

    def volume_list(self, labels: Mapping[str, str | None] | None = None) -> list[str]:
        """Names of the named volumes (with every label in ``labels``, if given)."""
        filters = ({"label": [k if v is None else f"{k}={v}" for k, v in labels.items()]}
                   if labels else None)
        with self._translate("list volumes"):
            data = self.client.api.volumes(filters=filters)
        return sorted(str(v["Name"]) for v in (data or {}).get("Volumes") or [])

    def network_subnets(self) -> dict[str, list[str]]:
        """``{network name: [its IPv4 subnets]}`` (``docker network ls`` with IPAM), which a
        new network must not overlap: Docker's IPAM refuses one that does ("Pool overlaps
        with other one on this address space", 403)."""
        with self._translate("list networks"):
            if self.reads is not None and self._client is None:
                rows = self.reads.get("/networks", {"filters": _filters({})})
            else:
                rows = self.client.api.networks()
        return {str(n.get("Name", "")): [str(c["Subnet"]) for c in
                                         ((n.get("IPAM") or {}).get("Config") or [])
                                         if c.get("Subnet") and ":" not in str(c["Subnet"])]
                for n in rows or []}

    def container_logs(self, name: str, tail: int | None = None) -> str:
        """What the container wrote to stdout and stderr (the last ``tail`` lines)."""
        with self._translate(f"docker logs {name}"):
            data = self.client.api.logs(name, stdout=True, stderr=True,
                                        tail="all" if tail is None else tail)
        return data.decode(errors="replace") if isinstance(data, bytes) else str(data)

    # -- changes -------------------------------------------------------------------------

    def image_pull(self, ref: str) -> None:
        """``docker pull ref``: reads the progress stream to its end; an error line in it
        (unknown image, no access) becomes CommandFailed with the last lines."""
        repository, tag = split_tag(ref)
        what = f"docker pull {ref}"
        with self._translate(what):
            stream = self.client.api.pull(repository, tag=tag, stream=True, decode=True)
            self._progress(what, stream)

    def container_create(self, name: str, image: str, *, command: Sequence[str] = (),
                         env: Mapping[str, str] | None = None,
                         labels: Mapping[str, str] | None = None,
                         ports: Sequence[PortBinding] = (), mounts: Sequence[Mount] = (),
                         restart: str = "unless-stopped",
                         extra_hosts: Sequence[str] = ()) -> str:
        """``docker create --name NAME ...``; returns the container id. Named volumes that do
        not exist yet are created by the engine, as ``docker run -v NAME:/path`` does."""
        bindings: dict[int | str, Any] = {}
        for p in ports:
            bindings.setdefault(p.key, []).append((p.host_ip, p.host_port))
        import docker.types  # lazy: the SDK, loaded with the client this verb uses

        with self._translate(f"create container {name}"):
            api = self.client.api
            host_config = api.create_host_config(
                port_bindings=bindings or None,
                mounts=[docker.types.Mount(m.target, m.source, type=m.kind,  # type: ignore[arg-type]
                                           read_only=m.read_only) for m in mounts] or None,
                restart_policy={"Name": restart} if restart != "no" else None,
                extra_hosts=list(extra_hosts) or None)
            data = api.create_container(
                image, command=list(command) or None, name=name,
                environment=dict(env or {}) or None, labels=dict(labels or {}),
                ports=[(p.container_port, p.protocol) for p in ports] or None,
                host_config=host_config)
        return str(data["Id"])

    def container_start(self, name: str) -> None:
        """``docker start NAME``. A host port held by something else becomes
        :class:`PortInUse`, naming the port."""
        try:
            with self._translate(f"start container {name}"):
                self.client.api.start(name)
        except CommandFailed as exc:
            port = _port_in_use(exc.message)
            if port is None:
                raise
            raise PortInUse(
                f"could not start container {name}: host port {port} is already in use "
                "(by another program or container)", port,
                hint=f"stop what listens there (`ss -ltnp 'sport = :{port}'`, `docker ps`), or "
                "publish the container on another host port in devslice.yaml") from exc

    def container_run(self, name: str, image: str, **kwargs: Any) -> str:
        """Create and start (``docker run -d``); the image is pulled first if missing."""
        if self.image_get(image) is None:
            self.image_pull(image)
        cid = self.container_create(name, image, **kwargs)
        self.container_start(name)
        return cid

    def container_remove(self, name: str) -> None:
        """``docker rm -f NAME``; named volumes are kept (their data outlives the container)."""
        with self._translate(f"remove container {name}"), suppress(_sdk_errors().NotFound):
            self.client.api.remove_container(name, force=True, v=False)

    def container_stop(self, name: str, timeout: int = 10) -> None:
        """``docker stop NAME``: with ``unless-stopped`` it stays stopped until started."""
        with self._translate(f"stop container {name}"):
            self.client.api.stop(name, timeout=timeout)

    def volume_ensure(self, name: str, labels: Mapping[str, str]) -> bool:
        """``docker volume create NAME`` with ``labels`` unless it exists (then it is left as
        it is); returns whether it was created."""
        with self._translate(f"create volume {name}"):
            try:
                self.client.api.inspect_volume(name)
                return False
            except _sdk_errors().NotFound:
                self.client.api.create_volume(name, labels=dict(labels))
                return True

    def volume_remove(self, name: str) -> None:
        """``docker volume rm NAME``; a volume already gone is fine."""
        with self._translate(f"remove volume {name}"), suppress(_sdk_errors().NotFound):
            self.client.api.remove_volume(name)

    def container_exec(self, name: str, argv: Sequence[str], keep_output: str | None = None
                       ) -> ExecResult:
        """``docker exec NAME ARGV...``: waits for it to end; returns its exit code and output.
        A non-zero exit is a result, not an error: callers decide what it means.

        Engine 20.10 can lose the output of an exec that ends at once under load (about 1 in
        200 on a loaded 2-core machine; moby issues 27289 and 20951): the exit code is right
        but the stream is empty. With ``keep_output`` (a path in the container) ARGV runs under
        ``sh`` with its output also written to that file, and a failing run's output is read
        back from the file (``docker cp``), which the engine cannot lose. A container without
        ``sh`` (exit 126/127 and no file) runs ARGV as it is."""
        if keep_output is None:
            return self._exec(name, argv)
        result = self._exec(name, ["sh", "-c", KEEP_OUTPUT, keep_output, *argv])
        if result.exit_code == 0:
            return result
        kept = self.container_read_file(name, keep_output)
        if kept is None:
            if result.exit_code in (126, 127):  # no sh (or no /tmp): ARGV never ran
                return self._exec(name, argv)
            return result
        return ExecResult(result.exit_code, kept.decode(errors="replace"))

    def _exec(self, name: str, argv: Sequence[str]) -> ExecResult:
        with self._translate(f"docker exec {name} {argv[0] if argv else ''}".rstrip()):
            api = self.client.api
            exec_id = api.exec_create(name, list(argv), stdout=True, stderr=True)["Id"]
            output = api.exec_start(exec_id)
            info = api.exec_inspect(exec_id)
        text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
        code = info.get("ExitCode")
        return ExecResult(-1 if code is None else int(code), text)

    def container_read_file(self, name: str, path: str) -> bytes | None:
        """A regular file's content, copied out of the container (``docker cp NAME:PATH -``);
        None when there is no such file."""
        with self._translate(f"docker cp {name}:{path}"):
            try:
                stream, _ = self.client.api.get_archive(name, path)
                data = b"".join(stream)
            except _sdk_errors().NotFound:
                return None
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            handle = tar.extractfile(member) if member is not None else None
            return handle.read() if handle is not None else None

    def image_build(self, context_dir: str | os.PathLike[str], dockerfile: str, tag: str,
                    build_args: Mapping[str, str] | None = None) -> str:
        """Build ``context_dir`` (``.dockerignore`` honoured by the SDK) as ``tag``; returns the
        image id. ``dockerfile`` is relative to the context, as in compose files."""
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        image_id: str | None = None
        error: str | None = None
        what = f"docker build of {tag}"
        with self._translate(what):
            # rm=True removes intermediate containers after a successful build, as `docker
            # build` does; forcerm also after a failed RUN, which would leave its stopped
            # container behind on every failing `up` (seen on a real engine, issue 13).
            stream = self.client.api.build(path=os.fspath(context_dir), dockerfile=dockerfile,
                                           tag=tag, buildargs=dict(build_args or {}), rm=True,
                                           forcerm=True, decode=True)
            for chunk in _chunks(stream):
                error = error or _error(chunk)
                text = chunk.get("stream")
                if isinstance(text, str):
                    self._emit(text, tail)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    # The classic builder emits one aux ID per stage (moby emitImageID); the
                    # last one is the image that was tagged.
                    image_id = str(aux["ID"])
        if error is not None:
            raise _failed(what, error, tail)
        if image_id is None:
            # Engines before API 1.30 send no aux ID, only "Successfully built <short id>".
            image_id = _successfully_built(tail)
        if image_id is None:
            raise CommandFailed(f"{what} ended without an image id:\n" + "\n".join(tail))
        return image_id

    def image_tag(self, image: str, repository: str, tag: str) -> None:
        with self._translate(f"docker tag {image} {repository}:{tag}"):
            self.client.api.tag(image, repository, tag)

    def image_push(self, repository: str, tag: str) -> str | None:
        """Push ``repository:tag``; returns the manifest digest the engine reports."""
        what = f"docker push {repository}:{tag}"
        with self._translate(what):
            # An empty auth header: Docker Engine 28.3.3+ refuses a push without one, even to
            # a registry that needs no login (moby issue 50614); `docker login`'s credentials
            # where there are some (cluster.kube.registry, e.g. ACR after `az acr login`).
            stream = self.client.api.push(repository, tag=tag, stream=True, decode=True,
                                          auth_config=_login_for(repository))
            aux = self._progress(what, stream)
        return str(aux["Digest"]) if "Digest" in aux else None

    # -- helpers -------------------------------------------------------------------------

    def _progress(self, what: str, stream: Any) -> dict[str, Any]:
        """Read a pull or push progress stream to its end (a half-read one leaks its
        connection); returns the last ``aux`` object. An error line in it becomes
        CommandFailed with the last lines of output."""
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        error: str | None = None
        aux: dict[str, Any] = {}
        for chunk in _chunks(stream):
            error = error or _error(chunk)
            status = chunk.get("status")
            # Per-layer byte counts (a status with progressDetail) come by the hundred; they
            # would crowd the tail shown on failure.
            if isinstance(status, str) and status and not chunk.get("progressDetail"):
                layer = chunk.get("id")
                self._emit(f"{layer}: {status}" if layer else status, tail)
            if isinstance(chunk.get("aux"), dict):
                aux = chunk["aux"]
        if error is not None:
            raise _failed(what, error, tail)
        return aux

    def _emit(self, text: str, tail: deque[str]) -> None:
        for line in text.splitlines():
            if line.strip():
                tail.append(line)
                self.on_output(line)

    @contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        """SDK, requests and httpx2 exceptions become DevsliceErrors where they leave the
        adapter."""
        try:
            yield
        except DevsliceError:
            raise
        except Exception as exc:
            error = self._engine_error(what, exc)
            if error is None:
                raise
            raise error from exc

    def _engine_error(self, what: str, exc: Exception) -> DevsliceError | None:
        not_running = ToolMissing(f"could not {what}: the Docker engine is not running "
                                  f"(nothing answers at {self._where()})", hint=START_DOCKER)
        late = CommandFailed(f"could not {what}: the Docker engine did not answer in time")
        if "requests" in sys.modules:  # an error of the SDK's (which loads requests)
            import docker.errors  # lazy: loaded already (the SDK raised this)
            import requests  # lazy: loaded already (the SDK raised this)

            if isinstance(exc, requests.exceptions.ConnectionError):
                return not_running  # the SDK lets requests' errors through unwrapped
            if isinstance(exc, requests.exceptions.Timeout):
                return late
            if isinstance(exc, docker.errors.APIError):
                return CommandFailed(f"{what} failed: the Docker engine answered "
                                     f"{exc.status_code}: {exc.explanation or exc}")
            if isinstance(exc, docker.errors.DockerException | requests.exceptions
                          .RequestException):
                return CommandFailed(f"{what} failed: {exc}")  # bad tag or arguments
        if "httpx2" in sys.modules:  # an error of EngineReads'
            import httpx2  # lazy: loaded already (EngineReads raised this)

            if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
                return not_running
            if isinstance(exc, httpx2.TimeoutException):
                return late
            if isinstance(exc, httpx2.HTTPError):
                return CommandFailed(f"{what} failed: {exc}")
        if isinstance(exc, EngineAnswered):
            return CommandFailed(f"{what} failed: the Docker engine answered "
                                 f"{exc.status_code}: {exc.explanation or exc}")
        if isinstance(exc, OSError):  # an unreadable build context file
            return CommandFailed(f"{what} failed: {exc}")
        return None

    def _where(self) -> str:
        if self.reads is not None and self._client is None:
            return self.reads.where
        url = str(getattr(self.client.api, "base_url", ""))
        # Unix sockets and named pipes show up as http+docker://localhost; say what they are.
        return "the local Docker socket" if url.startswith("http+docker://") else url


def _container_fact(data: Mapping[str, Any]) -> ContainerFact:
    config = data.get("Config") or {}
    ports = ((data.get("HostConfig") or {}).get("PortBindings") or {}).values()
    host_ports = {int(b["HostPort"]) for bs in ports for b in bs or [] if b.get("HostPort")}
    return ContainerFact(str(data["Id"]), str(data.get("Name", "")).lstrip("/"),
                         str(config.get("Image", "")),
                         str((data.get("State") or {}).get("Status", "")),
                         dict(config.get("Labels") or {}), tuple(sorted(host_ports)),
                         _volumes(data))


def _volumes(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Named volumes among a container's ``Mounts`` (inspect and list report them alike)."""
    return tuple(sorted({str(m["Name"]) for m in data.get("Mounts") or []
                         if m.get("Type") == "volume" and m.get("Name")}))


# moby: "Bind for 0.0.0.0:27017 failed: port is already allocated" (another container) and
# "listen tcp4 0.0.0.0:27017: bind: address already in use" (another program)
_PORT_IN_USE = re.compile(r"(?:Bind for|listen tcp[46]?) \[?[0-9a-fA-F.:]*\]?:(\d+):? "
                          r"(?:failed: port is already allocated|bind: address already in use)")


def _port_in_use(message: str) -> int | None:
    match = _PORT_IN_USE.search(message)
    return int(match.group(1)) if match else None


def _chunks(stream: Any) -> Iterator[dict[str, Any]]:
    # With decode=True the SDK yields dicts; a non-chunked answer (an error before any output)
    # arrives as one decoded value, and APIError is raised while iterating. The stream is always
    # read to its end, even after an error line: the engine closes it right after, and a
    # half-read response would leave its connection neither reusable nor closed.
    for chunk in stream:
        if isinstance(chunk, dict):
            yield chunk


def _error(chunk: dict[str, Any]) -> str | None:
    """The message of an error line (``errorDetail``, or the legacy ``error`` field)."""
    if "error" not in chunk and "errorDetail" not in chunk:
        return None
    detail = chunk.get("errorDetail")
    message = detail.get("message") if isinstance(detail, dict) else None
    return str(message or chunk.get("error") or "unknown error")


def _failed(what: str, message: str, tail: deque[str]) -> CommandFailed:
    shown = "\n".join(f"  {line}" for line in tail)
    return CommandFailed(f"{what} failed: {message}" + (f"\n{shown}" if shown else ""))


_BUILT = re.compile(r"^Successfully built ([0-9a-f]+)$")


def _successfully_built(lines: deque[str]) -> str | None:
    for line in reversed(lines):
        match = _BUILT.match(line.strip())
        if match:
            return match.group(1)
    return None


def _login_for(repository: str) -> dict[str, Any]:
    """The credentials `docker login` stored for a repository's registry, or none."""
    from docker import auth  # lazy: only to log in to a registry

    registry, _ = auth.resolve_repository_name(repository)
    try:
        return dict(auth.load_config().resolve_authconfig(registry) or {})
    except Exception:  # a broken credential helper: push without, the engine says why
        return {}
