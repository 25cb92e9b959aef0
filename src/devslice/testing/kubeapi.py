"""A fake Kubernetes API server that speaks real HTTP, for testing what talks to a cluster.

It serves the REST paths a client computes itself (``/api/v1/...``, ``/apis/GROUP/VERSION/...``)
on 127.0.0.1 from a thread, so any client (lightkube, the official client, kubectl with a
kubeconfig from :meth:`FakeKubeAPI.kubeconfig`) can be pointed at it. It implements:

- GET one object, LIST (all namespaces or one; ``labelSelector`` with ``=``, ``==``, ``!=``,
  ``in``, ``notin``, exists and ``!key``; ``fieldSelector`` on ``metadata.name`` and
  ``metadata.namespace``). Lists of built-in kinds leave ``apiVersion``/``kind`` out of their
  items, as the real server does; custom resources keep them.
- Field ownership as the API server keeps it (:mod:`devslice.testing.fieldmanager`):
  ``metadata.managedFields`` with an Update entry for each manager of a create (POST), replace
  (PUT) or merge/strategic-merge PATCH (``fieldManager``, else the client's User-Agent), and an
  Apply entry per server-side applier (PATCH ``application/apply-patch+yaml``, ``fieldManager``
  required). An apply that changes a field another manager owns is Kubernetes' 409 (``Apply
  failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1:
  .spec.replicas``, causes of reason ``FieldManagerConflict``) unless ``force=true``; lists
  merge by key where Kubernetes' schema keys them (containers, env, ports, volumes, ...).
  ``resourceVersion`` moves only when something changed, ``generation`` only with the spec.
  :meth:`FakeKubeAPI.create` seeds what ``kubectl create`` / client-side ``kubectl apply``
  leave behind.
- POST 409 ``AlreadyExists`` when the name is taken; PUT 409 ``Conflict`` when the body's
  ``metadata.resourceVersion`` is not the stored one (the optimistic concurrency leases use).
- RBAC: with ``rules`` (:class:`Rule`, or :meth:`FakeKubeAPI.restrict`), a request no rule
  allows is 403 with the real Status (``... is forbidden: User "x" cannot list resource
  "customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope``).
  API discovery (``/api/v1``, ``/apis/GROUP/VERSION``) is open to all, as system:discovery is.
- DELETE, with a deleted Deployment's ReplicaSets and pods going too; a deleted Namespace
  stays Terminating for ``terminating_reads`` reads of it, refusing new content with 403
  (``unable to create new content in namespace X because it is being terminated``).
- Server-side effects the real cluster has: Secrets' ``stringData`` folded into base64
  ``data`` (without the real server's quirk of keeping keys dropped from ``stringData``,
  kubernetes issue 108008), Service ``clusterIP``, Deployment defaults, CRDs established and
  their kinds served.
- A Deployment controller: a ReplicaSet per template (revision annotations on both), pods as
  :meth:`FakeKubeAPI.rollout` says (at once, slowly, or failing with a reason such as
  ``CrashLoopBackOff`` and log lines served from ``pods/NAME/log``); while the new pods are
  not available the old ReplicaSet's pods keep running beside them, and the status counts
  both.

- ``pods/NAME/log`` as the API server serves it (``pkg/registry/core/pod/rest/log.go``:
  ``text/plain``, flushed per write when following): ``tailLines``, ``container`` (400 when
  a pod has several and none is named, or the one named is not the pod's), 404 for a missing
  pod; with ``follow=true`` a chunked stream that stays open, sends each line
  :meth:`FakeKubeAPI.write_log` adds, and ends when the pod goes away (deleted, or replaced by
  a rollout), as the kubelet's stream ends with the container.

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

from devslice.testing.fieldmanager import Conflicts, FieldManager, list_type, merge, path_text

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"

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


@dataclass(frozen=True)
class Rule:
    """One RBAC rule, as a Role (``namespaces`` listed: a RoleBinding in each) or a
    ClusterRole bound cluster-wide (``namespaces`` None) grants it. ``*`` matches anything."""

    verbs: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)  # plurals, or "pods/log" for a subresource
    groups: tuple[str, ...] = ("*",)  # "" is the core group
    namespaces: tuple[str, ...] | None = None

    def allows(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        if self.namespaces is not None and (namespace is None or
                                            namespace not in self.namespaces):
            return False
        return (("*" in self.verbs or verb in self.verbs)
                and ("*" in self.groups or group in self.groups)
                and ("*" in self.resources or resource in self.resources))


@dataclass
class _Stored:
    obj: dict[str, Any]
    fields: FieldManager = field(default_factory=FieldManager)  # who owns which fields


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

    def __init__(self, namespaces: Iterable[str] = ("default", "kube-system", "kube-public"),
                 *, user: str = "admin", rules: Iterable[Rule] | None = None,
                 terminating_reads: int = 0):
        """``rules`` None allows everything (a cluster admin); otherwise requests need a
        :class:`Rule` that allows them, else 403 as RBAC answers. A deleted namespace stays
        Terminating for ``terminating_reads`` reads of it before it and its objects go."""
        self.user = user
        self.rules: tuple[Rule, ...] | None = None if rules is None else tuple(rules)
        self.terminating_reads = terminating_reads
        self._terminating: dict[str, int] = {}  # namespace -> reads left
        self._lock = threading.RLock()
        # notified after every change (a request, a log line): followed logs wait on it
        self._changed = threading.Condition(self._lock)
        self._stopping = False
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
        with self._changed:  # followed logs end (the server goes away)
            self._stopping = True
            self._changed.notify_all()
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
                reads_until_ready: int = 0, deadline_exceeded: bool = False,
                now: bool = True) -> None:
        """How Deployment ``name`` rolls out from now on (and now, if it exists).

        ``fail`` is the waiting reason of its containers (``CrashLoopBackOff``,
        ``ImagePullBackOff``, ``CreateContainerConfigError``, ...), ``logs`` what
        ``pods/NAME/log`` serves for them. ``reads_until_ready`` keeps a healthy rollout in
        progress for that many GETs of the Deployment. ``now`` False leaves the pods of the
        current ReplicaSet as they are: only the next template change rolls out this way.
        """
        with self._lock:
            self._rollouts[(namespace, name)] = _Rollout(
                fail, message, tuple(logs), reads_until_ready, deadline_exceeded)
            stored = self._objects.get(("apps/v1", "Deployment", namespace, name))
            if stored is not None and now:
                self._reconcile_deployment(stored.obj, restart=True)
            self._changed.notify_all()  # its old pods may be gone

    def write_log(self, pod: str, lines: Iterable[str], container: str | None = None,
                  namespace: str = "default") -> None:
        """What a running container of ``pod`` printed (``container``: its first), served
        from ``pods/NAME/log``."""
        with self._lock:
            stored = self._objects.get(("v1", "Pod", namespace, pod))
            if stored is None:
                raise KeyError(f"no pod {namespace}/{pod}")
            name = container or stored.obj["spec"]["containers"][0]["name"]
            self._logs.setdefault((namespace, pod, name), []).extend(lines)
            self._changed.notify_all()

    def terminate(self, pod: str, container: str | None = None, exit_code: int = 1,
                  namespace: str = "default") -> None:
        """``container`` of ``pod`` (its first) exits with ``exit_code``: its state becomes
        terminated, and a followed log of it ends, as the kubelet ends it."""
        with self._lock:
            stored = self._objects.get(("v1", "Pod", namespace, pod))
            if stored is None:
                raise KeyError(f"no pod {namespace}/{pod}")
            name = container or stored.obj["spec"]["containers"][0]["name"]
            status = _container_status(stored.obj, name)
            status.update({"ready": False, "started": False, "state": {"terminated": {
                "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": _now(), "finishedAt": _now()}}})
            self._rv += 1
            self._changed.notify_all()

    def restrict(self, rules: Iterable[Rule], user: str | None = None) -> None:
        """From now on, allow only what ``rules`` allow (RBAC for ``user``)."""
        with self._lock:
            self.rules = tuple(rules)
            self.user = user or self.user

    def finish_terminating(self, namespace: str) -> None:
        """A Terminating namespace is gone now, with everything in it."""
        with self._lock:
            self._terminating[namespace] = 1
            self._read_namespace(namespace)

    # -- the API ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, content_type: str | None,
               body: bytes, user_agent: str | None = None
               ) -> tuple[int, str, bytes | Iterator[bytes]]:
        """Answer one request: (status, content type, body); a followed log's body is an
        iterator of chunks, each sent as it comes (chunked transfer encoding)."""
        parts = urlsplit(target)
        query = "&".join(f"{k}={v}" for k, v in parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.requests.append(KubeRequest(method, parts.path, query, content_type, body))
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        # the server names an unnamed manager after the client (its User-Agent up to "/")
        params["_client"] = (user_agent or "unknown").split("/")[0]
        try:
            with self._changed:
                result = self._route(method, parts.path, params, content_type, body)
                if method != "GET":
                    self._changed.notify_all()
        except ApiFailure as exc:
            return exc.code, "application/json", json.dumps(exc.status()).encode()
        except Exception as exc:  # a bug in the fake: answer, do not drop the connection
            failure = ApiFailure(500, "InternalError", f"the fake API server failed: {exc!r}")
            return 500, "application/json", json.dumps(failure.status()).encode()
        if isinstance(result, str):
            return 200, "text/plain", result.encode()
        if isinstance(result, _Follow):
            return 200, "text/plain", self._follow(result)
        return 200, "application/json", json.dumps(result).encode()

    def _route(self, method: str, path: str, params: dict[str, str], content_type: str | None,
               body: bytes) -> dict[str, Any] | str | _Follow:
        segs = [s for s in path.split("/") if s]
        if method == "GET" and (segs == ["api", "v1"] or (len(segs) == 3 and segs[0] == "apis")):
            return self._discovery(segs)  # system:discovery lets every user read these
        kind, namespace, name, sub = self._parse_path(path)
        self._authorize(method, kind, namespace, name, sub, params)
        if params.get("watch") in ("true", "1"):
            raise ApiFailure(405, "MethodNotAllowed", "the fake API server does not serve watch")
        if method == "GET" and name is None:
            return self._list(kind, namespace, params)
        manager = params.get("fieldManager") or params["_client"]
        if method == "POST" and name is None:
            return self._create(kind, namespace or "", body, manager)
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
            return self._replace(kind, namespace or "", name, body, manager)
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

    def _discovery(self, segs: list[str]) -> dict[str, Any]:
        """``GET /api/v1`` or ``/apis/GROUP/VERSION``: the APIResourceList of a group version."""
        group, version = ("", "v1") if segs[0] == "api" else (segs[1], segs[2])
        kinds = [k for k in self._kinds.values() if (k.group, k.version) == (group, version)]
        if not kinds:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                 "watch"]
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": [{"name": k.plural, "singularName": k.kind.lower(),
                               "namespaced": k.namespaced, "kind": k.kind, "verbs": verbs}
                              for k in kinds]}

    def _authorize(self, method: str, kind: _Kind, namespace: str | None, name: str | None,
                   sub: str | None, params: dict[str, str]) -> None:
        """RBAC as the API server applies it; 403 with its Status when no rule allows."""
        if self.rules is None:
            return
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
            method, "get" if name is not None else "list")
        if params.get("watch") in ("true", "1"):
            verb = "watch"
        resource = f"{kind.plural}/{sub}" if sub else kind.plural
        # a Namespace is in its own namespace for RBAC (RequestInfo's special case)
        scope = name if kind.kind == "Namespace" and name is not None else namespace
        for rule in self.rules:
            if rule.allows(verb, kind.group, resource, scope):
                return
        what = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
        subject = f'{what} "{name}"' if name is not None else what
        where = f'in the namespace "{scope}"' if scope else "at the cluster scope"
        details: dict[str, Any] = {"group": kind.group, "kind": kind.plural}
        if name is not None:
            details = {"name": name, **details}
        raise ApiFailure(403, "Forbidden", f'{subject} is forbidden: User "{self.user}" cannot '
                         f'{verb} resource "{resource}" in API group "{kind.group}" {where}',
                         details)

    def _admit_create(self, kind: _Kind, namespace: str, name: str) -> None:
        """The NamespaceLifecycle admission plugin: no new objects in a Terminating
        namespace."""
        if not kind.namespaced or namespace not in self._terminating:
            return
        what = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
        raise ApiFailure(403, "Forbidden", f'{what} "{name}" is forbidden: unable to create new '
                         f"content in namespace {namespace} because it is being terminated",
                         {"name": name, "group": kind.group, "kind": kind.plural, "causes": [
                             {"reason": "NamespaceTerminating", "field": "metadata.namespace",
                              "message": f"namespace {namespace} is being terminated"}]})

    def _read_namespace(self, namespace: str) -> None:
        """One more look at a Terminating namespace; the last one finds it gone."""
        left = self._terminating.get(namespace)
        if left is None:
            return
        if left > 1:
            self._terminating[namespace] = left - 1
            return
        del self._terminating[namespace]
        if ("v1", "Namespace", "", namespace) in self._objects:
            del self._objects[("v1", "Namespace", "", namespace)]
        for k in [k for k in self._objects if k[2] == namespace]:
            del self._objects[k]

    def _kind_of(self, api_version: str, kind: str) -> _Kind:
        for k in self._kinds.values():
            if k.api_version == api_version and k.kind == kind:
                return k
        raise ApiFailure(404, "NotFound", f'no matches for kind "{kind}" in version '
                         f'"{api_version}"')

    def _get(self, kind: _Kind, namespace: str, name: str) -> dict[str, Any]:
        if kind.kind == "Namespace":
            self._read_namespace(name)
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
        ctype = (content_type or "").split(";")[0].strip()
        if ctype in (MERGE_PATCH, STRATEGIC_PATCH):
            return self._merge_patch(kind, namespace, name, body, ctype == STRATEGIC_PATCH,
                                     params.get("fieldManager") or params["_client"])
        if ctype != APPLY_PATCH:
            raise ApiFailure(415, "UnsupportedMediaType",
                             f"the fake serves server-side apply ({APPLY_PATCH}), merge and "
                             f"strategic merge patches, not {content_type}")
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

    def _merge_patch(self, kind: _Kind, namespace: str, name: str, body: bytes,
                     strategic: bool, manager: str) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386), or a strategic one (lists merged by key): an Update
        of the fields it changes."""
        stored = self._objects.get((kind.api_version, kind.kind, namespace, name))
        if stored is None:
            raise _not_found(kind, name)
        try:
            patch = json.loads(body.decode() or "null")
        except ValueError as exc:
            raise ApiFailure(400, "BadRequest", f"error decoding JSON: {exc}") from None
        if not isinstance(patch, dict):
            raise ApiFailure(400, "BadRequest", "the patch is not an object")
        new = _json_merge(stored.obj, patch, strategic)
        return self._write(kind, stored, new, manager)

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

    def _create(self, kind: _Kind, namespace: str, body: bytes, manager: str
                ) -> dict[str, Any]:
        obj = self._body(kind, namespace, body)
        meta = obj["metadata"]
        key = (kind.api_version, kind.kind, namespace, meta["name"])
        if key in self._objects:
            what = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
            raise ApiFailure(409, "AlreadyExists", f'{what} "{meta["name"]}" already exists',
                             {"name": meta["name"], "group": kind.group, "kind": kind.plural})
        return self.create(obj, manager)

    def create(self, obj: Mapping[str, Any], manager: str = "kubectl-create"
               ) -> dict[str, Any]:
        """Create an object as POST does (an Update manager owning every field it set,
        defaults included), without HTTP: to seed what ``kubectl create`` or a client-side
        ``kubectl apply`` (manager ``kubectl-client-side-apply``) left behind."""
        kind = self._kind_of(str(obj["apiVersion"]), str(obj["kind"]))
        new: dict[str, Any] = copy.deepcopy(dict(obj))
        meta = new.setdefault("metadata", {})
        ns = (meta.get("namespace") or "default") if kind.namespaced else ""
        if kind.namespaced:
            meta["namespace"] = ns
        with self._lock:
            self._admit_create(kind, ns, meta["name"])
            self._uids += 1
            meta.update({"uid": f"00000000-0000-4000-8000-{self._uids:012d}",
                         "creationTimestamp": _now()})
            stored = _Stored({"apiVersion": kind.api_version, "kind": kind.kind,
                              "metadata": {k: meta[k] for k in ("name", "namespace", "uid",
                                                                "creationTimestamp")
                                           if k in meta}})
            return self._write(kind, stored, new, manager, creating=True)

    def _replace(self, kind: _Kind, namespace: str, name: str, body: bytes, manager: str
                 ) -> dict[str, Any]:
        obj = self._body(kind, namespace, body)
        meta = obj["metadata"]
        if meta["name"] != name:
            raise ApiFailure(400, "BadRequest", f"the name of the object ({meta['name']}) "
                             f"does not match the name on the URL ({name})")
        stored = self._objects.get((kind.api_version, kind.kind, namespace, name))
        if stored is None:
            raise _not_found(kind, name)
        wanted = meta.get("resourceVersion")
        if wanted is not None and str(wanted) != stored.obj["metadata"]["resourceVersion"]:
            what = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
            raise ApiFailure(409, "Conflict", f'Operation cannot be fulfilled on {what} '
                             f'"{name}": the object has been modified; please apply your '
                             "changes to the latest version and try again",
                             {"name": name, "group": kind.group, "kind": kind.plural})
        return self._write(kind, stored, obj, manager)

    def _write(self, kind: _Kind, stored: _Stored, obj: dict[str, Any], manager: str,
               creating: bool = False) -> dict[str, Any]:
        """Store ``obj`` as an Update by ``manager`` (create, replace, merge patch)."""
        old = stored.obj
        meta = obj.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp", "generation", "resourceVersion",
                  "deletionTimestamp"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if "status" in old:
            obj["status"] = old["status"]
        # defaults first: a create owns what the server defaulted, as for real
        self._server_side_effects(kind, obj, old)
        stored.fields.update(old, obj, manager, kind.api_version)
        return self._commit(kind, stored, obj, creating)

    def _commit(self, kind: _Kind, stored: _Stored, new: dict[str, Any], creating: bool
                ) -> dict[str, Any]:
        """Keep ``new`` with its managed fields; resourceVersion and generation move only when
        something changed."""
        old = stored.obj
        meta = new["metadata"]
        before = [{k: v for k, v in e.items() if k != "time"}
                  for e in old["metadata"].get("managedFields", [])]
        entries = stored.fields.entries(_now())
        after = [{k: v for k, v in e.items() if k != "time"} for e in entries]

        def body(o: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in o.items() if k not in ("metadata", "status")}

        def meta_of(o: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in o.get("metadata", {}).items() if k != "managedFields"}

        spec_changed = body(new) != body(old)
        if not (creating or spec_changed or meta_of(new) != meta_of(old) or before != after):
            return copy.deepcopy(old)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        if "spec" in new and (creating or spec_changed):
            meta["generation"] = int(old["metadata"].get("generation", 0)) + 1
        elif "generation" in old["metadata"]:
            meta["generation"] = old["metadata"]["generation"]
        meta["managedFields"] = entries
        stored.obj = new
        key = (kind.api_version, kind.kind, meta.get("namespace", ""), meta["name"])
        self._objects[key] = stored
        if kind.kind == "Deployment" and (creating or spec_changed):
            self._reconcile_deployment(stored.obj)
        if kind.kind == "CustomResourceDefinition":
            self._serve_crd(stored.obj)
        return copy.deepcopy(stored.obj)

    def _delete(self, kind: _Kind, namespace: str, name: str) -> dict[str, Any]:
        key = (kind.api_version, kind.kind, namespace, name)
        if kind.kind == "Namespace" and self.terminating_reads > 0 and key in self._objects:
            ns_obj = self._objects[key].obj
            if name not in self._terminating:
                self._terminating[name] = self.terminating_reads
                self._rv += 1
                ns_obj["metadata"].update(deletionTimestamp=_now(),
                                          resourceVersion=str(self._rv))
                ns_obj["status"] = {"phase": "Terminating"}
            return copy.deepcopy(ns_obj)  # the real server answers with the namespace
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

    def _log(self, namespace: str, name: str, params: dict[str, str]) -> str | _Follow:
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
        start = 0 if tail is None else max(0, len(lines) - int(tail))
        if params.get("follow") in ("true", "1"):
            return _Follow(namespace, name, container, pod.obj["metadata"]["uid"], start,
                           _container_status(pod.obj, container).get("restartCount", 0))
        return "".join(line + "\n" for line in lines[start:])

    def _follow(self, f: _Follow) -> Iterator[bytes]:
        """A followed log: what is there from ``f.start``, then each line as it is written,
        until the pod goes away, the container stops (terminated, or restarted: the kubelet
        follows one container instance) or the server stops. Reads under the lock, sends
        outside."""
        sent = f.start
        while True:
            with self._changed:
                while True:
                    lines = self._logs.get((f.namespace, f.pod, f.container), [])
                    pod = self._objects.get(("v1", "Pod", f.namespace, f.pod))
                    gone = (self._stopping or pod is None
                            or pod.obj["metadata"]["uid"] != f.uid
                            or self._container_stopped(pod.obj, f))
                    if len(lines) > sent or gone:
                        break
                    self._changed.wait()
                new, sent = lines[sent:], len(lines)
            if new:
                yield "".join(line + "\n" for line in new).encode()
            if gone:
                return

    @staticmethod
    def _container_stopped(pod: dict[str, Any], f: _Follow) -> bool:
        status = _container_status(pod, f.container)
        return ("terminated" in status.get("state", {})
                or status.get("restartCount", 0) != f.restarts)

    # -- server-side apply -----------------------------------------------------------------

    def _apply(self, kind: _Kind, namespace: str, name: str, config: dict[str, Any],
               manager: str, force: bool) -> dict[str, Any]:
        key = (kind.api_version, kind.kind, namespace, name)
        config = copy.deepcopy(config)
        if kind.namespaced:
            config.setdefault("metadata", {})["namespace"] = namespace
        stored = self._objects.get(key)
        creating = stored is None
        if stored is None:
            self._admit_create(kind, namespace, name)
            self._uids += 1
            base: dict[str, Any] = {"name": name, "uid":
                                    f"00000000-0000-4000-8000-{self._uids:012d}",
                                    "creationTimestamp": _now()}
            if kind.namespaced:
                base["namespace"] = namespace
            stored = _Stored({"apiVersion": kind.api_version, "kind": kind.kind,
                              "metadata": base})
        old = stored.obj
        try:
            merged = stored.fields.apply(old, config, manager, kind.api_version, force)
        except Conflicts as exc:
            what = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
            raise ApiFailure(409, "Conflict", str(exc), {
                "name": name, "group": kind.group, "kind": what.split(".")[0],
                "causes": [{"reason": "FieldManagerConflict",
                            "message": f"conflict with {m.shown()}", "field": path_text(p)}
                           for m, p in exc.found]}) from None
        merged["apiVersion"], merged["kind"] = kind.api_version, kind.kind
        self._server_side_effects(kind, merged, old)
        return self._commit(kind, stored, merged, creating)

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
            obj["status"] = old.get("status") or {"phase": "Active"}
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
                self._reconcile_deployment(dep, restart=True)

    def _reconcile_deployment(self, dep: dict[str, Any], restart: bool = False) -> None:
        """The Deployment controller: a ReplicaSet per template, the newest with the pods as
        :meth:`rollout` says; while they are not available, the old ReplicaSet's pods keep
        running beside them (a surge), and the status counts both, as for real."""
        meta, spec = dep["metadata"], dep["spec"]
        ns, name = meta["namespace"], meta["name"]
        b = self._rollouts.get((ns, name), _Rollout())
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template", {})
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()
                                       ).hexdigest()[:10]
        rs_name = f"{name}-{template_hash}"
        sets = self._replica_sets(ns, name)
        current = sets.get(rs_name)
        revision = int((current or {}).get("metadata", {}).get("annotations", {}).get(
            _REVISION, 0)) if current else 0
        if current is None or revision < max((_revision(r) for r in sets.values()), default=0):
            revision = max((_revision(r) for r in sets.values()), default=0) + 1
            restart = True
        meta.setdefault("annotations", {})[_REVISION] = str(revision)
        self._objects[("apps/v1", "ReplicaSet", ns, rs_name)] = _Stored(self._replica_set(
            dep, rs_name, template, template_hash, replicas, revision))
        healthy = b.fail is None and b.reads_until_ready == 0
        if restart or not self._pods_of(ns, rs_name):
            for key in self._pods_of(ns, rs_name):
                del self._objects[key]
            for i in range(replicas):
                pod_name = f"{rs_name}-{_suffix(template_hash + str(revision), i)}"
                self._objects[("v1", "Pod", ns, pod_name)] = _Stored(
                    self._pod(ns, pod_name, rs_name, template, template_hash, b, healthy))
                for c in template.get("spec", {}).get("containers", []):
                    self._logs[(ns, pod_name, c["name"])] = list(b.logs)
        old_pods = [k for other in sets if other != rs_name for k in self._pods_of(ns, other)]
        if healthy:  # the new pods are available: the old ReplicaSets scale to zero
            for key in old_pods:
                del self._objects[key]
            for other, rs in sets.items():
                if other != rs_name:
                    rs["spec"]["replicas"] = 0
                    rs["status"] = {"replicas": 0, "observedGeneration": 1}
            old_pods = []
        old_ready = sum(1 for k in old_pods
                        if self._objects[k].obj["status"]["conditions"][0]["status"] == "True")
        status: dict[str, Any] = {"observedGeneration": meta.get("generation", 1),
                                  "replicas": replicas + len(old_pods),
                                  "updatedReplicas": replicas}
        now = _now()
        if healthy:
            status.update(readyReplicas=replicas, availableReplicas=replicas)
            conditions = [
                ("Available", "True", "MinimumReplicasAvailable",
                 "Deployment has minimum availability."),
                ("Progressing", "True", "NewReplicaSetAvailable",
                 f'ReplicaSet "{rs_name}" has successfully progressed.')]
        else:
            if old_ready:
                status.update(readyReplicas=old_ready, availableReplicas=old_ready)
            status["unavailableReplicas"] = max(replicas - old_ready, 0)
            progressing = (("Progressing", "False", "ProgressDeadlineExceeded",
                            f'ReplicaSet "{rs_name}" has timed out progressing.')
                           if b.deadline_exceeded else
                           ("Progressing", "True", "ReplicaSetUpdated",
                            f'ReplicaSet "{rs_name}" is progressing.'))
            available = ("Available", "True", "MinimumReplicasAvailable",
                         "Deployment has minimum availability.") if old_ready >= replicas else (
                "Available", "False", "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.")
            conditions = [available, progressing]
        status["conditions"] = [
            {"type": t, "status": s, "reason": r, "message": m, "lastUpdateTime": now,
             "lastTransitionTime": now} for t, s, r, m in conditions]
        dep["status"] = status

    def _replica_sets(self, ns: str, deployment: str) -> dict[str, dict[str, Any]]:
        return {key[3]: stored.obj for key, stored in self._objects.items()
                if key[:3] == ("apps/v1", "ReplicaSet", ns) and any(
                    o["name"] == deployment for o in
                    stored.obj["metadata"].get("ownerReferences", []))}

    def _pods_of(self, ns: str, rs_name: str) -> list[tuple[str, str, str, str]]:
        return [key for key, stored in self._objects.items()
                if key[:3] == ("v1", "Pod", ns) and any(
                    o["name"] == rs_name for o in
                    stored.obj["metadata"].get("ownerReferences", []))]

    def _replica_set(self, dep: dict[str, Any], rs_name: str, template: dict[str, Any],
                     template_hash: str, replicas: int, revision: int) -> dict[str, Any]:
        meta = dep["metadata"]
        labels = {**(template.get("metadata", {}).get("labels") or {}),
                  "pod-template-hash": template_hash}
        selector = dict((dep["spec"].get("selector") or {}).get("matchLabels") or {})
        self._uids += 1
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                    "name": rs_name, "namespace": meta["namespace"], "labels": labels,
                    "annotations": {_REVISION: str(revision)},
                    "uid": f"00000000-0000-4000-8000-{self._uids:012d}",
                    "resourceVersion": str(self._rv), "creationTimestamp": _now(),
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": meta["name"], "uid": meta.get("uid", ""),
                                         "controller": True}]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {
                    **selector, "pod-template-hash": template_hash}},
                    "template": copy.deepcopy(template)},
                "status": {"replicas": replicas, "observedGeneration": 1}}

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
        """Garbage collection: a deleted Deployment's ReplicaSets and pods go with it."""
        for rs_name in self._replica_sets(ns, deployment):
            for key in self._pods_of(ns, rs_name):
                del self._objects[key]
            del self._objects[("apps/v1", "ReplicaSet", ns, rs_name)]


@dataclass(frozen=True)
class _Follow:
    """A ``pods/NAME/log?follow=true`` to stream: the container, and the pod's uid (a pod
    of the same name made afresh is another pod; its log is another stream)."""

    namespace: str
    pod: str
    container: str
    uid: str
    start: int  # the first line sent (tailLines)
    restarts: int = 0  # the container's restartCount when following began


def _container_status(pod: dict[str, Any], container: str) -> dict[str, Any]:
    for status in pod.get("status", {}).get("containerStatuses", []):
        if status["name"] == container:
            return status
    return {}


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
                                            self.headers.get("Content-Type"), body,
                                            self.headers.get("User-Agent"))
        self.send_response(code, HTTPStatus(code).phrase)
        self.send_header("Content-Type", ctype)
        if isinstance(out, bytes):
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        # a followed log: flushed per write, as Go's server does without a Content-Length
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in out:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away (Ctrl-C): nothing more to send
            self.close_connection = True

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

def _json_merge(old: Any, patch: Any, strategic: bool, path: tuple[Any, ...] = ()) -> Any:
    """RFC 7386 (null deletes, maps merge, the rest replaces); a strategic merge patch also
    merges the lists Kubernetes keys (containers by name, ...)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(old) if isinstance(old, dict) else {}
    for k, v in patch.items():
        sub = (*path, ("f", str(k)))
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = _json_merge(out.get(k), v, strategic, sub)
        elif strategic and isinstance(v, list) and isinstance(out.get(k), list) and \
                list_type(sub) is not None:
            out[k] = merge(out[k], v, sub)
        else:
            out[k] = copy.deepcopy(v)
    return out


_REVISION = "deployment.kubernetes.io/revision"


def _revision(rs: dict[str, Any]) -> int:
    return int(rs["metadata"].get("annotations", {}).get(_REVISION, 0))


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
