"""One error tree for everything devslice reports to a user.

Every error carries a message (what happened) and a hint (what to do). The CLI prints
both and exits with ``exit_code``; a traceback reaching a user is a bug. Foreign exceptions
are translated where they cross into devslice (``raise LedgerUnreachable(...) from exc``).

    DevsliceError
    ├── ConfigError            devslice.yaml is malformed or inconsistent (file:line:col)
    ├── SliceError
    │   ├── InvalidHandle      a handle breaks the naming rules
    │   ├── SliceNotFound      no live slice has that handle
    │   ├── SliceConflict      the handle is held by someone else
    │   └── SliceBusy          another `up`/`down` acts on the slice's processes (exit 75)
    ├── CapacityError          no namespace has room for the partitions asked for
    ├── LedgerError
    │   ├── LedgerUnreachable  the ledger cannot be reached or opened
    │   ├── LedgerCorrupt      the ledger holds something devslice did not write
    │   └── LedgerBusy         too many concurrent writers; gave up after retries
    ├── SecretUnavailable      a secret the config refers to is not set
    ├── ToolMissing            an external program is not installed
    └── CommandFailed          an external program failed

The runtime SDK adds its own, beside the code that raises them:

    DevsliceError
    ├── sdk.context.SliceViolation         a call would leave the slice (a foreign partition)
    ├── sdk.context.ContractError          the contract's variables are missing or malformed
    │   └── sdk.signalr.SignalRConfigError a bad SignalR connection string or hub name
    ├── sdk.dataexplorer.DataExplorerError NoSliceDatabase, DataExplorerNotConfigured,
    │                                      InvalidDatabaseName, KqlScriptError,
    │                                      DataExplorerUnreachable, DataExplorerAccessDenied,
    │                                      CommandRejected
    ├── embedded.eventhub.EmbeddedHubError the embedded event hub refused a call
    ├── adapters.kube.KubeError            KubeConfigError, KubeUnreachable, KubeUnknownKind,
    │                                      KubeApiError (KubeNotFound, KubeForbidden,
    │                                      KubeConflict, KubeInvalid), RolloutFailed,
    │                                      ContextRefused
    ├── adapters.registry.RegistryError    RegistryUnreachable
    └── CommandFailed
        └── sdk.signalr.SignalRSendFailed  the SignalR REST API answered an error
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class DevsliceError(Exception):
    """Root of every error devslice raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, located as precisely as the file allows."""

    path: str
    line: int | None  # 1-based
    column: int | None  # 1-based
    where: str  # dotted location inside the document, e.g. eventHubs.namespaces[0].partitions
    message: str  # the bad value and what was expected

    def __str__(self) -> str:
        pos = self.path
        if self.line is not None:
            pos += f":{self.line}"
            if self.column is not None:
                pos += f":{self.column}"
        where = f" {self.where}:" if self.where else ""
        return f"{pos}:{where} {self.message}"


Locator = Callable[[list[ConfigIssue]], list[ConfigIssue]]
_locator: Locator = list  # issues as given, until devslice.config.load registers its own


def set_locator(locate: Locator) -> None:
    """How a ConfigError finds the line and column of an issue's key in its file.
    ``devslice.config.load`` registers its YAML locator when it is imported, which every
    command reading devslice.yaml does first; this module imports nothing of devslice, so
    every package may import it (issue 14: no import cycles between packages)."""
    global _locator
    _locator = locate


class ConfigError(DevsliceError):
    exit_code = 2

    def __init__(self, issues: list[ConfigIssue], hint: str | None = None) -> None:
        # An issue found after loading (a check at plan time) names its key; the file says
        # where that key is written.
        self.issues = issues = _locator(issues)
        lines = [str(i) for i in issues]
        super().__init__("\n".join(lines), hint)


class SliceError(DevsliceError):
    pass


class InvalidHandle(SliceError):
    exit_code = 2


class SliceNotFound(SliceError):
    pass


class SliceConflict(SliceError):
    pass


class SliceBusy(SliceError):
    exit_code = 75  # EX_TEMPFAIL: try again later


class CapacityError(DevsliceError):
    pass


class LedgerError(DevsliceError):
    pass


class LedgerUnreachable(LedgerError):
    pass


class LedgerCorrupt(LedgerError):
    pass


class LedgerBusy(LedgerError):
    pass


class SecretUnavailable(DevsliceError):
    pass


class ToolMissing(DevsliceError):
    pass


class CommandFailed(DevsliceError):
    pass
