"""The ledger's reach must match the services' (issue 11).

A slice of a shared cloud service (a service in ``mode: shared``) is a piece of something the
whole team uses, so the ledger that hands it out must be one the whole team sees. A SQLite
ledger lives on one machine: two developers, each with their own file, were both given
``team-dev-ehns1`` partition 0. Such a claim is refused unless the config says the developer
is alone on the team (``ledger: {backend: sqlite, soloTeam: true}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from devslice.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from devslice.config.model import Environment
    from devslice.ledger.base import Ledger

FIX = ("share an azureBlob ledger with the team (ledger: {backend: azureBlob, accountUrl: "
       "https://ACCOUNT.blob.core.windows.net}; `devslice ledger migrate` copies this ledger's "
       "slices into it), or, if you alone use these services, say so: "
       "ledger: {backend: sqlite, soloTeam: true}")


def shared_services(env: Environment) -> list[str]:
    """The config keys of services that are the team's cloud services (``mode: shared``
    with somewhere to connect to), as each service says."""
    # lazy: the services bring their containers' modules; only this check needs them
    from devslice.services import team_services

    return team_services(env)


def solo(env: Environment) -> bool:
    """Whether the config says one developer alone uses the shared services."""
    return env.ledger.backend == "sqlite" and env.ledger.solo_team


def reach_issue(env: Environment, config_path: Path, ledger: Ledger) -> ConfigError | None:
    """Why claims in ``ledger`` would not be seen by the team sharing these services, or
    None when they would be (or the config says nobody else is there)."""
    services = shared_services(env)
    if ledger.shared or not services or solo(env):
        return None
    from devslice.config.load import locate  # lazy: pydantic and the config models

    path = str(Path(config_path).resolve())
    listed = ", ".join(services[:-1]) + " and " + services[-1] if len(services) > 1 \
        else services[0]
    message = (f"the ledger {ledger.location} is a file only this machine sees, but {listed} "
               f"{'are' if len(services) > 1 else 'is'} shared: another developer's ledger "
               "would hand out the same slice")
    # Point at the ledger key when the file writes one, else at the first shared service
    # (locate puts a key the file leaves out at the document's start, 1:1).
    ledger_key, service_key = locate([ConfigIssue(path, None, None, "ledger.backend", message),
                                      ConfigIssue(path, None, None, services[0], message)])
    written = ledger_key.line is not None and (ledger_key.line, ledger_key.column) != (1, 1)
    return ConfigError([ledger_key if written else service_key], hint=FIX)


def describe(env: Environment, ledger: Ledger) -> str:
    """The ledger's reach in a line, for `devslice doctor`."""
    if ledger.shared:
        return "shared with the team"
    services = shared_services(env)
    if not services:
        return "this machine only (every service is local)"
    if solo(env):
        return f"this machine only; soloTeam: true (you alone use {', '.join(services)})"
    return "this machine only, but " + ", ".join(services) + " shared"
