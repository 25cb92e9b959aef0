"""Field ownership as the Kubernetes API server keeps it, for :mod:`devslice.testing.kubeapi`.

After structured-merge-diff (``sigs.k8s.io/structured-merge-diff/v4``: ``fieldpath``,
``typed/compare.go``, ``merge/update.go``) and apimachinery's
``pkg/util/managedfields/internal`` (``conflict.go``, ``stripmeta.go``):

- Every write records who set which fields in ``metadata.managedFields``: an *Apply* entry per
  server-side applier (the fields of its last applied config) and an *Update* entry per
  manager of a create, replace or non-apply patch (the fields it changed; a create changes
  them all, defaults included).
- An apply that changes a field another manager owns (Apply or Update) fails with 409 and
  Kubernetes' message (``Apply failed with 1 conflict: conflict with "kubectl-client-side-
  apply" using apps/v1: .spec.replicas``); setting the same value shares the field; ``force``
  takes it over. Updates never conflict: they take what they change.
- An applier's fields it no longer applies are removed unless another manager owns them.
- Lists merge by key where Kubernetes' schema makes them associative (containers, env, ports,
  volumes, volume mounts, ...); finalizers are a set; every other list is atomic (owned and
  replaced whole), as ``args``, ``command`` and ``envFrom`` are for real.

Simplification: the schema is a table of list paths (:data:`LIST_KEYS`), not OpenAPI.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# A path is a tuple of elements: ("f", field), ("k", ((key, value), ...)), ("v", value).
Element = tuple[str, Any]
Path = tuple[Element, ...]

# Associative lists by the names of the fields leading to them (keys read from the end):
# the x-kubernetes-list-map-keys / patchMergeKey of the Kubernetes API. "protocol" defaults to
# TCP, as the schema's default fills in a missing key.
_CONTAINERS = ("containers", "initContainers", "ephemeralContainers")
LIST_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    **{(c,): ("name",) for c in _CONTAINERS},
    **{(c, "env"): ("name",) for c in _CONTAINERS},
    **{(c, "ports"): ("containerPort", "protocol") for c in _CONTAINERS},
    **{(c, "volumeMounts"): ("mountPath",) for c in _CONTAINERS},
    **{(c, "volumeDevices"): ("devicePath",) for c in _CONTAINERS},
    ("volumes",): ("name",),
    ("imagePullSecrets",): ("name",),
    ("hostAliases",): ("ip",),
    ("spec", "ports"): ("port", "protocol"),  # a Service's
    ("ownerReferences",): ("uid",),
    ("conditions",): ("type",),
}
_SETS = {("metadata", "finalizers")}
_DEFAULT_KEYS = {"protocol": "TCP"}
# Never owned (stripmeta.go), and status is reset on the main resource.
_STRIPPED = {("apiVersion",), ("kind",), ("status",)} | {
    ("metadata", k) for k in ("name", "namespace", "uid", "resourceVersion", "generation",
                              "creationTimestamp", "managedFields", "selfLink",
                              "deletionTimestamp", "deletionGracePeriodSeconds")}
_ELEMENT = object()  # the value recorded for a list element itself


def _names(path: Path) -> tuple[str, ...]:
    return tuple(v for kind, v in path if kind == "f")


def list_type(path: Path) -> tuple[str, ...] | str | None:
    names = _names(path)
    if names in _SETS:
        return "set"
    for n in (2, 1):
        keys = LIST_KEYS.get(names[-n:]) if len(names) >= n else None
        if keys is not None and (n == 2 or names[-1] != "ports"):
            return keys
    return None


def _key(item: Any, keys: tuple[str, ...]) -> Element | None:
    if not isinstance(item, dict):
        return None
    values = []
    for k in keys:
        v = item.get(k, _DEFAULT_KEYS.get(k))
        if v is None:
            return None
        values.append((k, v))
    return ("k", tuple(sorted(values)))


def values(obj: Any, path: Path = ()) -> dict[Path, Any]:
    """The owned paths of ``obj`` with their values: leaves, and list elements themselves."""
    out: dict[Path, Any] = {}
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            sub = (*path, ("f", str(k)))
            if tuple(n for _, n in sub) in _STRIPPED:
                continue
            out.update(values(v, sub))
    elif isinstance(obj, list) and obj and list_type(path) is not None:
        kind = list_type(path)
        for item in obj:
            if kind == "set":
                out[(*path, ("v", item))] = _ELEMENT
                continue
            element = _key(item, kind)  # type: ignore[arg-type]
            if element is None:  # an item without its key: own the list whole
                return {path: obj} if path else {}
            out[(*path, element)] = _ELEMENT
            out.update(values(item, (*path, element)))
    elif path:
        out[path] = obj  # a scalar, an empty map, null, or an atomic list
    return out


def changes(old: Any, new: Any) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two objects, as typed.Compare finds them."""
    before, after = values(old), values(new)
    changed = {p for p, v in after.items() if p not in before or before[p] != v}
    return changed, set(before) - set(after)


def path_text(path: Path) -> str:
    """``.spec.template.spec.containers[name="orders"].image``, as fieldpath.Path prints."""
    out = []
    for kind, v in path:
        if kind == "f":
            out.append(f".{v}")
        elif kind == "k":
            out.append("[" + ",".join(f"{k}={json.dumps(x)}" for k, x in v) + "]")
        else:
            out.append(f"[={json.dumps(v)}]")
    return "".join(out)


def fields_v1(paths: set[Path]) -> dict[str, Any]:
    """A set of paths in the FieldsV1 form managedFields carry (``f:``, ``k:``, ``v:``, ``.``)."""
    root: dict[str, Any] = {}
    for path in sorted(paths, key=path_text):
        node = root
        for i, (kind, v) in enumerate(path):
            if kind == "f":
                name = f"f:{v}"
            elif kind == "k":
                name = "k:" + json.dumps(dict(v), separators=(",", ":"), sort_keys=True)
            else:
                name = "v:" + json.dumps(v)
            node = node.setdefault(name, {})
            if i == len(path) - 1 and kind in ("k", "v") and node is not None:
                node.setdefault(".", {})
    return _drop_lonely_dots(root)


def _drop_lonely_dots(node: dict[str, Any]) -> dict[str, Any]:
    out = {k: _drop_lonely_dots(v) for k, v in node.items()}
    if set(out) == {"."}:  # an element with no fields of its own shows as {}
        return {}
    return out


# -- merging an applied config into the live object ----------------------------------------------

def merge(live: Any, config: Any, path: Path = ()) -> Any:
    """``live`` with ``config`` applied over it: maps by key, associative lists by item key,
    sets by value, anything else replaced."""
    if isinstance(live, dict) and isinstance(config, dict):
        out = copy.deepcopy(live)
        for k, v in config.items():
            sub = (*path, ("f", str(k)))
            out[k] = merge(live[k], v, sub) if k in live else copy.deepcopy(v)
        return out
    kind = list_type(path)
    if isinstance(live, list) and isinstance(config, list) and kind is not None:
        if kind == "set":
            return [*live, *(v for v in config if v not in live)]
        keyed = {_key(i, kind): i for i in live}  # type: ignore[arg-type]
        if None in keyed or any(_key(i, kind) is None for i in config):  # type: ignore[arg-type]
            return copy.deepcopy(config)
        out_list = []
        seen = set()
        for item in live:
            element = _key(item, kind)  # type: ignore[arg-type]
            match = next((c for c in config if _key(c, kind) == element), None)  # type: ignore[arg-type]
            out_list.append(merge(item, match, (*path, element))  # type: ignore[arg-type]
                            if match is not None else copy.deepcopy(item))
            seen.add(element)
        out_list += [copy.deepcopy(c) for c in config
                     if _key(c, kind) not in seen]  # type: ignore[arg-type]
        return out_list
    return copy.deepcopy(config)


def remove(obj: Any, path: Path) -> None:
    """Remove what ``path`` names from ``obj`` (a field, a list element, a set member)."""
    parent: Any = obj
    for i, (kind, v) in enumerate(path[:-1]):
        parent = _child(parent, (kind, v), path[: i + 1])
        if parent is None:
            return
    kind, v = path[-1]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(v, None)
    elif isinstance(parent, list):
        lt = list_type(path[:-1])
        parent[:] = [item for item in parent
                     if (item != v if kind == "v" else
                         _key(item, lt) != (kind, v))]  # type: ignore[arg-type]


def _child(node: Any, element: Element, path: Path) -> Any:
    kind, v = element
    if kind == "f":
        return node.get(v) if isinstance(node, dict) else None
    if isinstance(node, list):
        lt = list_type(path[:-1])
        return next((i for i in node if _key(i, lt) == element), None)  # type: ignore[arg-type]
    return None


def prune_empty(obj: Any, before: Any) -> None:
    """Maps emptied by removals go too (those that were empty before stay)."""
    if not isinstance(obj, dict):
        return
    for k in list(obj):
        v = obj[k]
        was = before.get(k) if isinstance(before, dict) else None
        if isinstance(v, dict):
            prune_empty(v, was)
            if not v and was:
                del obj[k]


# -- managers ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Manager:
    name: str
    operation: str  # Apply | Update
    api_version: str

    def shown(self) -> str:
        """As conflict messages name it (internal/conflict.go printManager)."""
        if self.operation == "Update":
            return f'"{self.name}" using {self.api_version}'
        return f'"{self.name}"'


class Conflicts(Exception):
    def __init__(self, found: list[tuple[Manager, Path]]) -> None:
        super().__init__(message(found))
        self.found = found


def message(found: list[tuple[Manager, Path]]) -> str:
    if len(found) == 1:
        m, p = found[0]
        return f"Apply failed with 1 conflict: conflict with {m.shown()}: {path_text(p)}"
    lines = []
    for m in sorted({m for m, _ in found}, key=lambda m: json.dumps(
            {"manager": m.name, "operation": m.operation})):
        lines.append(f"conflicts with {m.shown()}:")
        lines += [f"- {path_text(p)}" for mm, p in found if mm == m]
    return f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)


class FieldManager:
    """The managed fields of one object."""

    def __init__(self) -> None:
        self.owned: dict[Manager, set[Path]] = {}

    def update(self, old: Any, new: Any, manager: str, api_version: str) -> None:
        """A create, replace or non-apply patch: the manager takes what it changed."""
        changed, removed = changes(old, new)
        for m in self.owned:
            self.owned[m] -= changed | removed
        me = Manager(manager, "Update", api_version)
        self.owned[me] = (self.owned.get(me, set()) | changed) - removed
        self._forget_empty()

    def apply(self, live: Any, config: Mapping[str, Any], manager: str, api_version: str,
              force: bool) -> Any:
        """The object after applying ``config``; raises :class:`Conflicts` unless ``force``."""
        me = Manager(manager, "Apply", api_version)
        mine = next((m for m in self.owned if m.name == manager and m.operation == "Apply"), me)
        applied = set(values(config))
        merged = merge(live, dict(config))
        # fields this applier set before and leaves out now go, unless someone else has them
        others = set().union(*(s for m, s in self.owned.items() if m != mine))
        # ancestors first: a removed list element takes its fields with it
        for path in sorted(self.owned.get(mine, set()) - applied - others, key=len):
            remove(merged, path)
        prune_empty(merged, live)
        changed, removed = changes(live, merged)
        found = [(m, p) for m, s in sorted(self.owned.items(), key=lambda i: i[0].name)
                 if m != mine for p in sorted(s & changed, key=path_text)]
        if found and not force:
            raise Conflicts(found)
        for m in list(self.owned):
            if m != mine:
                self.owned[m] -= changed | removed
        self.owned.pop(mine, None)
        self.owned[me] = applied
        self._forget_empty()
        return merged

    def _forget_empty(self) -> None:
        self.owned = {m: s for m, s in self.owned.items() if s}

    def entries(self, time: str) -> list[dict[str, Any]]:
        return [{"manager": m.name, "operation": m.operation, "apiVersion": m.api_version,
                 "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields_v1(s)}
                for m, s in self.owned.items()]

    def managers(self) -> Iterator[Manager]:
        return iter(self.owned)
