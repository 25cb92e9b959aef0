"""The shared services, one module each: the one place that knows a service in each mode
(shared, emulator, embedded), from this machine and from pods, in each runtime (local, k3d,
kube).

    base.py          the Service interface and the types its answers are made of
    mongodb.py       containers.mongodb: a one-node replica set (container or mongod)
    sftp.py          containers.sftp: atmoz/sftp with users from secrets
    storage.py       storage: the slice's account, or Azurite (container or process)
    eventhubs.py     eventHubs: the team's namespaces, the emulator, or the embedded hub
    dataexplorer.py  dataExplorer: the team's cluster, or the Kusto emulator
    signalr.py       signalR: the team's service, or asrs-emulator (container or process)
    fences.py        Event Hubs start fences: where a partition's new holder begins

The contract (``contract.variables``), the engine, the local runtime, `doctor`, `verify` and
``ledger.reach`` ask the functions below, which ask each service in :data:`SERVICES` order
(the order containers and processes start in, dependencies first). Adding a service means
adding one module with a :class:`~devslice.services.base.Service` subclass and its
``SERVICE`` instance, and naming it in :data:`SERVICES`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from devslice.services import dataexplorer, eventhubs, mongodb, sftp, signalr, storage
from devslice.services.base import (
    ContainerInputs,
    Contract,
    Origin,
    ProcessSpec,
    Reach,
    Service,
    ToolNeed,
    Variable,
)

if TYPE_CHECKING:
    from devslice.adapters.runner import CommandRunner
    from devslice.config.model import Environment
    from devslice.errors import ConfigIssue
    from devslice.resources.containers import ContainerSpec
    from devslice.services.base import Project, Resource

SERVICES: tuple[Service, ...] = (
    mongodb.SERVICE,
    sftp.SERVICE,
    storage.SERVICE,
    eventhubs.SERVICE,
    dataexplorer.SERVICE,
    signalr.SERVICE,
)

__all__ = ["SERVICES", "ContainerInputs", "Contract", "Origin", "ProcessSpec",
           "Reach", "Service", "ToolNeed", "Variable", "after_start", "azurite_after",
           "cluster_resources", "container_names", "container_only", "container_specs",
           "contract_variables", "machine_only", "process_notes", "processes", "team_services",
           "tools", "wants_accounts"]


def contract_variables(c: Contract) -> None:
    """Each service's variables, added to ``c``."""
    for service in SERVICES:
        service.variables(c)


def machine_only(env: Environment) -> list[str]:
    """Why pods cannot reach some services: those whose mode serves processes of this
    machine only (embedded stand-ins)."""
    return [why for s in SERVICES if (why := s.machine_only(env))]


def team_services(env: Environment) -> list[str]:
    """The config keys of services that are the team's cloud services."""
    return [key for s in SERVICES if (key := s.team_service(env))]


def container_only(env: Environment, config_path: str) -> list[ConfigIssue]:
    """Modes whose emulator exists only as a container image, which the local runtime (no
    Docker) cannot run."""
    return [issue for s in SERVICES if (issue := s.container_only(env, config_path))]


def container_names(env: Environment) -> list[str]:
    """The names of the environment's containers (``devslice-NAME``), as container_specs
    makes them, without resolving a secret: what `down` and `destroy` act on."""
    return [name for s in SERVICES for name in s.container_names(env)] + \
        [c.name for c in env.containers.custom]


def wants_accounts(env: Environment) -> bool:
    return any(s.wants_accounts(env) for s in SERVICES)


def container_specs(env: Environment, base_dir: Path, *, runtime: str,
                    storage_accounts: Iterable[str] = (),
                    environ: dict[str, str] | None = None,
                    config_path: str = "devslice.yaml") -> list[ContainerSpec]:
    """Every container of the environment: the services' (enabled under ``containers:``, or
    implied by a ``mode: emulator``), then the team's own. ``storage_accounts``: the live
    slices' accounts, for Azurite."""
    def subnet() -> str:
        # lazy: resources.k3d brings the k3d adapter; only k3d's MongoDB asks for the subnet
        from devslice.resources.k3d import cluster_subnet

        return cluster_subnet(env.cluster, base_dir)

    # lazy: the container types, only where containers run (not the local runtime)
    from devslice.resources.builtins import custom_spec

    inputs = ContainerInputs(base_dir, runtime, subnet, tuple(storage_accounts), environ,
                             config_path)
    return [spec for s in SERVICES for spec in s.containers(env, inputs)] + \
        [custom_spec(c, i, base_dir, environ, config_path)
         for i, c in enumerate(env.containers.custom)]


def cluster_resources(env: Environment, handle: str) -> list[Resource]:
    return [r for s in SERVICES for r in s.cluster_resources(env, handle)]


def processes(project: Project, folder: Path) -> list[ProcessSpec]:
    """The emulators that run as processes in the local runtime."""
    return [spec for s in SERVICES for spec in s.processes(project, folder)]


def process_notes(project: Project, specs: Iterable[ProcessSpec]) -> list[str]:
    specs = list(specs)
    return [note for s in SERVICES for note in s.process_notes(project, specs)]


def after_start(project: Project, specs: Iterable[ProcessSpec],
                runner: CommandRunner | None = None) -> None:
    specs = list(specs)
    for s in SERVICES:
        s.after_start(project, specs, runner)


def tools(env: Environment, processes: bool) -> list[ToolNeed]:
    """Programs the config asks to run on this machine (``processes``: the local runtime
    may run)."""
    return [need for s in SERVICES for need in s.tools(env, processes)]



def azurite_after(env: Environment) -> tuple[str, ...]:
    """What the slice's containers and queues in Azurite wait for: Azurite's container, and
    the Event Hubs emulator's, which keeps its data there too."""
    return tuple(f"container:{name}" for s in (storage.SERVICE, eventhubs.SERVICE)
                 for name in s.container_names(env))
