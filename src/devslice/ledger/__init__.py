"""The ledger: the source of truth for who holds which slice. Two backends, one interface."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from devslice.ledger.base import Ledger

if TYPE_CHECKING:
    from devslice.config.model import Environment

__all__ = ["Ledger", "open_ledger"]


def open_ledger(env: Environment, base_dir: Path) -> Ledger:
    """The ledger the config names; relative SQLite paths are relative to ``base_dir``."""
    # lazy: config.checks builds the config models; a ledger opened by path needs none
    from devslice.config.checks import handle_rule

    settings, handles = env.ledger, handle_rule(env)
    if settings.backend == "sqlite":
        # lazy: one backend per ledger: SQLite's
        from devslice.ledger.sqlite import SqliteLedger

        return SqliteLedger(base_dir / settings.path, team=env.team, handles=handles)
    # lazy: the Azure Storage SDK (~300 ms), only for this backend
    from devslice.ledger.azureblob import AzureBlobLedger

    return AzureBlobLedger.from_settings(settings, team=env.team, base_dir=base_dir,
                                         handles=handles)
