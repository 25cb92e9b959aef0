"""WSL and Docker Desktop: detected from what the machine says, and the known failure points
checked, each with its fix (issue 16). Inputs are read by :func:`read_inputs` and handed to
:func:`platform_checks`, so tests simulate any machine.

- WSL: ``/proc/version`` names ``microsoft`` (``WSL2`` for version 2, whose kernel Docker
  and k3d need); a checkout under ``/mnt/<drive>`` is on the Windows file system, where
  bind mounts and builds are slow and file watching misses changes.
- Docker Desktop: ``docker info`` says ``OperatingSystem: Docker Desktop``. Its engine runs in
  a VM: the k3d network's gateway (``LOCAL_DEV_HOST_ADDRESS``) lives there, and after the
  machine sleeps pods may stop reaching it; its CLI context is ``desktop-linux``, and a CLI
  pointed at another context (or a stray ``DOCKER_HOST``) builds and runs on another engine.
- Everywhere, and on Windows-born configs above all: a build context written as a Windows
  path (``C:\\src\\orders``, backslashes) is not a path the Linux side can open.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devslice.adapters.runner import SubprocessRunner
from devslice.errors import DevsliceError
from devslice.facts.tools import docker_config_dir, docker_endpoint

DESKTOP_CONTEXT = "desktop-linux"
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]|\\")


@dataclass(frozen=True)
class PlatformInputs:
    proc_version: str | None  # /proc/version, None where there is none
    docker_info: Mapping[str, Any] | None  # `docker info --format {{json .}}`, None: no engine
    docker_context: str  # the context the CLI resolves (facts.tools.docker_endpoint)
    docker_source: str  # why that one ("DOCKER_HOST", "the current context in ...")
    contexts: Sequence[str] = ()  # the CLI's contexts (names in ~/.docker/contexts/meta)
    base_dir: Path = Path(".")  # the checkout (devslice.yaml's folder)
    build_contexts: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (image, ctx)
    gateway: str | None = None  # the k3d network's gateway kept for this checkout, if any


def _row(name: str, ok: bool, version: str | None, problem: str | None, fix: str | None,
         needed_for: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "found": True, "version": version, "problem": problem,
            "fix": fix, "neededFor": needed_for}


def platform_checks(inputs: PlatformInputs) -> list[dict[str, Any]]:
    """Doctor rows for WSL and Docker Desktop (none on a machine that is neither, except
    Windows paths in build contexts, wrong everywhere)."""
    wsl = "microsoft" in (inputs.proc_version or "").lower()
    return [*(_wsl_rows(inputs) if wsl else []), *_desktop_rows(inputs, wsl),
            *_path_rows(inputs)]


def _wsl_rows(inputs: PlatformInputs) -> list[dict[str, Any]]:
    wsl2 = "wsl2" in (inputs.proc_version or "").lower()
    checkout = str(inputs.base_dir.resolve())
    on_windows = re.match(r"^/mnt/[a-z](/|$)", checkout) is not None
    return [
        _row("wsl", wsl2, "WSL 2" if wsl2 else "WSL 1",
             None if wsl2 else "WSL 1 has no Linux kernel: Docker and k3d need WSL 2",
             None if wsl2 else "in PowerShell: `wsl --set-version <distro> 2`",
             "Docker and k3d under Windows"),
        _row("wsl file system", True, checkout,
             f"the checkout is on the Windows drive ({checkout}): builds, bind mounts and "
             "file watching are slow or miss changes there" if on_windows else None,
             "clone it inside WSL (e.g. ~/src) and open it from there (`code .`, Rider's WSL "
             "support)" if on_windows else None, "builds and bind mounts")]


def _desktop_rows(inputs: PlatformInputs, wsl: bool) -> list[dict[str, Any]]:
    info = inputs.docker_info or {}
    ctx = inputs.docker_context
    if info.get("OperatingSystem") != "Docker Desktop":
        if inputs.docker_info is None and DESKTOP_CONTEXT in inputs.contexts \
                and ctx != DESKTOP_CONTEXT:
            return [_row(
                "docker desktop", False, f"context {ctx}",
                f"Docker Desktop is installed (context {DESKTOP_CONTEXT}) but the CLI uses "
                f"{inputs.docker_source} (context {ctx}), where no engine answers",
                f"start Docker Desktop and `docker context use {DESKTOP_CONTEXT}`",
                "images, k3d and emulator containers")]
        return []
    wrong = ctx not in (DESKTOP_CONTEXT, "default") or inputs.docker_source == "DOCKER_HOST"
    return [
        _row("docker desktop", not wrong,
             f"engine {info.get('ServerVersion', '?')}, context {ctx}",
             f"the CLI uses {inputs.docker_source} (context {ctx}), not Docker Desktop's "
             f"context {DESKTOP_CONTEXT}: builds and k3d may land on another engine"
             if wrong else None,
             f"`docker context use {DESKTOP_CONTEXT}` (and unset DOCKER_HOST)" if wrong else None,
             "images, k3d and emulator containers"),
        # A warning (ok, with its fix): no doctor run can see what sleep will do.
        _row("gateway after sleep", True, inputs.gateway or "LOCAL_DEV_HOST_ADDRESS",
             "Docker Desktop keeps the k3d network's gateway (LOCAL_DEV_HOST_ADDRESS) inside "
             "its VM: after sleep or a network change pods may stop reaching this machine's "
             "emulators there",
             "if `devslice verify` then fails from pods: restart Docker Desktop"
             + (" (`wsl --shutdown` first, under WSL)" if wsl else "")
             + ", then `devslice up` (the subnet is kept, so the address stays)",
             "pods reaching this machine")]


def _path_rows(inputs: PlatformInputs) -> list[dict[str, Any]]:
    bad = [(image, ctx) for image, ctx in inputs.build_contexts if _WINDOWS_PATH.search(ctx)]
    if not bad:
        return []
    return [_row(
        "build contexts", False, None,
        "Windows paths in images[].context, which Docker on Linux (WSL, Docker Desktop's VM) "
        "cannot open: " + ", ".join(f"{i}: {c}" for i, c in bad),
        "write them relative to devslice.yaml with forward slashes (e.g. services/orders)",
        "building images")]


def read_inputs(base_dir: Path, build_contexts: Sequence[tuple[str, str]],
                gateway: str | None = None) -> PlatformInputs:
    """This machine's inputs: /proc/version, `docker info`, the CLI's contexts."""
    try:
        proc_version: str | None = Path("/proc/version").read_text(errors="replace")
    except OSError:
        proc_version = None
    info: dict[str, Any] | None = None
    try:
        done = SubprocessRunner().run(["docker", "info", "--format", "{{json .}}"],
                                      check=False, timeout=10)
        if done.returncode == 0:
            parsed = json.loads(done.stdout or "null")
            info = parsed if isinstance(parsed, dict) else None
    except (DevsliceError, ValueError):
        info = None
    try:
        endpoint = docker_endpoint()
        context, source = endpoint.context, endpoint.source
    except DevsliceError:
        context, source = "?", "an unreadable Docker config"
    contexts = []
    meta = docker_config_dir(os.environ) / "contexts" / "meta"
    for f in sorted(meta.glob("*/meta.json")) if meta.is_dir() else []:
        try:
            contexts.append(str(json.loads(f.read_text(encoding="utf-8"))["Name"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return PlatformInputs(proc_version, info, context, source, contexts, base_dir,
                          tuple(build_contexts), gateway)
