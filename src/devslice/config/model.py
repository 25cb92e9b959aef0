"""The schema of ``devslice.yaml`` (``apiVersion: devslice.dev/v1alpha1``, ``kind: Environment``).

Field names are camelCase in YAML, as in Kubernetes. Unknown keys are errors, so a typo never
passes silently. Later parts of devslice (cluster, containers, services, debug) add sections
beside these; ``devslice schema`` prints the JSON Schema for editors.

Per-field rules live here; rules that span fields (templates that could produce invalid or
colliding names) live in :mod:`devslice.config.checks`, so that both report file:line:col.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from devslice.config.duration import format_duration, parse_duration

API_VERSION = "devslice.dev/v1alpha1"
MAX_PARTITIONS = 32  # Event Hubs Standard tier; the emulator allows 1-32 too


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit: write it as {value}s, {value}m or {value}h")
    return value


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _variables(value: object) -> object:
    """An environment mapping: names a shell accepts (they end up in `eval "$(devslice env)"`),
    values of any YAML scalar written as text (``PORT: 8080`` means "8080")."""
    if not isinstance(value, dict):
        return value
    out: dict[object, object] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _VARIABLE.fullmatch(key):
            raise ValueError(f"{key!r} is not an environment variable name: expected letters, "
                             "digits and '_', not starting with a digit")
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        out[key] = item
    return out


EnvMap = Annotated[dict[str, str], BeforeValidator(_variables)]


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+[smhdw])+$", "examples": ["4h", "30m"]}),
]


class SecretRef(Model):
    """Where a secret comes from. Secrets are never written inline in devslice.yaml."""

    from_env: str | None = Field(None, description="Name of an environment variable.")
    from_file: str | None = Field(None, description="Path of a file holding the secret.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.from_env is None) == (self.from_file is None):
            raise ValueError("give exactly one of fromEnv or fromFile")
        return self

    def describe(self) -> str:
        return f"env:{self.from_env}" if self.from_env else f"file:{self.from_file}"


class HandleSettings(Model):
    min_length: int = Field(2, ge=1, le=16)
    max_length: int = Field(8, ge=2, le=16)

    @model_validator(mode="after")
    def _order(self) -> HandleSettings:
        if self.min_length > self.max_length:
            raise ValueError(
                f"minLength {self.min_length} is larger than maxLength {self.max_length}"
            )
        return self


class LeaseSettings(Model):
    """How long a claim lives before `devslice slice gc` may reclaim it (none: forever)."""

    developer: Duration | None = None
    ci: Duration | None = Field(default=timedelta(hours=4))
    shared: Duration | None = None


class SliceSettings(Model):
    handle: HandleSettings = HandleSettings()
    ttl: LeaseSettings = LeaseSettings()


class SqliteLedger(Model):
    backend: Literal["sqlite"] = "sqlite"
    path: str = Field(".devslice/ledger.db", description="Relative to devslice.yaml.")


class AzureBlobLedger(Model):
    backend: Literal["azureBlob"]
    account_url: str | None = Field(
        None, description="https://ACCOUNT.blob.core.windows.net; signs in with Azure AD."
    )
    connection_string: SecretRef | None = None
    container: str = "devslice"
    blob: str = "ledger.json"

    @model_validator(mode="after")
    def _one_way_in(self) -> AzureBlobLedger:
        if (self.account_url is None) == (self.connection_string is None):
            raise ValueError("give exactly one of accountUrl or connectionString")
        return self


def _backend(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("backend", "sqlite"))
    return str(getattr(value, "backend", "sqlite"))


Ledger = Annotated[
    Annotated[SqliteLedger, Tag("sqlite")] | Annotated[AzureBlobLedger, Tag("azureBlob")],
    Discriminator(_backend),
]


class EventHubsNamespace(Model):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]$")
    partitions: int = Field(MAX_PARTITIONS, ge=1, le=MAX_PARTITIONS)
    reserved: list[int] = Field(
        default_factory=list, description="Partition ids no slice may claim."
    )
    fully_qualified_namespace: str | None = Field(
        None, description="Defaults to NAME.servicebus.windows.net."
    )
    connection_string: SecretRef | None = None

    @model_validator(mode="after")
    def _reserved_in_range(self) -> EventHubsNamespace:
        bad = [p for p in self.reserved if not 0 <= p < self.partitions]
        if bad:
            raise ValueError(
                f"reserved partition {bad[0]} does not exist: this namespace's event hubs "
                f"have partitions 0 to {self.partitions - 1}"
            )
        return self

    @property
    def host(self) -> str:
        return self.fully_qualified_namespace or f"{self.name}.servicebus.windows.net"


class RoutingSettings(Model):
    """Data Explorer routing properties stamped on events (the SDK issue uses these)."""

    table: str | None = None
    format: str | None = None
    ingestion_mapping_reference: str | None = None


class EventHubsSettings(Model):
    mode: Literal["shared", "embedded"] = Field(
        "embedded",
        description="shared: partitions of the team's Event Hubs namespaces; embedded: the "
        "one-machine stand-in.",
    )
    partitions_per_slice: int = Field(1, ge=1, le=MAX_PARTITIONS)
    embedded_path: str = Field(
        ".devslice/eventhubs.db",
        description="embedded mode: the log file shared by this machine's processes, relative "
        "to devslice.yaml.",
    )
    event_hubs: list[str] = Field(default_factory=list, description="Event hub names.")
    namespaces: list[EventHubsNamespace] = Field(
        default_factory=lambda: [EventHubsNamespace(name="embedded")]
    )

    @field_validator("namespaces")
    @classmethod
    def _distinct(cls, value: list[EventHubsNamespace]) -> list[EventHubsNamespace]:
        if not value:
            raise ValueError("at least one namespace is needed")
        seen: set[str] = set()
        for ns in value:
            if ns.name in seen:
                raise ValueError(f"namespace {ns.name!r} is listed twice")
            seen.add(ns.name)
        return value


class StorageSettings(Model):
    mode: Literal["shared", "emulator"] = "emulator"
    account_template: str = "{team}stacc4{slice}"
    blob_endpoint_template: str = Field(
        "http://127.0.0.1:10000/{account}",
        description="Use https://{account}.blob.core.windows.net for real Azure.",
    )
    queue_endpoint_template: str = "http://127.0.0.1:10001/{account}"
    connection_string: SecretRef | None = Field(
        None, description="Omit to sign in with Azure AD (DefaultAzureCredential)."
    )


class DataExplorerSettings(Model):
    cluster_url: str | None = None
    database_template: str = "db4{slice}"
    routing: RoutingSettings = RoutingSettings()


class SignalRSettings(Model):
    endpoint: str | None = None
    hubs: list[str] = Field(default_factory=list)
    hub_template: str = "{hub}_{slice}"
    connection_string: SecretRef | None = None


NameKind = Literal[
    "storageAccount", "container", "queue", "dataExplorerDatabase", "signalrHub",
    "consumerGroup", "eventHub", "generic",
]


class NamedTemplate(Model):
    template: str
    rule: NameKind = "generic"


class ContractSettings(Model):
    """The environment variables services read (see docs/contract.md)."""

    prefix: str = Field("LOCAL_DEV_", pattern=r"^[A-Z][A-Z0-9_]*$")
    partition_ids_variable: str = Field(
        "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS", pattern=r"^[A-Z_][A-Z0-9_]*$"
    )
    env: EnvMap = Field(
        default_factory=dict, description="Team-wide extra variables, same for every slice."
    )

    @model_validator(mode="after")
    def _extras_stay_out_of_the_contract(self) -> ContractSettings:
        for name in self.env:
            if name.startswith((self.prefix, "DEVSLICE_")) or name == self.partition_ids_variable:
                raise ValueError(
                    f"env.{name} uses a name devslice sets for each slice; team extras may "
                    f"not start with {self.prefix} or DEVSLICE_ (override in "
                    "devslice.local.yaml instead)")
        return self


class K3sArg(Model):
    arg: str
    node_filters: list[str] = Field(default_factory=lambda: ["server:*"])


class RegistrySettings(Model):
    name: str = Field("devslice-registry", pattern=r"^[a-z0-9][a-z0-9.-]{0,50}$",
                      description="k3d names the container k3d-NAME.")
    port: int = Field(5050, ge=1024, le=65535)


class KubeSettings(Model):
    """runtime: kube - slices as namespaces of an existing (shared) cluster."""

    context: str | None = Field(None, description="The kubeconfig context to use.")
    allowed_contexts: list[str] = Field(
        default_factory=list, description="Contexts devslice may use; others are refused.")
    namespace_template: str = "dev-{slice}"


class ClusterSettings(Model):
    """Where the services run (the engine issue)."""

    runtime: Literal["k3d", "kube", "local", "auto"] = Field(
        "k3d", description="k3d: a local cluster; kube: a namespace of a shared cluster; local: "
        "services as processes on this machine (no Docker); auto: k3d when Docker and k3d are "
        "there, else local.")
    name: str = Field("devslice", pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    servers: int = Field(1, ge=1, le=7)
    agents: int = Field(0, ge=0, le=20)
    subnet: str = Field("172.18.0.0/16", description="Fixed, so its gateway address survives "
                        "the laptop-sleep bug of host.k3d.internal (k3d issues 1221, 1360).")
    k3s_args: list[K3sArg] = Field(
        default_factory=lambda: [K3sArg(arg="--disable=traefik")],
        description="The team runs its own Traefik, so the bundled one is off by default.")
    ports: list[str] = Field(default_factory=list, examples=[["8080:80@loadbalancer"]])
    registry: RegistrySettings = RegistrySettings()
    kube: KubeSettings = KubeSettings()


class ImageSettings(Model):
    """A service image built from the team's repository and pushed to the local registry."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._/-]{0,127}$")
    context: str = Field(description="Build context folder, relative to devslice.yaml.")
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = Field(default_factory=dict)


class ManifestLayer(Model):
    """A folder of plain Kubernetes YAML, applied after the layers before it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    path: str = Field(description="Folder of *.yaml files, relative to devslice.yaml.")


class Readiness(Model):
    """When a service counts as ready: a TCP port accepting, or a line in its output."""

    port: int | None = Field(None, ge=1, le=65535)
    log: str | None = Field(None, description="Text its output contains once it is ready.")
    timeout: Duration = Field(default=timedelta(seconds=60))


class ServiceSettings(Model):
    """One of the team's services; `run` is how the local runtime starts it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    run: str | None = Field(None, description="Command line (no shell), e.g. python -m orders.")
    cwd: str = Field(".", description="Working folder, relative to devslice.yaml.")
    env: EnvMap = Field(default_factory=dict)
    ready: Readiness | None = None


class Environment(Model):
    """A team's devslice environment."""

    api_version: Literal["devslice.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Environment"]
    team: str = Field(
        pattern=r"^[a-z][a-z0-9]{1,15}$",
        description="Team prefix used in names: lowercase letters and digits.",
    )
    ledger: Ledger = SqliteLedger()
    slices: SliceSettings = SliceSettings()
    event_hubs: EventHubsSettings = EventHubsSettings()
    storage: StorageSettings = StorageSettings()
    data_explorer: DataExplorerSettings = DataExplorerSettings()
    signal_r: SignalRSettings = Field(default_factory=SignalRSettings, alias="signalR")
    names: dict[str, NamedTemplate] = Field(default_factory=dict)
    contract: ContractSettings = ContractSettings()
    cluster: ClusterSettings = ClusterSettings()
    images: list[ImageSettings] = Field(default_factory=list)
    services: list[ServiceSettings] = Field(default_factory=list)
    manifests: list[ManifestLayer] = Field(default_factory=list)

    @field_validator("names")
    @classmethod
    def _keys(cls, value: dict[str, NamedTemplate]) -> dict[str, NamedTemplate]:
        for key in value:
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,39}", key):
                raise ValueError(
                    f"name key {key!r}: expected lowercase letters, digits and hyphens"
                )
        return value

    def semantic_issues(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Cross-field problems (templates, reserved partitions), each with its location."""
        from devslice.config.checks import check

        return check(self)

    def config_dir_path(self, config_path: str) -> str:
        import os

        return os.path.dirname(os.path.abspath(config_path))
