"""Debugging a service of the slice locally, inside the pod's context, through mirrord.

The seed article's last step, done by hand there: find the pod, write a mirrord config,
launch, hand off to the IDE. Here:

1. :func:`find_target` resolves the service's Deployment in the slice's namespace (a shared
   cluster's slice namespace, or any namespace of the developer's own k3d cluster) and checks
   that it has a running, ready pod; with none, the error lists every pod and its state.
2. :func:`mirrord_config` renders the config (target ``deployment/NAME``, so a saved IDE
   configuration outlives the next rollout, which replaces the pods; namespace, kube context,
   incoming traffic mirrored or stolen, environment include/exclude, file system mode, agent
   startup timeout) and :func:`write_config` puts it at ``.mirrord/<service>.mirrord.json``,
   where the IDE plugins look for ``*mirrord.json``.
3. :func:`run_session` runs ``mirrord exec -f CONFIG -- COMMAND``, with the consumer lease
   (``--exclusive``, :mod:`devslice.sdk.leases`) held while it runs, and returns the child's
   exit code. :func:`vscode_launch` and :func:`jetbrains_run` write IDE configurations instead
   (Python, Node and .NET: ``dotnet run``; Rider is a JetBrains IDE).

Facts (reading the cluster) and rendering are separate, so each is testable on its own.

    DebugError
    ├── ServiceNotFound   no Deployment of that name in the slice
    └── NoRunningPod      the Deployment has no running, ready pod (pods and states listed)
    dotnet.DotnetProjectError  --ide: a ``dotnet`` command that names no launchable project
"""

from __future__ import annotations

import json
import os
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from devslice.adapters.kube import SLICE_LABEL, KubeError
from devslice.adapters.mirrord import FS_MODES
from devslice.dotnet import DotnetRun, parse_run
from devslice.errors import DevsliceError
from devslice.sdk.context import SliceContext
from devslice.sdk.leases import (
    DEFAULT_TTL,
    HOLDER_VARIABLE,
    SERVICE_VARIABLE,
    HeldLease,
    LeaseStore,
    default_holder,
    lease_name,
)

if TYPE_CHECKING:
    from devslice.adapters.kube import Kube
    from devslice.adapters.mirrord import Mirrord
    from devslice.project import Project

CONFIG_DIR = ".mirrord"
SIDECARS = frozenset({"istio-proxy", "linkerd-proxy", "mirrord-agent"})  # never the target
Ide = Literal["vscode", "jetbrains", "rider"]
IDES: tuple[Ide, ...] = ("vscode", "jetbrains", "rider")


class DebugError(DevsliceError):
    """`devslice debug` cannot start."""


class ServiceNotFound(DebugError):
    pass


class NoRunningPod(DebugError):
    pass


# -- facts: the pod to debug ---------------------------------------------------------------------

@dataclass(frozen=True)
class PodState:
    """One pod as `kubectl get pods` would summarise it."""

    name: str
    phase: str
    ready: bool
    terminating: bool = False
    reason: str | None = None  # a container's waiting/terminated reason
    created: str = ""  # metadata.creationTimestamp (RFC 3339, sorts as text)
    started: str = ""  # status.startTime

    @property
    def usable(self) -> bool:
        return self.phase == "Running" and self.ready and not self.terminating

    def __str__(self) -> str:
        if self.terminating:
            state = "Terminating"
        elif self.phase == "Running":
            state = "Running, ready" if self.ready else "Running, not ready"
        else:
            state = self.phase
        return f"{self.name}: {state}" + (f" ({self.reason})" if self.reason else "")


def pod_state(pod: Mapping[str, Any]) -> PodState:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    reason = None
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        found = (state.get("waiting") or {}).get("reason") or \
            (state.get("terminated") or {}).get("reason")
        if found:
            reason = found
            break
    return PodState(str(meta.get("name", "?")), str(status.get("phase") or "Unknown"), ready,
                    bool(meta.get("deletionTimestamp")), reason or status.get("reason"),
                    str(meta.get("creationTimestamp") or ""), str(status.get("startTime") or ""))


def newest_usable(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest running, ready pod: the one a new rollout made last, the one traffic goes to.
    Ties on creation time (one-second resolution) fall to the start time, then the name."""
    usable = [p for p in pods if pod_state(p).usable]
    if not usable:
        return None
    return max(usable, key=lambda p: (pod_state(p).created, pod_state(p).started,
                                      pod_state(p).name))


@dataclass(frozen=True)
class DebugTarget:
    """What mirrord attaches to: the service's Deployment (and container), with the pod that
    is its newest running, ready one now (for messages and the variables the pod sees)."""

    service: str
    namespace: str
    pod: str
    container: str | None  # named only when the pod has several
    pod_object: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)
    deployment: str = ""  # the Deployment's name; the service's when empty

    @property
    def path(self) -> str:
        """mirrord's target path, ``deployment/NAME[/container/NAME]`` (mirrord's
        config/src/target.rs). Not ``pod/NAME``: a rollout replaces the pod, and a saved IDE
        configuration naming it would go stale; mirrord resolves the Deployment to one of its
        pods when a session starts."""
        base = f"deployment/{self.deployment or self.service}"
        return f"{base}/container/{self.container}" if self.container else base



def find_deployment(kube: Kube, service: str, handle: str, namespace: str | None
                    ) -> dict[str, Any]:
    """The Deployment ``service`` of the slice: devslice-managed ones first (any namespace of
    a k3d cluster, or the slice's namespace), else one applied by hand in ``namespace``."""
    found = [d for d in kube.list_managed(namespace, {SLICE_LABEL: handle},
                                          kinds=[("apps/v1", "Deployment")])
             if d["metadata"]["name"] == service]
    if not found:
        by_hand = kube.get("apps/v1", "Deployment", service, namespace or "default")
        if by_hand is not None:
            found = [by_hand]
    where = f"namespace {namespace}" if namespace else "the cluster"
    if not found:
        others = sorted(d["metadata"]["name"] for d in kube.list_managed(
            namespace, {SLICE_LABEL: handle}, kinds=[("apps/v1", "Deployment")]))
        raise ServiceNotFound(
            f"no Deployment {service} of slice {handle} in {where}"
            + (f" (its Deployments: {', '.join(others)})" if others else ""),
            hint="`devslice status` shows what is deployed; `devslice up` deploys the "
                 "manifests")
    if len(found) > 1:
        spaces = ", ".join(sorted(d["metadata"]["namespace"] for d in found))
        raise ServiceNotFound(f"Deployment {service} exists in several namespaces: {spaces}",
                              hint="rename one of them; devslice debug needs one target")
    return found[0]


def find_target(kube: Kube, service: str, handle: str, namespace: str | None) -> DebugTarget:
    """The newest running, ready pod of the service's Deployment (see the module doc)."""
    dep = find_deployment(kube, service, handle, namespace)
    ns = dep["metadata"]["namespace"]
    selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not selector:
        raise DebugError(f"Deployment {service} in {ns} has no spec.selector.matchLabels",
                         hint="devslice finds pods by matchLabels; add them to the manifest")
    pods = kube.list_pods(ns, selector)
    pod = newest_usable(pods)
    if pod is None:
        states = sorted((pod_state(p) for p in pods), key=lambda s: s.name)
        listing = "".join(f"\n  {s}" for s in states) or "\n  (no pods)"
        raise NoRunningPod(f"Deployment {service} in {ns} has no running, ready pod:{listing}",
                           hint="`devslice status` shows why the service is not up; "
                                "`kubectl describe pod NAME -n " + ns + "` shows its events")
    return DebugTarget(service, ns, pod["metadata"]["name"], _container(service, dep, pod), pod,
                       deployment=dep["metadata"]["name"])


def _container(service: str, dep: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    """The container to debug, named when the pod has several (mirrord would pick one)."""
    # The container is chosen from the Deployment's pod template, which future pods follow
    # (injected sidecars appear in pods only, hence the pod's list as the fallback).
    template = (((dep.get("spec") or {}).get("template") or {}).get("spec") or {})
    containers = [c["name"] for c in template.get("containers") or []] or \
        [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    pod_containers = {c["name"] for c in (pod.get("spec") or {}).get("containers") or []}
    own = [c for c in containers if c not in SIDECARS]
    if len(set(containers) | pod_containers) > 1:
        return service if service in own else (own or containers)[0]
    return None


def event_variables(kube: Kube, target: DebugTarget, prefix: str) -> list[str]:
    """The contract's Event Hubs variables the target's container sees (its env and the
    ConfigMaps and Secrets of its envFrom): a sign that the service consumes events."""
    spec = target.pod_object.get("spec") or {}
    containers = spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == target.container),
                  containers[0] if containers else {})
    names = {e.get("name", "") for e in chosen.get("env") or []}
    for source in chosen.get("envFrom") or []:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if not ref or not ref.get("name"):
                continue
            try:
                obj = kube.get("v1", kind, ref["name"], target.namespace)
            except KubeError:
                continue  # no right to read a Secret: its keys stay unknown
            keys = list(((obj or {}).get("data") or {}).keys())
            names.update(source.get("prefix", "") + k for k in keys)
    return sorted(n for n in names if n.startswith(f"{prefix}EVENTHUBS_")
                  and not n.endswith(("_MODE", "_NAMESPACE", "_PARTITIONCOUNT")))


# -- rendering: the mirrord config ---------------------------------------------------------------

@dataclass(frozen=True)
class MirrordSettings:
    """What `devslice debug` lets a developer choose, with mirrord's defaults."""

    steal: bool = False  # steal incoming traffic instead of mirroring a copy
    env_include: tuple[str, ...] = ()  # only these remote variables
    env_exclude: tuple[str, ...] = ()  # all remote variables but these
    fs_mode: str = "read"  # mirrord's default: read remote files, write local ones
    agent_startup_timeout: int = 60  # seconds, mirrord's default
    kube_context: str | None = None
    env_override: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fs_mode not in FS_MODES:
            raise DebugError(f"file system mode {self.fs_mode!r} is not one of mirrord's",
                             hint=f"use one of: {', '.join(FS_MODES)}")
        if self.env_include and self.env_exclude:
            raise DebugError("environment include and exclude lists cannot both be given",
                             hint="mirrord takes one: include some variables, or all but some")
        if self.agent_startup_timeout <= 0:
            raise DebugError("the agent startup timeout must be positive seconds")


def mirrord_config(target: DebugTarget, settings: MirrordSettings) -> dict[str, Any]:
    """A mirrord config (its own JSON Schema, mirrord-schema.json) for one debug session.

    The kube context is pinned: mirrord would otherwise use the kubeconfig's current one,
    which may be another cluster than the slice's.
    """
    env: dict[str, Any] = {}
    if settings.env_include:
        env["include"] = list(settings.env_include)
    if settings.env_exclude:
        env["exclude"] = list(settings.env_exclude)
    if settings.env_override:
        env["override"] = dict(settings.env_override)
    config: dict[str, Any] = {}
    if settings.kube_context:
        config["kube_context"] = settings.kube_context
    config["target"] = {"path": target.path, "namespace": target.namespace}
    config["feature"] = {
        "network": {"incoming": "steal" if settings.steal else "mirror"},
        "env": env,
        "fs": {"mode": settings.fs_mode},
    }
    config["agent"] = {"startup_timeout": settings.agent_startup_timeout}
    return config


def config_path(base_dir: Path, service: str) -> Path:
    return base_dir / CONFIG_DIR / f"{service}.mirrord.json"


def write_config(base_dir: Path, service: str, config: Mapping[str, Any]) -> Path:
    """Write ``.mirrord/<service>.mirrord.json``; the name ends in ``mirrord.json`` because
    that is what the VS Code and JetBrains plugins pick up from ``.mirrord/``."""
    path = config_path(base_dir, service)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


# -- IDE hand-off ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Program:
    """A command as an IDE debugger launches it: which runtime, and what it runs."""

    runtime: Literal["python", "node", "dotnet"]
    interpreter: str
    target: str  # a script path, a module name when ``module``, an assembly (.dll) for dotnet
    args: tuple[str, ...]
    module: bool = False
    project: DotnetRun | None = None  # `dotnet run`: the project it builds


UNDERSTOOD = ("--ide understands `python SCRIPT|-m MODULE ...`, `node SCRIPT ...`, `dotnet run "
              "[--project P] [-f TFM] [-- ARGS]` and (VS Code) `dotnet APP.dll ...`")


def program_of(command: Sequence[str], base_dir: Path | None = None) -> Program:
    """Understand ``python [-m MODULE | SCRIPT] ARGS``, ``node SCRIPT ARGS``, ``dotnet run
    ...`` (:mod:`devslice.dotnet`) and ``dotnet APP.dll ARGS``; IDE debuggers launch a runtime
    or a project, not an arbitrary command, so other commands cannot be handed off."""
    if not command:
        raise DebugError("--ide needs the command to debug after `--`",
                         hint="e.g. devslice debug orders --ide vscode -- python app.py")
    exe, rest = command[0], list(command[1:])
    name = os.path.basename(exe)
    if name.startswith("python") and rest:
        if rest[0] == "-m" and len(rest) > 1:
            return Program("python", exe, rest[1], tuple(rest[2:]), module=True)
        if not rest[0].startswith("-"):
            return Program("python", exe, rest[0], tuple(rest[1:]))
    if name in ("node", "nodejs") and rest and not rest[0].startswith("-"):
        return Program("node", exe, rest[0], tuple(rest[1:]))
    if name in ("dotnet", "dotnet.exe") and rest:
        if rest[0] == "run":
            run = parse_run(rest[1:], Path.cwd(), (base_dir or Path.cwd()).resolve())
            return Program("dotnet", exe, str(run.assembly), run.args, project=run)
        if rest[0].endswith(".dll"):
            return Program("dotnet", exe, rest[0], tuple(rest[1:]))
    raise DebugError(f"cannot hand `{shlex.join(command)}` to an IDE debugger",
                     hint=UNDERSTOOD + "; for others run without --ide, or add a launch "
                          "configuration with MIRRORD_CONFIG_FILE set to the generated config")


def _in_project(base_dir: Path, path: str, variable: str) -> str:
    """A path as the IDE should see it: under its project variable when inside the project."""
    full = (Path.cwd() / path).resolve()
    try:
        return f"{variable}/{full.relative_to(base_dir.resolve()).as_posix()}"
    except ValueError:
        return str(full)


def session_env(service: str, exclusive: bool) -> dict[str, str]:
    """What the debugged process gets besides the pod's environment: with ``--exclusive``,
    the lease holder id, so its own consumers do not step aside from its own lease."""
    if not exclusive:
        return {}
    return {HOLDER_VARIABLE: default_holder(service), SERVICE_VARIABLE: service}


def entry_name(service: str) -> str:
    return f"{service} (devslice debug)"


def vscode_launch(base_dir: Path, service: str, config: Path, command: Sequence[str],
                  extra_env: Mapping[str, str] | None = None) -> Path:
    """Add or replace the service's entry in ``.vscode/launch.json``. The mirrord extension
    uses the file named by MIRRORD_CONFIG_FILE in a launch configuration's env."""
    program = program_of(command, base_dir)
    env = {"MIRRORD_CONFIG_FILE": _in_project(base_dir, str(config), "${workspaceFolder}"),
           **(extra_env or {})}
    entry: dict[str, Any] = {"name": entry_name(service), "request": "launch",
                             "cwd": "${workspaceFolder}", "env": env}
    if program.runtime == "python":
        entry["type"] = "debugpy"
        if program.module:
            entry["module"] = program.target
        else:
            entry["program"] = _in_project(base_dir, program.target, "${workspaceFolder}")
        if os.sep in program.interpreter:
            entry["python"] = _in_project(base_dir, program.interpreter, "${workspaceFolder}")
        entry["console"] = "integratedTerminal"
    elif program.runtime == "dotnet":
        # The C# extension's debugger launches the built assembly; `dotnet build` it first.
        entry["type"] = "coreclr"
        entry["program"] = _in_project(base_dir, program.target, "${workspaceFolder}")
        entry["console"] = "integratedTerminal"
        entry["stopAtEntry"] = False
    else:
        entry["type"] = "node"
        entry["program"] = _in_project(base_dir, program.target, "${workspaceFolder}")
        if os.sep in program.interpreter:
            entry["runtimeExecutable"] = program.interpreter
    entry["args"] = list(program.args)
    path = base_dir / ".vscode" / "launch.json"
    document: dict[str, Any] = {"version": "0.2.0", "configurations": []}
    if path.exists():
        text = path.read_text(encoding="utf-8")
        try:
            document = json.loads(text)
            if not isinstance(document.get("configurations"), list):
                raise ValueError("no configurations list")
        except ValueError as exc:
            # VS Code allows comments; rewriting would drop them, so the user adds it instead.
            raise DebugError(f"cannot update {path}: it is not plain JSON with a "
                             f"configurations list ({exc})",
                             hint="add this entry to its configurations by hand:\n"
                                  + json.dumps(entry, indent=2)) from exc
    configurations = [c for c in document["configurations"]
                      if not (isinstance(c, dict) and c.get("name") == entry["name"])]
    configurations.append(entry)
    document["configurations"] = configurations
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def jetbrains_run(base_dir: Path, service: str, config: Path, command: Sequence[str],
                  extra_env: Mapping[str, str] | None = None) -> Path:
    """Write ``.run/<service>.run.xml``, a shared run configuration JetBrains IDEs (PyCharm,
    WebStorm, Rider) load from the project; the mirrord plugin reads MIRRORD_CONFIG_FILE from
    its environment. ``dotnet run`` becomes Rider's ".NET Project" configuration."""
    program = program_of(command, base_dir)
    env = {"MIRRORD_CONFIG_FILE": _in_project(base_dir, str(config), "$PROJECT_DIR$"),
           **(extra_env or {})}
    root = ET.Element("component", name="ProjectRunConfigurationManager")
    if program.runtime == "python":
        conf = ET.SubElement(root, "configuration", default="false", name=entry_name(service),
                             type="PythonConfigurationType", factoryName="Python")
        options = {"PARENT_ENVS": "true", "WORKING_DIRECTORY": "$PROJECT_DIR$",
                   "SCRIPT_NAME": program.target if program.module
                   else _in_project(base_dir, program.target, "$PROJECT_DIR$"),
                   "PARAMETERS": shlex.join(program.args),
                   "MODULE_MODE": "true" if program.module else "false"}
        for key, value in options.items():
            ET.SubElement(conf, "option", name=key, value=value)
    elif program.runtime == "dotnet":
        conf = ET.SubElement(root, "configuration", default="false", name=entry_name(service),
                             type="DotNetProject", factoryName=".NET Project")
        for key, value in _rider_project(base_dir, program).items():
            ET.SubElement(conf, "option", name=key, value=value)
    else:
        conf = ET.SubElement(root, "configuration", {
            "default": "false", "name": entry_name(service), "type": "NodeJSConfigurationType",
            "path-to-js-file": _in_project(base_dir, program.target, "$PROJECT_DIR$"),
            "application-parameters": shlex.join(program.args),
            "working-dir": "$PROJECT_DIR$"})
    envs = ET.SubElement(conf, "envs")
    for key, value in env.items():
        ET.SubElement(envs, "env", name=key, value=value)
    method = ET.SubElement(conf, "method", v="2")
    if program.runtime == "dotnet":
        ET.SubElement(method, "option", name="Build")  # before launch, as Rider's own do
    ET.indent(root)
    path = base_dir / ".run" / f"{service}.run.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")
    return path


def _rider_project(base_dir: Path, program: Program) -> dict[str, str]:
    """The options of Rider's ".NET Project" run configuration (type DotNetProject, as Rider
    writes it to .run/*.run.xml) for ``dotnet run``: Rider builds the project, then runs its
    assembly with the arguments, in the folder `dotnet run` ran in."""
    run = program.project
    if run is None:
        raise DebugError(f"Rider launches .NET projects, not an assembly ({program.target})",
                         hint="give the project: `dotnet run --project PATH -- ARGS`")
    here = _in_project(base_dir, ".", "$PROJECT_DIR$")
    return {
        "EXE_PATH": _in_project(base_dir, str(run.assembly), "$PROJECT_DIR$"),
        "PROGRAM_PARAMETERS": shlex.join(run.args),
        "WORKING_DIRECTORY": here.removesuffix("/."),
        "PASS_PARENT_ENVS": "1",
        "USE_EXTERNAL_CONSOLE": "0",
        "USE_MONO": "0",
        "RUNTIME_ARGUMENTS": "",
        "PROJECT_PATH": _in_project(base_dir, str(run.project), "$PROJECT_DIR$"),
        "PROJECT_EXE_PATH_TRACKING": "1",  # Rider follows the project's output path
        "PROJECT_ARGUMENTS_TRACKING": "0",  # the arguments given here, not the project's
        "PROJECT_WORKING_DIRECTORY_TRACKING": "0",
        "PROJECT_KIND": "DotNetCore",
        "PROJECT_TFM": run.framework,
    }


# -- the session -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """A debug session ready to run: where it points and what was written."""

    handle: str
    target: DebugTarget
    config: dict[str, Any]
    config_path: Path
    event_variables: tuple[str, ...]  # the contract's Event Hubs variables the pod sees
    ide_file: Path | None = None


def slice_namespace(project: Project, handle: str) -> str | None:
    """The slice's namespace on a shared cluster (kube runtime); None for the developer's own
    k3d cluster, where the slice's objects keep the namespaces their manifests name."""
    # lazy: engine.environment brings the engine and its adapters; needed only here
    from devslice.engine.environment import runtime

    c = project.env.cluster
    if runtime(project)[0] == "k3d":
        return None
    # lazy: lightkube, only for a cluster runtime
    from devslice.adapters.kube import current_context

    # lazy: resources.manifests loads lightkube, only for a cluster runtime
    from devslice.resources.manifests import kube_target

    return kube_target(c.kube, handle, current_context(), project.env.team).namespace


def prepare(project: Project, kube: Kube, service: str, *, handle: str,
            settings: MirrordSettings, exclusive: bool = False,
            ide: Ide | None = None, command: Sequence[str] = ()) -> Prepared:
    """Find the pod, write the config (and the IDE's configuration when asked)."""
    if ide is not None:  # a command the IDE cannot launch fails before anything is written
        program = program_of(command, project.base_dir)
        if ide != "vscode" and program.runtime == "dotnet":
            _rider_project(project.base_dir, program)
    target = find_target(kube, service, handle, slice_namespace(project, handle))
    if exclusive:
        settings = replace(settings, env_override={**settings.env_override,
                                                    **session_env(service, True)})
    config = mirrord_config(target, settings)
    path = write_config(project.base_dir, service, config)
    seen = event_variables(kube, target, project.env.contract.prefix)
    ide_file = None
    if ide == "vscode":
        ide_file = vscode_launch(project.base_dir, service, path, command,
                                 session_env(service, exclusive))
    elif ide in ("jetbrains", "rider"):
        ide_file = jetbrains_run(project.base_dir, service, path, command,
                                 session_env(service, exclusive))
    return Prepared(handle, target, config, path, tuple(seen), ide_file)


def lease_store(project: Project, handle: str, kube: Kube | None = None,
                namespace: str | None = None) -> LeaseStore:
    """Where the slice's consumers look for leases: the embedded hub's file when the slice
    uses it (its consumers run on this machine); else, in the k3d and kube runtimes, Lease
    objects in the slice's namespace (:class:`~devslice.sdk.kubelease.KubeLeaseStore`), which
    the pods' consumers read. ``kube`` defaults to a connection to the slice's kube context;
    ``namespace`` to the slice's on a shared cluster, and on k3d to the namespace of the
    service's Deployment, found by :func:`hold_lease`. A blob lease in the slice's storage
    account, for consumers outside a cluster on real Event Hubs, is still to come."""
    # lazy: engine.environment brings the engine and its adapters; only for --exclusive leases
    from devslice.engine.environment import kube_context, runtime

    variables = project.variables(handle, secrets=False)
    ctx = SliceContext.from_env({v.name: str(v.value) for v in variables},
                                prefix=project.env.contract.prefix)
    if ctx.embedded_path is not None:
        # lazy: the embedded hub, only when the slice uses it
        from devslice.embedded import EmbeddedHub

        return EmbeddedHub(ctx.embedded_path)
    chosen = runtime(project)[0]
    if chosen not in ("k3d", "kube"):
        raise DebugError("--exclusive needs the embedded event hub, or a cluster runtime",
                         hint="eventHubs.mode is shared and the services run as local "
                              "processes: the blob lease their consumers would honour is not "
                              "built yet; stop the other consumers by hand")
    # lazy: lightkube, only for pods
    from devslice.sdk.kubelease import KubeLeaseStore

    if kube is None:
        # lazy: lightkube, only for pods
        from devslice.adapters.kube import connect

        kube = connect(context=kube_context(project, chosen))
    if namespace is None and chosen == "kube":
        namespace = slice_namespace(project, handle)
    return KubeLeaseStore(kube, namespace)


def hold_lease(store: LeaseStore, handle: str, service: str, ttl: float = DEFAULT_TTL
               ) -> HeldLease:
    """The lease that makes the service's consumers step aside, not yet taken. A Kubernetes
    lease store without a namespace (k3d) takes the namespace of the service's Deployment,
    where its pods read it."""
    # lazy: lightkube, only for pods
    from devslice.sdk.kubelease import KubeLeaseStore

    if isinstance(store, KubeLeaseStore) and store.namespace is None:
        deployment = find_deployment(store.kube, service, handle, None)
        store = store.in_namespace(deployment["metadata"]["namespace"])
    return HeldLease(store, lease_name(service, handle), default_holder(service), ttl)


def run_session(prepared: Prepared, mirrord: Mirrord, command: Sequence[str], *,
                lease: HeldLease | None = None,
                on_lease: Callable[[HeldLease], None] | None = None) -> int:
    """Run the command under mirrord, holding ``lease`` (if any) until it ends; returns the
    command's exit code. Killed, the session leaves the lease to run out after its TTL."""
    env = session_env(prepared.target.service, lease is not None)
    if lease is None:
        return mirrord.exec(prepared.config_path, command, env=env)
    with lease:
        if on_lease is not None:
            on_lease(lease)
        return mirrord.exec(prepared.config_path, command, env=env)
