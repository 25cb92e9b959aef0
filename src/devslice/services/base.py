"""What a shared service module offers, and the types its answers are made of.

Each module of :mod:`devslice.services` subclasses :class:`Service` and overrides what its
service has: contract variables, containers, local processes, tools, a verify probe. The
defaults say "nothing", so a service that runs no process or container says nothing about
them. The contract's :class:`Variable` lives here, below the contract, because the services
make the variables and the contract orders and renders them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from devslice.errors import ConfigError, ConfigIssue
from devslice.secrets import Secret, resolve

if TYPE_CHECKING:
    from devslice.adapters.runner import CommandRunner
    from devslice.config.derive import SliceNames
    from devslice.config.model import Environment, SecretRef
    from devslice.resources.containers import ContainerSpec
    from devslice.sdk.context import SliceContext
    from devslice.slices.model import Slice


HOST_GATEWAY = "host.docker.internal"  # Docker's name for the host, with host-gateway


def require_eula(accepted: bool, key: str, what: str, url: str, config_path: str,
                 note: str = "") -> None:
    """Microsoft's emulators start only with ACCEPT_EULA=Y; devslice never sets it unasked."""
    if not accepted:
        raise ConfigError([ConfigIssue(
            config_path, None, None, f"containers.{key}.acceptEula",
            f"{what} starts only once its license (EULA) is accepted, with ACCEPT_EULA=Y, and "
            f"devslice does not accept it for you ({what} runs because containers.{key} is set "
            f"or a service's mode is emulator)")],
            hint=f"read {url}, then set containers.{key}.acceptEula: true{note}")


# What services return as engine resources (devslice.engine.plan.Resource: a key, what it
# waits for, and a plan). Named loosely here so that services import nothing of the engine,
# which asks them.
Resource = Any


class Project(Protocol):
    """What the services read of a :class:`devslice.project.Project` (which imports them)."""

    env: Environment
    base_dir: Path
    config_path: Path

    @property
    def ledger(self) -> Any: ...  # devslice.ledger.base.Ledger, which imports nothing here

    def slices(self) -> list[Slice]: ...

    def get(self, handle: str) -> Slice: ...

    def variables(self, handle: str, environ: dict[str, str] | None = None,
                  secrets: bool = True, overrides: bool = True) -> list[Variable]: ...


class Reach(StrEnum):
    """Who can use a value that points at this machine."""

    published = "published"  # a port published on this machine: pods use the gateway
    machine = "machine"  # an embedded stand-in: only processes on this machine


class Origin(StrEnum):
    team = "team default"
    allocation = "slice allocation"
    override = "personal override"
    secret = "secret"


@dataclass(frozen=True)
class Variable:
    name: str
    value: str | Secret
    origin: Origin
    source: str  # where exactly: a config key, the ledger, a file; never a secret value
    reach: Reach | None = None  # set when the value addresses this machine
    mode_key: str | None = None  # the devslice.yaml key that chose it (eventHubs.mode ...)

    @property
    def is_secret(self) -> bool:
        return isinstance(self.value, Secret)


@dataclass
class Contract:
    """The contract of one slice as the services add to it, in order."""

    env: Environment
    slice: Slice
    names: SliceNames
    base_dir: Path
    environ: dict[str, str] | None = None
    secrets: bool = True  # False: leave secrets out, unresolved (tools that need names only)
    out: list[Variable] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return self.env.contract.prefix

    @property
    def ledger(self) -> str:
        return f"ledger: slice {self.slice.handle}"

    def add(self, name: str, value: str, origin: Origin, source: str,
            reach: Reach | None = None, mode_key: str | None = None) -> None:
        self.out.append(Variable(name, value, origin, source, reach, mode_key))

    def secret(self, name: str, ref: SecretRef | None, where: str) -> None:
        """A secret, resolved now (SecretUnavailable when it is not set)."""
        if ref is not None and self.secrets:
            self.out.append(Variable(name, resolve(ref, self.base_dir, self.environ),
                                     Origin.secret, f"{where} ({ref.describe()})"))


@dataclass(frozen=True)
class ProcessSpec:
    """A program the local runtime's supervisor keeps running."""

    name: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    ready: dict[str, Any]


@dataclass(frozen=True)
class ContainerInputs:
    """What building containers needs beyond devslice.yaml."""

    base_dir: Path
    runtime: str  # k3d or kube
    subnet: Callable[[], str]  # the k3d network's subnet, asked only by who needs it
    storage_accounts: tuple[str, ...] = ()  # the live slices' accounts, for Azurite
    environ: dict[str, str] | None = None
    config_path: str = "devslice.yaml"


@dataclass(frozen=True)
class ToolNeed:
    """A program this devslice.yaml asks to run on this machine (`devslice doctor`)."""

    tool: str
    why: str
    fix: str


@dataclass(frozen=True)
class Probe:
    """What a service's `verify` probe found: status ok, failed or skipped."""

    status: str
    detail: str


class Service:
    """One shared service in every mode. The defaults are "nothing to do"."""

    name: str = ""  # the module's name: eventhubs, storage, ...
    key: str = ""  # its section in devslice.yaml: eventHubs, containers.mongodb, ...

    def mode(self, env: Environment) -> str | None:
        """shared, emulator or embedded; None for a container-only service."""
        return None

    def enabled(self, env: Environment) -> bool:
        """Whether devslice.yaml uses the service at all."""
        return True

    # -- the contract ----------------------------------------------------------------------
    def variables(self, c: Contract) -> None:
        """Add the service's variables, as processes on this machine read them; pods get
        them through ``contract.variables.for_pods``, driven by each variable's reach."""

    def machine_only(self, env: Environment) -> str | None:
        """Why pods cannot reach the service in its mode (an embedded stand-in), or None."""
        return None

    def team_service(self, env: Environment) -> str | None:
        """The config key saying the service is the team's cloud service, whose slices the
        ledger must hand out team-wide (``ledger.reach``), or None."""
        return None

    # -- containers (k3d and kube runtimes) ------------------------------------------------
    def container_names(self, env: Environment) -> list[str]:
        """The containers the service runs beside the cluster, without building them."""
        return []

    def containers(self, env: Environment, inputs: ContainerInputs) -> list[ContainerSpec]:
        return []

    def wants_accounts(self, env: Environment) -> bool:
        """Whether :meth:`containers` needs the live slices' storage accounts (a ledger
        read, made only when one says so)."""
        return False

    def cluster_resources(self, env: Environment, handle: str) -> list[Resource]:
        """Resources beside its containers that the slice's objects wait for (the slice's
        database in an emulator, say)."""
        return []

    # -- processes (local runtime) ---------------------------------------------------------
    def container_only(self, env: Environment, config_path: str) -> ConfigIssue | None:
        """Why the mode cannot run without Docker (an emulator that is only an image)."""
        return None

    def processes(self, project: Project, folder: Path) -> list[ProcessSpec]:
        """``folder``: where the emulators every slice of the checkout shares keep data."""
        return []

    def process_notes(self, project: Project, specs: Iterable[ProcessSpec]) -> list[str]:
        """What the local runtime's plan should say about the service beside its actions."""
        return []

    def after_start(self, project: Project, specs: Iterable[ProcessSpec],
                    runner: CommandRunner | None = None) -> None:
        """Run once its processes are ready (a replica set to initiate, say), its commands
        through ``runner``."""

    def tools(self, env: Environment, processes: bool) -> list[ToolNeed]:
        """Programs needed on this machine; ``processes``: the local runtime may run."""
        return []

    # -- verify ----------------------------------------------------------------------------
    def probe(self, project: Project, handle: str, ctx: SliceContext) -> Probe | None:
        """A real check of the slice's share of the service, through its contract as the
        ledger makes it (None: the service has none)."""
        return None

    # -- the cloud (issue 15) ----------------------------------------------------------------
    def shared(self, env: Environment) -> bool:
        """Whether the slice's share is a piece of the team's cloud service (``mode:
        shared``), which :mod:`devslice.cloud` provisions and tears down; the cloud package
        asks this instead of reading modes."""
        return self.mode(env) == "shared"
