"""The schema of ``devslice.yaml`` (``apiVersion: devslice.dev/v1alpha1``, ``kind: Environment``).

Field names are camelCase in YAML, as in Kubernetes. Unknown keys are errors, so a typo never
passes silently. Later parts of devslice (cluster, containers, services, debug) add sections
beside these; ``devslice schema`` prints the JSON Schema for editors.

Per-field rules live here; rules that span fields (templates that could produce invalid or
colliding names) live in :mod:`devslice.config.checks`, so that both report file:line:col.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    AliasChoices,
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

from devslice.config.duration import MAX_SECONDS, format_duration, parse_duration

API_VERSION = "devslice.dev/v1alpha1"
MAX_PARTITIONS = 32  # Event Hubs Standard tier; the emulator allows 1-32 too


def _list() -> list[Any]:
    """``default_factory=list`` costs ~1 ms per field at import: pydantic asks
    ``inspect.signature(list)``, which parses the builtin's text signature (issue 17)."""
    return []


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _duration(value: object) -> object:
    # timedelta: a default, or a model built in Python; everything written goes through the
    # one parser (floats, booleans, 0 and negatives are refused there)
    return value if isinstance(value, timedelta) or value is None else parse_duration(value)


# What a shell, dotenv and Kubernetes all accept as a variable name (POSIX portable names).
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _variable_name(value: object) -> object:
    if value is not None and not (isinstance(value, str) and VARIABLE_NAME.fullmatch(value)):
        raise ValueError(f"{value!r} is not an environment variable name: expected letters, "
                         "digits and '_', not starting with a digit")
    return value


def _variables(value: object) -> object:
    """An environment mapping: names a shell accepts (they end up in `eval "$(devslice env)"`),
    values of any YAML scalar written as text (``PORT: 8080`` means "8080")."""
    if not isinstance(value, dict):
        return value
    out: dict[object, object] = {}
    for key, item in value.items():  # keys are checked as VariableName, each at its line
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        out[key] = item
    return out


# A name devslice writes into shell output (``"${NAME}"``), so nothing else may pass: issue 12.
VariableName = Annotated[str, BeforeValidator(_variable_name)]
EnvMap = Annotated[dict[VariableName, str], BeforeValidator(_variables)]


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"oneOf": [{"type": "string", "pattern": r"^(\d+[smhdw])+$|^\d+$"},
                              {"type": "integer", "minimum": 1, "maximum": MAX_SECONDS}],
                    "examples": ["4h", "30m"]}),
]


class KeyVaultRef(Model):
    """A secret in Azure Key Vault, read with azure-keyvault-secrets (issue 15)."""

    vault: str = Field(examples=["company1-dev-kv"],
                       description="The vault's name (its URL follows azure.cloud), or its "
                       "https:// URL.")
    secret: str = Field(pattern=r"^[0-9A-Za-z-]{1,127}$", examples=["eventhubs-connection"],
                        description="The secret's name (letters, digits and hyphens).")


class SecretRef(Model):
    """Where a secret comes from. Secrets are never written inline in devslice.yaml."""

    from_env: VariableName | None = Field(None, description="Name of an environment variable.")
    from_file: str | None = Field(None, description="Path of a file holding the secret.")
    from_key_vault: KeyVaultRef | None = Field(
        None, description="A secret in Azure Key Vault: {vault: NAME, secret: NAME}.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [x for x in (self.from_env, self.from_file, self.from_key_vault) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of fromEnv, fromFile or fromKeyVault")
        return self

    def describe(self) -> str:
        if self.from_key_vault is not None:
            return f"keyvault:{self.from_key_vault.vault}/{self.from_key_vault.secret}"
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
    solo_team: bool = Field(
        False, description="You alone use the team's shared services (any service in mode: "
        "shared), so a ledger only this machine sees is enough. Without it, a claim of a "
        "shared service in a SQLite ledger is refused: each developer's own file would hand "
        "out the same partitions. A team shares an azureBlob ledger instead.")


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
        default_factory=_list, description="Partition ids no slice may claim."
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
    mode: Literal["shared", "emulator", "embedded"] = Field(
        "embedded",
        description="shared: partitions of the team's Event Hubs namespaces; emulator: the "
        "official emulator in a local container; embedded: the one-machine stand-in.",
    )
    partitions_per_slice: int = Field(1, ge=1, le=MAX_PARTITIONS)
    embedded_path: str = Field(
        ".devslice/eventhubs.db",
        description="embedded mode: the log file shared by this machine's processes, relative "
        "to devslice.yaml.",
    )
    embedded_retention: Duration = Field(
        default=timedelta(days=1),
        description="embedded mode: how long events are kept (as Event Hubs' retention time; "
        "its shortest, one day, by default); producers delete older events as they go.",
    )
    embedded_max_size_mb: int | None = Field(
        None, ge=1, examples=[512], description="embedded mode: an optional cap on the log "
        "file's size, in MB (the oldest events go first).")
    event_hubs: list[str] = Field(default_factory=_list, description="Event hub names.")
    namespaces: list[EventHubsNamespace] = Field(
        default_factory=lambda: [EventHubsNamespace(name="embedded")]
    )

    @model_validator(mode="after")
    def _emulator_limits(self) -> EventHubsSettings:
        """The emulator's limits (its Config-schema.json): one namespace, 1-10 event hubs,
        1-32 partitions (consumer groups: containers.eventHubsEmulator)."""
        if self.mode != "emulator":
            return self
        if len(self.namespaces) != 1:
            raise ValueError(f"mode emulator runs one namespace, found {len(self.namespaces)} "
                             "in namespaces; list one (its partitions are each event hub's)")
        if not 1 <= len(self.event_hubs) <= 10:
            raise ValueError(f"mode emulator holds 1 to 10 event hubs, found "
                             f"{len(self.event_hubs)} in eventHubs")
        return self

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
    mode: Literal["shared", "emulator", "embedded"] = Field(
        "emulator",
        description="shared: the team's storage accounts; emulator: Azurite in a local "
        "container (a process in the local runtime); embedded: Azurite as a process on this "
        "machine, for processes on this machine only.",
    )
    account_template: str = "{team}stacc4{slice}"
    blob_endpoint_template: str = Field(
        "http://127.0.0.1:10000/{account}",
        description="Its port is where Azurite listens in emulator/embedded mode (10000, "
        "Azurite's blob default; change it here when taken). Use "
        "https://{account}.blob.core.windows.net for real Azure.",
    )
    queue_endpoint_template: str = Field(
        "http://127.0.0.1:10001/{account}",
        description="Its port is Azurite's queue port in emulator/embedded mode (10001, "
        "Azurite's default). Use https://{account}.queue.core.windows.net for real Azure.",
    )
    connection_string: SecretRef | None = Field(
        None, description="Omit to sign in with Azure AD (DefaultAzureCredential)."
    )


class DataConnectionRef(Model):
    """The team's Event Hubs data connection, which must route to other databases."""

    database: str = Field(description="The database the data connection belongs to.",
                          examples=["ingest"])
    name: str = Field(description="The data connection's name.", examples=["orders-to-adx"])


class DataExplorerSettings(Model):
    mode: Literal["shared", "emulator"] = Field(
        "shared",
        description="shared: a database in the team's cluster (clusterUrl); emulator: the Kusto "
        "emulator in a local container (it cannot ingest from Event Hubs). There is no "
        "embedded Data Explorer.",
    )
    cluster_url: str | None = Field(None, description="shared mode: the team's cluster.")
    database_template: str = "db4{slice}"
    routing: RoutingSettings = RoutingSettings()
    cluster_name: str | None = Field(
        None, examples=["company1dev"],
        description="shared mode, for provisioning: the cluster's Azure resource name "
        "(default: the first label of clusterUrl's host).")
    soft_delete_period: Duration = Field(
        default=timedelta(days=7), description="Provisioned databases: how long data is kept.")
    hot_cache_period: Duration = Field(
        default=timedelta(days=1), description="Provisioned databases: how long data is cached.")
    schema_script: str | None = Field(
        None, examples=["adx/schema.kql"],
        description="The team's KQL schema script (relative to devslice.yaml), applied "
        "to a database devslice creates (as `devslice adx apply`).")
    data_connection: DataConnectionRef | None = Field(
        None, examples=[{"database": "ingest", "name": "orders-to-adx"}],
        description="The team's Event Hubs data connection; plan and verify check that "
        "it allows multi-database routing (devslice never changes it).")

    @property
    def azure_cluster_name(self) -> str | None:
        if self.cluster_name:
            return self.cluster_name
        if not self.cluster_url:
            return None

        host = urlparse(self.cluster_url).hostname or ""
        return host.split(".")[0] or None


class SignalRSettings(Model):
    mode: Literal["shared", "emulator", "embedded"] = Field(
        "shared",
        description="shared: a hub per slice in the team's SignalR Service; emulator: the local "
        "emulator (asrs-emulator, serverless only) in a container that pods reach too (a "
        "process in the local runtime); embedded: asrs-emulator as a process on this machine, "
        "for processes on this machine only.",
    )
    emulator_port: int = Field(8888, ge=1, le=65535, description="emulator and embedded "
                               "modes: the host port asrs-emulator answers on.")
    endpoint: str | None = Field(None, description="shared mode: the service's endpoint.")
    hubs: list[str] = Field(default_factory=_list)
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


# -- cluster: values k3d, Docker and Kubernetes refuse are refused here, at load (issue 13) --

# RFC 1123 label: a cluster name becomes hostnames (k3d-NAME-server-0), a layer name a label
# value and part of a ConfigMap name, a namespace a DNS label; none may end with '-'.
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
# k3d v5's node filter (pkg/util/filter.go NodeFilterRegexp): GROUP[:SUBSET][:SUFFIX]
K3D_NODE_FILTER = re.compile(r"(?P<group>server|servers|agent|agents|loadbalancer|all)"
                             r"(?::(?P<subset>(?:\d+,?)+|\d*-\d*|\*))?"
                             r"(?::(?P<suffix>[A-Za-z]+))?")
# Docker's port spec as k3d parses it (nat.ParsePortSpec): [IP:][HOST[-HOST]:]PORT[-PORT][/proto]
_K3D_PORT = re.compile(r"(?:(?:\d{1,3}\.){3}\d{1,3}:)?(?:\d{1,5}(?:-\d{1,5})?:)?"
                       r"\d{1,5}(?:-\d{1,5})?(?:/(?:tcp|udp|sctp))?")
_V4_FILTER = re.compile(r"(server|agent|loadbalancer|all)\[(.*)\]")


def dns_label(value: str, what: str, max_length: int = 63) -> str:
    """``value`` if it is an RFC 1123 label, else a ValueError saying why."""
    if len(value) > max_length or not _DNS_LABEL.fullmatch(value):
        end = " (it ends with '-')" if value.endswith("-") else \
            " (it starts with '-')" if value.startswith("-") else ""
        raise ValueError(f"{value!r} is not a valid {what}{end}: expected lowercase letters, "
                         f"digits and '-', starting and ending with a letter or digit, at "
                         f"most {max_length} characters")
    return value


def node_filter(value: str, suffixes: tuple[str, ...] = ()) -> str:
    """A k3d v5 node filter (``server:0``, ``agent:*``, ``loadbalancer``), else a ValueError
    naming the v5 spelling of a v4 one (``server[0]``)."""
    m = K3D_NODE_FILTER.fullmatch(value)
    if m is None:
        v4 = _V4_FILTER.fullmatch(value.lstrip("@"))
        if v4:
            subset = v4.group(2).replace(":", "-")
            fix = f"{v4.group(1)}:{subset}" if subset else v4.group(1)
            raise ValueError(f"node filter {value!r} is k3d v4 syntax, which k3d v5 refuses: "
                             f"write {fix!r}")
        raise ValueError(f"{value!r} is not a k3d node filter: expected GROUP[:SUBSET] with "
                         "GROUP server, agent, loadbalancer or all and SUBSET an index (0), a "
                         "list (0,1), a range (0-2) or * (e.g. server:0, agent:*, loadbalancer)")
    suffix = m.group("suffix")
    if suffix and suffix not in suffixes:
        allowed = f": expected one of {', '.join(suffixes)}" if suffixes else " here"
        raise ValueError(f"node filter {value!r}: k3d takes no suffix {suffix!r}{allowed}")
    return value


NodeFilter = Annotated[str, AfterValidator(node_filter)]


class K3sArg(Model):
    arg: str
    node_filters: list[NodeFilter] = Field(default_factory=lambda: ["server:*"],
                                           examples=[["server:*"], ["agent:0"]])


def _cluster_port(value: object) -> object:
    """``[IP:][HOST:]PORT[/proto][@FILTER[;FILTER]]``, as ``k3d cluster create -p`` takes it."""
    if not isinstance(value, str):
        return value
    port, at, filters = value.partition("@")
    if not _K3D_PORT.fullmatch(port):
        raise ValueError(f"{value!r}: {port!r} is not a port mapping k3d accepts: expected "
                         "[HOST_PORT:]CONTAINER_PORT[/tcp|udp], e.g. 8080:80@loadbalancer")
    if at and not filters:
        raise ValueError(f"{value!r} has '@' but no node filter after it, e.g. @loadbalancer")
    for f in filter(None, filters.split(";")):
        # port mappings take k3d's proxy/direct suffixes (pkg/client/ports.go)
        node_filter(f, suffixes=("proxy", "direct"))
    return value


ClusterPort = Annotated[str, BeforeValidator(_cluster_port)]


class RegistrySettings(Model):
    name: str = Field("devslice-registry", pattern=r"^[a-z0-9]([a-z0-9.-]{0,48}[a-z0-9])?$",
                      description="k3d names the container k3d-NAME.")
    port: int = Field(5050, ge=1024, le=65535,
                      description="The registry's port on this machine (localhost:5050, "
                      "where images are pushed); pick another when 5050 is taken.")


class KubeSettings(Model):
    """runtime: kube - slices as namespaces of an existing (shared) cluster."""

    context: str | None = Field(None, description="The kubeconfig context to use.")
    allowed_contexts: list[str] = Field(
        default_factory=_list, description="Contexts devslice may use; others are refused.")
    namespace_template: str = "dev-{slice}"
    registry: str | None = Field(
        None, pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$",
        description="Where `up` pushes images: for runtime kube, a registry the shared cluster "
        "pulls from, e.g. myacr.azurecr.io/team (sign in first: az acr login -n myacr).",
        examples=["myacr.azurecr.io/team"])

    @field_validator("namespace_template")
    @classmethod
    def _namespace(cls, value: str) -> str:
        # handles and team prefixes are lowercase letters and digits (16 at most), so two
        # samples show whether every slice's namespace is a DNS label
        try:
            short, longest = (value.format(slice=h, team=t)
                              for h, t in (("ab", "team"), ("a" * 16, "a" * 16)))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{value!r} cannot be filled in: use {{slice}} and {{team}} only "
                             f"({exc})") from None
        try:
            dns_label(short, "namespace")
        except ValueError as exc:
            raise ValueError(f"{value!r} gives namespaces such as {exc}") from None
        if len(longest) > 63:
            raise ValueError(f"{value!r} gives namespaces longer than 63 characters for the "
                             "longest handles and team prefixes")
        return value


def _subnet(value: object) -> object:
    """A network k3d can create, with room for a gateway and nodes (issue 12: an empty or
    malformed subnet used to pass loading and fail later without a line)."""

    if isinstance(value, str) and value != "auto":  # auto: chosen free, then kept (issue 13)
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a subnet like 172.18.0.0/16, nor auto "
                             f"({exc})") from None
        if network.num_addresses < 4:
            raise ValueError(f"{value} is too small for a cluster network: expected a prefix "
                             f"of at most /{network.max_prefixlen - 2}")
    return value


Subnet = Annotated[str, BeforeValidator(_subnet)]


class ClusterSettings(Model):
    """Where the services run (the engine issue)."""

    runtime: Literal["k3d", "kube", "local", "auto"] = Field(
        "k3d", description="k3d: a local cluster; kube: a namespace of a shared cluster; local: "
        "services as processes on this machine (no Docker); auto: k3d when Docker and k3d are "
        "there, else local.")
    name: str = Field("devslice", description="An RFC 1123 hostname label (k3d names its "
                      "containers k3d-NAME-server-0), at most 32 characters.")
    servers: int = Field(1, ge=1, le=7)
    agents: int = Field(0, ge=0, le=20)
    subnet: Subnet = Field("auto", description="auto: a free /16 chosen against the Docker "
                        "engine's networks, then kept in .devslice/; or a fixed one. Fixed "
                        "either way, so its gateway address survives the laptop-sleep bug of "
                        "host.k3d.internal (k3d issues 1221, 1360).")
    # The alias is written out: to_camel would make it k3SArgs, which the README never used;
    # that spelling is still read, as `devslice schema` once published it.
    k3s_args: list[K3sArg] = Field(
        default_factory=lambda: [K3sArg(arg="--disable=traefik")], alias="k3sArgs",
        validation_alias=AliasChoices("k3sArgs", "k3SArgs"),
        description="The team runs its own Traefik, so the bundled one is off by default.")
    ports: list[ClusterPort] = Field(default_factory=_list, examples=[["8080:80@loadbalancer"]])
    registry: RegistrySettings = RegistrySettings()
    kube: KubeSettings = KubeSettings()

    @field_validator("name")
    @classmethod
    def _hostname(cls, value: str) -> str:
        return dns_label(value, "cluster name (k3d uses it in hostnames)", max_length=32)

    @model_validator(mode="after")
    def _filters_name_nodes_that_exist(self) -> ClusterSettings:
        # k3d: "Index out of range" when a filter names server 1 of a one-server cluster
        counts = {"server": self.servers, "servers": self.servers, "agent": self.agents,
                  "agents": self.agents}
        filters = [f for a in self.k3s_args for f in a.node_filters] + [
            f for p in self.ports for f in p.partition("@")[2].split(";") if f]
        for f in filters:
            m = K3D_NODE_FILTER.fullmatch(f)
            if m is None or m.group("group") not in counts:
                continue
            n, subset = counts[m.group("group")], m.group("subset") or ""
            wanted = [int(i) for i in subset.split(",") if i.isdigit()] if "-" not in subset \
                else [int(i) for i in subset.split("-") if i]
            if any(i >= n for i in wanted):
                raise ValueError(f"node filter {f!r} names a node the cluster does not have "
                                 f"({n} {m.group('group').rstrip('s')}"
                                 f"{'s' * (n != 1)}, numbered from 0)")
        return self


class ImageSettings(Model):
    """A service image built from the team's repository and pushed to the local registry."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._/-]{0,127}$")
    context: str = Field(description="Build context folder, relative to devslice.yaml.")
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = Field(default_factory=dict)


class ManifestLayer(Model):
    """A folder of plain Kubernetes YAML, applied after the layers before it."""

    name: str = Field(description="A DNS label, at most 41 characters: it becomes a label "
                      "value and part of a ConfigMap name.")
    path: str = Field(description="Folder of *.yaml files, relative to devslice.yaml.")

    @field_validator("name")
    @classmethod
    def _label(cls, value: str) -> str:
        return dns_label(value, "layer name", max_length=41)


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
    port: int | Literal["auto"] | None = Field(
        None, description="The port it listens on, given to it as $PORT: a number, or auto "
        "for a free port per slice (so several slices run side by side on one machine).")
    ready: Readiness | None = None


# ------------------------------------------------------------------ containers (issue 5)

PORT_SPEC = re.compile(r"^(?:(?P<ip>[0-9.]+):)?(?P<host>\d{1,5}):(?P<container>\d{1,5})"
                        r"(?:/(?P<proto>tcp|udp))?$")
VOLUME_SPEC = re.compile(r"^(?P<name>[a-zA-Z0-9][a-zA-Z0-9_.-]+):(?P<target>/[^:]*)(?::ro)?$")
CONTAINER_NAME = r"^[a-z0-9][a-z0-9-]{0,40}$"


def _port_spec(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value}:{value}"
    if isinstance(value, str):
        m = PORT_SPEC.match(value)
        if m is None or not all(1 <= int(m[k]) <= 65535 for k in ("host", "container")):
            raise ValueError(f"{value!r} is not a port mapping: expected "
                             "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp], e.g. 27017:27017")
    return value


def _volume_spec(value: object) -> object:
    if isinstance(value, str) and not VOLUME_SPEC.match(value):
        raise ValueError(f"{value!r} is not a named volume: expected NAME:/path[:ro], e.g. "
                         "mongodata:/data/db (host folders are not mounted: they break on "
                         "remote engines and leak the checkout into containers)")
    return value


PortSpec = Annotated[str, BeforeValidator(_port_spec)]
VolumeSpec = Annotated[str, BeforeValidator(_volume_spec)]


class ContainerReadiness(Model):
    """When a container counts as ready: one or more of port, command and log, all of which
    must hold (e.g. the port answers and the log says it loaded its data)."""

    port: int | None = Field(None, ge=1, le=65535, description="A container port published "
                             "on the host; ready once a service answers on 127.0.0.1:HOST_PORT "
                             "(not only Docker's proxy, which accepts before the process "
                             "inside listens).")
    command: list[str] | None = Field(None, description="Run inside the container (exec); "
                                      "ready once it exits 0.")
    log: str | None = Field(None, description="Ready once the container's output holds this.")
    timeout: Duration = Field(default=timedelta(seconds=60))

    @model_validator(mode="after")
    def _at_least_one(self) -> ContainerReadiness:
        if not any(getattr(self, k) for k in ("port", "command", "log")):
            raise ValueError("give at least one of port, command or log")
        return self


class SetupScript(Model):
    """Run once inside the container after it is ready, and again only when the script (its
    file or command) changes; e.g. the databases' DDL. Write scripts so that running them
    twice does no harm: a recreated container runs them again."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,40}$")
    file: str | None = Field(None, description="Script file, relative to devslice.yaml; its "
                             "text replaces {script} in run.")
    run: list[str] = Field(default_factory=lambda: ["sh", "-c", "{script}"],
                           description="The command run with `docker exec`.")


class ContainerSettings(Model):
    """A container the engine keeps running beside the cluster (`docker run -d --restart
    unless-stopped ...`)."""

    name: str = Field(pattern=CONTAINER_NAME, description="The container is devslice-NAME.")
    image: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$")
    command: list[str] = Field(default_factory=_list, description="Arguments after the image "
                               "(its CMD); empty keeps the image's own.")
    env: EnvMap = Field(default_factory=dict)
    secret_env: dict[VariableName, SecretRef] = Field(
        default_factory=dict, description="Variables whose values are secrets, by reference; "
        "they reach the container but never labels, plans or output.")
    ports: list[PortSpec] = Field(default_factory=_list, examples=[["27017:27017"]])
    volumes: list[VolumeSpec] = Field(default_factory=_list, examples=[["mongodata:/data/db"]])
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    ready: ContainerReadiness | None = None
    setup: list[SetupScript] = Field(default_factory=_list)


class MongoDbSettings(Model):
    """MongoDB as a one-node replica set (change streams and transactions need one)."""

    image: str = "mongo:7"
    replica_set: str = Field("rs0", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    oplog_size_mb: int = Field(50, ge=1, alias="oplogSizeMB")
    port: int = Field(27017, ge=1, le=65535, description="Host port.")
    volume: str = Field("devslice-mongodb-data", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
    setup: list[SetupScript] = Field(default_factory=_list, description="run defaults to "
                                     "mongosh --quiet --eval {script}.")


class SftpUser(Model):
    name: str = Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    password: SecretRef
    folders: list[str] = Field(default_factory=_list, examples=[["upload", "upload/processed"]])

    @field_validator("folders")
    @classmethod
    def _plain_folders(cls, value: list[str]) -> list[str]:
        for folder in value:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*", folder) or \
                    ".." in folder.split("/"):
                raise ValueError(f"{folder!r} is not a folder under the user's home: expected "
                                 "names of letters, digits, '_', '.', '-' joined by '/'")
        return value


class SftpSettings(Model):
    """An SFTP server (atmoz/sftp) with users and their folders."""

    image: str = "atmoz/sftp:alpine"
    port: int = Field(2222, ge=1, le=65535, description="Host port (22 is usually the "
                      "machine's own sshd).")
    volume: str = Field("devslice-sftp-data", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
    users: list[SftpUser] = Field(min_length=1)


class AzuriteSettings(Model):
    """Azurite with an account for every live slice (and the well-known dev account)."""

    image: str = "mcr.microsoft.com/azure-storage/azurite:latest"
    blob_port: int = Field(10000, ge=1, le=65535,
                           description="Published on this machine (10000, Azurite's default).")
    queue_port: int = Field(10001, ge=1, le=65535,
                            description="Published on this machine (10001, Azurite's default).")
    table_port: int = Field(10002, ge=1, le=65535,
                            description="Published on this machine (10002, Azurite's default).")
    volume: str = Field("devslice-azurite-data", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class EventHubsEmulatorSettings(Model):
    """The official Event Hubs emulator; its Config.json is generated from eventHubs."""

    image: str = "mcr.microsoft.com/azure-messaging/eventhubs-emulator:latest"
    accept_eula: bool = Field(False, description="The emulator starts only once you accept its "
                              "EULA: https://github.com/Azure/azure-event-hubs-emulator-installer"
                              "/blob/main/EMULATOR_EULA.md")
    port: int = Field(5672, ge=1, le=65535, description="Host port for AMQP.")
    consumer_groups: list[str] = Field(
        default_factory=_list, description="Consumer groups of every event hub besides "
        "$Default, 1-20 (the emulator's limit).")

    @field_validator("consumer_groups")
    @classmethod
    def _consumer_groups(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.lower() == "$default":
                raise ValueError("$Default exists on every event hub; list only the others")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}", name):
                raise ValueError(f"{name!r} is not a consumer group name: 1-50 letters, digits, "
                                 "'.', '_', '-', starting with a letter or digit")
        if len(value) > 20:
            raise ValueError(f"the emulator allows at most 20 consumer groups per event hub, "
                             f"found {len(value)}")
        return value


class KustoEmulatorSettings(Model):
    """The Kusto (Data Explorer) emulator; also implied by dataExplorer.mode: emulator."""

    image: str = "mcr.microsoft.com/azuredataexplorer/kustainer-linux:latest"
    accept_eula: bool = Field(False, description="The emulator starts only once you accept its "
                              "license (its ACCEPT_EULA variable): https://learn.microsoft.com/"
                              "azure/data-explorer/kusto-emulator-overview")
    port: int = Field(8080, ge=1, le=65535, description="Host port for its HTTP endpoint.")
    volume: str = Field("devslice-kusto-data", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$",
                        description="Mounted at /kustodata, where persistent databases live.")


class SignalREmulatorSettings(Model):
    """asrs-emulator in a container; also implied by signalR.mode: emulator. Microsoft
    publishes it as a .NET tool only, so the container installs it into a volume once."""

    image: str = "mcr.microsoft.com/dotnet/sdk:8.0"
    version: str = Field("1.6.1", pattern=r"^[0-9]+\.[0-9]+\.[0-9]+([.-][0-9A-Za-z.-]+)?$",
                         description="Microsoft.Azure.SignalR.Emulator's NuGet version.")
    volume: str = Field("devslice-signalr-tools", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$",
                        description="Where the tool is installed, so a restart skips it.")


class ContainersSettings(Model):
    """Local containers beside the cluster: built-ins enabled in a line, and the team's own."""

    mongodb: MongoDbSettings | None = None
    sftp: SftpSettings | None = None
    azurite: AzuriteSettings | None = None
    event_hubs_emulator: EventHubsEmulatorSettings | None = Field(
        None, description="Also implied by eventHubs.mode: emulator.")
    kusto_emulator: KustoEmulatorSettings | None = Field(
        None, description="Also implied by dataExplorer.mode: emulator.")
    signalr_emulator: SignalREmulatorSettings | None = Field(
        None, description="Also implied by signalR.mode: emulator; its port is "
        "signalR.emulatorPort.")
    custom: list[ContainerSettings] = Field(default_factory=_list)

    @field_validator("custom")
    @classmethod
    def _distinct(cls, value: list[ContainerSettings]) -> list[ContainerSettings]:
        reserved = {"mongodb", "sftp", "azurite", "eventhubs-emulator", "kusto-emulator",
                    "signalr-emulator"}
        seen: set[str] = set()
        for c in value:
            if c.name in reserved:
                raise ValueError(f"{c.name!r} is a built-in's name; enable it as "
                                 f"containers.{c.name} or pick another name")
            if c.name in seen:
                raise ValueError(f"container {c.name!r} is listed twice")
            seen.add(c.name)
        return value


AzureCloud = Literal["public", "china", "usgovernment"]


class AzureSettings(Model):
    """Where devslice provisions a slice's Azure resources (`mode: shared`; issue 15)."""

    subscription: str | None = Field(
        None, examples=["00000000-0000-0000-0000-000000000000"],
        description="The subscription id; AZURE_SUBSCRIPTION_ID overrides it.")
    resource_group: str | None = Field(
        None, examples=["rg-company1-dev"],
        description="The resource group holding the team's resources and the slices'; "
        "AZURE_RESOURCE_GROUP overrides it.")
    location: str | None = Field(None, examples=["westeurope"],
                                 description="Region of new storage accounts, e.g. "
                                 "westeurope (needed to create one).")
    cloud: AzureCloud = Field("public", description="public, china or usgovernment: the "
                              "management, storage and Key Vault endpoints follow.")
    management_endpoint: str | None = Field(
        None, examples=["https://management.azure.com"],
        description="Overrides the cloud's Resource Manager endpoint (Azure Stack, "
        "tests).")
    tags: dict[str, str] = Field(default_factory=dict, examples=[{"costCenter": "4711"}],
                                 description="Extra tags on everything devslice creates.")
    storage_sku: str = Field("Standard_LRS", description="SKU of new storage accounts.")
    storage_kind: str = Field("StorageV2", description="Kind of new storage accounts.")
    provision: bool = Field(True, description="false: plan and up never touch Azure.")


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
    images: list[ImageSettings] = Field(default_factory=_list)
    services: list[ServiceSettings] = Field(default_factory=_list)
    manifests: list[ManifestLayer] = Field(default_factory=_list)
    containers: ContainersSettings = ContainersSettings()
    azure: AzureSettings = AzureSettings()

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
        # lazy: config.checks imports this module
        from devslice.config.checks import check

        return check(self)

    def config_dir_path(self, config_path: str) -> str:

        return os.path.dirname(os.path.abspath(config_path))
