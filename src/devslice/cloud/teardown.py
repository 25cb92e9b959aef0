"""Deleting a released or expired slice's resources in Azure (`slice release` / `slice gc`
with ``--delete-resources``; issue 15).

Only what carries this claim's tags is ever deleted: the storage account (its tags), the
consumer groups (devslice's tags in ``userMetadata``) and the Data Explorer database (which
cannot carry tags: the ledger's history records that devslice created it for this claim). A
resource of the same name without devslice's tags is refused unless ``adopt``; one tagged for
another claim is always refused. A delete that fails is recorded in the ledger's history
(``azure-leftover``) and tried again by the next `slice gc --delete-resources`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from devslice import identity
from devslice.access.azure import (
    Azure,
    AzureError,
    claim_of,
    get_or_none,
    ownership,
    translated,
    wait,
)
from devslice.cloud.eventhubs import metadata_tags, wanted_groups
from devslice.config.derive import derive_names
from devslice.services.dataexplorer import SERVICE as DATAEXPLORER
from devslice.services.eventhubs import SERVICE as EVENTHUBS
from devslice.services.storage import SERVICE as STORAGE
from devslice.slices.model import Change
from devslice.slices.operations import Transition

if TYPE_CHECKING:
    from devslice.config.model import Environment
    from devslice.ledger.base import Ledger
    from devslice.slices.model import Slice

LEFTOVER = "azure-leftover"  # history actions: a delete that failed, to retry
DELETED = "azure-deleted"
CREATED = "azure-created"  # what cannot carry tags (Data Explorer databases)


@dataclass(frozen=True)
class Removal:
    kind: str  # storage account | consumer group | database
    rid: str
    outcome: str  # deleted | absent | refused | failed
    reason: str
    handle: str = ""
    claim: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.rid, "outcome": self.outcome,
                "reason": self.reason, "slice": self.handle}


@dataclass(frozen=True)
class Candidate:
    kind: str
    rid: str
    path: tuple[str, ...]  # what the SDK call needs after the resource group


def record(ledger: Ledger, action: str, handle: str, detail: dict[str, str]) -> None:
    """A line in the ledger's history (the state is unchanged)."""

    change = Change(at=datetime.now(UTC), actor=identity.actor(), action=action, handle=handle,
                    detail=json.dumps(detail, sort_keys=True))
    ledger.transact(lambda state: Transition(state, [change]))


def _details(ledger: Ledger, action: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for c in ledger.history(limit=100_000):
        if c.action == action:
            try:
                out.append((c.handle, json.loads(c.detail)))
            except ValueError:
                continue
    return out


def created_by_devslice(ledger: Ledger, rid: str, claim: str) -> bool:
    return any(d.get("id", "").lower() == rid.lower() and d.get("claim") == claim
               for _, d in _details(ledger, CREATED))


def pending_leftovers(ledger: Ledger) -> list[tuple[str, dict[str, str]]]:
    """Failed deletes not deleted since (newest record per id wins)."""
    latest: dict[str, tuple[str, str, dict[str, str]]] = {}
    for c in ledger.history(limit=100_000):
        if c.action not in (LEFTOVER, DELETED):
            continue
        try:
            d = json.loads(c.detail)
        except ValueError:
            continue
        latest[str(d.get("id", "")).lower()] = (c.action, c.handle, d)
    return [(h, d) for action, h, d in latest.values() if action == LEFTOVER]


def candidates(azure: Azure, env: Environment, handle: str) -> list[Candidate]:
    names = derive_names(env, handle)
    out: list[Candidate] = []
    if STORAGE.shared(env):
        out.append(Candidate("storage account",
                             azure.rid("Microsoft.Storage", "storageAccounts",
                                       names.storage_account),
                             (names.storage_account,)))
    cluster = env.data_explorer.azure_cluster_name
    if DATAEXPLORER.shared(env) and cluster:
        out.append(Candidate("database", azure.rid("Microsoft.Kusto", "clusters", cluster,
                                                   "databases", names.data_explorer_database),
                             (cluster, names.data_explorer_database)))
    return out


def _consumer_groups(azure: Azure, env: Environment, s: Slice) -> list[Candidate]:

    if not EVENTHUBS.shared(env):
        return []
    return [Candidate("consumer group",
                      azure.rid("Microsoft.EventHub", "namespaces", s.event_hubs.namespace,
                                "eventhubs", hub, "consumergroups", group),
                      (s.event_hubs.namespace, hub, group))
            for hub in env.event_hubs.event_hubs for group in wanted_groups(env, s.handle)]


def _read(azure: Azure, c: Candidate) -> dict[str, Any] | None:
    rg = azure.resource_group
    if c.kind == "storage account":
        return get_or_none(f"read {c.rid}", azure.storage.storage_accounts.get_properties, rg,
                           *c.path)
    if c.kind == "database":
        return get_or_none(f"read {c.rid}", azure.kusto.databases.get, rg, *c.path)
    return get_or_none(f"read {c.rid}", azure.eventhub.consumer_groups.get, rg, *c.path)


def _tags(c: Candidate, found: dict[str, Any]) -> dict[str, str] | None:
    if c.kind == "consumer group":

        return metadata_tags(found)
    return found.get("tags")


def _delete(azure: Azure, c: Candidate, progress: Callable[[str], None] | None) -> None:

    rg = azure.resource_group
    with translated(f"delete {c.rid}"):
        if c.kind == "storage account":
            azure.storage.storage_accounts.delete(rg, *c.path)
        elif c.kind == "consumer group":
            azure.eventhub.consumer_groups.delete(rg, *c.path)
        else:
            wait(azure.kusto.databases.begin_delete(rg, *c.path), f"delete {c.rid}", progress)


def delete_slice_resources(azure: Azure, env: Environment, s: Slice, ledger: Ledger, *,
                           adopt: bool = False,
                           progress: Callable[[str], None] | None = None) -> list[Removal]:
    """Delete what devslice created for this claim of the slice; report every decision."""
    claim = claim_of(s)
    out: list[Removal] = []
    for c in [*candidates(azure, env, s.handle), *_consumer_groups(azure, env, s)]:
        out.append(_remove(azure, env, c, s.handle, claim, ledger, adopt, progress))
    return out


def _remove(azure: Azure, env: Environment, c: Candidate, handle: str, claim: str,
            ledger: Ledger, adopt: bool, progress: Callable[[str], None] | None) -> Removal:
    found = _read(azure, c)
    if found is None:
        return Removal(c.kind, c.rid, "absent", "does not exist", handle, claim)
    if c.kind == "database":
        owner = "ours" if created_by_devslice(ledger, c.rid, claim) else "untagged"
    else:
        owner = ownership(_tags(c, found), env.team, claim)
    if owner == "other":
        return Removal(c.kind, c.rid, "refused", "tagged for another slice or claim: never "
                       "deleted for this one", handle, claim)
    if owner == "untagged" and not adopt:
        why = "devslice did not create it for this claim" if c.kind == "database" else \
            "it has no devslice tags (someone else made it)"
        return Removal(c.kind, c.rid, "refused", f"{why}: --adopt deletes it", handle, claim)
    try:
        _delete(azure, c, progress)
    except AzureError as exc:
        record(ledger, LEFTOVER, handle, {"id": c.rid, "kind": c.kind, "claim": claim,
                                          "path": "/".join(c.path), "error": exc.message,
                                          "adopted": "yes" if owner == "untagged" else ""})
        return Removal(c.kind, c.rid, "failed", f"{exc.message} (recorded in the ledger; the "
                       "next `devslice slice gc --delete-resources` tries again)", handle, claim)
    record(ledger, DELETED, handle, {"id": c.rid, "kind": c.kind, "claim": claim})
    return Removal(c.kind, c.rid, "deleted", "tagged for this claim" if owner == "ours"
                   else "adopted (--adopt)", handle, claim)


def retry_leftovers(azure: Azure, env: Environment, ledger: Ledger,
                    progress: Callable[[str], None] | None = None) -> list[Removal]:
    """Deletes that failed before, tried again (still only what is tagged for its claim)."""
    out: list[Removal] = []
    for handle, d in pending_leftovers(ledger):
        c = Candidate(d.get("kind", ""), d["id"], tuple(d.get("path", "").split("/")))
        if c.kind not in ("storage account", "consumer group", "database"):
            continue
        claim = d.get("claim", "")
        found = _read(azure, c)
        if found is None:
            record(ledger, DELETED, handle, {"id": c.rid, "kind": c.kind, "claim": claim})
            out.append(Removal(c.kind, c.rid, "absent", "gone since", handle, claim))
            continue
        # Recorded only after the ownership check passed; checked again, tags may change.
        if c.kind != "database" and ownership(_tags(c, found), env.team, claim) == "other":
            out.append(Removal(c.kind, c.rid, "refused", "tagged for another claim now",
                               handle, claim))
            continue
        out.append(_remove(azure, env, c, handle, claim, ledger, d.get("adopted") == "yes",
                           progress))
    return out
