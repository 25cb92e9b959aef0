"""Manifests: folders of plain Kubernetes YAML applied in layers, with the slice injected.

Rendering is pure: it reads a layer's ``*.yaml``/``*.yml`` files and returns the objects to
apply, with images pointed at the local registry, devslice's labels, the slice's ConfigMap and
Secret in every workload's ``envFrom``, and a namespace. :class:`ManifestsResource` compares
those with the live objects and plans server-side applies, prunes (objects of the layer no
longer in its folder, found by label across the kinds the layer's inventory records) and
rollout waits. :class:`SliceConfigResource` keeps the slice's
ConfigMap and Secret (``devslice-<slice>``) in each namespace that needs them, without ever
showing a secret value.

Two runtimes: ``k3d`` keeps each object's own namespace (``default`` when it names none);
``kube`` puts everything in the slice's namespace of a shared cluster (see :func:`kube_target`).

Both resources gather their facts in ``read(reader)`` through ``devslice.facts.kube``: one
label-selected LIST per kind, shared by every layer and the slice's config, plus the kinds
resolved into a :class:`~devslice.adapters.kube.KubeView` so ``plan(facts)`` names exact
calls without I/O. CRDs a layer defines are registered with lightkube when its facts are
read, never in ``plan``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lightkube.core import resource as lkres
from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource_registry import resource_registry

from devslice.adapters.kube import (
    FIELD_MANAGER,
    MANAGED_BY,
    PRUNE_KINDS,
    SLICE_LABEL,
    ContextRefused,
    Kube,
    KubeError,
    KubeForbidden,
    KubeUnreachable,
    KubeView,
    register_crds,
)
from devslice.config.model import KubeSettings, ManifestLayer
from devslice.errors import ConfigError, ConfigIssue
from devslice.facts import kube as kube_facts
from devslice.facts.world import Reader
from devslice.resources.plan import Action, noop

LAYER_LABEL = "devslice.dev/layer"
HASH_ANNOTATION = "devslice.dev/applied-hash"  # what devslice last applied, to plan without diffs
KINDS_ANNOTATION = "devslice.dev/kinds"  # on a layer's inventory: apiVersion:Kind,...
CONFIG_HASH_ANNOTATION = "devslice.dev/config-hash"  # on pod templates: config change -> rollout
SLICE_CONFIG_KEY = "slice-config"

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
# Apply order, after lightkube's sort_objects and Helm's install order: what others refer to
# first (CRDs before their objects, namespaces before what lives in them); prune in reverse.
_RANK = {"CustomResourceDefinition": 10, "Namespace": 20, "Secret": 31, "ServiceAccount": 32,
         "PersistentVolume": 33, "PersistentVolumeClaim": 34, "ConfigMap": 35, "Role": 41,
         "ClusterRole": 42, "RoleBinding": 43, "ClusterRoleBinding": 44}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


# -- loading -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and where it was written."""

    obj: dict[str, Any]
    file: str  # as the user knows it: deploy/services/orders.yaml
    line: int  # 1-based line where its document starts

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"


class _Loader(yaml.SafeLoader):
    """YAML 1.1 like kubectl (sigs.k8s.io/yaml over go-yaml v2), so ``defaultMode: 0644`` is
    octal as the cluster would read it; but timestamps stay strings, as JSON has none, and a
    repeated key is an error, as kubectl makes it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (each key may appear once)",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _issue(file: str, line: int | None, column: int | None, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(file, line, column, "", message)])


def _load_file(path: Path, shown: str) -> list[Manifest]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _issue(shown, None, None, f"cannot read: {exc}") from exc
    loader = _Loader(text)
    out: list[Manifest] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1
            doc = loader.construct_document(node)
            out.extend(_objects(doc, shown, line))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise _issue(shown, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                     f"not valid YAML: {what}") from None
    finally:
        loader.dispose()
    return out


def _objects(doc: Any, file: str, line: int) -> list[Manifest]:
    if doc is None:  # an empty document, e.g. after a trailing ---
        return []
    if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and "items" in doc:
        return [m for item in doc["items"] or [] for m in _objects(item, file, line)]
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if not (isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str)
            and isinstance(doc.get("kind"), str) and isinstance(meta, dict)
            and isinstance(meta.get("name"), str)):
        raise _issue(file, line, None, "expected a Kubernetes object with apiVersion, kind and "
                     "metadata.name (generateName is not supported: apply needs a name)")
    return [Manifest(doc, file, line)]


def load_layer(folder: Path, shown_as: str | None = None) -> list[Manifest]:
    """The objects in a folder's ``*.yaml``/``*.yml`` files (not subfolders, as ``kubectl
    apply -f DIR``), in file-name order."""
    shown = shown_as or str(folder)
    if not folder.is_dir():
        raise _issue(shown, None, None, "not a folder" if folder.exists() else
                     "the manifests folder does not exist (manifests[].path in devslice.yaml)")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix in (".yaml", ".yml") and p.is_file())
    return [m for p in files for m in _load_file(p, f"{shown.rstrip('/')}/{p.name}")]


# -- rendering -----------------------------------------------------------------------------------

def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()[:16]


def _config_parts(objects: Iterable[Mapping[str, Any]]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The slice's ConfigMap data and Secret values (data and stringData) among ``objects``."""
    plain: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for obj in objects:
        if obj.get("kind") == "ConfigMap":
            plain = dict(obj.get("data") or {})
        elif obj.get("kind") == "Secret":
            secret = {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
    return plain, secret


def slice_config_hash(objects: Iterable[Mapping[str, Any]]) -> str:
    """A digest of the slice's ConfigMap and Secret for pod templates, so a changed contract
    rolls the workloads (envFrom is read only when a container starts).

    Pod templates are readable by more people than Secrets, so secret values go through scrypt
    rather than a bare sha256 that would make weak secrets easy to guess.
    """
    plain, secret = _config_parts(objects)
    blob = json.dumps(secret, sort_keys=True).encode()
    sealed = hashlib.scrypt(blob, salt=b"devslice/config-hash", n=2**14, r=8, p=1, dklen=16)
    return content_hash({"data": plain, "secret": sealed.hex()})


class SealedConfigHash:
    """:func:`slice_config_hash` of ``objects``, computed once, on first use: scrypt takes
    ~25 ms alone (40-60 ms at load), so the manifest layers compute it in ``read`` on the
    executor's facts threads, beside the other reads, instead of every command paying it
    before its first step (issue 17). ``str()`` gives the hash.

    With ``memo`` (a file in the checkout's ``.devslice/``), the last hash is kept there,
    keyed by an HMAC-SHA256 of the secret values under a random key made on first use and kept
    in the same file, mode 0600 (:func:`devslice.files.write_atomic`): a no-op whose secrets
    did not change skips scrypt. What the memo protects against is unchanged: the pod template
    (readable by more people) still carries only the scrypt-sealed hash. The memo's HMAC is a
    fast check of a guess only for whoever can read the file, that is the developer's own
    account, which can read the secret values themselves (``devslice env``, the kept state);
    without the key, the HMAC tells nothing. A memo that cannot be read or written is no
    error: scrypt runs, as without one.
    """

    def __init__(self, objects: Iterable[Mapping[str, Any]], memo: Path | None = None) -> None:
        self._objects = list(objects)
        self._memo = memo
        self._lock = threading.Lock()  # the layers read at once: scrypt runs once
        self._value: str | None = None

    def __str__(self) -> str:
        with self._lock:
            if self._value is None:
                self._value = (slice_config_hash(self._objects) if self._memo is None
                               else _memo_config_hash(self._objects, self._memo))
            return self._value


_MEMO_FORMAT = 1


def _memo_config_hash(objects: list[Mapping[str, Any]], memo: Path) -> str:
    import hmac  # lazy: only for the kept hash
    import os  # lazy: as hmac

    from devslice import __version__  # lazy: devslice/__init__ is loaded already
    from devslice.files import write_atomic  # lazy: only for the kept hash

    plain, secret = _config_parts(objects)
    try:
        kept = json.loads(memo.read_text(encoding="utf-8"))
        key = bytes.fromhex(kept["key"]) if kept.get("format") == _MEMO_FORMAT else b""
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        kept, key = {}, b""
    if len(key) < 32:
        key, kept = os.urandom(32), {}
    mac = hmac.new(key, json.dumps({"data": plain, "secret": secret, "version": __version__},
                                   sort_keys=True).encode(),
                   hashlib.sha256).hexdigest()
    value = kept.get("hash")
    if isinstance(value, str) and hmac.compare_digest(str(kept.get("hmac", "")), mac):
        return value
    value = slice_config_hash(objects)
    with contextlib.suppress(OSError):  # 0600 from creation: the key is never others'
        write_atomic(memo, json.dumps({"format": _MEMO_FORMAT, "key": key.hex(), "hmac": mac,
                                       "hash": value}))
    return value


def image_repository(ref: str) -> str:
    """``localhost:5050/team/orders:1.2@sha256:...`` -> ``localhost:5050/team/orders``."""
    ref = ref.split("@", 1)[0]
    if ref.rfind(":") > ref.rfind("/"):
        ref = ref[: ref.rfind(":")]
    return ref


def rewrite_image(ref: str, images: Mapping[str, str]) -> str | None:
    """The local-registry reference for an image the team builds, or None for others.

    ``images`` maps a config image name (``orders``, ``team/orders``) to its full reference.
    A manifest may name the image bare or with any registry in front.
    """
    repo = image_repository(ref)
    first, _, rest = repo.partition("/")
    without_registry = rest if rest and ("." in first or ":" in first or first == "localhost") \
        else repo
    for candidate in (repo, without_registry):
        if candidate in images:
            return images[candidate]
    return None


def _pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template")
    return template if isinstance(template, dict) else None


def _containers(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [c for key in ("initContainers", "containers") for c in pod_spec.get(key) or []
            if isinstance(c, dict)]


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container (init containers too) of a workload's pod template, or of a Pod."""
    template = _pod_template(obj)
    spec = (template or {}).get("spec") if obj.get("kind") != "Pod" else obj.get("spec")
    return _containers(spec or {})


def _add_env_from(container: dict[str, Any], handle: str) -> None:
    # Appended after the manifest's own sources: for a key in several sources the last wins,
    # so the slice's values win over shared defaults (and an explicit `env` wins over both).
    name = f"devslice-{handle}"
    env_from = container.setdefault("envFrom", [])
    for ref in ("configMapRef", "secretRef"):
        if not any((e.get(ref) or {}).get("name") == name for e in env_from):
            env_from.append({ref: {"name": name}})


def builtin_namespaced(objects: Iterable[Mapping[str, Any]] = ()) -> Callable[[str, str], bool]:
    """Whether a kind is namespaced, without a cluster: built-in kinds, CRDs among ``objects``,
    and namespaced for anything else (custom resources mostly are)."""
    crds = {}
    for o in objects:
        if o.get("kind") == "CustomResourceDefinition":
            spec = o.get("spec") or {}
            for v in spec.get("versions") or []:
                crds[(f"{spec.get('group')}/{v.get('name')}",
                      (spec.get("names") or {}).get("kind"))] = spec.get("scope") == "Namespaced"

    def namespaced(api_version: str, kind: str) -> bool:
        if (api_version, kind) in crds:
            return crds[(api_version, kind)]
        try:
            res = resource_registry.load(api_version, kind)
        except LoadResourceError:
            return True
        return issubclass(res, lkres.NamespacedResource)

    return namespaced


def render(manifests: Sequence[Manifest], *, handle: str, layer: str,
           images: Mapping[str, str], namespace: str | None = None,
           namespaced: Callable[[str, str], bool] | None = None,
           config_hash: str = "") -> list[Manifest]:
    """The objects to apply for one layer (copies; the manifests are left as read).

    ``namespace`` None keeps each object's own namespace or ``default`` (k3d); a name puts
    every namespaced object there (the kube runtime's slice namespace).
    """
    is_namespaced = namespaced or builtin_namespaced(m.obj for m in manifests)
    out = []
    for m in manifests:
        obj = copy.deepcopy(m.obj)
        meta = obj["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), MANAGED_BY: FIELD_MANAGER,
                          SLICE_LABEL: handle, LAYER_LABEL: layer}
        if is_namespaced(obj["apiVersion"], obj["kind"]):
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)  # cluster-scoped: the API refuses one
        _render_pods(obj, handle=handle, images=images, config_hash=config_hash)
        digest = content_hash(obj)
        meta["annotations"] = {**(meta.get("annotations") or {}), HASH_ANNOTATION: digest}
        out.append(Manifest(obj, m.file, m.line))
    _refuse_duplicates(out)
    return out


def _render_pods(obj: dict[str, Any], *, handle: str, images: Mapping[str, str],
                 config_hash: str) -> None:
    """In place: images rewritten in a pod or a pod template; a workload's containers read
    the slice's ConfigMap and Secret, its pods carry the slice label and the config hash."""
    template = _pod_template(obj)
    if template is None:
        if obj["kind"] == "Pod":
            _rewrite_images(obj.get("spec") or {}, images)
        return
    _rewrite_images(template.get("spec") or {}, images)
    if obj["kind"] not in WORKLOADS:
        return
    for c in _containers(template.get("spec") or {}):
        _add_env_from(c, handle)
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), SLICE_LABEL: handle}
    if config_hash:
        tmeta["annotations"] = {**(tmeta.get("annotations") or {}),
                                CONFIG_HASH_ANNOTATION: config_hash}


def _rewrite_images(pod_spec: dict[str, Any], images: Mapping[str, str]) -> None:
    for c in _containers(pod_spec):
        if isinstance(c.get("image"), str):
            c["image"] = rewrite_image(c["image"], images) or c["image"]


def _identity(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """What makes an object the same object: group, kind, namespace, name (not version)."""
    group = obj["apiVersion"].rpartition("/")[0]
    meta = obj["metadata"]
    return group, obj["kind"], meta.get("namespace") or "", meta["name"]


def _refuse_duplicates(rendered: Sequence[Manifest]) -> None:
    seen: dict[tuple[str, str, str, str], Manifest] = {}
    for m in rendered:
        first = seen.setdefault(_identity(m.obj), m)
        if first is not m:
            raise _issue(m.file, m.line, None, f"{_what(m.obj)} is already defined at "
                         f"{first.source}")


def _what(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind'].lower()} {obj['metadata']['name']}"


def workload_namespaces(rendered: Iterable[Manifest]) -> list[str]:
    """Namespaces whose workloads read the slice's ConfigMap and Secret (envFrom cannot reach
    across namespaces, so each needs its own copy)."""
    return sorted({m.obj["metadata"]["namespace"] for m in rendered
                   if m.obj["kind"] in WORKLOADS and m.obj["metadata"].get("namespace")})


# -- the runtime `kube`: a namespace of a shared cluster -----------------------------------------

@dataclass(frozen=True)
class KubeTarget:
    context: str
    namespace: str


def kube_target(settings: KubeSettings, handle: str, current_context: str | None,
                team: str = "") -> KubeTarget:
    """The context and namespace a slice uses on a shared cluster; refuses contexts that
    ``cluster.kube.allowedContexts`` does not list (an empty list allows none)."""
    context = settings.context or current_context
    allowed = list(settings.allowed_contexts)
    if context is None:
        raise ContextRefused("no kube context: the kubeconfig has no current-context and "
                             "cluster.kube.context is not set",
                             hint="set cluster.kube.context in devslice.yaml to one of: "
                                  + (", ".join(allowed) or "(none allowed yet)"))
    if context not in allowed:
        hint = (f"allowed contexts: {', '.join(allowed)}; switch with `kubectl config "
                f"use-context {allowed[0]}` or set cluster.kube.context" if allowed else
                "devslice.yaml allows no context yet: list the shared cluster's context under "
                "cluster.kube.allowedContexts")
        raise ContextRefused(f"kube context {context!r} is not allowed for slices "
                             f"(cluster.kube.allowedContexts)", hint=hint)
    try:
        namespace = settings.namespace_template.format(slice=handle, team=team)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError([ConfigIssue("devslice.yaml", None, None,
                                       "cluster.kube.namespaceTemplate",
                                       f"{settings.namespace_template!r} cannot be filled in: "
                                       f"use {{slice}} and {{team}} only ({exc})")]) from exc
    if not _DNS_LABEL.match(namespace):
        raise ConfigError([ConfigIssue("devslice.yaml", None, None,
                                       "cluster.kube.namespaceTemplate",
                                       f"gives {namespace!r}, which is not a namespace name: "
                                       "lowercase letters, digits and '-', at most 63")])
    return KubeTarget(context, namespace)


# -- resources -----------------------------------------------------------------------------------

def _rank(obj: Mapping[str, Any]) -> int:
    return _RANK.get(obj["kind"], 1000)


def _images(obj: Mapping[str, Any]) -> dict[str, str]:
    template = _pod_template(dict(obj))
    spec = (template or {}).get("spec") or (obj.get("spec") if obj["kind"] == "Pod" else {})
    return {c["name"]: str(c.get("image")) for c in _containers(spec or {}) if "name" in c}


def _why_changed(live: Mapping[str, Any], desired: Mapping[str, Any], where: str) -> str:
    """The reason to re-apply: image changes by name (the common case), else the folder."""
    before, after = _images(live), _images(desired)
    moved: dict[tuple[str, str], list[str]] = {}
    for name, image in after.items():
        if name in before and before[name] != image:
            moved.setdefault((before[name], image), []).append(name)
    if not moved:
        return f"changed in {where}"
    return ", ".join(f"image {old} -> {new} ({', '.join(sorted(names))})"
                     for (old, new), names in moved.items())


@dataclass(frozen=True)
class ManifestsFacts:
    """What a layer's plan needs: its files' objects, the kinds its inventory records (None:
    no inventory), the live objects of the layer, and the kinds resolved; ``offline`` when no
    cluster runs yet."""

    manifests: list[Manifest]
    recorded: set[tuple[str, str]] | None = None
    live: list[dict[str, Any]] = field(default_factory=list)
    view: KubeView | None = None
    offline: bool = False


class Sweep:
    """The slice's objects of every kind of kubectl's prune allowlist, listed once per
    command for the layers that have no inventory yet (by namespace: None for k3d)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: dict[str | None, dict[tuple[str, str], list[dict[str, Any]]]] = {}
        self._done: set[str | None] = set()

    def found(self, namespace: str | None) -> dict[tuple[str, str], list[dict[str, Any]]] | None:
        with self._lock:
            return dict(self._kinds[namespace]) if namespace in self._done else None

    def keep(self, namespace: str | None, kind: tuple[str, str],
             objects: list[dict[str, Any]]) -> None:
        with self._lock:
            self._kinds.setdefault(namespace, {})[kind] = objects

    def done(self, namespace: str | None) -> None:
        with self._lock:
            self._kinds.setdefault(namespace, {})
            self._done.add(namespace)


class ManifestsResource:
    """One layer of manifests, applied server-side and pruned by label."""

    def __init__(self, layer: ManifestLayer, base_dir: Path, kube: Kube, handle: str, *,
                 images: Mapping[str, str] | None = None, namespace: str | None = None,
                 config_hash: str | SealedConfigHash = "", after: Sequence[str] = (),
                 force: bool = False,
                 wait: bool = True, rollout_timeout: float = 300.0,
                 on_progress: Callable[[str], None] | None = None,
                 cluster_may_be_absent: bool = False,
                 manifests: Sequence[Manifest] | None = None,
                 sweep: Sweep | None = None) -> None:
        self.layer = layer
        self.sweep = sweep or Sweep()  # shared by the layers of a command
        # the folder as read once for the command (building the resources reads it), so a
        # gathering and each re-read do not parse the YAML again
        self._loaded = list(manifests) if manifests is not None else None
        self.base_dir = base_dir
        self.kube = kube
        self.handle = handle
        self.images = dict(images or {})
        self.namespace = namespace  # None: k3d (own or default); else the slice's namespace
        self.config_hash = config_hash
        self.key = f"manifests:{layer.name}"
        self.after = tuple(after)
        self.force = force
        self.wait = wait
        self.rollout_timeout = rollout_timeout
        self.on_progress = on_progress
        # k3d on a fresh machine: the cluster does not exist while `devslice plan` runs
        self.cluster_may_be_absent = cluster_may_be_absent

    def load(self) -> list[Manifest]:
        if self._loaded is not None:
            return self._loaded
        return load_layer(self.base_dir / self.layer.path, self.layer.path)

    def render(self, namespaced: Callable[[str, str], bool] | None = None) -> list[Manifest]:
        return render(self.load(), handle=self.handle, layer=self.layer.name,
                      images=self.images, namespace=self.namespace, namespaced=namespaced,
                      config_hash=str(self.config_hash))

    def read(self, reader: Reader) -> ManifestsFacts:
        str(self.config_hash)  # computed here, on a facts thread, once for every layer
        manifests = self.load()
        register_crds(m.obj for m in manifests)  # kinds from CRDs in this layer
        try:
            recorded = self._recorded_kinds(reader)
            # Kubernetes has no cross-kind query: search the kinds in the folder and the
            # kinds recorded at the last apply (or, without a record, kubectl's allowlist)
            own = [(m.obj["apiVersion"], m.obj["kind"]) for m in manifests]
            kinds = [*own, *sorted(recorded if recorded is not None else PRUNE_KINDS)]
            # without a record, kubectl's allowlist is searched just in case: kinds a
            # namespace-scoped Role does not let the user list are skipped (issue 13)
            optional = set(PRUNE_KINDS) - set(own) if recorded is None else set()
            # That search is made once per command and shared by the layers (issue 17): a
            # layer's objects are made only by its own apply, which records its inventory
            # first, so while a layer has no record nothing of it can have appeared since;
            # its own kinds and a record found now are always read afresh.
            swept = self.sweep.found(self.namespace) if recorded is None else None
            live = []
            for kind in dict.fromkeys(kinds):
                if swept is not None and kind not in own and kind in swept:
                    found = swept[kind]
                else:
                    try:
                        found = kube_facts.managed(reader, self.kube, kind, self.namespace,
                                                   self.handle)
                    except KubeForbidden:
                        if kind in optional:
                            continue
                        raise
                    if recorded is None and swept is None:
                        self.sweep.keep(self.namespace, kind, found)
                live += [o for o in found
                         if (o["metadata"].get("labels") or {}).get(LAYER_LABEL)
                         == self.layer.name]
            if recorded is None:
                self.sweep.done(self.namespace)
            view = self.kube.view([*kinds, ("v1", "ConfigMap")])
        except KubeUnreachable:
            if not self.cluster_may_be_absent:
                raise
            return ManifestsFacts(manifests, offline=True)
        return ManifestsFacts(manifests, recorded, live, view)

    def plan(self, facts: ManifestsFacts | None = None) -> list[Action]:
        facts = facts or self.read(Reader())
        if facts.offline or facts.view is None:
            return self._plan_offline(facts.manifests)
        view = facts.view
        desired = render(facts.manifests, handle=self.handle, layer=self.layer.name,
                         images=self.images, namespace=self.namespace,
                         namespaced=view.namespaced, config_hash=str(self.config_hash))
        actions = self._compare(desired, {_identity(o): o for o in facts.live}, view)
        return self._with_inventory(actions, desired, facts.live, facts.recorded, view)

    # The inventory: a ConfigMap per layer that records which kinds the layer has applied, so
    # a plan lists only those (and still finds a kind whose last object left the folder).
    # Kubernetes' ApplySet (KEP-3659, kubectl apply --applyset) keeps the same record.

    @property
    def inventory(self) -> tuple[str, str]:
        """Name and namespace of the layer's inventory ConfigMap."""
        return f"devslice-{self.handle}-layer-{self.layer.name}", self.namespace or "default"

    def _recorded_kinds(self, reader: Reader) -> set[tuple[str, str]] | None:
        name, ns = self.inventory
        inv = kube_facts.find(kube_facts.managed(reader, self.kube, ("v1", "ConfigMap"),
                                                 self.namespace, self.handle), name, ns)
        if inv is None:
            return None
        text = (inv["metadata"].get("annotations") or {}).get(KINDS_ANNOTATION, "")
        pairs = (item.rpartition(":") for item in text.split(",") if ":" in item)
        return {(api_version, kind) for api_version, _, kind in pairs}

    def _record(self, kinds: set[tuple[str, str]], why: str, view: KubeView) -> Action:
        name, ns = self.inventory
        listed = ",".join(f"{av}:{k}" for av, k in sorted(kinds))
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": name, "namespace": ns,
            "labels": {MANAGED_BY: FIELD_MANAGER, SLICE_LABEL: self.handle},
            "annotations": {KINDS_ANNOTATION: listed}}}
        shown = ", ".join(sorted({k for _, k in kinds})) or "none"
        try:
            call = view.apply_call(obj)
        except KubeError:  # no cluster yet (a fresh machine's plan): the path is known anyway
            call = (f"PATCH /api/v1/namespaces/{ns}/configmaps/{name}?fieldManager="
                    f"{FIELD_MANAGER} (server-side apply)")
        return Action(self.key, "apply", f"inventory {name}: {why} (kinds {shown})", (call,),
                      self._applier(obj))

    def _with_inventory(self, actions: list[Action], desired: list[Manifest],
                        live: list[dict[str, Any]], recorded: set[tuple[str, str]] | None,
                        view: KubeView) -> list[Action]:
        """Record new kinds before applying objects of them, forget kinds only after their
        objects are pruned: an interrupted `up` never leaves an object no plan would find."""
        want = {(m.obj["apiVersion"], m.obj["kind"]) for m in desired
                if self.namespace is None or "namespace" in m.obj["metadata"]}
        during = want | (recorded or set()) | {(o["apiVersion"], o["kind"]) for o in live}
        nothing_yet = recorded is None and not during
        first = [] if recorded == during or nothing_yet else [
            self._record(during, "record the kinds it applies", view)]
        last = [self._record(want, "forget pruned kinds", view)] if during != want else []
        summary = [a for a in actions if not a.changes]
        changes = [a for a in actions if a.changes]
        return [*summary, *first, *changes, *last]

    def _plan_offline(self, manifests: list[Manifest]) -> list[Action]:
        """Everything is new: there is no cluster to ask yet. `devslice up` plans again once
        the cluster runs, before it applies anything."""
        desired = sorted(render(manifests, handle=self.handle, layer=self.layer.name,
                                images=self.images, namespace=self.namespace,
                                config_hash=str(self.config_hash)), key=lambda m: _rank(m.obj))
        view = KubeView({})  # no cluster: kinds lightkube knows still have exact paths
        actions = []
        for m in desired:
            try:
                calls: tuple[str, ...] = (view.apply_call(m.obj, self.force),)
            except KubeError:  # a custom kind whose CRD is not known yet: no exact path
                calls = (f"PATCH {m.obj['kind']} {m.obj['metadata']['name']} (server-side "
                         "apply)",)
            actions.append(Action(self.key, "apply", f"{_what(m.obj)}: new in "
                                  f"{self.layer.path} (no cluster yet)", calls))
        if not actions:
            return [noop(self.key, f"{self.layer.path} holds no objects")]
        kinds = {(m.obj["apiVersion"], m.obj["kind"]) for m in desired}
        return [self._record(kinds, "record the kinds it applies", view), *actions]

    def _compare(self, desired: list[Manifest], live: dict[tuple[str, str, str, str],
                 dict[str, Any]], view: KubeView) -> list[Action]:
        where = self.layer.path
        skipped, applies = [], []
        rollouts: list[tuple[str, str]] = []
        up_to_date = 0
        for m in sorted(desired, key=lambda m: _rank(m.obj)):
            obj = m.obj
            if self.namespace is not None and "namespace" not in obj["metadata"]:
                skipped.append(noop(self.key, f"{_what(obj)}: cluster-scoped, left out (the "
                                    f"kube runtime keeps a slice in namespace {self.namespace})"))
                continue
            current = live.pop(_identity(obj), None)
            if current is None:
                reason = f"{_what(obj)}: new in {where}"
            elif (current["metadata"].get("annotations") or {}).get(HASH_ANNOTATION) != \
                    obj["metadata"]["annotations"][HASH_ANNOTATION]:
                reason = f"{_what(obj)}: {_why_changed(current, obj, where)}"
            else:
                up_to_date += 1
                continue
            applies.append(Action(self.key, "apply", reason,
                                  (view.apply_call(obj, self.force),), self._applier(obj)))
            if obj["kind"] == "Deployment" and self.wait:
                rollouts.append((obj["metadata"]["name"], obj["metadata"]["namespace"]))
        prunes = []
        # what is left was removed from the folder: pruned in reverse apply order (and by
        # kind and name, so plans read the same whatever order the lists came in)
        for obj in sorted(live.values(), key=lambda o: (-_rank(o), *_identity(o)[1:])):
            meta = obj["metadata"]
            prunes.append(Action(
                self.key, "prune", f"{_what(obj)}: removed from {where}",
                (view.delete_call(obj["kind"], meta["name"], meta.get("namespace"),
                                  obj["apiVersion"]),),
                self._pruner(obj)))
        summary = []
        if up_to_date or not (applies or prunes):
            n = up_to_date
            summary.append(noop(self.key, f"{n} object{'s' * (n != 1)} from {where} up to date"
                                if n else f"{where} holds no objects"))
        return [*summary, *skipped, *applies, *prunes, *self._wait(rollouts, view)]

    def _wait(self, rollouts: list[tuple[str, str]], view: KubeView) -> list[Action]:
        """One action that waits for every Deployment applied: they roll out in parallel in
        the cluster, so waiting for them one after another costs no more than the slowest."""
        if not rollouts:
            return []

        def wait() -> None:
            for name, ns in rollouts:
                self.kube.wait_rollout(name, ns, timeout=self.rollout_timeout,
                                       on_progress=self.on_progress)

        names = ", ".join(name for name, _ in rollouts)
        calls = tuple(f"GET {view.path('apps/v1', 'Deployment', name, ns)} (until rolled "
                      "out)" for name, ns in rollouts)
        return [Action(self.key, "wait", f"roll out deployment{'s' * (len(rollouts) > 1)} "
                       f"{names}", calls, wait)]

    def _applier(self, obj: dict[str, Any]) -> Callable[[], None]:
        def apply() -> None:
            self.kube.apply(obj, force=self.force)
            if obj["kind"] == "CustomResourceDefinition":
                self.kube.wait_established(obj["metadata"]["name"])
        return apply

    def _pruner(self, obj: Mapping[str, Any]) -> Callable[[], None]:
        meta = obj["metadata"]
        return lambda: self.kube.delete(obj["kind"], meta["name"], meta.get("namespace"),
                                        obj["apiVersion"])


def manifest_resources(layers: Sequence[ManifestLayer], base_dir: Path, kube: Kube,
                       handle: str, *, after: Sequence[str] = (),
                       waits_for: Mapping[str, Sequence[str]] | None = None,
                       progress: Callable[[str], Callable[[str], None] | None] | None = None,
                       loaded: Mapping[str, Sequence[Manifest]] | None = None,
                       **options: Any) -> list[ManifestsResource]:
    """One resource per layer, each after the one before it; the first after ``after``
    (the cluster, the images, the slice's config). ``waits_for`` adds keys per layer name
    (the images its own workloads use); ``progress`` gives a layer's key its progress line;
    ``loaded`` the layers' objects by name, when the caller read the folders already.
    `devslice up` builds its layers here, so tests and users take the same path."""
    out: list[ManifestsResource] = []
    sweep = Sweep()
    for layer in layers:
        deps = (out[-1].key,) if out else tuple(after)
        deps += tuple((waits_for or {}).get(layer.name, ()))
        on_progress = progress(f"manifests:{layer.name}") if progress else None
        out.append(ManifestsResource(layer, base_dir, kube, handle, after=deps,
                                     on_progress=on_progress,
                                     manifests=(loaded or {}).get(layer.name), sweep=sweep,
                                     **options))
    return out


@dataclass(frozen=True)
class SliceConfigFacts:
    """Each namespace as read (None: missing) and the slice's ConfigMap and Secret in it by
    (namespace, kind); ``view`` None when no cluster runs yet."""

    namespaces: Mapping[str, dict[str, Any] | None]
    live: Mapping[tuple[str, str], dict[str, Any] | None]
    view: KubeView | None = None


class SliceConfigResource:
    """The slice's ConfigMap and Secret (``contract.render.k8s_objects``) in each namespace
    that needs them, creating a namespace that does not exist yet (the kube runtime's slice
    namespace, or one a later layer defines in full)."""

    def __init__(self, kube: Kube, objects: Sequence[Mapping[str, Any]],
                 namespaces: Sequence[str], handle: str, *, after: Sequence[str] = (),
                 key: str = SLICE_CONFIG_KEY, cluster_may_be_absent: bool = False,
                 all_namespaces: bool = False) -> None:
        self.kube = kube
        self.objects = [_as_data(o) for o in objects]
        self.namespaces = list(dict.fromkeys(namespaces))
        self.handle = handle
        self.key = key
        self.after = tuple(after)
        self.cluster_may_be_absent = cluster_may_be_absent
        # A developer's own cluster: list across all namespaces, once for the layers too.
        # A shared cluster's slice may read its own namespace only.
        self.all_namespaces = all_namespaces

    def read(self, reader: Reader) -> SliceConfigFacts:
        try:
            return self._read(reader)
        except KubeUnreachable:
            if not self.cluster_may_be_absent:
                raise
        return SliceConfigFacts({}, {})

    def _read(self, reader: Reader) -> SliceConfigFacts:
        namespaces: dict[str, dict[str, Any] | None] = {}
        live: dict[tuple[str, str], dict[str, Any] | None] = {}
        every = kube_facts.namespaces(reader, self.kube) if self.all_namespaces else None
        for ns in self.namespaces:
            if every is not None:
                namespaces[ns] = every.get(ns)
            else:
                try:
                    namespaces[ns] = self.kube.get("v1", "Namespace", ns)
                except KubeForbidden:
                    # a namespace-scoped Role may not read its Namespace object: the admins
                    # made it, and the objects in it are read below
                    namespaces[ns] = {"metadata": {"name": ns}}
            found = namespaces[ns]
            if found is None or found["metadata"].get("deletionTimestamp"):
                continue
            for o in self.objects:
                listed = kube_facts.managed(reader, self.kube, ("v1", o["kind"]),
                                            None if self.all_namespaces else ns, self.handle)
                live[(ns, o["kind"])] = kube_facts.find(listed, o["metadata"]["name"], ns)
        view = self.kube.view([("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Secret")])
        return SliceConfigFacts(namespaces, live, view)

    def plan(self, facts: SliceConfigFacts | None = None) -> list[Action]:
        facts = facts or self.read(Reader())
        if facts.view is not None:
            return self._plan(facts, facts.view)
        # k3d on a fresh machine: no cluster to read yet; the executor plans again once the
        # cluster exists, so these are what a plan shows, not what runs.
        return [Action(self.key, "apply", f"{_what(o)} in {ns}: the cluster does not run yet",
                       (f"PATCH /api/v1/namespaces/{ns}/{o['kind'].lower()}s/"
                        f"{o['metadata']['name']}?fieldManager={FIELD_MANAGER} "
                        "(server-side apply)",))
                for ns in self.namespaces for o in self.objects]

    def _plan(self, facts: SliceConfigFacts, view: KubeView) -> list[Action]:
        actions: list[Action] = []
        for ns in self.namespaces:
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": ns, "labels": {MANAGED_BY: FIELD_MANAGER, SLICE_LABEL: self.handle}}}
            live_ns = facts.namespaces.get(ns)
            current: dict[str, dict[str, Any] | None] = {}
            if live_ns is None:
                actions.append(Action(self.key, "apply", f"namespace {ns}: missing",
                                      (view.apply_call(namespace),),
                                      self._applier(namespace)))
            elif live_ns["metadata"].get("deletionTimestamp"):
                # nothing new may be made in a Terminating namespace (403 from the
                # NamespaceLifecycle admission plugin): wait until it is gone, then remake it
                actions.append(Action(
                    self.key, "apply", f"namespace {ns}: being deleted (Terminating); wait "
                    "until it is gone, then create it",
                    (f"GET {view.path('v1', 'Namespace', ns)} (until deleted)",
                     view.apply_call(namespace)), self._recreator(namespace)))
            else:
                current = {o["kind"]: facts.live.get((ns, o["kind"])) for o in self.objects}
            for obj in self.objects:
                want = copy.deepcopy(obj)
                want["metadata"]["namespace"] = ns
                why = _config_difference(current.get(obj["kind"]), want)
                if why is None:
                    continue
                actions.append(Action(self.key, "apply", f"{_what(want)} in {ns}: {why}",
                                      (view.apply_call(want),), self._applier(want)))
        if not actions:
            names = " and ".join(o["kind"].lower() for o in self.objects)
            actions.append(noop(self.key, f"{names} devslice-{self.handle} up to date in "
                                f"{', '.join(self.namespaces) or 'no namespace'}"))
        return actions

    def _applier(self, obj: dict[str, Any]) -> Callable[[], None]:
        def apply() -> None:
            self.kube.apply(obj)
        return apply

    def _recreator(self, namespace: dict[str, Any]) -> Callable[[], None]:
        def recreate() -> None:
            self.kube.wait_deleted("v1", "Namespace", namespace["metadata"]["name"])
            self.kube.apply(namespace)
        return recreate


def _as_data(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with a Secret's stringData as base64 data: server-side apply does not drop a key
    removed from stringData (kubernetes issue 108008), it does from data."""
    out = copy.deepcopy(dict(obj))
    out["metadata"].pop("namespace", None)
    if out.get("kind") == "Secret" and "stringData" in out:
        out["data"] = {k: base64.b64encode(str(v).encode()).decode()
                       for k, v in out.pop("stringData").items()}
    return out


def _config_difference(live: Mapping[str, Any] | None, want: Mapping[str, Any]) -> str | None:
    """Why a ConfigMap/Secret must be applied, naming keys only (never values); None if not."""
    if live is None:
        return "missing"
    have, need = dict(live.get("data") or {}), dict(want.get("data") or {})
    added = sorted(need.keys() - have.keys())
    removed = sorted(have.keys() - need.keys())
    changed = sorted(k for k in need.keys() & have.keys() if need[k] != have[k])
    parts = [f"{', '.join(ks)} {verb}" for ks, verb in
             ((changed, "changed"), (added, "added"), (removed, "removed")) if ks]
    labels = (live.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in want["metadata"].get("labels", {}).items()):
        parts.append("labels changed")
    return "; ".join(parts) or None
