"""Secrets are referenced from devslice.yaml (``fromEnv``/``fromFile``/``fromKeyVault``), never
written in it.

A resolved secret is wrapped in :class:`Secret`, whose ``repr`` and ``str`` hide the value, so
it cannot leak into output, logs or plans by accident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from devslice.access.keyvault import VAULTS
from devslice.errors import SecretUnavailable

if TYPE_CHECKING:
    from devslice.config.model import SecretRef

MASK = "********"


class Secret:
    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source  # e.g. env:EVENTHUBS_CONNECTION_STRING; safe to show

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


def resolve(ref: SecretRef, base_dir: Path, environ: dict[str, str] | None = None) -> Secret:
    env = os.environ if environ is None else environ
    if ref.from_key_vault is not None:
        return Secret(VAULTS.read(ref.from_key_vault), ref.describe())
    if ref.from_env is not None:
        value = env.get(ref.from_env)
        if not value:
            raise SecretUnavailable(
                f"the secret {ref.from_env} is not set",
                hint=f"export {ref.from_env}=... (devslice reads it from the environment)",
            )
        return Secret(value, ref.describe())
    path = (base_dir / str(ref.from_file)).resolve()
    try:
        # The source names the absolute path: shell output reads it from any folder.
        return Secret(path.read_text(encoding="utf-8").strip(), f"file:{path}")
    except OSError as exc:
        raise SecretUnavailable(
            f"cannot read the secret file {path}: {exc.strerror}",
            hint="create the file or change fromFile in devslice.yaml",
        ) from exc
