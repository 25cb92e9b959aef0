"""Secrets read from Azure Key Vault (``fromKeyVault: {vault: NAME, secret: NAME}``), with
azure-keyvault-secrets and the same credential as provisioning (``DefaultAzureCredential``).

Values are cached for one command only: each CLI command starts with :meth:`Vaults.begin`,
which forgets what the last one read, so a rotated secret is picked up by the next command and
nothing outlives the process's command. Values are never printed: they come back wrapped in
``devslice.secrets.Secret``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devslice.access.azure import CLOUDS, LOGIN_HINT, Cloud
from devslice.errors import SecretUnavailable

if TYPE_CHECKING:
    from devslice.config.model import KeyVaultRef


class Vaults:
    """Reads Key Vault secrets; ``client_factory(vault_url, credential)`` makes a
    ``SecretClient`` (tests point it at ``devslice.testing.arm.FakeAzure``)."""

    def __init__(self, cloud: Cloud = CLOUDS["public"], credential: Any = None,
                 client_factory: Callable[[str, Any], Any] | None = None) -> None:
        self.cloud = cloud
        self.credential = credential
        self.client_factory = client_factory
        self.reads = 0  # calls that reached a vault, for tests of the cache
        self._cache: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def begin(self, cloud: str = "public") -> None:
        """A new command: forget what the last one read."""
        with self._lock:
            self.cloud = CLOUDS[cloud]
            self._cache.clear()

    def url(self, vault: str) -> str:
        return vault.rstrip("/") if vault.startswith("https://") else \
            f"https://{vault}.{self.cloud.vault_suffix}"

    def read(self, ref: KeyVaultRef) -> str:
        url = self.url(ref.vault)
        with self._lock:
            if (url, ref.secret) in self._cache:
                return self._cache[(url, ref.secret)]
        value = self._fetch(url, ref.secret, ref.vault)
        with self._lock:
            self._cache[(url, ref.secret)] = value
        return value

    def _fetch(self, url: str, name: str, vault: str) -> str:
        from azure.core.exceptions import (  # lazy: azure-core, ~40 ms, only against Azure
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
        )

        credential = self.credential
        if credential is None:
            from azure.identity import DefaultAzureCredential  # lazy: azure-identity, ~180 ms

            credential = self.credential = DefaultAzureCredential(authority=self.cloud.authority)
        if self.client_factory is not None:
            client = self.client_factory(url, credential)
        else:
            from azure.keyvault.secrets import SecretClient  # lazy: azure-keyvault

            client = SecretClient(url, credential)
        where = f"secret {name} in Key Vault {vault}"
        try:
            with client:
                self.reads += 1
                value = client.get_secret(name).value
        except ResourceNotFoundError as exc:
            raise SecretUnavailable(f"{where} does not exist",
                                    hint="check fromKeyVault in devslice.yaml, or create it: "
                                    f"az keyvault secret set --vault-name {vault} --name {name}"
                                    ) from exc
        except ClientAuthenticationError as exc:
            if getattr(exc, "status_code", None) == 403:
                raise SecretUnavailable(f"{where}: access denied", hint="ask for the Key Vault "
                                        "Secrets User role on the vault") from exc
            raise SecretUnavailable(f"{where}: not signed in to Azure, or the sign-in expired",
                                    hint=LOGIN_HINT) from exc
        except (HttpResponseError, OSError) as exc:
            raise SecretUnavailable(f"cannot read {where}: {str(exc).splitlines()[0]}") from exc
        if value is None:
            raise SecretUnavailable(f"{where} has no value")
        return value


VAULTS = Vaults()  # the process's reader; the CLI calls VAULTS.begin() for each command
