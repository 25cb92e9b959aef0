"""Docker facts, each read once per gathering: one listing of every container (running or
not) shared by all container resources, and an image's presence (read only by a plan that
would create a container)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devslice.facts.world import Reader

if TYPE_CHECKING:
    from devslice.adapters.docker import ContainerFact, Docker


def containers(reader: Reader, docker: Docker) -> dict[str, ContainerFact]:
    """Every container of the engine, by name (one ``docker ps -a`` per gathering)."""
    listed = reader.once(("docker", id(docker), "container list"),
                         lambda: docker.container_list({}))
    return {c.name: c for c in listed}


def container(reader: Reader, docker: Docker, name: str) -> ContainerFact | None:
    """The container ``name`` from the listing. A stopped one is inspected as well: only its
    configuration holds the host ports it publishes (a listing shows a running one's)."""
    fact = containers(reader, docker).get(name)
    if fact is None or fact.running:
        return fact
    return reader.once(("docker", id(docker), "inspect", name),
                       lambda: docker.container_get(name))


def image_present(reader: Reader, docker: Docker, ref: str) -> bool:
    return reader.once(("docker", id(docker), "image", ref),
                       lambda: docker.image_get(ref) is not None)
