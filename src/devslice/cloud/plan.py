"""Which of a slice's Azure resources `devslice plan` and `up` keep in shape: one resource
per shared service that has something to create (issue 15)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devslice.access.azure import claim_of
from devslice.cloud.dataexplorer import DatabaseResource
from devslice.cloud.eventhubs import ConsumerGroupsResource, wanted_groups
from devslice.cloud.storage import StorageAccountResource
from devslice.cloud.teardown import CREATED, record
from devslice.config.derive import derive_names
from devslice.resources.plan import Action, noop
from devslice.services.dataexplorer import SERVICE as DATAEXPLORER
from devslice.services.eventhubs import SERVICE as EVENTHUBS
from devslice.services.signalr import SERVICE as SIGNALR
from devslice.services.storage import SERVICE as STORAGE

if TYPE_CHECKING:
    from devslice.access.azure import Azure
    from devslice.config.model import Environment
    from devslice.project import Project
    from devslice.resources.plan import Resource


def provisioning(env: Environment, environ: dict[str, str] | None = None) -> bool:
    """True when devslice provisions in Azure: a service is shared, provisioning is on, and a
    subscription and resource group are configured (teams that made everything by hand
    configure neither, and keep working as before)."""
    e = os.environ if environ is None else environ
    shared = any(s.shared(env) for s in (STORAGE, DATAEXPLORER, EVENTHUBS))
    configured = (env.azure.subscription or e.get("AZURE_SUBSCRIPTION_ID")) and \
        (env.azure.resource_group or e.get("AZURE_RESOURCE_GROUP"))
    return bool(env.azure.provision and shared and configured)


class SignalRHubsNote:
    """SignalR hubs are logical: a hub exists as soon as a client uses its name."""

    def __init__(self, hubs: list[str]) -> None:
        self.hubs = hubs
        self.key = "azure:signalr"
        self.after: tuple[str, ...] = ()

    def plan(self) -> list[Action]:
        return [noop(self.key, f"SignalR hubs {', '.join(self.hubs)} are logical: nothing needs "
                     "creating")]


def schema_applier(project: Project) -> Callable[[str], None] | None:
    """`devslice adx apply dataExplorer.schemaScript` for a database just created."""
    env = project.env
    script = env.data_explorer.schema_script
    if not script or not env.data_explorer.cluster_url:
        return None
    path = project.base_dir / script
    url = env.data_explorer.cluster_url

    def apply(database: str) -> None:
        # lazy: azure-kusto-data, only when a schema script runs
        from devslice.sdk.dataexplorer import DataExplorer, parse_kql, plan_apply

        commands = plan_apply(database, parse_kql(path.read_text(encoding="utf-8-sig"),
                                                  str(path)))
        with DataExplorer(url) as adx:
            adx.apply(database, commands)

    return apply


def slice_resources(project: Project, handle: str, azure: Azure | Any, *,
                    progress: Callable[[str, str], None] | None = None,
                    apply_schema: Callable[[str], None] | None = None,
                    adopt: bool = False) -> list[Resource]:

    env = project.env
    if not provisioning(env):
        return []
    s = project.get(handle)
    out: list[Resource] = []

    def report(key: str) -> Callable[[str], None] | None:
        return None if progress is None else (lambda line: progress(key, line))

    if STORAGE.shared(env):
        storage = StorageAccountResource(azure, env, s, adopt=adopt)
        storage.progress = report(storage.key)
        out.append(storage)
    if DATAEXPLORER.shared(env) and env.data_explorer.cluster_url:

        claim = claim_of(s)

        def created(rid: str) -> None:
            # lazy: the ledger backends, only when a database is created
            from devslice.ledger import open_ledger

            # The executor's thread: a ledger of its own (SQLite connections stay in theirs).
            with open_ledger(env, project.base_dir) as ledger:
                record(ledger, CREATED, handle, {"id": rid, "kind": "database", "claim": claim})

        db = DatabaseResource(
            azure, env, derive_names(env, handle).data_explorer_database,
            apply_schema=apply_schema or schema_applier(project), on_created=created)
        db.progress = report(db.key)
        out.append(db)
    if EVENTHUBS.shared(env) and wanted_groups(env, handle):
        out.append(ConsumerGroupsResource(azure, env, s))
    if SIGNALR.shared(env) and env.signal_r.hubs:
        out.append(SignalRHubsNote(list(derive_names(env, handle).signalr_hubs.values())))
    return out
