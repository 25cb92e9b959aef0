"""What a running service knows about its slice: the environment contract, parsed once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from devslice.errors import DevsliceError
from devslice.hubs import DEFAULT_RETENTION

DEFAULT_PREFIX = "LOCAL_DEV_"
DEFAULT_PARTITIONS_VARIABLE = "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"
EMBEDDED_SCHEME = "embedded:"
EMBEDDED_OPTIONS = {"retention": "retention", "maxBytes": "max_bytes"}


def embedded_connection(path: object, retention: float = DEFAULT_RETENTION,
                        max_size_mb: int | None = None) -> str:
    """The contract's connection for an embedded hub: ``embedded:PATH``, with the retention
    options appended only where they differ from the defaults."""
    options = []
    if retention != DEFAULT_RETENTION:
        options.append(f"retention={retention:g}")
    if max_size_mb is not None:
        options.append(f"maxBytes={max_size_mb * 1024 * 1024}")
    return f"{EMBEDDED_SCHEME}{path}" + ("?" + "&".join(options) if options else "")


def _embedded_split(rest: str) -> tuple[str, dict[str, float]]:
    """PATH and options of ``PATH?retention=...&maxBytes=...``; a ``?`` that introduces no
    known options is part of the path."""
    path, mark, query = rest.rpartition("?")
    if not mark:
        return rest, {}
    options: dict[str, float] = {}
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            return rest, {}
        if not eq or key not in EMBEDDED_OPTIONS or number <= 0:
            return rest, {}
        options[EMBEDDED_OPTIONS[key]] = number
    return path, options
# Fixed names, so a service finds the contract even when a team renamed its variables.
PREFIX_VARIABLE = "DEVSLICE_CONTRACT_PREFIX"
PARTITIONS_VARIABLE_VARIABLE = "DEVSLICE_PARTITIONIDS_VARIABLE"


class SliceViolation(DevsliceError):
    """A call would leave the slice (a foreign partition, say)."""


class ContractError(DevsliceError):
    """The environment contract's variables are malformed."""


@dataclass(frozen=True)
class StartFences:
    """Where the slice's view of each partition begins: ``LOCAL_DEV_EVENTHUBS_STARTFENCE``.

    The variable is a comma-separated list of ``EVENTHUB/PARTITION=VALUE`` and one
    ``*=TIME`` for the event hubs it does not list. A VALUE is a sequence number (deliver
    only events after it; -1: the partition was empty) or an ISO-8601 UTC time (deliver only
    events enqueued from then on, used when the sequence number could not be read):
    ``orders/0=1234,orders/1=-1,payments/0=2026-12-07T02:07:49.123456Z,*=2026-12-07T02:07:49.123456Z``.
    """

    positions: Mapping[tuple[str, str], int | datetime] = field(default_factory=dict)
    default: datetime | None = None  # "*": the claim time

    def fence(self, eventhub_name: str | None, partition_id: str) -> int | datetime | None:
        """The fence of one partition: a sequence number, a time, or None (no fence)."""
        if eventhub_name is not None:
            found = self.positions.get((eventhub_name, partition_id))
            if found is not None:
                return found
        return self.default

    def format(self) -> str:
        parts = [f"{hub}/{pid}={_fence_text(v)}" for (hub, pid), v in self.positions.items()]
        if self.default is not None:
            parts.append(f"*={_fence_text(self.default)}")
        return ",".join(parts)

    @classmethod
    def parse(cls, raw: str, variable: str = "LOCAL_DEV_EVENTHUBS_STARTFENCE") -> StartFences:
        positions: dict[tuple[str, str], int | datetime] = {}
        default = None
        for entry in (e.strip() for e in raw.split(",") if e.strip()):
            key, sep, value = entry.partition("=")
            hub, slash, pid = key.partition("/")
            fence: int | datetime | None = _fence_value(value.strip())
            if key == "*" and isinstance(fence, datetime):
                default = fence
            elif sep and slash and hub and pid.isdigit() and fence is not None:
                positions[(hub, pid)] = fence
            else:
                raise ContractError(
                    f"{variable} has {entry!r}, which is not EVENTHUB/PARTITION=VALUE or *=TIME",
                    hint="expected e.g. orders/0=1234,orders/1=-1,*=2026-12-07T02:07:49Z (a "
                    "sequence number or an ISO-8601 UTC time); `devslice env` gives it")
        return cls(positions, default)


_SEQUENCE = re.compile(r"-1|0|[1-9][0-9]*")


def _fence_value(text: str) -> int | datetime | None:
    if _SEQUENCE.fullmatch(text):
        return int(text)
    if not text.endswith("Z"):  # UTC only: a local time would move the fence
        return None
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        return None


def _fence_text(value: int | datetime) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return str(value)


@dataclass(frozen=True)
class SliceContext:
    """The slice a service runs in. ``handle`` None means a shared environment: no limits."""

    handle: str | None = None
    partition_ids: tuple[str, ...] | None = None  # None: every partition
    partition_ids_variable: str = DEFAULT_PARTITIONS_VARIABLE  # where they were looked for
    eventhubs_mode: str = "shared"
    eventhubs_namespace: str | None = None
    fully_qualified_namespace: str | None = None
    eventhubs_connection_string: str | None = field(default=None, repr=False)
    partition_count: int | None = None
    storage_account: str | None = None
    blob_endpoint: str | None = None
    queue_endpoint: str | None = None
    storage_connection_string: str | None = field(default=None, repr=False)
    data_explorer_cluster_url: str | None = None
    data_explorer_database: str | None = None
    routing: Mapping[str, str] = field(default_factory=dict)  # Table, Format, ...
    signalr_endpoint: str | None = None
    signalr_hubs: Mapping[str, str] = field(default_factory=dict)  # HUB (upper) -> slice hub
    signalr_connection_string: str | None = field(default=None, repr=False)
    names: Mapping[str, str] = field(default_factory=dict)  # KEY (upper) -> name
    claim: str | None = None  # this claim of the slice: checkpoints are kept per claim
    start_fences: StartFences | None = None  # None: no fence (shared, or an older slice)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        prefix: str | None = None,
        partition_ids_variable: str | None = None,
    ) -> SliceContext:
        """Read the contract from the process environment (or the mapping given).

        The prefix and the partition variable's name come from the arguments, else from
        DEVSLICE_CONTRACT_PREFIX / DEVSLICE_PARTITIONIDS_VARIABLE (which `devslice env` sets
        when a team renamed them), else the defaults.
        """
        env = os.environ if environ is None else environ
        p = prefix or env.get(PREFIX_VARIABLE) or DEFAULT_PREFIX

        def get(name: str) -> str | None:
            value = env.get(p + name)
            return value if value else None

        variable = (partition_ids_variable or env.get(PARTITIONS_VARIABLE_VARIABLE)
                    or DEFAULT_PARTITIONS_VARIABLE)
        raw_ids = env.get(variable)
        if raw_ids is not None and not raw_ids.strip():
            raw_ids = None
        ids = parse_partition_ids(raw_ids, variable) if raw_ids else None
        routing = {
            prop: value
            for prop, name in (("Table", "DATAEXPLORER_TABLE"), ("Format", "DATAEXPLORER_FORMAT"),
                               ("IngestionMappingReference",
                                "DATAEXPLORER_INGESTIONMAPPINGREFERENCE"))
            if (value := get(name))
        }
        hubs = {k[len(p + "SIGNALR_HUB_"):]: v for k, v in env.items()
                if k.startswith(p + "SIGNALR_HUB_") and v}
        names = {k[len(p + "NAME_"):]: v for k, v in env.items() if k.startswith(p + "NAME_") and v}
        fences = get("EVENTHUBS_STARTFENCE")
        return cls(
            handle=get("SLICE"),
            partition_ids=ids,
            partition_ids_variable=variable,
            eventhubs_mode=get("EVENTHUBS_MODE") or "shared",
            eventhubs_namespace=get("EVENTHUBS_NAMESPACE"),
            fully_qualified_namespace=get("EVENTHUBS_FULLYQUALIFIEDNAMESPACE"),
            eventhubs_connection_string=get("EVENTHUBS_CONNECTIONSTRING"),
            partition_count=_count(get("EVENTHUBS_PARTITIONCOUNT"), p),
            storage_account=get("STORAGE_ACCOUNT"),
            blob_endpoint=get("STORAGE_BLOBENDPOINT"),
            queue_endpoint=get("STORAGE_QUEUEENDPOINT"),
            storage_connection_string=get("STORAGE_CONNECTIONSTRING"),
            data_explorer_cluster_url=get("DATAEXPLORER_CLUSTERURL"),
            data_explorer_database=get("DATAEXPLORER_DATABASE"),
            routing=routing,
            signalr_endpoint=get("SIGNALR_ENDPOINT"),
            signalr_hubs=hubs,
            signalr_connection_string=get("SIGNALR_CONNECTIONSTRING"),
            names=names,
            claim=get("SLICE_CLAIM"),
            start_fences=StartFences.parse(fences, p + "EVENTHUBS_STARTFENCE") if fences else None,
        )

    # -- questions services ask ---------------------------------------------------------------
    @property
    def is_shared(self) -> bool:
        """True in shared environments: no slice limits anything."""
        return self.partition_ids is None

    @property
    def embedded_path(self) -> str | None:
        """The embedded event hub's file, when the connection is ``embedded:PATH`` (with
        options: ``embedded:PATH?retention=SECONDS&maxBytes=N``)."""
        cs = self.eventhubs_connection_string
        if cs and cs.startswith(EMBEDDED_SCHEME):
            return _embedded_split(cs[len(EMBEDDED_SCHEME):])[0]
        return None

    @property
    def embedded_options(self) -> dict[str, float]:
        """The embedded hub's retention options from the connection (``retention`` seconds,
        ``max_bytes``); empty for the defaults."""
        cs = self.eventhubs_connection_string
        if cs and cs.startswith(EMBEDDED_SCHEME):
            return _embedded_split(cs[len(EMBEDDED_SCHEME):])[1]
        return {}

    def hub(self, hub: str) -> str:
        """The slice's name for SignalR hub ``hub`` (the hub itself in shared environments)."""
        return self.signalr_hubs.get(variable_key(hub), hub)

    def name(self, key: str, default: str | None = None) -> str:
        """A per-slice name from ``names:`` in devslice.yaml (``default`` when unset)."""
        value = self.names.get(variable_key(key), default)
        if value is None:
            raise ContractError(
                f"no name {key!r} in the slice's contract",
                hint=f"add names.{key} to devslice.yaml, or set "
                f"{DEFAULT_PREFIX}NAME_{variable_key(key)}",
            )
        return value

    def routing_properties(self) -> dict[str, str]:
        """Data Explorer routing properties for every event this slice publishes."""
        props = dict(self.routing)
        if self.data_explorer_database:
            props["Database"] = self.data_explorer_database
        return props

    def own_partitions(self, all_ids: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """The partitions this service may use, out of the event hub's ``all_ids``."""
        if self.partition_ids is None:
            return tuple(all_ids)
        missing = [p for p in self.partition_ids if p not in all_ids]
        if missing:
            raise SliceViolation(
                f"the slice's partitions {','.join(missing)} do not exist in this event hub "
                f"(it has {len(all_ids)}: {all_ids[0]}..{all_ids[-1]})",
                hint="the event hub has fewer partitions than the namespace in devslice.yaml "
                "says; fix eventHubs.namespaces[].partitions",
            )
        return self.partition_ids


def variable_key(text: str) -> str:
    """How a hub or name key becomes part of a variable name: upper case, others -> '_'.
    The contract's writer (devslice.contract) and this reader share it."""
    return "".join(c if c.isalnum() else "_" for c in text).upper()



def _count(raw: str | None, prefix: str) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 32:
        raise ContractError(f"{prefix}EVENTHUBS_PARTITIONCOUNT={raw!r} is not a partition count",
                            hint="expected a number from 1 to 32")
    return int(raw)


def parse_partition_ids(raw: str, variable: str = DEFAULT_PARTITIONS_VARIABLE) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not ids or not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise ContractError(
            f"{variable}={raw!r} is not a list of distinct partition ids",
            hint="expected comma-separated numbers such as 0,1 (unset it to use every partition)",
        )
    return ids
