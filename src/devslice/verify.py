"""`devslice verify`: check the current slice for real, not from configuration alone.

- its partitions are its own in the ledger (no other live slice, no reserved one);
- what its services will use, read as they read it (personal overrides applied, the partition
  ids through the variable ``DEVSLICE_PARTITIONIDS_VARIABLE`` names, the account inside
  storage endpoints and connection strings), is what the ledger gave it: its partitions, its
  storage account, its database, hubs and names;
- the services that run use it too: on the local runtime the environment each service process
  was started with (``/proc/PID/environ``), on k3d/kube the slice's ConfigMap and Secret in
  the cluster;
- a canary event sent to each partition the ledger gave the slice arrives there and nowhere
  else (embedded event hub: every partition is read back; real Event Hubs: not checked here,
  say so). Canaries go to the ledger's partitions only, never to ones an override names.

Each failure says whose slice a conflicting value belongs to (looked up in the ledger), and
how to fix it (issue 11). Secrets are parsed, never printed.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from devslice.cloud.dataexplorer import routing_status
from devslice.config.derive import SliceNames, derive_names
from devslice.contract.variables import Origin
from devslice.errors import DevsliceError, SecretUnavailable
from devslice.facts.processes import environ_readable, process_environment
from devslice.local.runtime import local_dir
from devslice.local.state import STATE, alive, read_json
from devslice.sdk.context import (
    DEFAULT_PREFIX,
    PARTITIONS_VARIABLE_VARIABLE,
    PREFIX_VARIABLE,
    ContractError,
    SliceContext,
    variable_key,
)
from devslice.sdk.eventhubs import SliceConsumer
from devslice.sdk.storage import account_of, accounts_addressed
from devslice.services.eventhubs import SERVICE as EVENTHUBS
from devslice.services.fences import contract_fences
from devslice.text import plural

if TYPE_CHECKING:
    from devslice.adapters.kube import Kube
    from devslice.contract.variables import Variable
    from devslice.project import Project
    from devslice.slices.model import LedgerState, Slice


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | failed | skipped
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class Conflict:
    """A value services would use that is not the slice's. ``message`` never holds a secret."""

    area: str  # partitions | storage | names
    variables: tuple[str, ...]  # the variables that gave the value (a renaming included)
    message: str


PARTITIONS, STORAGE, NAMES = "partitions", "storage", "names"
CHECK_NAMES = {PARTITIONS: "services use the slice's partitions",
               STORAGE: "services use the slice's storage account",
               NAMES: "names are the slice's own"}
RUNNING = "running services use the slice's contract"


class Owners:
    """Whose slice a partition or a name is, from the ledger."""

    def __init__(self, project: Project, state: LedgerState, handle: str) -> None:
        self.handle = handle
        self.partitions: dict[tuple[str, int], str] = {}
        self.names: dict[str, str] = {}
        self.handles = {h for h in state.slices if h != handle}
        for s in state.slices.values():
            if s.handle == handle:
                continue
            for p in s.event_hubs.partitions:
                self.partitions[(s.event_hubs.namespace, p)] = s.handle
            for name in derive_names(project.env, s.handle).all().values():
                self.names.setdefault(name, s.handle)
        self.reserved = {ns.name: set(ns.reserved) for ns in project.env.event_hubs.namespaces}

    def partition(self, namespace: str, partition: str) -> str:
        """Whose partition this is, as words: "cd's", "reserved", "no slice's"."""
        p = int(partition)
        if (namespace, p) in self.partitions:
            return f"slice {self.partitions[(namespace, p)]}'s"
        if p in self.reserved.get(namespace, set()):
            return "reserved"
        return "no slice's"

    def name(self, value: str) -> str | None:
        return self.names.get(value)


def verify(project: Project, handle: str, kube: Kube | None = None,
           runtime: str | None = None, azure: Any = None,
           state: LedgerState | None = None) -> list[Check]:
    """The checks, in order. ``kube`` reads the slice's ConfigMap and Secret on k3d/kube (one is
    connected when not given); ``runtime`` is the runtime to check (default: as `up` picks);
    ``state`` is the ledger as the command read it: every check uses that one read (issue 17;
    on Azure Blob each read is the whole document)."""
    state = state or project.ledger.read()
    mine = state.slices.get(handle) or project.get(handle)
    owners = Owners(project, state, handle)
    checks = [_own_partitions(project, state, mine)]

    contract, note = _contract(project, handle, state)
    expected = _expected_context(project, handle, state)
    found = conflicts(contract.values, project, mine, owners)
    for area, name in CHECK_NAMES.items():
        mine_found = [c for c in found if c.area == area]
        if mine_found:
            checks.append(Check(name, "failed", "; ".join(
                f"{c.message} (fix: {contract.fix(c)})" for c in mine_found)))
        else:
            checks.append(Check(name, "ok", _ok_detail(area, expected, contract, note)))
    checks.append(_running(project, handle, mine, owners, kube, runtime, state))
    checks.append(_canary(project, handle, expected))
    checks.append(start_fence_check(project, handle, state))
    if project.env.data_explorer.data_connection is not None:  # issue 15: the team's, checked

        checks.append(Check("events reach the slice's database",
                            *routing_status(project.env, azure)))
    return checks


# -- what services read ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Contract:
    """The contract a slice's services get (overrides applied), and where each value is from."""

    values: dict[str, str]  # secrets revealed: parsed here, never printed
    variables: dict[str, Variable]

    def fix(self, conflict: Conflict) -> str:
        fixes: dict[tuple[str, str], list[str]] = {}  # (before, after) the variables named
        for name in conflict.variables:
            v = self.variables.get(name)
            if v is None:
                continue
            if v.origin is Origin.override:
                fixes.setdefault(("remove", f"from env: in {v.source}"), []).append(name)
            elif v.source == "devslice.yaml contract.env":
                fixes.setdefault(("correct", "in contract.env of devslice.yaml"), []).append(name)
            elif v.origin is Origin.secret:
                fixes.setdefault(("correct the secret", f"({v.source})"), []).append(name)
        return "; ".join(f"{before} {', '.join(names)} {after}"
                         for (before, after), names in fixes.items()) \
            or "run `devslice env --explain` to see where the slice's values come from"


def _contract(project: Project, handle: str, state: LedgerState) -> tuple[_Contract, str]:
    try:
        variables, note = project.variables(handle, state=state), ""
    except SecretUnavailable as exc:  # check the rest; say which secret was not
        variables = project.variables(handle, secrets=False, state=state)
        note = f"; not checked: {exc.message}"
    values = {v.name: v.value if isinstance(v.value, str) else v.value.reveal()
              for v in variables}
    return _Contract(values, {v.name: v for v in variables}), note


def _expected_context(project: Project, handle: str, state: LedgerState) -> SliceContext:
    """The contract as the ledger and devslice.yaml alone make it (no override): what the
    canaries use."""
    values = {v.name: v.value for v in project.variables(handle, secrets=False, overrides=False,
                                                         state=state)
              if isinstance(v.value, str)}
    return SliceContext.from_env(values)


def conflicts(environ: Mapping[str, str], project: Project, mine: Slice,
              owners: Owners) -> list[Conflict]:
    """What in ``environ`` (a service's environment) is not slice ``mine``'s, read the way the
    SDK reads it: prefix and partition variable as the environment names them."""
    p = environ.get(PREFIX_VARIABLE) or DEFAULT_PREFIX
    try:
        ctx = SliceContext.from_env(environ)
    except ContractError as exc:
        return [Conflict(PARTITIONS, (), f"services cannot read the contract: {exc.message}")]
    names = derive_names(project.env, mine.handle)
    return [*_partition_conflicts(environ, ctx, p, project, mine, owners),
            *_storage_conflicts(environ, ctx, p, names, owners),
            *_name_conflicts(ctx, p, mine, names, owners)]


def _partition_conflicts(environ: Mapping[str, str], ctx: SliceContext, p: str,
                         project: Project, mine: Slice, owners: Owners) -> list[Conflict]:
    out = []
    ns = mine.event_hubs.namespace
    if ctx.eventhubs_namespace and ctx.eventhubs_namespace != ns:
        out.append(Conflict(PARTITIONS, (f"{p}EVENTHUBS_NAMESPACE",),
                            f"{p}EVENTHUBS_NAMESPACE={ctx.eventhubs_namespace}, but the ledger "
                            f"gave namespace {ns}"))
    variable = ctx.partition_ids_variable
    involved: tuple[str, ...] = (variable,)
    via = ""
    if environ.get(PARTITIONS_VARIABLE_VARIABLE) and \
            variable != project.env.contract.partition_ids_variable:
        involved = (PARTITIONS_VARIABLE_VARIABLE, variable)
        via = (f" (services read it because {PARTITIONS_VARIABLE_VARIABLE}={variable}; "
               f"devslice.yaml names {project.env.contract.partition_ids_variable})")
    ledger = tuple(str(x) for x in sorted(mine.event_hubs.partitions))
    if ctx.partition_ids is None:
        out.append(Conflict(PARTITIONS, involved,
                            f"{variable} is not set{via}: services would use every partition, "
                            f"other slices' too; the ledger gave {','.join(ledger)}"))
    elif sorted(ctx.partition_ids, key=int) != list(ledger):  # order does not matter
        read_ns = ctx.eventhubs_namespace or ns
        whose = [f"partition {x} is {owners.partition(read_ns, x)}"
                 for x in ctx.partition_ids if x not in ledger or read_ns != ns]
        out.append(Conflict(PARTITIONS, involved,
                            f"{variable}={','.join(ctx.partition_ids)}{via}, but the ledger gave "
                            f"{','.join(ledger)}" + (f": {', '.join(whose)}" if whose else "")))
    return out


def _storage_conflicts(environ: Mapping[str, str], ctx: SliceContext, p: str,
                       names: SliceNames, owners: Owners) -> list[Conflict]:
    own = names.storage_account
    seen: list[tuple[str, str, str | None]] = []  # (variable, what, account)
    if ctx.storage_account:
        seen.append((f"{p}STORAGE_ACCOUNT", f"{p}STORAGE_ACCOUNT", ctx.storage_account))
    for variable, url in ((f"{p}STORAGE_BLOBENDPOINT", ctx.blob_endpoint),
                          (f"{p}STORAGE_QUEUEENDPOINT", ctx.queue_endpoint)):
        if url:
            seen.append((variable, variable, account_of(url)))
    out = []
    cs_variable = f"{p}STORAGE_CONNECTIONSTRING"
    if ctx.storage_connection_string:
        try:
            for setting, account in accounts_addressed(ctx.storage_connection_string).items():
                seen.append((cs_variable, f"{cs_variable} (its {setting})", account))
        except ContractError as exc:
            out.append(Conflict(STORAGE, (cs_variable,), exc.message))
    for variable, what, account in seen:
        if account is None or account == own:
            continue
        owner = owners.name(account)
        whose = f"slice {owner}'s storage account" if owner else "not the slice's"
        out.append(Conflict(STORAGE, (variable,),
                            f"{what} addresses account {account}, {whose} (the slice's is "
                            f"{own})"))
    return out


def _name_conflicts(ctx: SliceContext, p: str, mine: Slice, names: SliceNames,
                    owners: Owners) -> list[Conflict]:
    """Names that are another slice's. A name of nobody's (``db4ab_experiment``) is a
    developer's own choice and fine."""
    wanted: list[tuple[str, str, str | None]] = [
        (f"{p}SLICE", mine.handle, ctx.handle),
        (f"{p}DATAEXPLORER_DATABASE", names.data_explorer_database, ctx.data_explorer_database)]
    wanted += [(f"{p}SIGNALR_HUB_{variable_key(h)}", n, ctx.signalr_hubs.get(variable_key(h)))
               for h, n in names.signalr_hubs.items()]
    wanted += [(f"{p}NAME_{variable_key(k)}", n, ctx.names.get(variable_key(k)))
               for k, n in names.named.items()]
    out = []
    for variable, own, got in wanted:
        if got is None or got == own:
            continue
        if variable == f"{p}SLICE":
            whose = " (another slice of the ledger)" if got in owners.handles else ""
            out.append(Conflict(NAMES, (variable,), f"{variable}={got}{whose}, but this is "
                                f"slice {mine.handle}"))
            continue
        owner = owners.name(got)
        if owner:
            out.append(Conflict(NAMES, (variable,), f"{variable}={got} is slice {owner}'s "
                                f"(the slice's own is {own})"))
    return out


def _ok_detail(area: str, expected: SliceContext, contract: _Contract, note: str) -> str:
    if area == PARTITIONS:
        return (f"{expected.partition_ids_variable}={','.join(expected.partition_ids or ())}, "
                f"the ledger's {expected.eventhubs_namespace} partitions")
    if area == STORAGE:
        return f"every endpoint and connection string addresses {expected.storage_account}{note}"

    overridden = sorted(n for n, v in contract.variables.items() if v.origin is Origin.override)
    return (f"database {expected.data_explorer_database}, "
            f"{plural(len(expected.signalr_hubs), 'hub')}, {plural(len(expected.names), 'name')}, "
            "none another slice's"
            + (f" (overridden: {', '.join(overridden)})" if overridden else ""))


def _own_partitions(project: Project, state: LedgerState, mine: Slice) -> Check:
    own = {(mine.event_hubs.namespace, p) for p in mine.event_hubs.partitions}
    clashes = sorted(f"{s.handle} holds {ns} partition {p}" for s in state.slices.values()
                     if s.handle != mine.handle
                     for ns, p in ((s.event_hubs.namespace, q) for q in s.event_hubs.partitions)
                     if (ns, p) in own)
    reserved = {ns.name: set(ns.reserved) for ns in project.env.event_hubs.namespaces}
    clashes += [f"partition {p} of {ns} is reserved" for ns, p in sorted(own)
                if p in reserved.get(ns, set())]
    return Check("partitions are the slice's own", "failed" if clashes else "ok",
                 "; ".join(clashes) or f"{mine.event_hubs.namespace} partitions "
                 f"{','.join(map(str, mine.event_hubs.partitions))}, held by no one else")


# -- what running services use ---------------------------------------------------------------

def _running(project: Project, handle: str, mine: Slice, owners: Owners, kube: Kube | None,
             runtime: str | None, state: LedgerState) -> Check:
    if runtime is None:
        # lazy: engine, only when the caller did not pick the runtime
        from devslice.engine.environment import runtime as pick

        try:
            runtime = pick(project)[0]
        except DevsliceError as exc:
            return Check(RUNNING, "skipped", f"not checked: no runtime ({exc.message})")
    if runtime == "local":
        return _processes(project, handle, mine, owners, state)
    return _cluster(project, handle, mine, owners, kube, runtime)


def _report(seen: list[tuple[str, list[Conflict]]], fix: Callable[[Conflict], str],
            checked: str) -> Check:
    bad = [f"{where}: {c.message} (fix: {fix(c)})" for where, found in seen for c in found]
    if bad:
        return Check(RUNNING, "failed", "; ".join(bad))
    return Check(RUNNING, "ok", checked)


def _processes(project: Project, handle: str, mine: Slice, owners: Owners,
               state: LedgerState) -> Check:
    directory = local_dir(project, handle)
    services = (read_json(directory / STATE) or {}).get("services") or {}
    # Every process the state records as live, also when its supervisor died (issue 11: a
    # killed supervisor leaves its services running with whatever they were given).
    pids = {name: int(s["pid"]) for name, s in sorted(services.items())
            if s.get("pid") and alive(int(s["pid"]))}
    if not pids:
        return Check(RUNNING, "skipped", f"local runtime: no service of slice {handle} runs "
                     "(`devslice up` starts them)")
    if not environ_readable():
        return Check(RUNNING, "skipped", f"local runtime: {plural(len(pids), 'service')} run, not "
                     "checked: reading a process's environment needs Linux /proc/PID/environ")
    marker = f"{project.env.contract.prefix}SLICE"  # every contract sets it
    seen, unread = [], []
    for name, pid in pids.items():
        env = process_environment(pid)
        if env.environ is None:
            unread.append(f"{name}: {env.why}")
            continue
        if marker not in env.environ:
            # a pid the state recorded and the system has since given to another program
            unread.append(f"{name}: process {pid} carries no slice contract (no {marker}; "
                          "not the process devslice started)")
            continue
        seen.append((f"service {name} (pid {pid})", conflicts(env.environ, project, mine,
                                                              owners)))

    contract = {v.name for v in project.variables(handle, secrets=False, state=state)}

    def fix(c: Conflict) -> str:
        stray = [v for v in c.variables if v not in contract]
        return ("the process was started with it: `devslice down`, then `devslice up` restarts "
                "it with the slice's contract" + (
                    f"; {', '.join(stray)} is not in the contract, it came from the environment "
                    "`devslice up` ran in: unset it there first" if stray else ""))
    checked = (f"local runtime: {len(seen)} service processes started with the slice's values"
               + (f"; not checked: {'; '.join(unread)}" if unread else ""))
    return _report(seen, fix, checked)


def _cluster(project: Project, handle: str, mine: Slice, owners: Owners, kube: Kube | None,
             runtime: str) -> Check:
    from devslice.adapters.kube import SLICE_LABEL, KubeError  # lazy: kubernetes client, ~100 ms

    own = kube is None
    if kube is None:
        from devslice.adapters.kube import connect  # lazy: kubernetes client, ~100 ms
        from devslice.engine.environment import kube_context  # lazy: only with no client given

        try:
            kube = connect(context=kube_context(project, runtime))
        except DevsliceError as exc:
            return Check(RUNNING, "skipped", f"{runtime}: not checked: {exc.message}")
    namespace = None
    try:
        if runtime == "kube":
            from devslice.adapters.kube import current_context  # lazy: kube runtime only
            from devslice.resources.manifests import kube_target  # lazy: kube runtime only

            c = project.env.cluster
            namespace = kube_target(c.kube, handle, current_context(), project.env.team).namespace
        objects = kube.list_managed(namespace, {SLICE_LABEL: handle},
                                    kinds=(("v1", "ConfigMap"), ("v1", "Secret")))
    except KubeError as exc:
        return Check(RUNNING, "skipped", f"{runtime}: not checked: {exc.message}")
    finally:
        if own:
            kube.close()
    name = f"devslice-{handle}"
    by_ns: dict[str, dict[str, str]] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        if meta.get("name") != name:
            continue
        by_ns.setdefault(meta.get("namespace") or "default", {}).update(
            _data(obj.get("data") or {}, secret=obj.get("kind") == "Secret"))
    if not by_ns:
        return Check(RUNNING, "skipped", f"{runtime}: the cluster holds no ConfigMap {name} "
                     "(`devslice up` applies it)")
    seen = [(f"ConfigMap/Secret {name} in {ns}", conflicts(env, project, mine, owners))
            for ns, env in sorted(by_ns.items())]
    return _report(seen, lambda c: "fix the contract, then `devslice up` applies it again",
                   f"{runtime}: ConfigMap and Secret {name} in {', '.join(sorted(by_ns))} hold "
                   "the slice's values")


def _data(data: Mapping[str, Any], secret: bool) -> dict[str, str]:
    if not secret:
        return {k: str(v) for k, v in data.items()}
    out = {}
    for k, v in data.items():
        try:
            out[k] = base64.b64decode(str(v)).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue  # not text: no contract variable
    return out


# -- canaries --------------------------------------------------------------------------------

def _canary(project: Project, handle: str, ctx: SliceContext) -> Check:
    """Canaries through the slice's producer, built from the ledger's contract (no override):
    a value an override names never decides where a canary goes. The Event Hubs service
    knows where they can be read back."""
    probe = EVENTHUBS.probe(project, handle, ctx)
    return Check("a canary on each partition arrives there only", probe.status, probe.detail)


def start_fence_check(project: Project, handle: str,
                      state: LedgerState | None = None) -> Check:
    """Issue 11: a consumer of the slice sees nothing from before its claim. The contract
    (overrides included) must carry the ledger's fences; on the embedded hub a SliceConsumer
    reads every event hub of the slice from the beginning, and must deliver no event
    enqueued before the claim."""
    name = "a consumer of the slice sees nothing from before its claim"
    s = project.get(handle, state)
    fences = contract_fences(s)
    if fences is None:
        return Check(name, "skipped", f"slice {handle!r} was claimed before start fences "
                     f"existed; release it and claim again to get them")
    variables = {v.name: str(v.value)
                 for v in project.variables(handle, secrets=False, state=state)}
    p = project.env.contract.prefix
    given = variables.get(f"{p}SLICE_CLAIM"), variables.get(f"{p}EVENTHUBS_STARTFENCE")
    if given != (s.claim, fences.format()):
        return Check(name, "failed", f"the contract gives {p}SLICE_CLAIM={given[0]} and "
                     f"{p}EVENTHUBS_STARTFENCE={given[1]}, but the ledger has claim {s.claim} "
                     f"with fences {fences.format()} (an override in devslice.local.yaml?)")
    by_time = sorted(f"{f.event_hub}/{f.partition}" for f in s.start_fences
                     if f.sequence_number is None)
    note = f"; fenced at the claim time (sequence number unread): {', '.join(by_time)}" \
        if by_time else ""
    hubs = project.env.event_hubs.event_hubs
    why = EVENTHUBS.read_back_skip(project.env)
    if why is not None:
        return Check(name, "skipped", f"the contract carries the ledger's fences; {why}{note}")
    ctx = SliceContext.from_env(variables, prefix=p,
                                partition_ids_variable=project.env.contract.partition_ids_variable)
    read, old = 0, []
    for hub in hubs:
        got = _read_from_the_beginning(ctx, hub)
        read += len(got)
        old += [f"{hub}/{pid}#{seq}" for pid, seq, at in got if at < s.created_at]
    if old:
        return Check(name, "failed", f"{plural(len(old), 'event')} from before the claim "
                     f"({s.created_at:%Y-%m-%d %H:%M:%S}Z) reached a consumer: "
                     f"{', '.join(old[:5])}", )
    return Check(name, "ok", f"read {plural(len(hubs), 'event hub')} from the beginning: "
                 f"{plural(read, 'event')}, none from before the claim{note}")


def _read_from_the_beginning(ctx: SliceContext, hub: str) -> list[tuple[str, int, datetime]]:
    """(partition, sequence number, enqueued time) of every event a SliceConsumer of the
    slice delivers from "-1", in a consumer group no service checkpoints in; it stops once
    every partition has been idle for a moment (the embedded client then reports None)."""
    # lazy: the embedded broker (~100 ms), only for the canary read
    from devslice.embedded import EmbeddedConsumerClient, EmbeddedHub

    assert ctx.embedded_path is not None
    log = EmbeddedHub(ctx.embedded_path, partitions=ctx.partition_count or 32)
    consumer = SliceConsumer(lambda: EmbeddedConsumerClient(log, hub, "devslice-verify"), ctx,
                             eventhub_name=hub)
    partitions = set(consumer.partitions())
    idle: set[str] = set()
    got: list[tuple[str, int, datetime]] = []
    lock = threading.Lock()

    def on_event(context: Any, event: Any) -> None:
        with lock:
            if event is None:
                idle.add(context.partition_id)
                if idle >= partitions:
                    consumer.close()
            else:
                got.append((context.partition_id, event.sequence_number, event.enqueued_time))

    try:
        consumer.receive(on_event, starting_position="-1", max_wait_time=0.1)
    finally:
        log.close()
    return got
