"""The resources of a developer's environment, from devslice.yaml and the slice.

``build`` lists what `devslice plan` and `devslice up` keep in shape, in dependency order:

    k3d:   registry -> cluster ----------------\\
           registry -> image:<name> ... --------+-> slice-config -> manifests:<layer> -> ...
    kube:  (an existing cluster, the slice's namespace) slice-config -> manifests:<layer> ...

The shared services' containers (``container:<name>``) and the resources beside them come
from :mod:`devslice.services`, which alone decides by a service's mode; the slice's objects
wait for them. The adapters come in through :class:`Tools`; the CLI builds the real ones with
:meth:`Tools.real`, tests hand in the same adapters pointed at fakes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from devslice.adapters.runner import SubprocessRunner
from devslice.config.derive import derive_names
from devslice.errors import ConfigError, ConfigIssue, DevsliceError

if TYPE_CHECKING:
    from pathlib import Path

    from devslice.adapters.docker import Docker
    from devslice.adapters.k3d import K3d
    from devslice.adapters.kube import Kube
    from devslice.adapters.registry import Registry
    from devslice.config.model import ClusterSettings
    from devslice.engine.plan import Resource
    from devslice.project import Project


class Lazy:
    """An adapter made on first use: no Docker engine or cluster is needed to build the
    resource list, and a failed connection is tried again at the next use (the executor
    re-plans the manifests once the cluster exists)."""

    def __init__(self, connect: Callable[[], Any],
                 translate: Callable[[DevsliceError], DevsliceError] | None = None) -> None:
        self._connect = connect
        self._translate = translate
        self._target: Any = None
        self._lock = threading.Lock()  # resources plan in parallel: connect once

    def close(self) -> None:
        with self._lock:
            if self._target is not None:
                self._target.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            if self._target is None:
                try:
                    self._target = self._connect()
                except DevsliceError as exc:
                    if self._translate is None:
                        raise
                    raise self._translate(exc) from exc
            return getattr(self._target, name)


def _cluster_absent(exc: DevsliceError) -> DevsliceError:
    """k3d writes the cluster's kube context only when it creates the cluster."""
    from devslice.adapters.kube import KubeUnreachable  # lazy: lightkube

    return KubeUnreachable(exc.message, hint=exc.hint)


@dataclass
class Tools:
    k3d: K3d
    docker: Docker
    registry: Registry
    kube: Kube
    azure: Any = None  # devslice.access.azure.Azure: the management clients (issue 15)

    def close(self) -> None:
        """Close what was opened; a Lazy adapter never connected is left alone."""
        for adapter in (self.docker, self.registry, self.kube, self.azure):
            if adapter is not None:
                adapter.close()

    @classmethod
    def real(cls, project: Project, chosen: str = "k3d") -> Tools:
        def azure() -> Any:
            from devslice.access.azure import Azure  # lazy: Azure SDKs

            return Azure.from_settings(project.env.azure)

        if chosen == "local":  # processes only: no engine, cluster or registry (issue 17)
            return cls(None, None, None, None, Lazy(azure))  # type: ignore[arg-type]
        from devslice.adapters.k3d import K3d  # lazy: start-up
        from devslice.facts.tools import TOOLS, docker_endpoint  # lazy: start-up

        c = project.env.cluster
        fixes = {t.name: t.fix for t in TOOLS}
        # One engine for docker-py, the registry check and k3d, as the Docker CLI picks it
        # (DOCKER_HOST, DOCKER_CONTEXT, the current context; issue 13).
        endpoint = docker_endpoint()

        def docker() -> Docker:
            from devslice.adapters.docker import connect  # lazy: docker SDK

            return connect(endpoint=endpoint)

        def kube() -> Kube:
            from devslice.adapters.kube import connect  # lazy: lightkube

            return connect(context=kube_context(project, chosen))

        def registry() -> Registry:  # an httpx client: made only when an image is checked
            from devslice.adapters.registry import Registry  # lazy: httpx

            if chosen == "kube" and c.kube.registry:  # the registry the shared cluster pulls from
                from devslice.adapters.registry import docker_credentials  # lazy: httpx

                return Registry.at(c.kube.registry, credentials=docker_credentials)
            return Registry.at(f"{endpoint.machine}:{c.registry.port}")

        return cls(
            k3d=K3d(SubprocessRunner(fixes=fixes), env=endpoint.env()),
            docker=Lazy(docker),  # type: ignore[arg-type]
            registry=Lazy(registry),  # type: ignore[arg-type]
            kube=Lazy(kube, _cluster_absent if chosen == "k3d" else None),  # type: ignore[arg-type]
            azure=Lazy(azure),
        )


def kube_context(project: Project, chosen: str = "k3d") -> str | None:
    c = project.env.cluster
    if chosen == "k3d":
        return f"k3d-{c.name}"  # the context k3d writes into the kubeconfig
    from devslice.adapters.kube import current_context  # lazy: lightkube
    from devslice.resources.manifests import kube_target  # lazy: lightkube

    return kube_target(c.kube, "x", current_context(), project.env.team).context


def runtime(project: Project) -> tuple[str, str]:
    """The runtime to use and why: ``auto`` picks k3d when Docker's engine answers, k3d is
    installed and no service is embedded (pods cannot reach an embedded stand-in), else the
    local process runtime."""
    forced = os.environ.get("DEVSLICE_RUNTIME")
    if forced:
        if forced not in ("k3d", "kube", "local"):
            raise DevsliceError(f"DEVSLICE_RUNTIME={forced!r} is not a runtime",
                                hint="expected k3d, kube or local")
        return forced, f"DEVSLICE_RUNTIME is {forced}"
    chosen = project.env.cluster.runtime
    if chosen != "auto":
        return chosen, f"cluster.runtime is {chosen}"
    embedded = machine_only(project.env)
    if embedded:
        from devslice.local.runtime import container_only  # lazy: docker SDK

        images = container_only(project)
        if images:  # neither runtime can serve both: say so once, with both sides

            raise ConfigError(images, hint=f"cluster.runtime is auto, and {' and '.join(embedded)}"
                              ", which pods cannot reach, so services would run as processes, "
                              "where these emulators cannot run: make them shared, or make the "
                              "embedded services emulator and run with Docker and k3d")
        return "local", (f"auto: {' and '.join(embedded)}, which pods cannot reach, so services "
                         "run as processes")
    from devslice.facts.tools import TOOLS, probe_all  # lazy: start-up

    facts = {f.tool.name: f for f in probe_all(t for t in TOOLS
                                               if t.name in ("docker engine", "k3d"))}
    missing = [name for name, f in facts.items() if not f.ok]
    if not missing:
        return "k3d", "auto: Docker's engine answers and k3d is installed"
    return "local", f"auto: {' and '.join(missing)} not available, so services run as processes"


def machine_only(env: Any) -> list[str]:
    """The services whose mode serves processes of this machine only (embedded stand-ins)."""
    # lazy: the services bring their containers' modules, which `runtime` may not need
    from devslice.services import machine_only as services_machine_only

    return services_machine_only(env)


Progress = Callable[[str, str], None]  # (resource key, a line of what it is doing)


def build(project: Project, handle: str, tools: Tools, chosen: str | None = None,
          progress: Progress | None = None, *, force_conflicts: bool = False,
          adopt: bool = False) -> list[Resource]:
    """``force_conflicts``: manifests take over fields other field managers own; ``adopt``:
    same-named Azure resources without devslice's tags are tagged as the slice's."""
    chosen = chosen or runtime(project)[0]
    if chosen == "local":
        from devslice.local.runtime import SHARED_KEY, LocalRuntimeResource  # lazy: docker SDK

        # Emulators first, and ready, so the services' first calls find them (the storage SDK
        # waits 15 s after a refused connection before it tries again); the slice's Azure
        # resources and its containers in Azurite before any service (a consumer) starts.
        first = slice_storage(project, handle, tools, after=(SHARED_KEY,), progress=progress,
                              adopt=adopt)
        services = LocalRuntimeResource(project, handle, progress=progress)
        services.after = (*services.after, *(r.key for r in first))
        return [LocalRuntimeResource(project, handle, shared=True, progress=progress),
                *first, services]
    return _cluster_resources(project, handle, tools, k3d=chosen == "k3d", progress=progress,
                              force_conflicts=force_conflicts, adopt=adopt)


def slice_storage(project: Project, handle: str, tools: Tools, after: tuple[str, ...],
                  progress: Progress | None = None, adopt: bool = False) -> list[Resource]:
    """What the slice's services need before they start, besides emulators: its resources in
    Azure (shared services) and its containers and queues in Azurite (the consumers'
    checkpoint container among them; issue 15)."""
    from devslice.cloud.plan import slice_resources  # lazy: Azure SDKs

    out: list[Resource] = list(slice_resources(project, handle, tools.azure, progress=progress,
                                               adopt=adopt))
    from devslice.services.storage import SERVICE as STORAGE  # lazy: as every import here

    if not STORAGE.shared(project.env):  # Azurite: a container, or a process (local)
        from devslice.cloud.storage import EmulatorContainersResource  # lazy: where Azurite runs

        emulated = EmulatorContainersResource(
            project.env, handle, after=after,
            sas_file=project.base_dir / ".devslice" / "storage-sas.json")
        if emulated.containers or emulated.queues:
            out.append(emulated)
    return out


def _networks_of(tools: Tools) -> Callable[[], dict[str, list[str]] | None]:
    def networks() -> dict[str, list[str]] | None:
        try:
            return tools.docker.network_subnets()
        except DevsliceError:
            return None  # no engine: the cluster's plan says what is missing

    return networks


def _subnet(c: ClusterSettings, base: Path,
            networks: Callable[[], dict[str, list[str]] | None]) -> str:
    """One subnet for the cluster, the host DNS entry and the pods' contract (auto: chosen
    against the engine's networks once per command, then kept; issue 13), asked through the
    command's Docker adapter, which the container resources share (one client)."""
    from devslice.resources.k3d import chosen_subnet, cluster_subnet  # lazy: as every import here

    return chosen_subnet(c, base) or cluster_subnet(c, base, networks())


def _cluster_resources(project: Project, handle: str, tools: Tools, k3d: bool,
                       progress: Progress | None = None, force_conflicts: bool = False,
                       adopt: bool = False) -> list[Resource]:
    from devslice.adapters.kube import register_crds  # lazy: lightkube
    from devslice.contract.render import k8s_objects  # lazy: docker SDK
    from devslice.resources.images import ImageResource, image_refs  # lazy: docker SDK, httpx
    from devslice.resources.k3d import ClusterResource, RegistryResource  # lazy: start-up
    from devslice.resources.manifests import (  # lazy: lightkube
        SLICE_CONFIG_KEY,
        WORKLOADS,
        SealedConfigHash,
        SliceConfigResource,
        containers_of,
        image_repository,
        load_layer,
        manifest_resources,
        workload_namespaces,
    )

    env, base = project.env, project.base_dir
    c = env.cluster
    out: list[Resource] = []
    ready: list[str] = []  # what the slice's objects wait for
    namespace: str | None = None
    if k3d:
        from devslice.resources.hostdns import HostDnsResource  # lazy: lightkube
        from devslice.resources.k3d import host_gateway  # lazy: start-up

        networks = _networks_of(tools)
        subnet = _subnet(c, base, networks)
        out += [RegistryResource(tools.k3d, c.registry),
                ClusterResource(tools.k3d, c, base, networks,
                                config_path=str(project.config_path)),
                HostDnsResource(tools.kube, host_gateway(subnet))]
        ready.append("cluster")
        push_host = f"localhost:{c.registry.port}"
        pull_host = f"k3d-{c.registry.name}:{c.registry.port}"  # inside the cluster
        out += [ImageResource(image, base, push_host, tools.docker, tools.registry,
                              config_path=str(project.config_path)) for image in env.images]
        refs = image_refs(env.images, base, pull_host, str(project.config_path))
    else:
        from devslice.adapters.kube import current_context  # lazy: lightkube
        from devslice.resources.manifests import kube_target  # lazy: lightkube

        namespace = kube_target(c.kube, handle, current_context(), env.team).namespace
        images, refs = _kube_images(project, tools)
        out += images
    # -- containers (issue 5) ------------------------------------------------------------
    # Emulators and the team's own containers beside the cluster. The slice's objects wait
    # for them, so services start against dependencies that are ready.
    from devslice.services import azurite_after, cluster_resources  # lazy: as every import here

    chosen = "k3d" if k3d else "kube"
    containers: list[Resource] = [*container_resources(project, tools, chosen),
                                  *cluster_resources(env, handle)]
    containers += slice_storage(project, handle, tools, after=azurite_after(env),
                                progress=progress, adopt=adopt)
    out += containers
    ready += [r.key for r in containers]
    # -- end containers -------------------------------------------------------------------
    # The contract as pods see it: emulators' host ports through the gateway (for_pods).
    from devslice.contract.variables import for_pods  # lazy: docker SDK
    from devslice.resources.k3d import cluster_subnet, host_gateway  # lazy: start-up

    pod_variables = for_pods(project.variables(handle), chosen,
                             host_gateway(cluster_subnet(c, base)) if k3d else None)
    objects = k8s_objects(pod_variables, handle)
    layers = {layer.name: load_layer(base / layer.path, layer.path) for layer in env.manifests}
    loaded = list(chain.from_iterable(layers.values()))
    if namespace:
        namespaces = [namespace]
    else:  # every namespace whose workloads read the slice's ConfigMap and Secret
        namespaces = workload_namespaces(loaded)
        if any(m.obj.get("kind") in WORKLOADS and not m.obj["metadata"].get("namespace")
               for m in loaded) or not namespaces:
            namespaces.append("default")
    out.append(SliceConfigResource(tools.kube, objects, namespaces, handle, after=tuple(ready),
                                   cluster_may_be_absent=k3d, all_namespaces=namespace is None))
    # The kinds the layers' CRDs define, taught to lightkube once, here (plans never do).
    register_crds(m.obj for m in loaded)
    # Each layer waits for the one before it and for the images its own workloads use, not
    # for every build: the platform layer need not wait for the services' images.
    built = {i.name for i in env.images}
    waits_for = {layer.name: [f"image:{n}" for n in sorted(
        {image_repository(c["image"]) for m in layers[layer.name] for c in containers_of(m.obj)
         if c.get("image")} & built)] for layer in env.manifests} if k3d else {}
    out += manifest_resources(
        env.manifests, base, tools.kube, handle, after=(SLICE_CONFIG_KEY,), waits_for=waits_for,
        progress=(lambda key: _reporter(progress, key)), loaded=layers, images=refs,
        namespace=namespace,
        config_hash=SealedConfigHash(objects, memo=_config_hash_memo(base)),
        cluster_may_be_absent=k3d,
        force=force_conflicts)
    return out


# The last sealed config hash, kept beside the state when the checkout has a `.devslice/`
# (as config/load.py keeps the config's data), so a no-op skips scrypt (issue 17).
CONFIG_HASH_MEMO = "config-hash.json"


def _config_hash_memo(base: Path) -> Path | None:
    folder = base / ".devslice"
    return folder / CONFIG_HASH_MEMO if folder.is_dir() else None


def _kube_images(project: Project, tools: Tools) -> tuple[list[Resource], dict[str, str]]:
    """The image resources of runtime kube, and the references manifests get. A shared
    cluster cannot pull what was built on this machine: images go to the registry it pulls
    from (issue 13: they were skipped, and pods kept unbuilt names)."""
    from devslice.resources.images import ImageResource, image_refs  # lazy: docker SDK, httpx

    env, base, config_path = project.env, project.base_dir, str(project.config_path)
    if not env.images:
        return [], {}
    registry = env.cluster.kube.registry
    if registry is None:

        raise ConfigError([ConfigIssue(
            config_path, None, None, "images",
            f"runtime kube runs images on a shared cluster, which cannot pull "
            f"{', '.join(i.name for i in env.images)} from this machine: set "
            "cluster.kube.registry to a registry the cluster pulls from (e.g. "
            "myacr.azurecr.io/team, after `az acr login -n myacr`); `devslice up` builds "
            "and pushes them there and points the manifests at them")])
    images: list[Resource] = [ImageResource(image, base, registry, tools.docker, tools.registry,
                                            after=(), config_path=config_path)
                              for image in env.images]
    return images, image_refs(env.images, base, registry, config_path)


def _reporter(progress: Progress | None, key: str) -> Callable[[str], None] | None:
    if progress is None:
        return None
    report: Progress = progress
    return lambda line: report(key, line)
# -- containers (issue 5) ------------------------------------------------------------------


def container_resources(project: Project, tools: Tools, runtime: str) -> list[Resource]:
    """``container:<name>`` for every container of ``containers:`` (and the Event Hubs
    emulator with Azurite when ``eventHubs.mode`` is emulator). Azurite gets an account for
    each slice in the ledger, so the ledger is read only when Azurite runs."""
    from devslice.resources.containers import ContainerResource  # lazy: docker SDK
    from devslice.services import container_specs, wants_accounts  # lazy: as above

    env = project.env
    accounts: list[str] = []
    if wants_accounts(env):

        accounts = [derive_names(env, s.handle).storage_account for s in project.slices()]
    specs = container_specs(env, project.base_dir, runtime=runtime, storage_accounts=accounts,
                            config_path=str(project.config_path))
    return [ContainerResource(spec, tools.docker, project.base_dir) for spec in specs]
