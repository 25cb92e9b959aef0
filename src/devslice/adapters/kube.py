"""The Kubernetes API, through an injected lightkube ``Client``.

Objects go out as plain dicts, exactly as rendered, by server-side apply under a field manager
(``devslice``). Kinds resolve to lightkube's typed resources when built in and to its generic
resources otherwise: from CustomResourceDefinitions in the objects being applied (a Traefik
``Middleware`` beside its CRD) or else from the cluster's CRDs. Everything lightkube and httpx
raise becomes a :class:`KubeError` here, with a hint.

    KubeError
    ├── KubeConfigError     no usable kubeconfig or context
    ├── KubeUnreachable     the API server cannot be reached
    ├── KubeUnknownKind     the cluster serves no such apiVersion/kind (CRD missing)
    ├── KubeApiError        the API server refused a request
    │   ├── KubeNotFound, KubeForbidden, KubeConflict, KubeInvalid
    ├── RolloutFailed       a Deployment did not roll out (pod reasons and log lines)
    └── ContextRefused      the kube context is not one devslice.yaml allows
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml
from lightkube import ALL_NS, ApiError, Client, KubeConfig
from lightkube import ConfigError as LightkubeConfigError
from lightkube.core import resource as lkres
from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import (
    create_global_resource,
    create_namespaced_resource,
    get_generic_resource,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Pod  # lazy: only when pods are inspected
from lightkube.types import PatchType

from devslice.errors import DevsliceError

FIELD_MANAGER = "devslice"
MANAGED_BY = "app.kubernetes.io/managed-by"
SLICE_LABEL = "devslice.dev/slice"
REVISION = "deployment.kubernetes.io/revision"  # on a Deployment and its ReplicaSets

# Kinds searched for objects to prune. kubectl's default `apply --prune` allowlist
# (kubectl/pkg/cmd/apply/prune.go) minus legacy kinds (Endpoints, ReplicationController) and
# controller-made ones (Pod, ReplicaSet), plus the RBAC kinds platform layers (Traefik) carry.
# Kubernetes has no cross-kind query, so this costs one LIST per kind; kinds outside it are
# still pruned while any object of that kind remains in the layer.
PRUNE_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"), ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"), ("batch/v1", "Job"), ("batch/v1", "CronJob"),
    ("networking.k8s.io/v1", "Ingress"), ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("v1", "Namespace"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
)

# Waiting reasons that will not heal by waiting longer (the kubelet's strings); ErrImagePull
# is left out because the kubelet retries it once before it becomes ImagePullBackOff.
FATAL_REASONS = frozenset({
    "CrashLoopBackOff", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
})
_PROBLEM_REASONS = FATAL_REASONS | {"ErrImagePull", "Error", "OOMKilled", "Unschedulable"}


# -- errors --------------------------------------------------------------------------------------

class KubeError(DevsliceError):
    """Something went wrong talking to Kubernetes."""


class KubeConfigError(KubeError):
    exit_code = 2


class KubeUnreachable(KubeError):
    pass


class KubeUnknownKind(KubeError):
    pass


class KubeApiError(KubeError):
    def __init__(self, message: str, hint: str | None = None, code: int = 0,
                 reason: str = "") -> None:
        super().__init__(message, hint)
        self.code, self.reason = code, reason


class KubeNotFound(KubeApiError):
    pass


class KubeForbidden(KubeApiError):
    """403: RBAC (``verb``, ``resource`` and ``namespace`` say what was refused; namespace None
    is the cluster scope), or new content in a namespace being deleted (``terminating``)."""

    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None
    terminating: bool = False


class KubeConflict(KubeApiError):
    """409: ``fields`` lists (field path, manager) another field manager owns (an apply
    conflict); empty for a create or replace that lost a race."""

    fields: tuple[tuple[str, str], ...] = ()


class KubeInvalid(KubeApiError):
    pass


class ContextRefused(KubeError):
    exit_code = 2


@dataclass(frozen=True)
class PodProblem:
    """Why one container of a pod is not running, with its last log lines."""

    pod: str
    container: str
    reason: str  # CrashLoopBackOff, ImagePullBackOff, ...
    message: str
    restarts: int = 0
    logs: tuple[str, ...] = ()

    @property
    def fatal(self) -> bool:
        return self.reason in FATAL_REASONS

    def __str__(self) -> str:
        head = f"pod {self.pod}, container {self.container}: {self.reason}"
        if self.restarts:
            head += f" after {self.restarts} restart{'s' * (self.restarts != 1)}"
        lines = [head]
        if self.message:
            lines.append(f"  {self.message}")
        if self.logs:
            lines.append("  last log lines:")
            lines.extend(f"  | {line}" for line in self.logs)
        return "\n".join(lines)


_HINTS = {
    "CrashLoopBackOff": "the container exits soon after it starts; its log lines above say why "
                        "(kubectl logs --previous shows the run before)",
    "ImagePullBackOff": "the image cannot be pulled: was it built and pushed to the local "
                        "registry? `devslice plan` lists the image steps",
    "ErrImagePull": "the image cannot be pulled: was it built and pushed to the local registry?",
    "InvalidImageName": "the image reference in the manifest is malformed",
    "CreateContainerConfigError": "a ConfigMap or Secret the container reads is missing; the "
                                  "slice's own (devslice-<slice>) is applied by `devslice up`",
    "OOMKilled": "the container ran out of memory: raise resources.limits.memory",
    "Unschedulable": "no node can take the pod: check its resource requests and node selectors",
}


class RolloutFailed(KubeError):
    def __init__(self, message: str, problems: Iterable[PodProblem] = ()) -> None:
        self.problems = tuple(problems)
        text = "\n".join([message, *(str(p) for p in self.problems)])
        reasons = [p.reason for p in self.problems]
        hint = next((_HINTS[r] for r in reasons if r in _HINTS),
                    "kubectl describe shows the pods' events")
        super().__init__(text, hint)


@dataclass(frozen=True)
class Rollout:
    """A Deployment's rollout as `kubectl rollout status` sees it."""

    name: str
    namespace: str
    done: bool
    message: str
    selector: dict[str, str]
    failed: bool = False


# -- kubeconfig ----------------------------------------------------------------------------------

def _kubeconfig_files(kubeconfig: str | os.PathLike[str] | None,
                      environ: Mapping[str, str] | None) -> list[Path]:
    if kubeconfig is not None:
        return [Path(kubeconfig).expanduser()]
    env = os.environ if environ is None else environ
    # KUBECONFIG may list several files; kubectl merges them, the first to set a value wins.
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in listed] or [Path("~/.kube/config").expanduser()]


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeConfigError(f"cannot read the kubeconfig {path}: {exc}",
                              hint="fix the file, or point KUBECONFIG at another one") from exc
    return data if isinstance(data, dict) else {}


def current_context(kubeconfig: str | os.PathLike[str] | None = None,
                    environ: Mapping[str, str] | None = None) -> str | None:
    """The kubeconfig's current-context (None when there is none), as kubectl reads it."""
    for path in _kubeconfig_files(kubeconfig, environ):
        context = _read_kubeconfig(path).get("current-context")
        if context:
            return str(context)
    return None


def connect(context: str | None = None, kubeconfig: str | os.PathLike[str] | None = None,
            environ: Mapping[str, str] | None = None, **client_options: Any) -> Kube:
    """A :class:`Kube` for a kubeconfig context (the current one by default); for the CLI.

    Several KUBECONFIG files are merged as kubectl merges them: the first to name a cluster,
    context or user wins, so a context may use a cluster from another file.
    """
    files = _kubeconfig_files(kubeconfig, environ)
    wanted = context or current_context(kubeconfig, environ)
    where = ", ".join(str(p) for p in files)
    if wanted is None:
        raise KubeConfigError(f"no kube context: {where} sets no current-context",
                              hint="kubectl config use-context NAME, or set "
                                   "cluster.kube.context in devslice.yaml")
    merged: dict[str, dict[str, Any]] = {"clusters": {}, "contexts": {}, "users": {}}
    home: Path | None = None  # the file naming the context: relative paths start there
    for path in files:
        data = _read_kubeconfig(path)
        for section, entries in merged.items():
            for entry in data.get(section) or []:
                name = entry.get("name") if isinstance(entry, dict) else None
                if isinstance(name, str) and name not in entries:
                    entries[name] = entry
                    if section == "contexts" and name == wanted:
                        home = path
    if home is None:
        raise KubeConfigError(f"kube context {wanted!r} is not in {where}",
                              hint="kubectl config get-contexts lists the contexts there")
    config = {section: list(entries.values()) for section, entries in merged.items()}
    try:
        single = KubeConfig.from_dict(config, fname=home).get(wanted)
        return Kube(Client(single, **client_options))
    except (LightkubeConfigError, KeyError, TypeError) as exc:
        raise KubeConfigError(f"kube context {wanted!r} in {home} is unusable: {exc}",
                              hint=f"kubectl config view --context {wanted}") from exc


# -- kinds and paths, without I/O ---------------------------------------------------------------

def register_crds(objects: Iterable[Mapping[str, Any]]) -> None:
    """Teach lightkube's registry (process-wide) the kinds CustomResourceDefinitions among
    ``objects`` define. Called once, explicitly, where a command builds its resources; plans
    never change the registry."""
    for crd in objects:
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd.get("spec") or {}
        create = (create_namespaced_resource if spec.get("scope") == "Namespaced"
                  else create_global_resource)
        for v in spec.get("versions") or []:
            try:
                create(spec["group"], v["name"], spec["names"]["kind"], spec["names"]["plural"])
            except (KeyError, ValueError):
                continue  # malformed, or already known under another plural


def unknown_kind(api_version: str, kind: str) -> KubeUnknownKind:
    return KubeUnknownKind(f"the cluster serves no kind {kind} in {api_version}",
                           hint="install its CustomResourceDefinition in an earlier manifests "
                                "layer (or the same one), or check the apiVersion")


def rest_path(res: Any, name: str | None, namespace: str | None, default_namespace: str) -> str:
    """The REST path of an object of lightkube resource class ``res`` (or its collection)."""
    info = lkres.api_info(res).resource
    parts = ["/api", info.version] if not info.group else ["/apis", info.group, info.version]
    if issubclass(res, lkres.NamespacedResource) and namespace != ALL_NS:
        parts += ["namespaces", namespace or default_namespace]
    parts.append(lkres.api_info(res).plural)
    if name is not None:
        parts.append(name)
    return "/".join(parts)


def apply_text(path: str, field_manager: str, force: bool) -> str:
    query = ("force=true&" if force else "") + f"fieldManager={field_manager}"
    return f"PATCH {path}?{query} (server-side apply)"


@dataclass(frozen=True)
class KubeView:
    """The kinds an adapter resolved, frozen for plans (:meth:`Kube.view`): the same paths
    and call texts as the adapter, with no I/O (kinds lightkube knows need no cluster)."""

    kinds: Mapping[tuple[str, str], Any]
    field_manager: str = FIELD_MANAGER
    force: bool = False
    default_namespace: str = "default"

    def _resource(self, api_version: str, kind: str) -> Any:
        res = self.kinds.get((api_version, kind)) or resource_registry.get(api_version, kind)
        if res is None:
            raise unknown_kind(api_version, kind)
        return res

    def namespaced(self, api_version: str, kind: str) -> bool:
        return issubclass(self._resource(api_version, kind), lkres.NamespacedResource)

    def path(self, api_version: str, kind: str, name: str | None = None,
             namespace: str | None = None) -> str:
        return rest_path(self._resource(api_version, kind), name, namespace,
                         self.default_namespace)

    def apply_call(self, obj: Mapping[str, Any], force: bool | None = None) -> str:
        meta = obj.get("metadata") or {}
        path = self.path(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        return apply_text(path, self.field_manager, self.force if force is None else force)

    def delete_call(self, kind: str, name: str, namespace: str | None = None,
                    api_version: str | None = None) -> str:
        api_version = api_version or _builtin_api_version(kind)
        return f"DELETE {self.path(api_version, kind, name, namespace)}"


# -- the adapter ---------------------------------------------------------------------------------

class Kube:
    """Server-side apply, listing, deletion and rollout checks against one cluster."""

    def __init__(self, client: Client, field_manager: str = FIELD_MANAGER,
                 force: bool = False) -> None:
        self.client = client
        self.field_manager = field_manager
        self.force = force  # take over fields other managers own (kubectl --force-conflicts)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release the connection pool (the CLI closes adapters when a command ends)."""
        self.client.close()

    # kinds

    def _resource(self, api_version: str, kind: str) -> Any:
        """lightkube's resource class for apiVersion/kind: built in, learned, or a CRD's."""
        with self._lock:
            found = resource_registry.get(api_version, kind)
            if found is not None:
                return found
            try:
                return resource_registry.load(api_version, kind)
            except LoadResourceError:
                pass
        self._discover(api_version)
        found = get_generic_resource(api_version, kind)
        if found is None:
            raise unknown_kind(api_version, kind)
        return found

    def _discover(self, api_version: str) -> None:
        """Learn the kinds a group version serves from API discovery (``GET /apis/G/V``),
        which every signed-in user may read (the system:discovery role). Listing the
        cluster's CRDs instead needs cluster-wide rights a namespace-scoped developer on a
        shared cluster lacks; it is the fallback only where discovery cannot be read."""
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            # lightkube has no public call for discovery: its httpx client, which carries the
            # kubeconfig's server and credentials, does the GET
            http = self.client._client._client
        except AttributeError:
            http = None
        if http is not None:
            with self._translated(f"reading API discovery for {api_version}"):
                response = http.get(path)
                if response.status_code == 404:
                    return  # the group version is not served
                if response.status_code not in (401, 403):
                    response.raise_for_status()
                    self._learn_discovery(group, version, response.json())
                    return
        try:
            with self._translated("listing CustomResourceDefinitions"):
                crds = [c.to_dict() for c in self.client.list(CustomResourceDefinition)]
        except KubeForbidden:
            return  # neither may be read: the kind stays unknown, with its hint
        self.learn(crds)

    def _learn_discovery(self, group: str, version: str, listing: Mapping[str, Any]) -> None:
        with self._lock:
            for r in listing.get("resources") or []:
                name = str(r.get("name", ""))
                if not group or "/" in name or not r.get("kind"):
                    continue  # built-in groups are known; subresources are not kinds
                create = create_namespaced_resource if r.get("namespaced") else \
                    create_global_resource
                try:
                    create(group, version, r["kind"], name)
                except ValueError:
                    continue  # already known under another plural

    def learn(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Serve the kinds that CustomResourceDefinitions among ``objects`` define."""
        with self._lock:
            register_crds(objects)

    def namespaced(self, api_version: str, kind: str) -> bool:
        return issubclass(self._resource(api_version, kind), lkres.NamespacedResource)

    def path(self, api_version: str, kind: str, name: str | None = None,
             namespace: str | None = None) -> str:
        """The REST path of an object (or of a kind's collection), as lightkube builds it."""
        return rest_path(self._resource(api_version, kind), name, namespace,
                         self.client.namespace)

    def view(self, kinds: Iterable[tuple[str, str]]) -> KubeView:
        """What plans need to name calls, with every kind of ``kinds`` resolved now (API
        discovery for a custom kind): the view answers without I/O. Unknown kinds are left
        out; the view raises KubeUnknownKind for them, as this adapter would."""
        resolved = {}
        for api_version, kind in dict.fromkeys(kinds):
            try:
                resolved[(api_version, kind)] = self._resource(api_version, kind)
            except KubeUnknownKind:
                continue
        return KubeView(resolved, self.field_manager, self.force, self.client.namespace)

    # reading

    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        res = self._resource(api_version, kind)
        try:
            with self._translated(f"reading {kind} {name}"):
                obj = self.client.get(res, name, namespace=namespace)
        except KubeNotFound:
            return None
        return _as_dict(obj, api_version, kind)

    def list_managed(self, namespace: str | None, selector: Mapping[str, str],
                     kinds: Iterable[tuple[str, str]] = PRUNE_KINDS,
                     optional: Iterable[tuple[str, str]] = ()) -> list[dict[str, Any]]:
        """Objects devslice manages that match ``selector``, across ``kinds``.

        ``namespace`` None searches all namespaces (a developer's own k3d cluster); a shared
        cluster's slice passes its namespace and only namespaced kinds are searched. Kinds in
        ``optional`` are searched only in case: one the user may not list (403) is skipped,
        as a namespace-scoped Role need not grant every kind.
        """
        maybe = set(optional)
        labels: dict[str, Any] = {MANAGED_BY: FIELD_MANAGER, **selector}
        out: list[dict[str, Any]] = []
        for api_version, kind in dict.fromkeys(kinds):
            try:
                res = self._resource(api_version, kind)
            except KubeUnknownKind:
                continue  # a CRD that is not installed has no objects
            scoped = issubclass(res, lkres.NamespacedResource)
            if namespace is not None and not scoped:
                continue
            try:
                with self._translated(f"listing {kind} objects"):
                    if scoped:
                        found = list(self.client.list(res, namespace=namespace or ALL_NS,
                                                      labels=labels))
                    else:
                        found = list(self.client.list(res, labels=labels))
            except KubeNotFound:
                continue  # its CRD was removed meanwhile
            except KubeForbidden:
                if (api_version, kind) in maybe:
                    continue
                raise
            out.extend(_as_dict(o, api_version, kind) for o in found)
        return out

    def list_all(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind (cluster-scoped, or across all namespaces)."""
        res = self._resource(api_version, kind)
        with self._translated(f"listing {kind} objects"):
            if issubclass(res, lkres.NamespacedResource):
                found = list(self.client.list(res, namespace=ALL_NS))
            else:
                found = list(self.client.list(res))
        return [_as_dict(o, api_version, kind) for o in found]

    # changing

    def apply_call(self, obj: Mapping[str, Any], force: bool | None = None) -> str:
        """The request :meth:`apply` makes, for plans: ``PATCH /apis/...?fieldManager=...``."""
        meta = obj.get("metadata") or {}
        path = self.path(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        return apply_text(path, self.field_manager, self.force if force is None else force)

    def apply(self, obj: Mapping[str, Any], field_manager: str | None = None,
              force: bool | None = None) -> dict[str, Any]:
        """Server-side apply ``obj`` as given; returns the object as the server holds it."""
        res = self._resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        name = meta["name"]
        with self._translated(f"applying {obj['kind']} {name}"):
            live = self.client.patch(
                res, name, dict(obj), namespace=meta.get("namespace"),
                patch_type=PatchType.APPLY, field_manager=field_manager or self.field_manager,
                force=self.force if force is None else force)
        return _as_dict(live, obj["apiVersion"], obj["kind"])

    def delete_call(self, kind: str, name: str, namespace: str | None = None,
                    api_version: str | None = None) -> str:
        api_version = api_version or _builtin_api_version(kind)
        return f"DELETE {self.path(api_version, kind, name, namespace)}"

    def delete(self, kind: str, name: str, namespace: str | None = None,
               api_version: str | None = None) -> None:
        """Delete an object; one that is already gone is fine."""
        api_version = api_version or _builtin_api_version(kind)
        res = self._resource(api_version, kind)
        try:
            with self._translated(f"deleting {kind} {name}"):
                self.client.delete(res, name, namespace=namespace)
        except KubeNotFound:
            pass

    def wait_deleted(self, api_version: str, kind: str, name: str,
                     namespace: str | None = None, timeout: float = 120.0,
                     interval: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                     on_progress: Callable[[str], None] | None = None) -> None:
        """Wait until an object is gone (a namespace stays Terminating while its objects are
        deleted and its finalizers run)."""
        deadline = time.monotonic() + timeout
        while self.get(api_version, kind, name, namespace) is not None:
            if time.monotonic() >= deadline:
                raise KubeError(f"{kind} {name} was still being deleted after {timeout:.0f}s",
                                hint=f"kubectl get {kind.lower()} {name} -o yaml shows what "
                                     "holds it (finalizers, remaining objects)")
            if on_progress is not None:
                on_progress(f"{kind.lower()} {name}: waiting until it is deleted")
            sleep(interval)

    def wait_established(self, crd_name: str, timeout: float = 60.0, interval: float = 0.5,
                         sleep: Callable[[float], None] = time.sleep) -> None:
        """Wait until a CRD serves its kinds: custom resources applied earlier get a 404."""
        deadline = time.monotonic() + timeout
        while True:
            crd = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name)
            conditions = ((crd or {}).get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in conditions):
                return
            if time.monotonic() >= deadline:
                raise KubeError(f"CustomResourceDefinition {crd_name} was not established "
                                f"within {timeout:.0f}s",
                                hint=f"kubectl describe crd {crd_name}")
            sleep(interval)

    # rollouts and pods

    def rollout_status(self, deployment: str, namespace: str) -> Rollout:
        """One look at a Deployment's rollout, with kubectl's rules and messages
        (kubectl/pkg/polymorphichelpers/rollout_status.go)."""
        dep = self.get("apps/v1", "Deployment", deployment, namespace)
        if dep is None:
            raise KubeNotFound(f"deployment {deployment} does not exist in {namespace}",
                               code=404, reason="NotFound")
        spec, status = dep.get("spec") or {}, dep.get("status") or {}
        selector = dict(((spec.get("selector") or {}).get("matchLabels")) or {})

        def result(done: bool, message: str, failed: bool = False) -> Rollout:
            return Rollout(deployment, namespace, done, message, selector, failed)

        if int(dep["metadata"].get("generation", 0)) > int(status.get("observedGeneration", 0)):
            return result(False, "waiting for the deployment spec update to be observed")
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Progressing" and cond.get("reason") == \
                    "ProgressDeadlineExceeded":
                return result(False, f'deployment "{deployment}" exceeded its progress deadline',
                              failed=True)
        want = int(spec.get("replicas", 1))
        updated = int(status.get("updatedReplicas", 0))
        replicas = int(status.get("replicas", 0))
        available = int(status.get("availableReplicas", 0))
        if updated < want:
            return result(False, f"{updated} out of {want} new replicas have been updated")
        if replicas > updated:
            return result(False, f"{replicas - updated} old replicas are pending termination")
        if available < updated:
            return result(False, f"{available} of {updated} updated replicas are available")
        return result(True, f'deployment "{deployment}" successfully rolled out')

    def wait_rollout(self, deployment: str, namespace: str, timeout: float = 300.0,
                     interval: float = 1.0, on_progress: Callable[[str], None] | None = None,
                     sleep: Callable[[float], None] = time.sleep, first: float = 0.1
                     ) -> Rollout:
        """Wait for a Deployment to roll out; fail early when a pod cannot recover. Looks
        again after ``first`` seconds, then twice as long each time up to ``interval`` (issue
        17: a rollout done just after the first look costs 0.1 s, not 1 s)."""
        deadline = time.monotonic() + timeout
        last = ""
        wait = min(first, interval)
        while True:
            status = self.rollout_status(deployment, namespace)
            if status.done:
                if on_progress is not None:
                    on_progress(f"deployment {deployment}: {status.message}")
                return status
            if status.message != last and on_progress is not None:
                on_progress(f"deployment {deployment}: {status.message}")
            last = status.message
            # logs are read only once it has failed, not on every look; the old
            # ReplicaSet's pods still run during a rollout and are not the new one's problems
            selector = self._newest_pods(deployment, namespace, status.selector)
            problems = (self.pod_problems(namespace, selector, log_lines=0)
                        if selector else [])
            failed = status.failed or any(p.fatal for p in problems)
            if failed or time.monotonic() >= deadline:
                why = (f": {status.message}" if failed else
                       f" within {timeout:.0f}s: {status.message}")
                problems = (self.pod_problems(namespace, selector) if selector else [])
                raise RolloutFailed(f"deployment {deployment} in {namespace} did not roll out"
                                    f"{why}", problems)
            sleep(wait)
            wait = min(wait * 2, interval)

    def _newest_pods(self, deployment: str, namespace: str, selector: Mapping[str, str]
                     ) -> dict[str, str]:
        """The selector of the pods of a Deployment's newest ReplicaSet (the one whose
        revision annotation is the Deployment's), as `kubectl rollout status` looks at it;
        the Deployment's own selector where ReplicaSets cannot be read."""
        if not selector:
            return {}
        from lightkube.resources.apps_v1 import ReplicaSet  # lazy: only when a rollout is watched

        dep = self.get("apps/v1", "Deployment", deployment, namespace) or {}
        revision = (dep.get("metadata", {}).get("annotations") or {}).get(REVISION)
        try:
            with self._translated(f"listing ReplicaSets in {namespace}"):
                sets = [_as_dict(r, "apps/v1", "ReplicaSet") for r in
                        self.client.list(ReplicaSet, namespace=namespace, labels=dict(selector))]
        except KubeForbidden:
            return dict(selector)
        owned = [r for r in sets if any(o.get("name") == deployment and o.get("kind") ==
                                        "Deployment" for o in
                                        r["metadata"].get("ownerReferences") or [])]
        newest = next((r for r in owned if (r["metadata"].get("annotations") or {}).get(
            REVISION) == revision), None) if revision else None
        template_hash = ((newest or {}).get("metadata", {}).get("labels") or {}).get(
            "pod-template-hash")
        return {**selector, "pod-template-hash": template_hash} if template_hash \
            else dict(selector)

    def pod_problems(self, namespace: str, selector: Mapping[str, str],
                     log_lines: int = 20) -> list[PodProblem]:
        """Containers of the selected pods that are failing, each with its last log lines."""
        with self._translated("listing pods"):
            labels: dict[str, Any] = dict(selector)
            pods = [_as_dict(p, "v1", "Pod")
                    for p in self.client.list(Pod, namespace=namespace, labels=labels)]
        out = []
        for pod in pods:
            name = pod["metadata"]["name"]
            status = pod.get("status") or {}
            for cond in status.get("conditions") or []:
                if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    out.append(PodProblem(name, "-", "Unschedulable", cond.get("message", "")))
            for cs in [*(status.get("initContainerStatuses") or []),
                       *(status.get("containerStatuses") or [])]:
                problem = _container_problem(name, cs)
                if problem is None:
                    continue
                ran = cs.get("restartCount", 0) > 0 or "terminated" in cs.get("state", {})
                logs = (self._log_tail(name, namespace, cs["name"], log_lines)
                        if ran and log_lines > 0 else ())
                out.append(PodProblem(problem.pod, problem.container, problem.reason,
                                      problem.message, problem.restarts, logs))
        return out

    def pod_log(self, pod: str, namespace: str, container: str, lines: int
                ) -> tuple[str, ...]:
        """The last ``lines`` lines a container of ``pod`` printed (the pods/log API)."""
        with self._translated(f"reading the log of {pod}"):
            return tuple(self.client.log(pod, namespace=namespace, container=container,
                                         tail_lines=lines, newlines=False))

    def pod_log_follow(self, pod: str, namespace: str, container: str, lines: int
                       ) -> Iterator[str]:
        """The last ``lines`` lines of a container of ``pod``, then each line it prints, until
        the container stops or the pod goes away (the API server ends the stream then)."""
        with self._translated(f"following the log of {pod}"):
            # lightkube sends the request now (errors raise here) and streams the rest
            stream = self.client.log(pod, namespace=namespace, container=container,
                                     tail_lines=lines, follow=True, newlines=False)
        while True:
            with self._translated(f"following the log of {pod}"):
                line = next(stream, None)
            if line is None:
                return
            yield line

    def _log_tail(self, pod: str, namespace: str, container: str, lines: int
                  ) -> tuple[str, ...]:
        try:
            return self.pod_log(pod, namespace, container, lines)
        except KubeApiError as exc:
            return (f"(no log: {exc.message})",)

    # errors

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        """Pods matching a label selector (pods carry their template's labels, not devslice's
        managed-by label, so list_managed does not find them)."""
        from lightkube.resources.core_v1 import Pod  # lazy: only when pods are inspected

        with self._translated(f"listing pods in {namespace}"):
            return [_as_dict(p, "v1", "Pod")
                    for p in self.client.list(Pod, namespace=namespace, labels=dict(selector))]

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """Turn lightkube/httpx errors into KubeErrors that say what devslice was doing."""
        server = self.client.config.cluster.server
        context = self.client.config.context_name
        try:
            yield
        except ApiError as exc:
            raise _api_error(doing, exc, context) from exc
        except httpx2.HTTPStatusError as exc:
            raise KubeApiError(f"{doing}: the API server at {server} answered "
                               f"{exc.response.status_code}",
                               code=exc.response.status_code) from exc
        except httpx2.TimeoutException as exc:
            raise KubeUnreachable(f"{doing}: the Kubernetes API at {server} did not answer in "
                                  "time", hint=_UNREACHABLE_HINT) from exc
        except httpx2.TransportError as exc:
            raise KubeUnreachable(f"{doing}: cannot reach the Kubernetes API at {server} "
                                  f"({exc})", hint=_UNREACHABLE_HINT) from exc
        except LightkubeConfigError as exc:
            raise KubeConfigError(f"{doing}: {exc}",
                                  hint="check the kubeconfig (kubectl config view)") from exc


_UNREACHABLE_HINT = ("is the cluster running? `devslice status` shows it and `devslice up` "
                     "starts a k3d cluster; for a shared cluster try `kubectl cluster-info`")


_FORBIDDEN = re.compile(r'cannot (?P<verb>\w+) resource "(?P<resource>[^"]+)" in API group '
                        r'"(?P<group>[^"]*)" (?:in the namespace "(?P<ns>[^"]+)"|at the '
                        r'cluster scope)')


def _api_error(doing: str, exc: ApiError, context: str) -> KubeApiError:
    status = exc.status
    code, reason = int(status.code or 0), str(status.reason or "")
    message = f"{doing}: {status.message or reason or code}"
    causes = list(getattr(status.details, "causes", None) or [])
    if code == 404:
        return KubeNotFound(message, code=code, reason=reason)
    if code == 401:
        return KubeApiError(message, hint=f"the credentials of kube context {context} were "
                            "refused; log in again (e.g. az aks get-credentials)", code=code,
                            reason=reason)
    if code == 403:
        return _forbidden(doing, status.message or "", causes, context, code, reason)
    if code == 409:
        conflicts = tuple((str(c.field), str(c.message).removeprefix("conflict with "))
                          for c in causes if c.reason == "FieldManagerConflict")
        if not conflicts:
            return KubeConflict(message, hint="another client changed it meanwhile; run the "
                                "command again", code=code, reason=reason)
        fields = "\n".join(f"  {f} (owned by {m})" for f, m in conflicts)
        managers = sorted({m.split(" using ")[0].strip('"') for _, m in conflicts})
        err = KubeConflict(
            f"{doing}: {len(conflicts)} field{'s' * (len(conflicts) != 1)} already belong"
            f"{'s' * (len(conflicts) == 1)} to another field manager ({', '.join(managers)}) "
            f"with a different value:\n{fields}",
            hint="`devslice up --force-conflicts` makes devslice their manager (as `kubectl "
                 "apply --server-side --force-conflicts`), which a team moving from `kubectl "
                 "apply` does once; or change the manifest to the live values",
            code=code, reason=reason)
        err.fields = conflicts
        return err
    if code in (400, 422):
        return KubeInvalid(message, hint="the API server rejected the object; fix the manifest",
                           code=code, reason=reason)
    return KubeApiError(message, code=code, reason=reason)


def _forbidden(doing: str, text: str, causes: list[Any], context: str, code: int,
               reason: str) -> KubeForbidden:
    if any(c.reason == "NamespaceTerminating" for c in causes):
        err = KubeForbidden(f"{doing}: {text}", hint="the namespace is being deleted; run "
                            "`devslice up` again once it is gone (kubectl get namespace shows "
                            "it Terminating until then)", code=code, reason=reason)
        err.terminating = True
        return err
    m = _FORBIDDEN.search(text)
    if m is None:
        return KubeForbidden(f"{doing}: forbidden: {text}", hint=f"kube context {context} "
                             "lacks the rights; ask the cluster's admins", code=code,
                             reason=reason)
    verb, resource, group, ns = m.group("verb", "resource", "group", "ns")
    what = f"{resource}.{group}" if group else resource
    where = f"in namespace {ns}" if ns else "at the cluster scope"
    err = KubeForbidden(
        f"{doing}: forbidden: kube context {context} may not {verb} {what} {where}",
        hint=(f"ask the cluster's admins for a Role in {ns} that allows {verb} on {what} "
              f"(kubectl auth can-i {verb} {what} -n {ns})" if ns else
              f"this needs cluster-wide rights; ask the cluster's admins, or keep "
              f"cluster-scoped objects out of the slice's manifests (kubectl auth can-i "
              f"{verb} {what})"), code=code, reason=reason)
    err.verb, err.resource, err.namespace = verb, what, ns
    return err


def _container_problem(pod: str, cs: Mapping[str, Any]) -> PodProblem | None:
    state = cs.get("state") or {}
    restarts = int(cs.get("restartCount", 0))
    waiting, terminated = state.get("waiting"), state.get("terminated")
    if waiting and waiting.get("reason") in _PROBLEM_REASONS:
        return PodProblem(pod, cs["name"], waiting["reason"], waiting.get("message", ""),
                          restarts)
    if terminated and terminated.get("exitCode", 0) != 0:
        reason = terminated.get("reason") or "Error"
        return PodProblem(pod, cs["name"], reason,
                          f"exit code {terminated.get('exitCode')}", restarts)
    return None


def _as_dict(obj: Any, api_version: str, kind: str) -> dict[str, Any]:
    """A lightkube object as the JSON the server sent (typed models and generic dicts alike).

    Items of built-in lists come without apiVersion/kind, so those are filled in.
    """
    data: dict[str, Any] = obj.to_dict()
    data.setdefault("apiVersion", api_version)
    data.setdefault("kind", kind)
    return data


def _builtin_api_version(kind: str) -> str:
    for api_version, k in PRUNE_KINDS:
        if k == kind:
            return api_version
    raise KubeUnknownKind(f"kind {kind} needs its apiVersion to be named",
                          hint="pass api_version, e.g. traefik.io/v1alpha1")
