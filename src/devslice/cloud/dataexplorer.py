"""The slice's Data Explorer database in the team's cluster (``dataExplorer.mode: shared``),
created through the management API (azure-mgmt-kusto) with the configured soft-delete and
hot-cache periods, then the team's schema script (``dataExplorer.schemaScript``) through the
same path as `devslice adx apply`.

The team's Event Hubs data connection is the team's: it is checked, never changed. Events
carry their database in the ``Database`` property, which a data connection honours only when
it allows routing to other databases (``databaseRouting: Multi``); otherwise routed events
land in the connection's own database, or nowhere.

A Data Explorer database has no tags in Resource Manager (its schema has none), so devslice
recognises a database as a slice's by its derived name in the configured cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from devslice.access.azure import Azure, AzureError, get_or_none, translated, wait
from devslice.errors import DevsliceError
from devslice.resources.plan import Action, noop
from devslice.services.dataexplorer import SERVICE as DATAEXPLORER

if TYPE_CHECKING:
    from devslice.config.model import Environment

PROVIDER = "Microsoft.Kusto"


def iso_duration(d: timedelta) -> str:
    """ISO 8601, as the API takes periods (P7D, PT12H)."""
    seconds = int(d.total_seconds())
    days, rest = divmod(seconds, 86400)
    return f"P{days}D" if not rest else f"PT{seconds // 3600}H" if not rest % 3600 \
        else f"PT{seconds}S"


def routing_check(azure: Azure, env: Environment) -> tuple[bool, str] | None:
    """(ok, what) for the team's data connection, or None when none is configured."""
    ref = env.data_explorer.data_connection
    cluster = env.data_explorer.azure_cluster_name
    if ref is None or cluster is None:
        return None
    found = get_or_none(f"read data connection {ref.name}",
                        azure.kusto.data_connections.get, azure.resource_group, cluster,
                        ref.database, ref.name)
    if found is None:
        return False, (f"the data connection {ref.database}/{ref.name} does not exist in cluster "
                       f"{cluster}: events routed to the slice's database go nowhere")
    routing = (found.get("properties") or {}).get("databaseRouting", "Single")
    if routing == "Multi":
        return True, (f"data connection {ref.database}/{ref.name} allows multi-database "
                      "routing")
    return False, (f"data connection {ref.database}/{ref.name} has databaseRouting {routing}: "
                   "events routed to the slice's database land in "
                   f"{ref.database} instead; the team must allow multi-database routing "
                   "(devslice does not change it)")


class DatabaseResource:
    """``azure:database:<name>``: the slice's database, and a check of the data connection."""

    def __init__(self, azure: Azure, env: Environment, database: str, *,
                 after: tuple[str, ...] = (),
                 apply_schema: Callable[[str], None] | None = None,
                 on_created: Callable[[str], None] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        cluster = env.data_explorer.azure_cluster_name
        if cluster is None:
            raise AzureError("dataExplorer.clusterUrl is not set, so devslice cannot create the "
                             "slice's database", hint="set dataExplorer.clusterUrl (or "
                             "clusterName) in devslice.yaml")
        self.azure, self.env, self.database, self.cluster = azure, env, database, cluster
        self.key = f"azure:database:{database}"
        self.after = after
        self.apply_schema = apply_schema
        self.on_created = on_created  # the ledger records it: a database has no tags
        self.progress = progress

    def _path(self) -> tuple[str, ...]:
        return ("clusters", self.cluster, "databases", self.database)

    def plan(self) -> list[Action]:
        rg = self.azure.resource_group
        db = get_or_none(f"read database {self.database}", self.azure.kusto.databases.get, rg,
                         self.cluster, self.database)
        out: list[Action] = []
        settings = self.env.data_explorer
        note = (f"ReadWrite, softDeletePeriod {iso_duration(settings.soft_delete_period)}, "
                f"hotCachePeriod {iso_duration(settings.hot_cache_period)}")
        calls = [self.azure.call("PUT", PROVIDER, *self._path(), note=note)]
        if settings.schema_script:
            calls.append(f"devslice adx apply {settings.schema_script}")
        if db is None:
            out.append(Action(self.key, "create", f"database {self.database} is missing in "
                              f"cluster {self.cluster}", tuple(calls), self._create))
        elif (db.get("properties") or {}).get("provisioningState") not in (None, "Succeeded"):
            state = (db.get("properties") or {}).get("provisioningState")
            out.append(Action(self.key, "wait", f"database {self.database} is {state} (an "
                              "earlier `up` was interrupted): create it again, idempotently, "
                              "and wait", tuple(calls), self._create))
        else:
            out.append(noop(self.key, f"database {self.database} exists in cluster "
                            f"{self.cluster}"))
        checked = routing_check(self.azure, self.env)
        if checked is not None:
            ok, what = checked
            out.append(noop(self.key, what if ok else f"attention: {what}"))
        return out

    def _create(self) -> None:
        settings = self.env.data_explorer
        what = f"create database {self.database} in cluster {self.cluster}"
        with translated(what):
            cluster = self.azure.kusto.clusters.get(self.azure.resource_group, self.cluster)
            poller = self.azure.kusto.databases.begin_create_or_update(
                self.azure.resource_group, self.cluster, self.database,
                {"kind": "ReadWrite", "location": cluster.location,
                 "properties": {"softDeletePeriod": iso_duration(settings.soft_delete_period),
                                "hotCachePeriod": iso_duration(settings.hot_cache_period)}})
        wait(poller, what, self.progress)
        if self.on_created is not None:
            self.on_created(self.azure.rid(PROVIDER, *self._path()))
        if settings.schema_script and self.apply_schema is not None:
            self.apply_schema(self.database)

    def delete(self) -> None:
        what = f"delete database {self.database} in cluster {self.cluster}"
        with translated(what):
            poller = self.azure.kusto.databases.begin_delete(
                self.azure.resource_group, self.cluster, self.database)
        wait(poller, what, self.progress)

    def recreate(self) -> None:
        """`devslice adx reset` on a real cluster: delete, create, schema script."""
        if get_or_none(f"read database {self.database}", self.azure.kusto.databases.get,
                       self.azure.resource_group, self.cluster, self.database) is not None:
            self.delete()
        self._create()


def routing_status(env: Environment, azure: Azure | None = None) -> tuple[str, str]:
    """`devslice verify`'s view of the team's data connection: (ok|failed|skipped, detail)."""
    from devslice.cloud.plan import provisioning  # lazy: cloud.plan imports this module

    if not DATAEXPLORER.shared(env) or env.data_explorer.data_connection is None:
        return "skipped", "no dataExplorer.dataConnection to check"
    if azure is None and not provisioning(env):
        return "skipped", "not checked: azure.subscription / resourceGroup are not set"
    own = azure is None
    try:
        azure = azure or Azure.from_settings(env.azure)
        checked = routing_check(azure, env)
    except DevsliceError as exc:
        return "skipped", f"not checked: {exc.message}"
    finally:
        if own and azure is not None:
            azure.close()
    if checked is None:
        return "skipped", "no data connection to check"
    ok, what = checked
    return ("ok" if ok else "failed"), what
