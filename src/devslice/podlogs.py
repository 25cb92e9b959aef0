"""`devslice logs` under the k3d and kube runtimes: the log lines of the slice's pods, read
through the Kubernetes API (pods/log), each prefixed by its service (and pod, when a service
has several), or followed (``-f``: one stream per container, ``follow=true``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from devslice.adapters.kube import SLICE_LABEL, Kube, KubeApiError, KubeError
from devslice.debug import SIDECARS, find_deployment, slice_namespace

if TYPE_CHECKING:
    from devslice.project import Project


@dataclass(frozen=True)
class PodStream:
    """One container of one pod of a service of the slice: a log to read or follow."""

    service: str
    pod: str
    container: str
    namespace: str


@dataclass(frozen=True)
class PodLines:
    service: str
    pod: str
    container: str
    lines: tuple[str, ...]
    problem: str | None = None  # why there is no log (a container waiting to start, ...)


def slice_pod_streams(project: Project, kube: Kube, handle: str, service: str | None = None
                      ) -> list[PodStream]:
    """Every container (sidecars aside) of every pod of the slice's Deployments, or of
    ``service``'s only (ServiceNotFound names the slice's), by service, pod and container."""
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
            out += [PodStream(dep["metadata"]["name"], pod["metadata"]["name"], c["name"], ns)
                    for c in (pod.get("spec") or {}).get("containers") or []
                    if c["name"] not in SIDECARS]
    return out


def slice_pod_logs(project: Project, kube: Kube, handle: str, service: str | None = None,
                   lines: int = 50) -> list[PodLines]:
    """The last ``lines`` lines of every stream of :func:`slice_pod_streams`."""
    out = []
    for s in slice_pod_streams(project, kube, handle, service):
        try:
            got = kube.pod_log(s.pod, s.namespace, s.container, lines)
        except KubeApiError as exc:
            out.append(PodLines(s.service, s.pod, s.container, (), exc.message))
            continue
        out.append(PodLines(s.service, s.pod, s.container, got))
    return out


def follow_pod_logs(kube: Kube, streams: Sequence[PodStream], lines: int
                    ) -> Iterator[tuple[int, str | None]]:
    """Follow every stream at once: ``(index in streams, line)`` for each of their last
    ``lines`` lines and then each new one, as they come; ``(index, None)`` when a stream
    ended (its pod went away or its container stopped). A stream that cannot be read gives
    one ``"(why)"`` line and ends. Returns when every stream ended; the caller's thread does
    the printing, so Ctrl-C (KeyboardInterrupt) reaches it between lines."""
    found: queue.Queue[tuple[int, str | None]] = queue.Queue()  # its get() takes Ctrl-C
    stopped = threading.Event()  # the caller stopped reading: errors are no news now

    def pump(i: int, s: PodStream) -> None:
        try:
            for line in kube.pod_log_follow(s.pod, s.namespace, s.container, lines):
                found.put((i, line))
        except KubeError as exc:
            found.put((i, f"({exc.message})"))
        except Exception as exc:  # the client closed under the read after Ctrl-C, ...
            if not stopped.is_set():
                found.put((i, f"(reading the log of {s.pod} failed: {exc!r})"))
        finally:
            found.put((i, None))

    for i, s in enumerate(streams):  # daemons: Ctrl-C ends the command, not these reads
        threading.Thread(target=pump, args=(i, s), daemon=True,
                         name=f"devslice logs {s.pod}/{s.container}").start()
    left = len(streams)
    try:
        while left:
            i, line = found.get()
            left -= line is None
            yield i, line
    finally:
        stopped.set()


class _Named(Protocol):
    @property
    def service(self) -> str: ...
    @property
    def pod(self) -> str: ...
    @property
    def container(self) -> str: ...


def prefixes(found: Sequence[_Named]) -> list[str]:
    """``service``, or ``service/pod`` (``/container``) where that is needed to tell apart."""
    pods: dict[str, set[str]] = {}
    containers: dict[str, set[str]] = {}
    for f in found:
        pods.setdefault(f.service, set()).add(f.pod)
        containers.setdefault(f.pod, set()).add(f.container)
    return [f.service + (f"/{f.pod}" if len(pods[f.service]) > 1 else "")
            + (f"/{f.container}" if len(containers[f.pod]) > 1 else "") for f in found]
