"""A fake Kubernetes API server that speaks real HTTP, for testing what talks to a cluster.

It serves the REST paths a client computes itself (``/api/v1/...``, ``/apis/GROUP/VERSION/...``)
on 127.0.0.1 from a thread, so any client (lightkube, the official client, kubectl with a
kubeconfig from :meth:`FakeKubeAPI.kubeconfig`) can be pointed at it. It implements:

- GET one object, LIST (all namespaces or one; ``labelSelector`` with ``=``, ``==``, ``!=``,
  ``in``, ``notin``, exists and ``!key``; ``fieldSelector`` on ``metadata.name`` and
  ``metadata.namespace``). Lists of built-in kinds leave ``apiVersion``/``kind`` out of their
  items, as the real server does; custom resources keep them.
- PATCH with ``application/apply-patch+yaml`` (server-side apply): creates or updates, requires
  ``fieldManager``, records it in ``metadata.managedFields``, bumps ``resourceVersion`` only when
  something changed and ``generation`` only when the spec did, answers 409 when another manager
  owns a field with a different value (unless ``force=true``). Simplification: lists are owned
  as a whole, not merged by key as the real server does for containers and ports.
- POST to a collection (create: 409 ``AlreadyExists`` when the name is taken) and PUT of one
  object (replace: 409 ``Conflict`` when the body's ``metadata.resourceVersion`` is not the
  stored one), the optimistic concurrency leases rely on. Simplification: objects written
  this way record no ``managedFields``, and a later apply does not merge with them.
- DELETE, with pods of a deleted Deployment going too (garbage collection).
- Server-side effects the real cluster has: Secrets' ``stringData`` folded into base64
  ``data`` (without the real server's quirk of keeping keys dropped from ``stringData``,
  kubernetes issue 108008), Service ``clusterIP``, Deployment defaults, CRDs established and
  their kinds served.
- A Deployment controller: after each apply, a Deployment gets a status and Pods. They roll out
  at once unless :meth:`FakeKubeAPI.rollout` says otherwise (slowly, or failing with a reason
  such as ``CrashLoopBackOff`` and log lines served from ``pods/NAME/log``).

Every request is recorded (:attr:`FakeKubeAPI.requests`: method, path, decoded query,
content type and body) so tests assert the exact calls and validate what was sent::

    with FakeKubeAPI() as api:
        client = lightkube.Client(lightkube.KubeConfig.from_dict(api.kubeconfig()))
        ...
        assert [r.line for r in api.requests] == ["GET /apis/apps/v1/deployments?..."]

Response shapes follow the Kubernetes API reference (Status objects for errors, with
``reason`` and ``code``; ``*List`` kinds with ``metadata.resourceVersion``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

APPLY_PATCH = "application/apply-patch+yaml"

# (group, version, plural, kind, namespaced): the built-in kinds the fake serves.
_BUILTIN: tuple[tuple[str, str, str, str, bool], ...] = (
    ("", "v1", "namespaces", "Namespace", False),
    ("", "v1", "configmaps", "ConfigMap", True),
    ("", "v1", "secrets", "Secret", True),
    ("", "v1", "services", "Service", True),
    ("", "v1", "serviceaccounts", "ServiceAccount", True),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    ("", "v1", "persistentvolumes", "PersistentVolume", False),
    ("", "v1", "pods", "Pod", True),
    ("", "v1", "endpoints", "Endpoints", True),
    ("", "v1", "replicationcontrollers", "ReplicationController", True),
    ("apps", "v1", "deployments", "Deployment", True),
    ("apps", "v1", "statefulsets", "StatefulSet", True),
    ("apps", "v1", "daemonsets", "DaemonSet", True),
    ("apps", "v1", "replicasets", "ReplicaSet", True),
    ("batch", "v1", "jobs", "Job", True),
    ("batch", "v1", "cronjobs", "CronJob", True),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", True),
    ("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
     False),
    ("coordination.k8s.io", "v1", "leases", "Lease", True),
)

# Waiting reasons a Pod can be stuck in; the kubelet's own strings.
_PENDING_REASONS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                    "CreateContainerConfigError", "CreateContainerError", "ErrImageNeverPull"}


@dataclass(frozen=True)
class KubeRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: str  # decoded, in the order sent: "fieldManager=devslice&force=true"
    content_type: str | None
    body: bytes = field(default=b"", repr=False)  # what was sent, e.g. to validate objects

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))

    @property
    def line(self) -> str:
        """``METHOD /path?query`` - what a plan shows as a call."""
        return f"{self.method} {self.path}" + (f"?{self.query}" if self.query else "")

    @property
    def changes(self) -> bool:
        return self.method not in ("GET", "HEAD")


@dataclass(frozen=True)
class _Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    builtin: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass
class _Rollout:
    """How the fake's Deployment controller treats one Deployment."""

    fail: str | None = None  # a waiting reason such as CrashLoopBackOff; None rolls out
    message: str | None = None
    logs: tuple[str, ...] = ()
    reads_until_ready: int = 0  # GETs of the Deployment that still see it progressing
    deadline_exceeded: bool = False


@dataclass
class _Stored:
    obj: dict[str, Any]
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # manager -> its config


class ApiFailure(Exception):
    """Raised inside the fake to answer with a Kubernetes Status object."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure", "message": self.message,
                               "reason": self.reason, "code": self.code}
        if self.details is not None:
            out["details"] = self.details
        return out


def _not_found(kind: _Kind, name: str) -> ApiFailure:
    what = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
    return ApiFailure(404, "NotFound", f'{what} "{name}" not found',
                      {"name": name, "group": kind.group, "kind": kind.plural})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubeAPI:
    """A Kubernetes API server on 127.0.0.1 (a free port), started by ``with`` or start()."""

    def __init__(self, namespaces: Iterable[str] = ("default", "kube-system", "kube-public")):
        self._lock = threading.RLock()
        self._kinds: dict[tuple[str, str, str], _Kind] = {
            (g, v, p): _Kind(g, v, p, k, ns, True) for g, v, p, k, ns in _BUILTIN}
        self._objects: dict[tuple[str, str, str, str], _Stored] = {}
        self._rollouts: dict[tuple[str, str], _Rollout] = {}
        self._logs: dict[tuple[str, str, str], list[str]] = {}
        self._rv = 0
        self._uids = 0
        self.requests: list[KubeRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for ns in namespaces:
            self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                       manager="kube-apiserver")
        self.clear_requests()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeKubeAPI:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="fake-kube-api")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake API server is not running: call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def kubeconfig(self, context: str = "fake", namespace: str | None = None) -> dict[str, Any]:
        """A kubeconfig (as a dict) whose one context points at this server, without auth.

        It names an empty user because some clients (lightkube 1.0) refuse a context without
        one even when the server needs no credentials.
        """
        ctx: dict[str, Any] = {"cluster": context, "user": context}
        if namespace:
            ctx["namespace"] = namespace
        return {"apiVersion": "v1", "kind": "Config", "current-context": context,
                "clusters": [{"name": context, "cluster": {"server": self.url}}],
                "contexts": [{"name": context, "context": ctx}],
                "users": [{"name": context, "user": {}}]}

    # -- what tests read and set up --------------------------------------------------------

    def clear_requests(self) -> None:
        with self._lock:
            self.requests = []

    def calls(self) -> list[str]:
        """The request lines so far (``METHOD /path?query``)."""
        with self._lock:
            return [r.line for r in self.requests]

    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            stored = self._objects.get((api_version, kind, namespace or "", name))
            return copy.deepcopy(stored.obj) if stored else None

    def objects(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(s.obj) for (_, k, _, _), s in sorted(self._objects.items())
                    if kind is None or k == kind]

    def apply(self, obj: Mapping[str, Any], manager: str = "test", force: bool = True
              ) -> dict[str, Any]:
        """Server-side apply without HTTP, to seed objects (not recorded as a request)."""
        kind = self._kind_of(str(obj["apiVersion"]), str(obj["kind"]))
        meta = obj.get("metadata") or {}
        ns = (meta.get("namespace") or "default") if kind.namespaced else ""
        with self._lock:
            return self._apply(kind, ns, str(meta["name"]), dict(obj), manager, force)

    def rollout(self, name: str, namespace: str = "default", *, fail: str | None = None,
                message: str | None = None, logs: Iterable[str] = (),
                reads_until_ready: int = 0, deadline_exceeded: bool = False) -> None:
        """How Deployment ``name`` rolls out from now on (and now, if it exists).

        ``fail`` is the waiting reason of its containers (``CrashLoopBackOff``,
        ``ImagePullBackOff``, ``CreateContainerConfigError``, ...), ``logs`` what
        ``pods/NAME/log`` serves for them. ``reads_until_ready`` keeps a healthy rollout in
        progress for that many GETs of the Deployment.
        """
        with self._lock:
            self._rollouts[(namespace, name)] = _Rollout(
                fail, message, tuple(logs), reads_until_ready, deadline_exceeded)
            stored = self._objects.get(("apps/v1", "Deployment", namespace, name))
            if stored is not None:
                self._reconcile_deployment(stored.obj)

    # -- the API ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, content_type: str | None,
               body: bytes) -> tuple[int, str, bytes]:
        """Answer one request: (status, content type, body)."""
        parts = urlsplit(target)
        query = "&".join(f"{k}={v}" for k, v in parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.requests.append(KubeRequest(method, parts.path, query, content_type, body))
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            with self._lock:
                result = self._route(method, parts.path, params, content_type, body)
        except ApiFailure as exc:
            return exc.code, "application/json", json.dumps(exc.status()).encode()
        if isinstance(result, str):
            return 200, "text/plain", result.encode()
        return 200, "application/json", json.dumps(result).encode()

    def _route(self, method: str, path: str, params: dict[str, str], content_type: str | None,
               body: bytes) -> dict[str, Any] | str:
        kind, namespace, name, sub = self._parse_path(path)
        if params.get("watch") in ("true", "1"):
            raise ApiFailure(405, "MethodNotAllowed", "the fake API server does not serve watch")
        if method == "GET" and name is None:
            return self._list(kind, namespace, params)
        if method == "POST" and name is None:
            return self._create(kind, namespace or "", body)
        if name is None:
            raise ApiFailure(405, "MethodNotAllowed",
                             f"{method} on a collection is not served by the fake")
        if sub == "log" and kind.kind == "Pod" and method == "GET":
            return self._log(namespace or "", name, params)
        if sub is not None:
            raise ApiFailure(404, "NotFound", f"subresource {sub} is not served by the fake")
        if method == "GET":
            return self._get(kind, namespace or "", name)
        if method == "PATCH":
            return self._patch(kind, namespace or "", name, params, content_type, body)
        if method == "PUT":
            return self._replace(kind, namespace or "", name, body)
        if method == "DELETE":
            return self._delete(kind, namespace or "", name)
        raise ApiFailure(405, "MethodNotAllowed", f"{method} is not served by the fake")

    def _parse_path(self, path: str) -> tuple[_Kind, str | None, str | None, str | None]:
        segs = [s for s in path.split("/") if s]
        if segs[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        namespace = None
        # /namespaces/NS/PLURAL... is a namespaced resource; /namespaces[/NAME[/status]] is
        # the Namespace kind itself.
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        kind = self._kinds.get((group, version, rest[0]))
        if kind is None or (namespace is not None and not kind.namespaced):
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if kind.namespaced and name is not None and namespace is None:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        return kind, namespace, name, sub

    def _kind_of(self, api_version: str, kind: str) -> _Kind:
        for k in self._kinds.values():
            if k.api_version == api_version and k.kind == kind:
                return k
        raise ApiFailure(404, "NotFound", f'no matches for kind "{kind}" in version '
                         f'"{api_version}"')

    def _get(self, kind: _Kind, namespace: str, name: str) -> dict[str, Any]:
        stored = self._objects.get((kind.api_version, kind.kind, namespace, name))
        if stored is None:
            raise _not_found(kind, name)
        if kind.kind == "Deployment":
            self._count_read(stored.obj)
        return copy.deepcopy(stored.obj)

    def _list(self, kind: _Kind, namespace: str | None, params: dict[str, str]
              ) -> dict[str, Any]:
        match = _selector(params.get("labelSelector", ""))
        fields = _field_selector(params.get("fieldSelector", ""))
        items = []
        for (av, k, ns, name), stored in sorted(self._objects.items()):
            if av != kind.api_version or k != kind.kind:
                continue
            if namespace is not None and ns != namespace:
                continue
            meta = stored.obj["metadata"]
            if not match(meta.get("labels") or {}):
                continue
            if any({"metadata.name": name, "metadata.namespace": ns}.get(f) != v
                   for f, v in fields.items()):
                continue
            item = copy.deepcopy(stored.obj)
            if kind.builtin:  # the real server leaves these out of typed lists' items
                item.pop("apiVersion", None)
                item.pop("kind", None)
            items.append(item)
        return {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _patch(self, kind: _Kind, namespace: str, name: str, params: dict[str, str],
               content_type: str | None, body: bytes) -> dict[str, Any]:
        if (content_type or "").split(";")[0].strip() != APPLY_PATCH:
            raise ApiFailure(415, "UnsupportedMediaType",
                             f"the fake serves only server-side apply ({APPLY_PATCH}), "
                             f"not {content_type}")
        manager = params.get("fieldManager")
        if not manager:
            raise ApiFailure(400, "BadRequest",
                             "PATCH requests with apply content type require fieldManager")
        try:
            obj = yaml.safe_load(body.decode())  # JSON is YAML, as the server treats it
        except yaml.YAMLError as exc:
            raise ApiFailure(400, "BadRequest", f"error decoding YAML: {exc}") from None
        _check_kind(obj, kind)
        meta = obj.get("metadata") or {}
        if meta.get("name") != name:
            raise ApiFailure(400, "BadRequest", f"the name of the object ({meta.get('name')}) "
                             f"does not match the name on the URL ({name})")
        if meta.get("namespace", namespace) != namespace:
            raise ApiFailure(400, "BadRequest", "the namespace of the provided object does not "
                             "match the namespace sent on the request")
        if kind.namespaced and ("v1", "Namespace", "", namespace) not in self._objects:
            raise ApiFailure(404, "NotFound", f'namespaces "{namespace}" not found',
                             {"name": namespace, "kind": "namespaces"})
        force = params.get("force") in ("true", "1")
        return self._apply(kind, namespace, name, obj, manager, force)

    def _body(self, kind: _Kind, namespace: str, body: bytes) -> dict[str, Any]:
        """The object of a create or replace, checked as the server checks it."""
        try:
            obj = json.loads(body.decode() or "null")
        except ValueError as exc:
            raise ApiFailure(400, "BadRequest", f"error decoding JSON: {exc}") from None
        _check_kind(obj, kind)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ApiFailure(422, "Invalid", "metadata.name: Required value: name is required")
        if kind.namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise ApiFailure(400, "BadRequest", "the namespace of the provided object does "
                                 "not match the namespace sent on the request")
            if ("v1", "Namespace", "", namespace) not in self._objects:
                raise ApiFailure(404, "NotFound", f'namespaces "{namespace}" not found',
                                 {"name": namespace, "kind": "namespaces"})
            meta["namespace"] = namespace
        return obj

    def _create(self, kind: _Kind, namespace: str, body: bytes) -> dict[str, Any]:
        obj = self._body(kind, namespace, body)
        meta = obj["metadata"]
        key = (kind.api_version, kind.kind, namespace, meta["name"])
        if key in self._objects:
            what = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
            raise ApiFailure(409, "AlreadyExists", f'{what} "{meta["name"]}" already exists',
                             {"name": meta["name"], "group": kind.group, "kind": kind.plural})
        self._uids += 1
        self._rv += 1
        meta.update({"uid": f"00000000-0000-4000-8000-{self._uids:012d}",
                     "creationTimestamp": _now(), "resourceVersion": str(self._rv)})
        if "spec" in obj:
            meta["generation"] = 1
        self._server_side_effects(kind, obj, {})
        self._objects[key] = _Stored(obj)
        return copy.deepcopy(obj)

    def _replace(self, kind: _Kind, namespace: str, name: str, body: bytes) -> dict[str, Any]:
        obj = self._body(kind, namespace, body)
        meta = obj["metadata"]
        if meta["name"] != name:
            raise ApiFailure(400, "BadRequest", f"the name of the object ({meta['name']}) "
                             f"does not match the name on the URL ({name})")
        stored = self._objects.get((kind.api_version, kind.kind, namespace, name))
        if stored is None:
            raise _not_found(kind, name)
        old = stored.obj
        wanted = meta.get("resourceVersion")
        if wanted is not None and str(wanted) != old["metadata"]["resourceVersion"]:
            what = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
            raise ApiFailure(409, "Conflict", f'Operation cannot be fulfilled on {what} '
                             f'"{name}": the object has been modified; please apply your '
                             "changes to the latest version and try again",
                             {"name": name, "group": kind.group, "kind": kind.plural})
        for k in ("uid", "creationTimestamp", "generation"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
        if "status" in old and "status" not in obj:
            obj["status"] = old["status"]
        self._server_side_effects(kind, obj, old)
        if obj.get("spec") != old.get("spec"):
            meta["generation"] = int(old["metadata"].get("generation", 0)) + 1
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        stored.obj = obj
        return copy.deepcopy(obj)

    def _delete(self, kind: _Kind, namespace: str, name: str) -> dict[str, Any]:
        key = (kind.api_version, kind.kind, namespace, name)
        stored = self._objects.pop(key, None)
        if stored is None:
            raise _not_found(kind, name)
        if kind.kind == "Deployment":
            self._delete_pods(namespace, name)
        if kind.kind == "Namespace":
            for k in [k for k in self._objects if k[2] == name]:
                del self._objects[k]
        self._rv += 1
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": kind.group, "kind": kind.plural,
                            "uid": stored.obj["metadata"]["uid"]}}

    def _log(self, namespace: str, name: str, params: dict[str, str]) -> str:
        pod = self._objects.get(("v1", "Pod", namespace, name))
        if pod is None:
            raise _not_found(self._kind_of("v1", "Pod"), name)
        names = [c["name"] for c in pod.obj["spec"]["containers"]]
        container = params.get("container")
        if container is None:
            if len(names) != 1:
                raise ApiFailure(400, "BadRequest", f"a container name must be specified for "
                                 f"pod {name}, choose one of: [{' '.join(names)}]")
            container = names[0]
        if container not in names:
            raise ApiFailure(400, "BadRequest",
                             f"container {container} is not valid for pod {name}")
        for status in pod.obj.get("status", {}).get("containerStatuses", []):
            waiting = status["state"].get("waiting")
            if status["name"] == container and waiting and status["restartCount"] == 0:
                raise ApiFailure(400, "BadRequest", f'container "{container}" in pod "{name}" '
                                 f"is waiting to start: {_start_problem(waiting['reason'])}")
        lines = self._logs.get((namespace, name, container), [])
        tail = params.get("tailLines")
        if tail is not None:
            lines = lines[-int(tail):] if int(tail) > 0 else []
        return "".join(line + "\n" for line in lines)

    # -- server-side apply -----------------------------------------------------------------

    def _apply(self, kind: _Kind, namespace: str, name: str, config: dict[str, Any],
               manager: str, force: bool) -> dict[str, Any]:
        key = (kind.api_version, kind.kind, namespace, name)
        config = copy.deepcopy(config)
        if kind.namespaced:
            config.setdefault("metadata", {})["namespace"] = namespace
        stored = self._objects.get(key)
        if stored is None:
            self._uids += 1
            stored = _Stored({"metadata": {
                "uid": f"00000000-0000-4000-8000-{self._uids:012d}",
                "creationTimestamp": _now()}})
            creating = True
        else:
            creating = False
        conflicts = []
        for other, other_config in stored.applied.items():
            if other == manager:
                continue
            for path, value in _leaves(config):
                if path[:2] in (("metadata", "name"), ("metadata", "namespace")):
                    continue
                theirs = _at(other_config, path)
                if theirs is not _MISSING and theirs != value:
                    conflicts.append((other, path))
        if conflicts and not force:
            fields = [f".{'.'.join(p)}" for _, p in conflicts]
            raise ApiFailure(409, "Conflict", f"Apply failed with {len(conflicts)} conflict"
                             f"{'s' * (len(conflicts) != 1)}: conflict with \"{conflicts[0][0]}\" "
                             f"using {kind.api_version}: {', '.join(fields)}",
                             {"causes": [{"type": "FieldManagerConflict", "field": f,
                                          "message": f'conflict with "{m}"'}
                                         for (m, _), f in zip(conflicts, fields, strict=True)]})
        for other, path in conflicts:  # forced: the other manager loses those fields
            _drop(stored.applied[other], path)
        stored.applied[manager] = config

        old = stored.obj
        merged: dict[str, Any] = {}
        for applied in stored.applied.values():
            _merge(merged, copy.deepcopy(applied))
        merged["apiVersion"], merged["kind"] = kind.api_version, kind.kind
        meta = merged.setdefault("metadata", {})
        keep = ("uid", "creationTimestamp", "resourceVersion", "generation")
        meta.update({k: old["metadata"][k] for k in keep if k in old["metadata"]})
        if "status" in old:
            merged["status"] = old["status"]
        self._server_side_effects(kind, merged, old)

        spec_changed = {k: v for k, v in merged.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")}
        meta_changed = {k: v for k, v in merged["metadata"].items() if k != "managedFields"} != {
            k: v for k, v in old["metadata"].items() if k != "managedFields"}
        if creating or spec_changed or meta_changed or manager not in _managers(old):
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            if "spec" in merged and (creating or spec_changed):
                meta["generation"] = int(old["metadata"].get("generation", 0)) + 1
            meta["managedFields"] = [
                {"manager": m, "operation": "Apply", "apiVersion": kind.api_version,
                 "time": _now(), "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(c)}
                for m, c in stored.applied.items()]
            stored.obj = merged
            self._objects[key] = stored
            if kind.kind == "Deployment":
                self._reconcile_deployment(stored.obj)
            if kind.kind == "CustomResourceDefinition":
                self._serve_crd(stored.obj)
        return copy.deepcopy(stored.obj)

    def _server_side_effects(self, kind: _Kind, obj: dict[str, Any], old: dict[str, Any]
                             ) -> None:
        if kind.kind == "Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        if kind.kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            ip = (old.get("spec") or {}).get("clusterIP")
            if ip is None:
                n = int(hashlib.sha256(obj["metadata"]["name"].encode()).hexdigest(), 16)
                ip = f"10.43.{n % 250 + 1}.{n // 250 % 250 + 1}"
            spec.setdefault("clusterIP", ip)
            spec.setdefault("clusterIPs", [ip])
            spec.setdefault("sessionAffinity", "None")
        if kind.kind == "Deployment":
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {
                "maxUnavailable": "25%", "maxSurge": "25%"}})
        if kind.kind == "CustomResourceDefinition":
            obj["status"] = {"conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": _now()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted",
                 "lastTransitionTime": _now()}],
                "acceptedNames": obj.get("spec", {}).get("names", {}),
                "storedVersions": [v["name"] for v in obj.get("spec", {}).get("versions", [])
                                   if v.get("storage")]}
        if kind.kind == "Namespace":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})[
                "kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def _serve_crd(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        for v in spec.get("versions", []):
            if v.get("served", True):
                key = (spec["group"], v["name"], spec["names"]["plural"])
                self._kinds[key] = _Kind(spec["group"], v["name"], spec["names"]["plural"],
                                         spec["names"]["kind"], spec["scope"] == "Namespaced",
                                         False)

    # -- the Deployment controller ---------------------------------------------------------

    def _count_read(self, dep: dict[str, Any]) -> None:
        meta = dep["metadata"]
        behaviour = self._rollouts.get((meta["namespace"], meta["name"]))
        if behaviour is not None and behaviour.reads_until_ready > 0:
            behaviour.reads_until_ready -= 1
            if behaviour.reads_until_ready == 0:
                self._reconcile_deployment(dep)

    def _reconcile_deployment(self, dep: dict[str, Any]) -> None:
        meta, spec = dep["metadata"], dep["spec"]
        ns, name = meta["namespace"], meta["name"]
        b = self._rollouts.get((ns, name), _Rollout())
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template", {})
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()
                                       ).hexdigest()[:10]
        rs_name = f"{name}-{template_hash}"
        self._delete_pods(ns, name)
        healthy = b.fail is None and b.reads_until_ready == 0
        for i in range(replicas):
            pod_name = f"{rs_name}-{_suffix(template_hash, i)}"
            self._objects[("v1", "Pod", ns, pod_name)] = _Stored(
                self._pod(ns, pod_name, rs_name, template, template_hash, b, healthy))
            for c in template.get("spec", {}).get("containers", []):
                self._logs[(ns, pod_name, c["name"])] = list(b.logs)
        status: dict[str, Any] = {"observedGeneration": meta.get("generation", 1),
                                  "replicas": replicas, "updatedReplicas": replicas}
        now = _now()
        if healthy:
            status.update(readyReplicas=replicas, availableReplicas=replicas)
            conditions = [
                ("Available", "True", "MinimumReplicasAvailable",
                 "Deployment has minimum availability."),
                ("Progressing", "True", "NewReplicaSetAvailable",
                 f'ReplicaSet "{rs_name}" has successfully progressed.')]
        else:
            status["unavailableReplicas"] = replicas
            progressing = (("Progressing", "False", "ProgressDeadlineExceeded",
                            f'ReplicaSet "{rs_name}" has timed out progressing.')
                           if b.deadline_exceeded else
                           ("Progressing", "True", "ReplicaSetUpdated",
                            f'ReplicaSet "{rs_name}" is progressing.'))
            conditions = [("Available", "False", "MinimumReplicasUnavailable",
                           "Deployment does not have minimum availability."), progressing]
        status["conditions"] = [
            {"type": t, "status": s, "reason": r, "message": m, "lastUpdateTime": now,
             "lastTransitionTime": now} for t, s, r, m in conditions]
        dep["status"] = status

    def _pod(self, ns: str, name: str, rs_name: str, template: dict[str, Any],
             template_hash: str, b: _Rollout, healthy: bool) -> dict[str, Any]:
        labels = dict(template.get("metadata", {}).get("labels", {}))
        labels["pod-template-hash"] = template_hash
        self._uids += 1
        pod_spec = copy.deepcopy(template.get("spec", {}))
        statuses = []
        for c in pod_spec.get("containers", []):
            st: dict[str, Any] = {"name": c["name"], "image": c.get("image", ""),
                                  "imageID": "", "ready": healthy, "restartCount": 0,
                                  "started": healthy}
            if healthy:
                st["state"] = {"running": {"startedAt": _now()}}
            elif b.fail is None:  # still starting
                st["state"] = {"waiting": {"reason": "ContainerCreating"}}
            elif b.fail in _PENDING_REASONS:
                st["state"] = {"waiting": {"reason": b.fail, "message": b.message or (
                    f'Back-off pulling image "{c.get("image", "")}"'
                    if "Image" in b.fail else b.fail)}}
            else:
                st["restartCount"] = 4
                st["state"] = {"waiting": {"reason": b.fail, "message": b.message or (
                    f"back-off 1m20s restarting failed container={c['name']} "
                    f"pod={name}_{ns}(00000000-0000-4000-8000-{self._uids:012d})")}}
                st["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                                  "startedAt": _now(), "finishedAt": _now()}}
            statuses.append(st)
        pending = b.fail in _PENDING_REASONS or (not healthy and b.fail is None)
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {
                    "name": name, "namespace": ns, "labels": labels,
                    "uid": f"00000000-0000-4000-8000-{self._uids:012d}",
                    "resourceVersion": str(self._rv), "creationTimestamp": _now(),
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                         "name": rs_name, "uid": "", "controller": True}]},
                "spec": pod_spec,
                "status": {"phase": "Pending" if pending else "Running",
                           "conditions": [{"type": "Ready", "status": str(healthy)}],
                           "containerStatuses": statuses}}

    def _delete_pods(self, ns: str, deployment: str) -> None:
        for key, stored in list(self._objects.items()):
            if key[:3] != ("v1", "Pod", ns):
                continue
            owners = stored.obj["metadata"].get("ownerReferences", [])
            if any(o["name"].rsplit("-", 1)[0] == deployment for o in owners):
                del self._objects[key]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubeAPI
    protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections
    # headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for
    # the client's delayed ACK
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, ctype, out = self.fake.handle(self.command, self.path,
                                            self.headers.get("Content-Type"), body)
        self.send_response(code, HTTPStatus(code).phrase)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read fake.requests instead of stderr


# -- label selectors (k8s.io/apimachinery/pkg/labels syntax) -----------------------------------

_TERM = re.compile(r"^\s*(!)?\s*([\w./-]+)\s*(?:(==|=|!=)\s*([\w.-]*)|\s+(in|notin)\s*\(([^)]*)\))?"
                   r"\s*$")


def _selector(text: str) -> Any:
    terms = []
    for raw in re.split(r",(?![^()]*\))", text) if text.strip() else []:
        m = _TERM.match(raw)
        if m is None:
            raise ApiFailure(400, "BadRequest", f"unable to parse requirement: {raw!r}")
        neg, key, op, value, set_op, values = m.groups()
        terms.append((neg, key, op, value, set_op,
                      {v.strip() for v in (values or "").split(",") if v.strip()}))

    def match(labels: Mapping[str, str]) -> bool:
        for neg, key, op, value, set_op, values in terms:
            have = labels.get(key)
            ok = {None: have is not None, "=": have == value, "==": have == value,
                  "!=": have != value}[op] if set_op is None else (
                  (have in values) if set_op == "in" else (have not in values))
            if neg:
                ok = have is None
            if not ok:
                return False
        return True

    return match


def _field_selector(text: str) -> dict[str, str]:
    out = {}
    for raw in filter(None, text.split(",")):
        key, _, value = raw.partition("=")
        key = key.rstrip("=")
        if key not in ("metadata.name", "metadata.namespace"):
            raise ApiFailure(400, "BadRequest", f'field label not supported: "{key}"')
        out[key] = value.lstrip("=")
    return out


# -- helpers for the apply merge ---------------------------------------------------------------

_MISSING = object()


def _leaves(obj: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            yield from _leaves(v, (*prefix, str(k)))
    else:
        yield prefix, obj


def _at(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _drop(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    parent = _at(obj, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _merge(into: dict[str, Any], src: Mapping[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def _fields_v1(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        return {}
    return {f"f:{k}": _fields_v1(v) for k, v in config.items()
            if k not in ("apiVersion", "kind")}


def _managers(obj: dict[str, Any]) -> set[str]:
    return {m["manager"] for m in obj.get("metadata", {}).get("managedFields", [])}


def _suffix(seed: str, i: int) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the consonants and digits k8s names use
    n = int(hashlib.sha256(f"{seed}{i}".encode()).hexdigest(), 16)
    return "".join(alphabet[(n >> (5 * j)) % len(alphabet)] for j in range(5))


def _start_problem(reason: str) -> str:
    return {"ImagePullBackOff": "trying and failing to pull image",
            "ErrImagePull": "trying and failing to pull image"}.get(reason, reason)


def _check_kind(obj: Any, kind: _Kind) -> None:
    """A request body must be an object of the kind its URL names, as the server checks."""
    if not isinstance(obj, dict):
        raise ApiFailure(400, "BadRequest", "the body is not an object")
    if obj.get("apiVersion") != kind.api_version or obj.get("kind") != kind.kind:
        raise ApiFailure(400, "BadRequest",
                         f"the object's {obj.get('apiVersion')}/{obj.get('kind')} does not "
                         f"match the URL's {kind.api_version}/{kind.kind}")
