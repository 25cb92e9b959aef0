"""Which external programs are installed, and their versions.

Each probe runs the tool's own version command with a short timeout; the runner is
injectable so tests can hand in fake executables on a PATH of their own.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# Which Docker engine (issue 13, item 1): resolved in the adapters' package, named here too
# for the callers that probe tools and engines together.
from devslice.adapters.endpoint import (
    DEFAULT_DOCKER_HOST,
    DockerEndpoint,
    docker_config_dir,
    docker_endpoint,
)
from devslice.adapters.runner import CommandRunner, SubprocessRunner
from devslice.errors import DevsliceError


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



__all__ = ["DEFAULT_DOCKER_HOST", "TOOLS", "DockerEndpoint", "Tool", "ToolFact",
           "docker_config_dir", "docker_endpoint", "probe", "probe_all"]
