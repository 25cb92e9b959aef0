"""Clients for the slice's own storage account (docs/contract.md, rule 3).

The contract gives the account, its blob and queue endpoints and, when the team configured
one, a connection string. These functions turn that into the Azure SDK's own clients, so a
service writes into its slice's account with the API it already knows:

    blobs = blob_service(ctx)            # azure.storage.blob.BlobServiceClient
    invoices = container(ctx, "invoices")  # the ContainerClient for names.invoices

They refuse a contract whose endpoint, connection string and account name disagree: Azure
would answer 403 anyway, and a service silently writing into another slice's account is the
one failure a slice exists to prevent.

Azurite: its endpoints are path-style (``http://127.0.0.1:10000/<account>``); the SDK reads
the account from the path for 127.0.0.1 and localhost. Newer SDKs send an API version newer
than Azurite knows, so emulator clients are pinned to :data:`AZURITE_API_VERSION` and work
even with an Azurite started without ``--skipApiVersionCheck``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from devslice.sdk.context import DEFAULT_PREFIX, ContractError, SliceContext
from devslice.slices.names import RULES

if TYPE_CHECKING:  # the SDKs are imported when a client is first built
    from azure.storage.blob import BlobServiceClient, ContainerClient
    from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient
    from azure.storage.blob.aio import ContainerClient as AsyncContainerClient
    from azure.storage.queue import QueueClient, QueueServiceClient
    from azure.storage.queue.aio import QueueClient as AsyncQueueClient
    from azure.storage.queue.aio import QueueServiceClient as AsyncQueueServiceClient

# The newest blob and queue API versions Azurite 3.37.0 accepts (BLOB_API_VERSION and
# QUEUE_API_VERSION in node_modules/azurite/dist/src/{blob,queue}/utils/constants.js);
# azure-storage-blob 12.31 and azure-storage-queue 12.18 default to 2026-10-06, which it
# refuses unless started with --skipApiVersionCheck.
AZURITE_API_VERSION = "2026-06-06"

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# UseDevelopmentStorage=true means the well-known account on Azurite's default ports.
_DEVELOPMENT = {"blob": "http://127.0.0.1:10000/devstoreaccount1",
                "queue": "http://127.0.0.1:10001/devstoreaccount1"}

Service = Literal["blob", "queue"]


def is_emulator(url: str) -> bool:
    """True for Azurite-style endpoints: a local host, or the account in the path.

    Azure's own endpoints carry the account in the host name and never in the path, so a
    path-style endpoint elsewhere (``http://azurite:10000/acct`` inside a cluster) is an
    emulator too.
    """
    parts = urlsplit(url)
    return (parts.hostname or "").lower() in LOCAL_HOSTS or bool(parts.path.strip("/"))


def account_of(url: str) -> str | None:
    """The account an endpoint addresses, or None when the URL does not say (custom domain)."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments:
        return segments[0]
    label, _, rest = (parts.hostname or "").lower().partition(".")
    if rest.split(".")[:2] in (["blob", "core"], ["queue", "core"]):
        return label.removesuffix("-secondary")
    return None


# -- the four clients, sync and async -------------------------------------------------------
def blob_service(ctx: SliceContext, credential: Any = None, **options: Any) -> BlobServiceClient:
    """The slice's ``BlobServiceClient``.

    From ``ctx.storage_connection_string`` when set, else ``ctx.blob_endpoint`` with
    ``credential`` (default ``DefaultAzureCredential``). ``options`` go to the SDK client
    (``transport``, ``per_call_policies``, ``api_version``, ...).
    """
    from azure.storage.blob import BlobServiceClient  # lazy: storage blob, ~300 ms

    return _open(BlobServiceClient, ctx, "blob", credential, options, aio=False)


def queue_service(ctx: SliceContext, credential: Any = None,
                  **options: Any) -> QueueServiceClient:
    """The slice's ``QueueServiceClient``; see :func:`blob_service`."""
    from azure.storage.queue import QueueServiceClient  # lazy: storage queue, ~300 ms

    return _open(QueueServiceClient, ctx, "queue", credential, options, aio=False)


def container(ctx: SliceContext, key: str, credential: Any = None, *,
              default: str | None = None, **options: Any) -> ContainerClient:
    """The ``ContainerClient`` for the slice's name ``key`` (``names.<key>`` in devslice.yaml,
    ``default`` when the contract has none), in the slice's account."""
    from azure.storage.blob import ContainerClient  # lazy: storage blob, ~300 ms

    name = _named(ctx, key, default, "container")
    return _open(ContainerClient, ctx, "blob", credential, options, aio=False,
                 container_name=name)


def queue(ctx: SliceContext, key: str, credential: Any = None, *,
          default: str | None = None, **options: Any) -> QueueClient:
    """The ``QueueClient`` for the slice's name ``key``; see :func:`container`."""
    from azure.storage.queue import QueueClient  # lazy: storage queue, ~300 ms

    name = _named(ctx, key, default, "queue")
    return _open(QueueClient, ctx, "queue", credential, options, aio=False, queue_name=name)


def async_blob_service(ctx: SliceContext, credential: Any = None,
                       **options: Any) -> AsyncBlobServiceClient:
    """:func:`blob_service` from ``azure.storage.blob.aio``; the default credential is the
    async ``DefaultAzureCredential`` (pass your own to control when it is closed)."""
    from azure.storage.blob.aio import BlobServiceClient  # lazy: storage blob, ~300 ms

    return _open(BlobServiceClient, ctx, "blob", credential, options, aio=True)


def async_queue_service(ctx: SliceContext, credential: Any = None,
                        **options: Any) -> AsyncQueueServiceClient:
    from azure.storage.queue.aio import QueueServiceClient  # lazy: storage queue, ~300 ms

    return _open(QueueServiceClient, ctx, "queue", credential, options, aio=True)


def async_container(ctx: SliceContext, key: str, credential: Any = None, *,
                    default: str | None = None, **options: Any) -> AsyncContainerClient:
    from azure.storage.blob.aio import ContainerClient  # lazy: storage blob, ~300 ms

    name = _named(ctx, key, default, "container")
    return _open(ContainerClient, ctx, "blob", credential, options, aio=True,
                 container_name=name)


def async_queue(ctx: SliceContext, key: str, credential: Any = None, *,
                default: str | None = None, **options: Any) -> AsyncQueueClient:
    from azure.storage.queue.aio import QueueClient  # lazy: storage queue, ~300 ms

    name = _named(ctx, key, default, "queue")
    return _open(QueueClient, ctx, "queue", credential, options, aio=True, queue_name=name)


# -- how they are built ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    """Where one service of the slice's account is, and who signs for it."""

    service: Service
    endpoint: str | None  # None: Azure's default endpoint for the connection string's account
    connection_string: str | None = field(default=None, repr=False)
    signer: str | None = None  # the account a shared key signs as, when known
    source: str = ""  # which contract variable the endpoint came from, for messages


def _open(cls: Any, ctx: SliceContext, service: Service, credential: Any,
          options: dict[str, Any], *, aio: bool, **child: str) -> Any:
    target = _target(ctx, service, credential)
    _check_account(ctx, target)
    if target.endpoint and is_emulator(target.endpoint):
        options.setdefault("api_version", AZURITE_API_VERSION)
    try:
        if target.connection_string:
            return cls.from_connection_string(target.connection_string, credential=credential,
                                              **child, **options)
        assert target.endpoint is not None
        return cls(target.endpoint, credential=credential or _default_credential(target, aio),
                   **child, **options)
    except ValueError as exc:  # the SDK's word for a bad URL, credential or api_version
        raise _unusable(target, exc) from exc


def _target(ctx: SliceContext, service: Service, credential: Any) -> _Target:
    variable = f"{DEFAULT_PREFIX}STORAGE_{service.upper()}ENDPOINT"
    cs = ctx.storage_connection_string
    if cs:
        settings = _connection_settings(cs)
        if settings.get("USEDEVELOPMENTSTORAGE", "").lower() == "true":
            endpoint: str | None = _DEVELOPMENT[service]
            signer: str | None = "devstoreaccount1"
        else:
            endpoint = settings.get(f"{service.upper()}ENDPOINT")
            signer = settings.get("ACCOUNTNAME")
            if not endpoint and not signer:
                raise ContractError(
                    f"{DEFAULT_PREFIX}STORAGE_CONNECTIONSTRING names neither a "
                    f"{service.title()}Endpoint nor an AccountName",
                    hint="use the account's connection string from the Azure portal, or "
                    "Azurite's (DefaultEndpointsProtocol=http;AccountName=...;AccountKey=...;"
                    f"{service.title()}Endpoint=http://127.0.0.1:<port>/<account>;)",
                )
        return _Target(service, endpoint, cs, _signer(credential) or signer,
                       f"{DEFAULT_PREFIX}STORAGE_CONNECTIONSTRING")
    endpoint = ctx.blob_endpoint if service == "blob" else ctx.queue_endpoint
    if not endpoint:
        account = f" ({ctx.storage_account})" if ctx.storage_account else ""
        raise ContractError(
            f"the slice's contract has no {service} endpoint for its storage account{account}",
            hint=f"set {variable} (storage.{service}EndpointTemplate in devslice.yaml; "
            "`devslice env` gives it) or "
            f"{DEFAULT_PREFIX}STORAGE_CONNECTIONSTRING; in a shared environment, build the "
            "client from your own settings",
        )
    return _Target(service, endpoint, None, _signer(credential), variable)


def _connection_settings(cs: str) -> dict[str, str]:
    """A storage connection string's settings, keys upper-cased. Never echoes the text."""
    pairs = [p.split("=", 1) for p in cs.strip().split(";") if p.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise ContractError(
            f"{DEFAULT_PREFIX}STORAGE_CONNECTIONSTRING is not a list of Key=Value settings "
            "separated by ';'",
            hint="copy the connection string again (storage.connectionString in devslice.yaml)",
        )
    return {k.strip().upper(): v.strip() for k, v in pairs}


def accounts_addressed(connection_string: str) -> dict[str, str | None]:
    """The accounts a storage connection string addresses, by setting (``AccountName``,
    ``BlobEndpoint``, ...; None for an endpoint that does not say, a custom domain). Raises
    :class:`ContractError` for a malformed string, never echoing it."""
    settings = _connection_settings(connection_string)
    if settings.get("USEDEVELOPMENTSTORAGE", "").lower() == "true":
        return {"UseDevelopmentStorage": "devstoreaccount1"}
    out: dict[str, str | None] = {}
    if settings.get("ACCOUNTNAME"):
        out["AccountName"] = settings["ACCOUNTNAME"]
    for service in ("Blob", "Queue"):
        if settings.get(f"{service.upper()}ENDPOINT"):
            out[f"{service}Endpoint"] = account_of(settings[f"{service.upper()}ENDPOINT"])
    return out


def _signer(credential: Any) -> str | None:
    """The account a shared-key credential signs as (None for tokens and SAS)."""
    if isinstance(credential, dict):
        name = credential.get("account_name")
        return name if isinstance(name, str) else None
    named_key = getattr(credential, "named_key", None)  # AzureNamedKeyCredential
    return getattr(named_key, "name", None)


def _check_account(ctx: SliceContext, target: _Target) -> None:
    """Refuse an endpoint, a signer and a slice account that name different accounts."""
    addressed = account_of(target.endpoint) if target.endpoint else None
    known = [(what, name) for what, name in (
        (f"the slice's account ({DEFAULT_PREFIX}STORAGE_ACCOUNT)", ctx.storage_account),
        (f"the {target.service} endpoint {target.endpoint} ({target.source})", addressed),
        ("the shared key", target.signer),
    ) if name]
    for (what_a, a), (what_b, b) in pairwise(known):
        if a != b:
            raise ContractError(
                f"{what_b} is account {b!r}, but {what_a} is account {a!r}",
                hint="a slice's clients must use its own account; run `devslice env` again "
                "and check storage.connectionString in devslice.yaml",
            )


def _default_credential(target: _Target, aio: bool) -> Any:
    """``DefaultAzureCredential``; Azure AD tokens are only sent over https."""
    assert target.endpoint is not None
    if urlsplit(target.endpoint).scheme != "https":
        raise ContractError(
            f"the {target.service} endpoint {target.endpoint} is plain http, and Azure AD "
            "sign-in needs https",
            hint=f"for Azurite, set storage.connectionString in devslice.yaml (it becomes "
            f"{DEFAULT_PREFIX}STORAGE_CONNECTIONSTRING) or pass credential= (the account key, "
            "or AzureNamedKeyCredential)",
        )
    if aio:
        # lazy: azure-identity, ~200 ms, only for Entra ID
        from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

        return AsyncDefaultAzureCredential()
    from azure.identity import DefaultAzureCredential  # lazy: azure-identity, ~180 ms

    return DefaultAzureCredential()


def _unusable(target: _Target, exc: ValueError) -> ContractError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if target.connection_string:
        # The SDK's messages do not quote the connection string; make sure of it.
        settings = _connection_settings(target.connection_string)
        for secret in (settings.get("ACCOUNTKEY"), settings.get("SHAREDACCESSSIGNATURE")):
            if secret:
                reason = reason.replace(secret, "***")
    if "API version" in reason:
        hint = (f"the installed azure-storage-{target.service} does not know the API version "
                f"asked for; upgrade it, or pass api_version= (Azurite 3.37 accepts up to "
                f"{AZURITE_API_VERSION})")
    else:
        hint = f"check {target.source}"
    return ContractError(f"cannot build a {target.service} client for the slice's storage "
                         f"account: {reason}", hint=hint)


def _named(ctx: SliceContext, key: str, default: str | None,
           kind: Literal["container", "queue"]) -> str:
    name = ctx.name(key, default)
    problem = RULES[kind].problem(name)
    if problem:
        raise ContractError(problem, hint=f"names.{key} in devslice.yaml must use rule: {kind}")
    return name

