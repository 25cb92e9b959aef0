"""k3d facts, each read once per gathering: ``k3d node list`` (clusters and registries from
one call, as k3d itself derives ``cluster list`` and ``registry list`` from the same listing of
its containers) and ``k3d version`` (only when a plan would change something and so needs
the gate)."""

from __future__ import annotations

from devslice.adapters.k3d import (
    ClusterFact,
    K3d,
    K3dVersion,
    NodeListing,
    RegistryFact,
    registry_container,
)
from devslice.facts.world import Reader


def nodes(reader: Reader, k3d: K3d) -> NodeListing:
    return reader.once(("k3d", id(k3d), "node list"), k3d.node_list)


def registries(reader: Reader, k3d: K3d) -> dict[str, RegistryFact]:
    """Registries by container name (``k3d-<name>``)."""
    return {r.name: r for r in nodes(reader, k3d).registries}


def registry(reader: Reader, k3d: K3d, name: str) -> RegistryFact | None:
    return registries(reader, k3d).get(registry_container(name))


def cluster(reader: Reader, k3d: K3d, name: str) -> ClusterFact | None:
    return next((c for c in nodes(reader, k3d).clusters if c.name == name), None)


def version(reader: Reader, k3d: K3d) -> K3dVersion:
    return reader.once(("k3d", id(k3d), "version"), k3d.version)
