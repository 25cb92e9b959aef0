"""The names a slice gets, derived from its handle by the config's templates.

Names are derived, not stored: the ledger keeps handles and partitions, and templates are
checked at load time to be one-to-one, so distinct handles always give distinct names.
"""

from __future__ import annotations

from dataclasses import dataclass

from devslice.config.model import Environment
from devslice.slices.names import render


@dataclass(frozen=True)
class SliceNames:
    storage_account: str
    blob_endpoint: str
    queue_endpoint: str
    data_explorer_database: str
    signalr_hubs: dict[str, str]  # hub -> this slice's hub
    named: dict[str, str]  # key in `names:` -> name

    def all(self) -> dict[str, str]:
        """Every name with a stable key, e.g. for uniqueness checks and listings."""
        out = {
            "storageAccount": self.storage_account,
            "dataExplorerDatabase": self.data_explorer_database,
        }
        out.update({f"signalrHub:{h}": n for h, n in self.signalr_hubs.items()})
        out.update({f"name:{k}": n for k, n in self.named.items()})
        return out


def derive_names(env: Environment, handle: str) -> SliceNames:
    values = {"team": env.team, "slice": handle}
    account = render(env.storage.account_template, **values)
    return SliceNames(
        storage_account=account,
        blob_endpoint=render(env.storage.blob_endpoint_template, account=account, **values),
        queue_endpoint=render(env.storage.queue_endpoint_template, account=account, **values),
        data_explorer_database=render(env.data_explorer.database_template, **values),
        signalr_hubs={h: render(env.signal_r.hub_template, hub=h, **values)
                      for h in env.signal_r.hubs},
        named={k: render(t.template, **values) for k, t in env.names.items()},
    )
