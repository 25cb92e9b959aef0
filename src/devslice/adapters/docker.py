"""The Docker Engine, through the official Docker SDK (``docker`` package, 7.x).

Verbs mirror the engine's own: ``image_build``, ``image_push``, ``image_tag``, and the facts
``image_get``, ``ping``, ``version``. The SDK client is passed in (``connect()`` builds the real
one), so tests point it at :class:`devslice.testing.dockerapi.FakeDockerEngine`.

Build and push answer with a stream of JSON lines and report failure *inside* that stream with
HTTP 200 once output has started (moby ``postBuild``/``postImagesPush`` write an ``errorDetail``
line after the first flush), so both verbs read the whole stream and turn such lines into
:class:`CommandFailed` with the last lines of output.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests

from devslice.errors import CommandFailed, ToolMissing

START_DOCKER = "start Docker Desktop, or the engine with `sudo systemctl start docker`"
TAIL_LINES = 15  # build output shown when a build fails

Output = Callable[[str], None]


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


def build_call(tag: str, dockerfile: str, build_args: Mapping[str, str]) -> str:
    """The ``POST /build`` that :meth:`Docker.image_build` sends, for plans (query unencoded).

    The SDK also sends its boolean defaults (``q``, ``nocache``, ``pull``...) and, like the
    docker CLI, proxy settings from ``~/.docker/config.json`` as extra build args; those are
    left out here because they do not depend on the image.
    """
    query = f"t={tag}&dockerfile={dockerfile}&rm=True"
    if build_args:
        query += f"&buildargs={json.dumps(dict(build_args))}"
    return f"POST /build?{query}"


def push_call(repository: str, tag: str) -> str:
    """The ``POST /images/{name}/push`` that :meth:`Docker.image_push` sends."""
    return f"POST /images/{repository}/push?tag={tag}"


def connect(base_url: str | None = None, *, timeout: int = 600) -> Docker:
    """The real engine: ``DOCKER_HOST`` and friends, or ``base_url`` (``tcp://``, ``unix://``).

    The SDK asks the engine for its API version while constructing the client, so an engine
    that is not running fails here already.
    """
    try:
        client = (docker.DockerClient(base_url=base_url, timeout=timeout) if base_url
                  else docker.from_env(timeout=timeout))
    except docker.errors.DockerException as exc:
        raise ToolMissing(f"the Docker engine is not running or cannot be reached: {exc}",
                          hint=START_DOCKER) from exc
    return Docker(client)


class Docker:
    """One Docker Engine. ``on_output`` receives build and push progress as text lines."""

    def __init__(self, client: docker.DockerClient, on_output: Output | None = None) -> None:
        self.client = client
        self.on_output: Output = on_output or (lambda line: None)

    # -- facts ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connection pool (the CLI closes adapters when a command ends)."""
        self.client.close()

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
            except docker.errors.NotFound:  # ImageNotFound is a NotFound
                return None
        return ImageFact(str(data["Id"]), tuple(data.get("RepoTags") or ()))

    # -- changes -------------------------------------------------------------------------

    def image_build(self, context_dir: str | os.PathLike[str], dockerfile: str, tag: str,
                    build_args: Mapping[str, str] | None = None) -> str:
        """Build ``context_dir`` (``.dockerignore`` honoured by the SDK) as ``tag``; returns the
        image id. ``dockerfile`` is relative to the context, as in compose files."""
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        image_id: str | None = None
        error: str | None = None
        what = f"docker build of {tag}"
        with self._translate(what):
            # rm=True removes intermediate containers, as `docker build` does by default.
            stream = self.client.api.build(path=os.fspath(context_dir), dockerfile=dockerfile,
                                           tag=tag, buildargs=dict(build_args or {}), rm=True,
                                           decode=True)
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
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        digest: str | None = None
        error: str | None = None
        what = f"docker push {repository}:{tag}"
        with self._translate(what):
            stream = self.client.api.push(repository, tag=tag, stream=True, decode=True)
            for chunk in _chunks(stream):
                error = error or _error(chunk)
                status = chunk.get("status")
                # Per-layer byte counts ("Pushing" with a progressDetail) come by the hundred;
                # they would crowd the tail shown on failure.
                if isinstance(status, str) and status and not chunk.get("progressDetail"):
                    layer = chunk.get("id")
                    self._emit(f"{layer}: {status}" if layer else status, tail)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "Digest" in aux:
                    digest = str(aux["Digest"])
        if error is not None:
            raise _failed(what, error, tail)
        return digest

    # -- helpers -------------------------------------------------------------------------

    def _emit(self, text: str, tail: deque[str]) -> None:
        for line in text.splitlines():
            if line.strip():
                tail.append(line)
                self.on_output(line)

    @contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        """docker and requests exceptions become DevsliceErrors where they leave the adapter."""
        try:
            yield
        except requests.exceptions.ConnectionError as exc:
            # The SDK lets requests' errors through unwrapped when nothing listens.
            raise ToolMissing(f"could not {what}: the Docker engine is not running "
                              f"(nothing answers at {self._where()})", hint=START_DOCKER) from exc
        except requests.exceptions.Timeout as exc:
            raise CommandFailed(f"could not {what}: the Docker engine did not answer in "
                                "time") from exc
        except docker.errors.APIError as exc:
            reason = exc.explanation or str(exc)
            raise CommandFailed(f"{what} failed: the Docker engine answered "
                                f"{exc.status_code}: {reason}") from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException,
                OSError) as exc:
            # DockerException: bad tag or arguments; OSError: unreadable build context file.
            raise CommandFailed(f"{what} failed: {exc}") from exc

    def _where(self) -> str:
        url = str(getattr(self.client.api, "base_url", ""))
        # Unix sockets and named pipes show up as http+docker://localhost; say what they are.
        return "the local Docker socket" if url.startswith("http+docker://") else url


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
