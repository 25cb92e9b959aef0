"""Kubernetes facts, each read once per gathering: one label-selected LIST per kind of the
objects a slice's resources manage (the slice's ConfigMap and Secret, the layers' objects and
their inventories all carry ``devslice.dev/slice``), the namespaces, and single objects the
slice does not label (CoreDNS's ConfigMap)."""

from __future__ import annotations

from typing import Any

from devslice.adapters.kube import SLICE_LABEL, Kube
from devslice.facts.world import Reader

Kind = tuple[str, str]  # apiVersion, kind


def managed(reader: Reader, kube: Kube, kind: Kind, namespace: str | None,
            handle: str) -> list[dict[str, Any]]:
    """The slice's objects of ``kind`` in ``namespace`` (None: all namespaces), read once.
    KubeForbidden is raised to every caller; those for whom the kind is optional skip it."""
    return reader.once(("kube", id(kube), "list", kind, namespace, handle),
                       lambda: kube.list_managed(namespace, {SLICE_LABEL: handle}, [kind]))


def find(objects: list[dict[str, Any]], name: str, namespace: str | None
         ) -> dict[str, Any] | None:
    return next((o for o in objects if o["metadata"]["name"] == name
                 and (o["metadata"].get("namespace") or None) == namespace), None)


def namespaces(reader: Reader, kube: Kube) -> dict[str, dict[str, Any]]:
    """Every namespace by name (one LIST; a developer's own cluster allows it)."""
    return reader.once(("kube", id(kube), "namespaces"), lambda: {
        o["metadata"]["name"]: o for o in kube.list_all("v1", "Namespace")})


def get(reader: Reader, kube: Kube, api_version: str, kind: str, name: str,
        namespace: str | None = None) -> dict[str, Any] | None:
    return reader.once(("kube", id(kube), "get", api_version, kind, name, namespace),
                       lambda: kube.get(api_version, kind, name, namespace))
