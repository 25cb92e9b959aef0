"""Which external programs are installed, and their versions.

Each probe runs the tool's own version command with a short timeout; the runner is
injectable so tests can hand in fake executables on a PATH of their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from devslice.adapters.runner import CommandRunner, SubprocessRunner
from devslice.errors import DevsliceError, ToolMissing


@dataclass(frozen=True)
class Tool:
    name: str
    argv: tuple[str, ...]  # the version command, argv[0] looked up on PATH
    required: bool
    needed_for: str
    fix: str
    minimum: tuple[int, ...] | None = None  # the oldest version devslice works with


@dataclass(frozen=True)
class ToolFact:
    tool: Tool
    path: str | None
    version: str | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.path is not None and self.problem is None


TOOLS: tuple[Tool, ...] = (
    Tool("python", (sys.executable, "--version"), True, "devslice itself",
         "install Python 3.11 or newer", minimum=(3, 11)),
    Tool("node", ("node", "--version"), True, "Azurite (the storage emulator)",
         "install Node.js 20 or newer: https://nodejs.org", minimum=(20,)),
    Tool("docker", ("docker", "version", "--format", "{{.Client.Version}}"), False,
         "the k3d runtime and emulator containers",
         "install Docker Desktop or Docker Engine; without it devslice runs services as "
         "local processes"),
    Tool("docker engine", ("docker", "info", "--format", "{{.ServerVersion}}"), False,
         "building images, k3d and emulator containers",
         "start Docker Desktop, or the engine with `sudo systemctl start docker`"),
    Tool("k3d", ("k3d", "version"), False, "the local Kubernetes cluster",
         "install k3d 5.x: https://k3d.io (e.g. `curl -s https://raw.githubusercontent.com/"
         "k3d-io/k3d/main/install.sh | bash`)"),
    Tool("kubectl", ("kubectl", "version", "--client", "-o", "json"), False,
         "inspecting the cluster by hand",
         "install kubectl: https://kubernetes.io/docs/tasks/tools/"),
    Tool("mirrord", ("mirrord", "--version"), False, "`devslice debug`",
         "install mirrord: `curl -fsSL https://raw.githubusercontent.com/metalbear-co/"
         "mirrord/main/scripts/install.sh | bash`"),
)

_VERSION = re.compile(r"v?(\d+\.\d+(?:\.\d+)?)")


def _parse(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _first_line(*texts: str | None) -> str | None:
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return None


def probe(tool: Tool, path_env: str | None = None, timeout: float = 10.0,
          runner: CommandRunner | None = None) -> ToolFact:
    """Run the tool's version command. A non-zero exit is a problem even when the output
    holds something like a version ("client version 1.52 is too new"), and so is a version
    older than the tool's minimum."""
    exe = tool.argv[0] if os.path.isabs(tool.argv[0]) else shutil.which(tool.argv[0],
                                                                         path=path_env)
    if exe is None:
        return ToolFact(tool, None, None, f"{tool.name} is not on PATH")
    try:
        done = (runner or SubprocessRunner()).run([exe, *tool.argv[1:]], check=False,
                                                  timeout=timeout)
    except DevsliceError as exc:
        return ToolFact(tool, exe, None, f"`{tool.name}` did not answer: {exc.message}")
    if done.returncode != 0:
        # The error is usually on stderr (docker: "Cannot connect to the Docker daemon").
        why = _first_line(done.stderr, done.stdout) or f"exit status {done.returncode}"
        return ToolFact(tool, exe, None, f"`{' '.join(tool.argv)}` failed: {why}")
    text = (done.stdout or "") + (done.stderr or "")
    match = _VERSION.search(text)
    version = match.group(1) if match else text.strip()[:40]
    if tool.minimum is not None:
        wanted = ".".join(map(str, tool.minimum))
        if match is None:
            return ToolFact(tool, exe, version or None,
                            f"cannot tell the {tool.name} version (need {wanted} or newer) from "
                            f"`{' '.join(tool.argv)}`: {_first_line(text) or 'no output'}")
        if _parse(version) < tool.minimum:
            return ToolFact(tool, exe, version,
                            f"{tool.name} {version} is too old: devslice needs {wanted} or newer")
    return ToolFact(tool, exe, version, None)


def probe_all(tools: Iterable[Tool], path_env: str | None = None) -> list[ToolFact]:
    tools = list(tools)
    with ThreadPoolExecutor(max_workers=len(tools) or 1) as pool:
        return list(pool.map(lambda t: probe(t, path_env), tools))


# -- which Docker engine (issue 13, item 1) ------------------------------------------------

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
            from urllib.parse import urlsplit

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
