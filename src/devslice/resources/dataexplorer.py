"""The slice's database in the Kusto emulator (``database:<name>``), with
``dataExplorer.mode: emulator``: the emulator starts empty, and services of the slice write to
``LOCAL_DEV_DATAEXPLORER_DATABASE``, so `devslice up` creates it when it is missing.

Facts come from ``.show databases``; the action is ``.create database NAME persist (...)`` in
fresh folders under the emulator's data volume (``/kustodata/dbs``), so the data lives in the
named volume rather than in the container. A database that exists is left alone: its tables
are the team's schema script's business (`devslice adx apply`), and `devslice adx reset`
starts it over. A cloud cluster (mode shared) is never touched: there a database is an Azure
resource.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devslice.facts.world import Reader
from devslice.resources.plan import Action, noop
from devslice.sdk.dataexplorer import DataExplorer, DataExplorerUnreachable

KUSTO_DATA = "/kustodata"  # where the emulator's docs mount a volume for persistent databases
PERSIST_ROOT = f"{KUSTO_DATA}/dbs"  # the emulator's docs keep databases under /kustodata


@dataclass(frozen=True)
class DatabaseFacts:
    """Whether the emulator has the database (None: it does not answer yet), and the
    ``.create database`` command it would be sent (fresh persist folders)."""

    present: bool | None
    create: str


class EmulatorDatabaseResource:
    """One database of the Kusto emulator, created when missing."""

    def __init__(self, database: str, cluster_url: str, *, after: tuple[str, ...] = (),
                 connect: Callable[[str], DataExplorer] | None = None) -> None:
        self.database = database
        self.cluster_url = cluster_url
        self.key = f"database:{database}"
        self.after = after
        self._connect = connect or (lambda url: DataExplorer(url, persist_root=PERSIST_ROOT))

    def read(self, reader: Reader) -> DatabaseFacts:
        with self._connect(self.cluster_url) as adx:
            create = adx.create_command(self.database)
            try:
                return DatabaseFacts(self.database in adx.databases(), create)
            except DataExplorerUnreachable:
                return DatabaseFacts(None, create)

    def plan(self, facts: DatabaseFacts | None = None) -> list[Action]:
        facts = facts or self.read(Reader())
        if facts.present is None:
            # Not started yet (a fresh machine): the executor plans again once the
            # emulator's container is ready, so this is what a plan shows.
            return [Action(self.key, "create", f"database {self.database}: the Kusto "
                           f"emulator at {self.cluster_url} does not answer yet",
                           (facts.create,), self._create)]
        if facts.present:
            return [noop(self.key, f"database {self.database} exists in the Kusto emulator")]
        return [Action(self.key, "create", f"database {self.database} is missing in the Kusto "
                       "emulator", (facts.create,), self._create)]

    def _create(self) -> None:
        with self._connect(self.cluster_url) as adx:
            if self.database not in adx.databases():  # planned while it was not running
                adx.reset(self.database)  # drop ifexists (nothing) + create persist
