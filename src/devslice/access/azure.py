"""Azure settings, credential and management clients for provisioning (issue 15).

The clients are the official ones (azure-mgmt-storage, azure-mgmt-kusto, azure-mgmt-eventhub);
:class:`Azure` builds them for the configured cloud, with the credential and the transport
options passed in (tests point ``management_endpoint`` at ``devslice.testing.arm.FakeAzure``
and pass its certificate as ``connection_verify``). Foreign errors are translated by
:func:`translated` where they cross into devslice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devslice.errors import DevsliceError

if TYPE_CHECKING:
    from devslice.config.model import AzureSettings
    from devslice.slices.model import Slice


@dataclass(frozen=True)
class Cloud:
    management: str
    storage_suffix: str
    vault_suffix: str
    authority: str


# learn.microsoft.com "Azure China 21Vianet developer guide" and "Azure Government developer
# guide": the endpoints that differ between the clouds.
CLOUDS = {
    "public": Cloud("https://management.azure.com", "core.windows.net", "vault.azure.net",
                    "login.microsoftonline.com"),
    "china": Cloud("https://management.chinacloudapi.cn", "core.chinacloudapi.cn",
                   "vault.azure.cn", "login.chinacloudapi.cn"),
    "usgovernment": Cloud("https://management.usgovcloudapi.net", "core.usgovcloudapi.net",
                          "vault.usgovcloudapi.net", "login.microsoftonline.us"),
}

LOGIN_HINT = ("run `az login` (and `az account set -s SUBSCRIPTION`), or give a service "
              "principal or workload identity through AZURE_CLIENT_ID, AZURE_TENANT_ID and "
              "AZURE_CLIENT_SECRET / AZURE_FEDERATED_TOKEN_FILE")

TAG_MANAGED_BY = "managed-by"
TAG_TEAM = "devslice-team"
TAG_SLICE = "devslice-slice"
TAG_CLAIM = "devslice-claim"


class AzureError(DevsliceError):
    """Resource Manager or Key Vault refused or failed a call."""


class AzureLoginRequired(AzureError):
    """No credential could sign in (no `az login`, or it expired)."""


class AzureNotConfigured(AzureError):
    exit_code = 2


class AzureNameTaken(AzureError):
    """A name devslice derives is used elsewhere in Azure."""


def claim_of(s: Slice) -> str:
    """Identifies one claim of a handle: a handle released and claimed again is a new claim,
    so a resource tagged for the old one is not the new one's (the ledger's claim id since
    issue 11; the claim time for a slice claimed before)."""
    return s.claim or f"{s.handle}@{s.created_at.strftime('%Y%m%dT%H%M%SZ')}"


def slice_tags(team: str, s: Slice, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), TAG_MANAGED_BY: "devslice", TAG_TEAM: team, TAG_SLICE: s.handle,
            TAG_CLAIM: claim_of(s)}


def ownership(tags: dict[str, str] | None, team: str, claim: str) -> str:
    """``ours`` (this claim's), ``other`` (devslice's, another slice or claim) or
    ``untagged`` (made by someone else: never adopted or deleted without --adopt)."""
    tags = tags or {}
    if tags.get(TAG_MANAGED_BY) != "devslice":
        return "untagged"
    if tags.get(TAG_TEAM) == team and tags.get(TAG_CLAIM) == claim:
        return "ours"
    return "other"


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Foreign errors of a call to Azure as devslice's errors (what: the call, for the
    message)."""
    # lazy: azure-core, ~40 ms, only around a call to Azure
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    try:
        yield
    except ClientAuthenticationError as exc:
        status = getattr(exc, "status_code", None)
        if status == 403:
            raise AzureError(f"{what}: access denied ({_reason(exc)})",
                             hint="ask for a role that allows it on the resource group "
                             "(Contributor, or the service's own contributor role)") from exc
        raise AzureLoginRequired(f"{what}: not signed in to Azure, or the sign-in expired",
                                 hint=LOGIN_HINT) from exc
    except HttpResponseError as exc:
        raise AzureError(f"{what}: {_reason(exc)}") from exc
    except OSError as exc:  # DNS, refused connections, TLS
        raise AzureError(f"{what}: cannot reach Azure: {exc}",
                         hint="check the network, and azure.cloud / managementEndpoint") from exc


def _reason(exc: Any) -> str:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or getattr(exc, "reason", None) or str(exc)
    first = str(message).splitlines()[0] if message else ""
    return f"{code}: {first}" if code else first


@dataclass
class Azure:
    """The management clients for one subscription and resource group."""

    subscription: str
    resource_group: str
    cloud: Cloud = CLOUDS["public"]
    location: str | None = None
    management_endpoint: str | None = None
    credential: Any = None
    client_options: dict[str, Any] = field(default_factory=dict)  # e.g. connection_verify
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: AzureSettings, credential: Any = None,
                      environ: dict[str, str] | None = None, **client_options: Any) -> Azure:
        env = os.environ if environ is None else environ
        subscription = env.get("AZURE_SUBSCRIPTION_ID") or settings.subscription
        group = env.get("AZURE_RESOURCE_GROUP") or settings.resource_group
        missing = [k for k, v in (("azure.subscription", subscription),
                                  ("azure.resourceGroup", group)) if not v]
        if missing:
            raise AzureNotConfigured(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set, so "
                "devslice cannot provision the slice's resources in Azure",
                hint="set them in devslice.yaml (or AZURE_SUBSCRIPTION_ID / "
                "AZURE_RESOURCE_GROUP), or azure.provision: false to create nothing")
        assert subscription and group
        return cls(subscription, group, CLOUDS[settings.cloud], settings.location,
                   settings.management_endpoint, credential, dict(client_options))

    @property
    def endpoint(self) -> str:
        return (self.management_endpoint or self.cloud.management).rstrip("/")

    def _credential(self) -> Any:
        if self.credential is None:
            from azure.identity import DefaultAzureCredential  # lazy: azure-identity, ~180 ms

            self.credential = DefaultAzureCredential(authority=self.cloud.authority)
        return self.credential

    def _client(self, kind: str, factory: Any) -> Any:
        if kind not in self._clients:
            self._clients[kind] = factory(
                self._credential(), self.subscription, base_url=self.endpoint,
                credential_scopes=[f"{self.cloud.management}/.default"],
                **self.client_options)
        return self._clients[kind]

    @property
    def storage(self) -> Any:
        from azure.mgmt.storage import StorageManagementClient  # lazy: azure-mgmt-storage

        return self._client("storage", StorageManagementClient)

    @property
    def kusto(self) -> Any:
        from azure.mgmt.kusto import KustoManagementClient  # lazy: azure-mgmt-kusto

        return self._client("kusto", KustoManagementClient)

    @property
    def eventhub(self) -> Any:
        from azure.mgmt.eventhub import EventHubManagementClient  # lazy: azure-mgmt-eventhub

        return self._client("eventhub", EventHubManagementClient)

    def rid(self, provider: str, *path: str) -> str:
        """A resource id in the resource group, for plans and messages."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{provider}/" + "/".join(path))

    def call(self, verb: str, provider: str, *path: str, note: str = "") -> str:
        """One line of a plan: the HTTP call Resource Manager receives."""
        return f"{verb} {self.endpoint}{self.rid(provider, *path)}" + (f" ({note})" if note
                                                                        else "")

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def as_dict(x: Any) -> dict[str, Any]:
    """A management SDK's model as the JSON Resource Manager sent."""
    if x is None:
        return {}
    return x.as_dict() if hasattr(x, "as_dict") else dict(x)


def get_or_none(what: str, read: Any, *args: Any) -> dict[str, Any] | None:
    """A resource's JSON, or None when Resource Manager answers 404."""
    from azure.core.exceptions import ResourceNotFoundError  # lazy: azure-core, ~40 ms

    with translated(what):
        try:
            return as_dict(read(*args))
        except ResourceNotFoundError:
            return None


def wait(poller: Any, what: str, progress: Any = None, interval: float = 5.0) -> Any:
    """Wait for a long-running operation, saying how long it has run. Ctrl-C leaves it running
    in Azure; the next `up` finds the resource being created and waits for it."""
    started = time.monotonic()
    with translated(what):
        while not poller.done():
            poller.wait(interval)
            if progress is not None and not poller.done():
                progress(f"{what}: {poller.status()} ({time.monotonic() - started:.0f}s)")
        return poller.result()
