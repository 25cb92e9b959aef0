"""`devslice logs` under the k3d and kube runtimes: the log lines of the slice's pods, read
through the Kubernetes API (pods/log), each prefixed by its service (and pod, when a service
has several)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devslice.adapters.kube import SLICE_LABEL, Kube, KubeApiError
from devslice.debug import SIDECARS, find_deployment, slice_namespace

if TYPE_CHECKING:
    from devslice.project import Project


@dataclass(frozen=True)
class PodLines:
    service: str
    pod: str
    container: str
    lines: tuple[str, ...]
    problem: str | None = None  # why there is no log (a container waiting to start, ...)


def slice_pod_logs(project: Project, kube: Kube, handle: str, service: str | None = None,
                   lines: int = 50) -> list[PodLines]:
    """The last ``lines`` lines of every container (sidecars aside) of every pod of the
    slice's Deployments, or of ``service``'s only (ServiceNotFound names the slice's)."""
    namespace = slice_namespace(project, handle)
    if service is not None:
        deployments = [find_deployment(kube, service, handle, namespace)]
    else:
        deployments = sorted(kube.list_managed(namespace, {SLICE_LABEL: handle},
                                               kinds=[("apps/v1", "Deployment")]),
                             key=lambda d: d["metadata"]["name"])
    out = []
    for dep in deployments:
        ns = dep["metadata"]["namespace"]
        selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not selector:
            continue
        pods = sorted(kube.list_pods(ns, selector), key=lambda p: p["metadata"]["name"])
        for pod in pods:
            containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []
                          if c["name"] not in SIDECARS]
            for container in containers:
                name = pod["metadata"]["name"]
                try:
                    got = kube.pod_log(name, ns, container, lines)
                except KubeApiError as exc:
                    out.append(PodLines(dep["metadata"]["name"], name, container, (),
                                        exc.message))
                    continue
                out.append(PodLines(dep["metadata"]["name"], name, container, got))
    return out


def prefixes(found: list[PodLines]) -> list[str]:
    """``service``, or ``service/pod`` (``/container``) where that is needed to tell apart."""
    pods: dict[str, set[str]] = {}
    containers: dict[str, set[str]] = {}
    for f in found:
        pods.setdefault(f.service, set()).add(f.pod)
        containers.setdefault(f.pod, set()).add(f.container)
    return [f.service + (f"/{f.pod}" if len(pods[f.service]) > 1 else "")
            + (f"/{f.container}" if len(containers[f.pod]) > 1 else "") for f in found]
