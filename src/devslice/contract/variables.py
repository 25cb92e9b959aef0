"""Which variables a slice's services get, and where each value comes from."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from devslice.errors import DevsliceError
from devslice.sdk.context import (
    DEFAULT_PARTITIONS_VARIABLE,
    DEFAULT_PREFIX,
    PARTITIONS_VARIABLE_VARIABLE,
    PREFIX_VARIABLE,
    variable_key,
)
from devslice.secrets import Secret, resolve
from devslice.slices.derive import derive_names

if TYPE_CHECKING:
    from devslice.config.local import LocalOverrides
    from devslice.config.model import Environment, SecretRef
    from devslice.slices.model import Slice


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


@dataclass(frozen=True)
class Overrides:
    """The personal overrides one slice gets from devslice.local.yaml, and why."""

    env: dict[str, str]  # applied to this slice; empty when none are
    source: str  # the file's name, shown as the overrides' source
    note: str | None = None  # what `env --explain` says about the file, when there is one


def overrides_for(local: LocalOverrides | None, path: Path, handle: str) -> Overrides:
    """The overrides of ``local`` that slice ``handle`` gets: all of them when the file names
    this slice, none otherwise (issue 11: aa's override must not reach bb's services)."""
    if local is None or not local.env:
        return Overrides({}, path.name)
    keys = ", ".join(sorted(local.env))
    if local.slice == handle:
        return Overrides(dict(local.env), path.name,
                         f"{path.name} names slice {handle}: its overrides apply ({keys})")
    return Overrides({}, path.name,
                     f"{path.name} names slice {local.slice}, not {handle}: its overrides "
                     f"({keys}) were not applied to {handle}")


def slice_variables(
    env: Environment,
    s: Slice,
    base_dir: Path,
    overrides: dict[str, str] | None = None,
    overrides_source: str = "devslice.local.yaml",
    environ: dict[str, str] | None = None,
    secrets: bool = True,
) -> list[Variable]:
    """The contract for slice ``s``, in a stable order.

    Secrets are resolved (from the environment or files) and wrapped in :class:`Secret`; a
    secret that is not set raises :class:`~devslice.errors.SecretUnavailable`. With
    ``secrets=False`` they are left out, for tools that need only names.
    """
    p = env.contract.prefix
    names = derive_names(env, s.handle)
    ns = next((n for n in env.event_hubs.namespaces if n.name == s.event_hubs.namespace), None)
    out: list[Variable] = []

    def add(name: str, value: str, origin: Origin, source: str, reach: Reach | None = None,
            mode_key: str | None = None) -> None:
        out.append(Variable(name, value, origin, source, reach, mode_key))

    def secret(name: str, ref: SecretRef | None, where: str) -> None:
        if ref is not None and secrets:
            out.append(Variable(name, resolve(ref, base_dir, environ), Origin.secret,
                                f"{where} ({ref.describe()})"))

    ledger = f"ledger: slice {s.handle}"
    if p != DEFAULT_PREFIX:
        add(PREFIX_VARIABLE, p, Origin.team, "devslice.yaml contract.prefix")
    if env.contract.partition_ids_variable != DEFAULT_PARTITIONS_VARIABLE:
        add(PARTITIONS_VARIABLE_VARIABLE, env.contract.partition_ids_variable, Origin.team,
            "devslice.yaml contract.partitionIdsVariable")
    add(f"{p}SLICE", s.handle, Origin.allocation, ledger)
    add(f"{p}SLICE_KIND", s.kind.value, Origin.allocation, ledger)
    add(f"{p}TEAM", env.team, Origin.team, "devslice.yaml team")
    if env.cluster.runtime not in ("kube", "local"):  # k3d, or auto that may become k3d
        # (local: no pods, and no need to ask a Docker engine for its networks; issue 17)
        from devslice.resources.k3d import cluster_subnet, host_gateway

        # The developer's machine as pods see it, instead of host.k3d.internal, which stops
        # resolving after the laptop sleeps (k3d issues 1221, 1360).
        add(f"{p}HOST_ADDRESS", host_gateway(cluster_subnet(env.cluster, base_dir)), Origin.team,
            "devslice.yaml cluster.subnet (its gateway)")

    add(f"{p}EVENTHUBS_MODE", env.event_hubs.mode, Origin.team, "devslice.yaml eventHubs.mode")
    add(f"{p}EVENTHUBS_NAMESPACE", s.event_hubs.namespace, Origin.allocation, ledger)
    if ns is not None and env.event_hubs.mode == "shared":
        add(f"{p}EVENTHUBS_FULLYQUALIFIEDNAMESPACE", ns.host, Origin.team,
            "devslice.yaml eventHubs.namespaces")
    if ns is not None:
        add(f"{p}EVENTHUBS_PARTITIONCOUNT", str(ns.partitions), Origin.team,
            "devslice.yaml eventHubs.namespaces")
    add(env.contract.partition_ids_variable, ",".join(map(str, s.event_hubs.partitions)),
        Origin.allocation, ledger)
    from devslice.slices.fences import contract_fences

    fences = contract_fences(s)  # issue 11: a new holder never sees an old holder's events
    if fences is not None and s.claim is not None:
        add(f"{p}SLICE_CLAIM", s.claim, Origin.allocation, ledger)
        add(f"{p}EVENTHUBS_STARTFENCE", fences.format(), Origin.allocation, ledger)
    if env.event_hubs.mode == "embedded":
        # Not a secret: a file on this machine, read by the SDK's embedded hub.
        path = (base_dir / env.event_hubs.embedded_path).resolve()
        from devslice.sdk.context import embedded_connection

        add(f"{p}EVENTHUBS_CONNECTIONSTRING", embedded_connection(
            path, env.event_hubs.embedded_retention.total_seconds(),
            env.event_hubs.embedded_max_size_mb), Origin.team,
            "devslice.yaml eventHubs.embeddedPath", Reach.machine, "eventHubs.mode")
    elif env.event_hubs.mode == "emulator":
        from devslice.emulators import eventhubs_emulator_connection_string

        # Not a secret: the emulator's fixed, documented key (its README).
        emulator = env.containers.event_hubs_emulator
        add(f"{p}EVENTHUBS_CONNECTIONSTRING", eventhubs_emulator_connection_string(
            emulator.port if emulator else 5672), Origin.team,
            "eventHubs.mode emulator (the Event Hubs emulator container)", Reach.published,
            "eventHubs.mode")
    elif ns is not None:
        secret(f"{p}EVENTHUBS_CONNECTIONSTRING", ns.connection_string,
               f"devslice.yaml eventHubs.namespaces[{ns.name}].connectionString")

    storage_reach = {"shared": None, "emulator": Reach.published,
                     "embedded": Reach.machine}[env.storage.mode]
    add(f"{p}STORAGE_MODE", env.storage.mode, Origin.team, "devslice.yaml storage.mode")
    add(f"{p}STORAGE_ACCOUNT", names.storage_account, Origin.allocation,
        "storage.accountTemplate")
    add(f"{p}STORAGE_BLOBENDPOINT", names.blob_endpoint, Origin.allocation,
        "storage.blobEndpointTemplate", storage_reach, "storage.mode")
    add(f"{p}STORAGE_QUEUEENDPOINT", names.queue_endpoint, Origin.allocation,
        "storage.queueEndpointTemplate", storage_reach, "storage.mode")
    if env.storage.mode != "shared" and env.storage.connection_string is None:
        from devslice.emulators import azurite_connection_string

        # Not a secret: the emulator account's key is derived by a public formula, like
        # Azurite's own well-known key, and the account holds no real data.
        add(f"{p}STORAGE_CONNECTIONSTRING", azurite_connection_string(
            names.storage_account, names.blob_endpoint, names.queue_endpoint), Origin.team,
            f"storage.mode {env.storage.mode} (Azurite account key)", storage_reach,
            "storage.mode")
    else:
        secret(f"{p}STORAGE_CONNECTIONSTRING", env.storage.connection_string,
               "devslice.yaml storage.connectionString")

    if env.containers.mongodb is not None:
        from devslice.emulators import mongodb_connection_string

        # For clients on this machine: directConnection=true skips the replica set's member
        # host, which the host may not reach (Docker Desktop keeps the k3d gateway in its VM).
        add(f"{p}MONGODB_CONNECTIONSTRING", mongodb_connection_string(env.containers.mongodb.port),
            Origin.team, "containers.mongodb (the MongoDB container)", Reach.published,
            "containers.mongodb")

    add(f"{p}DATAEXPLORER_MODE", env.data_explorer.mode, Origin.team,
        "devslice.yaml dataExplorer.mode")
    if env.data_explorer.mode == "emulator":
        from devslice.config.model import KustoEmulatorSettings
        from devslice.emulators import kusto_emulator_url

        kusto = env.containers.kusto_emulator or KustoEmulatorSettings()
        add(f"{p}DATAEXPLORER_CLUSTERURL", kusto_emulator_url(kusto.port),
            Origin.team, "dataExplorer.mode emulator (the Kusto emulator container)",
            Reach.published, "dataExplorer.mode")
    elif env.data_explorer.cluster_url:
        add(f"{p}DATAEXPLORER_CLUSTERURL", env.data_explorer.cluster_url, Origin.team,
            "devslice.yaml dataExplorer.clusterUrl")
    add(f"{p}DATAEXPLORER_DATABASE", names.data_explorer_database, Origin.allocation,
        "dataExplorer.databaseTemplate")
    routing = env.data_explorer.routing
    for key, value in (("TABLE", routing.table), ("FORMAT", routing.format),
                       ("INGESTIONMAPPINGREFERENCE", routing.ingestion_mapping_reference)):
        if value:
            add(f"{p}DATAEXPLORER_{key}", value, Origin.team, "devslice.yaml dataExplorer.routing")

    add(f"{p}SIGNALR_MODE", env.signal_r.mode, Origin.team, "devslice.yaml signalR.mode")
    if env.signal_r.mode != "shared":
        from devslice.emulators import signalr_emulator_connection_string

        port, mode = env.signal_r.emulator_port, env.signal_r.mode
        signalr_reach = Reach.published if mode == "emulator" else Reach.machine
        add(f"{p}SIGNALR_ENDPOINT", f"http://127.0.0.1:{port}", Origin.team,
            f"signalR.mode {mode} (asrs-emulator on this machine)", signalr_reach,
            "signalR.mode")
        # Not a secret: the emulator's fixed, published key, which signs no real service.
        add(f"{p}SIGNALR_CONNECTIONSTRING", signalr_emulator_connection_string(port),
            Origin.team, f"signalR.mode {mode} (the emulator's published key)",
            signalr_reach, "signalR.mode")
    elif env.signal_r.endpoint:
        add(f"{p}SIGNALR_ENDPOINT", env.signal_r.endpoint, Origin.team,
            "devslice.yaml signalR.endpoint")
    for hub, name in names.signalr_hubs.items():
        add(f"{p}SIGNALR_HUB_{variable_key(hub)}", name, Origin.allocation, "signalR.hubTemplate")
    if env.signal_r.mode == "shared":
        secret(f"{p}SIGNALR_CONNECTIONSTRING", env.signal_r.connection_string,
               "devslice.yaml signalR.connectionString")

    for key, name in names.named.items():
        add(f"{p}NAME_{variable_key(key)}", name, Origin.allocation, f"names.{key}.template")
    for name, value in env.contract.env.items():
        add(name, value, Origin.team, "devslice.yaml contract.env")

    if overrides:
        index = {v.name: i for i, v in enumerate(out)}
        for name, value in overrides.items():
            replaced = out[index[name]] if name in index else None
            shown: str | Secret = value
            if replaced is not None and replaced.is_secret:
                shown = Secret(value, f"override:{name}")  # overriding keeps it a secret
            var = Variable(name, shown, Origin.override, overrides_source)
            if name in index:
                out[index[name]] = var
            else:
                out.append(var)
    return out


# The loopback host of a URL or host list: after //, user@ or a comma, before a port, path,
# query, separator or the end.
_LOOPBACK = re.compile(r"(?i)(?:(?<=//)|(?<=[@,]))(?:127\.0\.0\.1|localhost|\[::1\])"
                       r"(?=[:/;?,#]|$)")
# Anything else that still names this machine's loopback after the rewrite.
_LEFT_LOOPBACK = re.compile(r"(?i)(?<![\w-])(?:[\w-]+\.)*localhost(?![\w-])|"
                            r"(?<![\w.])127\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w.])|\[::1\]")


class PodsCannotReach(DevsliceError):
    """The slice's contract points pods at something only this machine can use."""


def for_pods(variables: list[Variable], runtime: str, gateway: str | None) -> list[Variable]:
    """The contract as pods see it (the slice's ConfigMap and Secret).

    Values that address a port published on this machine (emulator containers) are rewritten
    from 127.0.0.1/localhost to the cluster network's gateway, where k3d pods reach the
    machine (``LOCAL_DEV_HOST_ADDRESS``). An embedded stand-in (a file, a process bound to
    127.0.0.1) has no address pods could use, and neither has this machine for a shared
    cluster (runtime kube): those raise :class:`PodsCannotReach`, naming the mode to change.
    """
    out, unreachable = [], []
    for v in variables:
        if v.reach is None or v.origin is Origin.override:
            out.append(v)
        elif v.reach is Reach.machine or runtime != "k3d" or gateway is None:
            unreachable.append(v)
        else:
            text = v.value.reveal() if isinstance(v.value, Secret) else v.value
            text = _LOOPBACK.sub(gateway, text)
            left = _LEFT_LOOPBACK.search(text.replace(gateway, ""))
            if left:
                # a host devslice does not know how to rewrite: refuse rather than hand pods
                # an address that is their own loopback
                raise PodsCannotReach(
                    f"{v.name} names this machine as {left.group(0)!r}, which devslice does not "
                    f"rewrite for pods ({v.source})",
                    hint="write the template with 127.0.0.1 or localhost, which devslice "
                    "rewrites to the gateway for pods")
            value: str | Secret = Secret(text, v.value.source) if isinstance(
                v.value, Secret) else text
            out.append(replace(v, value=value, source=f"{v.source}, for pods at the gateway "
                               f"{gateway}"))
    if unreachable:
        keys = sorted({v.mode_key or v.name for v in unreachable})
        modes = [k for k in keys if k.endswith(".mode")]
        if runtime == "k3d":
            why = ("embedded stand-ins live in files and processes of this machine, which "
                   "pods cannot open")
            fixes = [f"set {', '.join(f'{k}: emulator' for k in modes)} (a container pods "
                     "reach through the gateway), or shared"] if modes else []
            fixes.append("or run the services as processes with cluster.runtime: local")
        else:
            why = ("pods of a shared cluster cannot reach emulators or stand-ins on this "
                   "machine")
            fixes = [f"set {', '.join(f'{k}: shared' for k in modes)} (a slice of the team's "
                     "cloud service)"] if modes else []
            fixes += [f"remove {k} and give pods a {k.split('.')[-1]} they reach (e.g. a "
                      "shared one, in a variable of contract.env)"
                      for k in keys if not k.endswith(".mode")]
        fix = "; ".join(fixes)
        names = [v.name for v in unreachable]
        verb = "points" if len(names) == 1 else "point"
        raise PodsCannotReach(
            f"runtime {runtime}: {', '.join(names)} {verb} at this machine "
            f"({', '.join(keys)}); {why}", hint=fix)
    return out
