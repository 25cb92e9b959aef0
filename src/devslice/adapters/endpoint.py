"""Which Docker engine devslice talks to, resolved as the Docker CLI resolves it
(``DOCKER_HOST``, ``DOCKER_CONTEXT``, the current context; issue 13), once per command, and
handed to docker-py, the registry check and k3d alike."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devslice.errors import ToolMissing

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class DockerEndpoint:
    """The engine the Docker CLI would talk to, resolved once per command and handed to
    docker-py, the registry check and k3d alike (so none of them picks another engine)."""

    host: str  # unix:///..., tcp://host:2376, ssh://user@host, npipe:////./pipe/...
    context: str  # "default", or the name of a Docker context
    source: str  # why this one, for doctor and error messages
    tls_dir: str | None = None  # ca.pem, cert.pem, key.pem (a context's TLS store)
    tls_verify: bool = False

    def env(self) -> dict[str, str]:
        """What a child process (k3d) needs to reach the same engine: its own resolution
        would re-read the context, so DOCKER_HOST is set, and DOCKER_CONTEXT cleared."""
        out = {"DOCKER_HOST": self.host, "DOCKER_CONTEXT": ""}
        if self.tls_dir:
            out["DOCKER_CERT_PATH"] = self.tls_dir
            out["DOCKER_TLS_VERIFY"] = "1" if self.tls_verify else ""
        return out

    @property
    def machine(self) -> str:
        """Where the engine publishes ports: this machine for a socket or pipe, else the
        host of a tcp:// or ssh:// endpoint (the registry check goes there)."""
        if self.host.startswith(("tcp://", "ssh://", "http://", "https://")):
            from urllib.parse import urlsplit  # lazy: only for a remote engine

            return urlsplit(self.host).hostname or "localhost"
        return "localhost"


def docker_config_dir(environ: Mapping[str, str]) -> Path:
    """``$DOCKER_CONFIG`` or ``~/.docker``, as the Docker CLI reads it."""
    found = environ.get("DOCKER_CONFIG")
    return Path(found) if found else Path(environ.get("HOME") or Path.home()) / ".docker"


def docker_endpoint(environ: Mapping[str, str] | None = None) -> DockerEndpoint:
    """Resolve the engine as the Docker CLI does (cli/command/cli.go ``resolveContextName``):
    ``DOCKER_HOST`` first, then ``DOCKER_CONTEXT``, then ``currentContext`` in
    ``config.json``, else the default socket. A named context is read from its meta store,
    ``contexts/meta/<sha256(name)>/meta.json``; a context that does not exist is an error, as
    in the CLI, never a silent fall-back to another engine."""
    environ = os.environ if environ is None else environ
    host = environ.get("DOCKER_HOST")
    if host:
        cert = environ.get("DOCKER_CERT_PATH")
        return DockerEndpoint(host, "default", "DOCKER_HOST", cert or None,
                              bool(environ.get("DOCKER_TLS_VERIFY")))
    config = docker_config_dir(environ)
    name = environ.get("DOCKER_CONTEXT")
    source = "DOCKER_CONTEXT"
    if not name:
        name = _current_context(config / "config.json")
        source = f"the current context in {config / 'config.json'}"
    if not name or name == "default":
        return DockerEndpoint(DEFAULT_DOCKER_HOST, "default",
                              "the default socket" if not name else source)
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest / "meta.json"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        endpoint = data["Endpoints"]["docker"]
        context_host = str(endpoint["Host"])
    except FileNotFoundError:
        raise ToolMissing(f"Docker context {name!r} (from {source}) does not exist: no "
                          f"{meta}", hint="`docker context ls` lists the contexts; "
                          "`docker context use NAME` picks one") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolMissing(f"cannot read Docker context {name!r} from {meta}: {exc}",
                          hint="`docker context inspect NAME` shows what the CLI makes of "
                          "it") from exc
    tls = config / "contexts" / "tls" / digest / "docker"
    return DockerEndpoint(context_host, name, f"context {name!r} ({source})",
                          str(tls) if tls.is_dir() else None,
                          tls.is_dir() and not endpoint.get("SkipTLSVerify", False))


def _current_context(config_json: Path) -> str | None:
    try:
        data = json.loads(config_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ToolMissing(f"cannot read {config_json}: {exc}",
                          hint="fix or remove it (the Docker CLI reads it too)") from exc
    name = data.get("currentContext") if isinstance(data, dict) else None
    return str(name) if name else None
