"""k3d facts, each read once per gathering: ``k3d registry list``, ``k3d cluster list`` and
``k3d version`` (the last only when a plan would change something and so needs the gate)."""

from __future__ import annotations

from devslice.adapters.k3d import ClusterFact, K3d, K3dVersion, RegistryFact, registry_container
from devslice.facts.world import Reader


def registries(reader: Reader, k3d: K3d) -> dict[str, RegistryFact]:
    """Registries by container name (``k3d-<name>``)."""
    listed = reader.once(("k3d", id(k3d), "registry list"), k3d.registry_list)
    return {r.name: r for r in listed}


def registry(reader: Reader, k3d: K3d, name: str) -> RegistryFact | None:
    return registries(reader, k3d).get(registry_container(name))


def cluster(reader: Reader, k3d: K3d, name: str) -> ClusterFact | None:
    listed = reader.once(("k3d", id(k3d), "cluster list"), k3d.cluster_list)
    return next((c for c in listed if c.name == name), None)


def version(reader: Reader, k3d: K3d) -> K3dVersion:
    return reader.once(("k3d", id(k3d), "version"), k3d.version)
