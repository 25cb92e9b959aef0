"""The slice's own storage account through the Azure SDK's clients, against real Azurite:
slices write only to their own account, other accounts refuse their keys, the contract's
gaps are explained, and the API version is pinned for an Azurite that checks it."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineRequest
from azure.storage.blob import BlobServiceClient

from devslice.sdk import SliceContext
from devslice.sdk.context import ContractError
from devslice.sdk.storage import (
    AZURITE_API_VERSION,
    account_of,
    async_blob_service,
    async_container,
    async_queue,
    blob_service,
    container,
    is_emulator,
    queue,
    queue_service,
)
from devslice.testing import Azurite

AB, CD = "company1stacc4ab", "company1stacc4cd"


def contract(az: Azurite, account: str, *, connection_string: bool = True,
             **extra: str) -> dict[str, str]:
    """The contract `devslice env` gives a slice whose account lives in Azurite."""
    env = {
        "LOCAL_DEV_SLICE": account[-2:],
        "LOCAL_DEV_STORAGE_ACCOUNT": account,
        "LOCAL_DEV_STORAGE_BLOBENDPOINT": az.blob_endpoint(account),
        "LOCAL_DEV_STORAGE_QUEUEENDPOINT": f"http://127.0.0.1:{az.queue_port}/{account}",
    }
    if connection_string:
        env["LOCAL_DEV_STORAGE_CONNECTIONSTRING"] = az.connection_string(account)
    return env | extra


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class SeenVersions:
    """Records the x-ms-version of every request, through the storage pipeline's own
    ``raw_request_hook`` (storage clients take no ``per_call_policies``)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, request: PipelineRequest[Any]) -> None:
        self.seen.append(request.http_request.headers["x-ms-version"])


def assert_refused_by_the_account(error: HttpResponseError) -> None:
    """The SDK's error for a key the account does not accept. Azurite 3.37 answers 403
    AuthorizationFailure (an HttpResponseError); Azure answers 403 AuthenticationFailed, which
    the SDK raises as its subclass ClientAuthenticationError."""
    assert error.status_code == 403
    assert getattr(error, "error_code", None) in ("AuthorizationFailure", "AuthenticationFailed")


# -- writing into the slice's own account ---------------------------------------------------
@pytest.mark.azurite
def test_slice_writes_a_blob_and_a_queue_message(azurite: Azurite) -> None:
    invoices, jobs = unique("invoices-ab"), unique("jobs-ab")
    ctx = SliceContext.from_env(contract(azurite, AB, LOCAL_DEV_NAME_INVOICES=invoices,
                                         LOCAL_DEV_NAME_JOBS=jobs))
    with container(ctx, "invoices") as c:
        c.create_container()
        c.upload_blob("2026/03/inv-1.json", b'{"total": 12}')
    with blob_service(ctx) as svc:
        assert svc.account_name == AB
        data = svc.get_blob_client(invoices, "2026/03/inv-1.json").download_blob().readall()
        assert data == b'{"total": 12}'
    with queue(ctx, "jobs") as q:
        q.create_queue()
        q.send_message("render inv-1")
        assert [m.content for m in q.receive_messages()] == ["render inv-1"]
    with queue_service(ctx) as qs:
        assert jobs in [item.name for item in qs.list_queues()]


@pytest.mark.azurite
@pytest.mark.parametrize("as_named_key", [True, False])
def test_endpoint_templates_work_with_a_key(azurite: Azurite, as_named_key: bool) -> None:
    """http://127.0.0.1:<port>/<account>, as storage.blobEndpointTemplate renders it: the SDK
    takes the account from the path."""
    ctx = SliceContext.from_env(contract(azurite, AB, connection_string=False))
    key = azurite.key(AB)
    credential: Any = AzureNamedKeyCredential(AB, key) if as_named_key else key
    name = unique("templated")
    with blob_service(ctx, credential) as svc:
        svc.create_container(name)
        assert name in [c.name for c in svc.list_containers(name_starts_with="templated")]
    with queue_service(ctx, credential) as qs:
        qs.create_queue(name)
        qs.get_queue_client(name).send_message("hello")


@pytest.mark.azurite
async def test_async_clients(azurite: Azurite) -> None:
    ctx = SliceContext.from_env(contract(azurite, AB, LOCAL_DEV_NAME_INVOICES=unique("invoices-ab"),
                                         LOCAL_DEV_NAME_JOBS=unique("jobs-ab")))
    async with async_container(ctx, "invoices") as c:
        await c.create_container()
        await c.upload_blob("a.txt", b"async")
        assert await (await c.download_blob("a.txt")).readall() == b"async"
    async with async_queue(ctx, "jobs") as q:
        await q.create_queue()
        await q.send_message("async")
        assert [m.content async for m in q.receive_messages()] == ["async"]


# -- other slices' accounts -----------------------------------------------------------------
@pytest.mark.azurite
def test_a_slice_does_not_see_another_slices_containers(azurite: Azurite) -> None:
    private = unique("private-cd")
    cd = SliceContext.from_env(contract(azurite, CD))
    with blob_service(cd) as svc:
        svc.create_container(private)
        svc.get_blob_client(private, "secret.txt").upload_blob(b"cd only")
    ab = SliceContext.from_env(contract(azurite, AB))
    with blob_service(ab) as svc:
        assert not svc.get_container_client(private).exists()


@pytest.mark.azurite
def test_ab_key_cannot_read_cd_account(azurite: Azurite) -> None:
    private = unique("private-cd")
    with blob_service(SliceContext.from_env(contract(azurite, CD))) as svc:
        svc.create_container(private)
        svc.get_blob_client(private, "secret.txt").upload_blob(b"cd only")
    cd_endpoints = SliceContext.from_env(contract(azurite, CD, connection_string=False))
    ab_key = AzureNamedKeyCredential(CD, azurite.key(AB))
    with blob_service(cd_endpoints, ab_key) as svc:
        for read in (lambda: svc.get_blob_client(private, "secret.txt").download_blob(),
                     lambda: list(svc.get_container_client(private).list_blobs()),
                     lambda: list(svc.list_containers())):
            with pytest.raises(HttpResponseError) as info:
                read()
            assert_refused_by_the_account(info.value)


@pytest.mark.azurite
def test_ab_connection_string_pointed_at_cd_endpoint_fails(azurite: Azurite) -> None:
    ab_key = azurite.key(AB)
    crossed = (f"DefaultEndpointsProtocol=http;AccountName={AB};AccountKey={ab_key};"
               f"BlobEndpoint={azurite.blob_endpoint(CD)};")
    ctx = SliceContext.from_env({"LOCAL_DEV_STORAGE_CONNECTIONSTRING": crossed})
    with pytest.raises(ContractError) as info:
        blob_service(ctx)
    message = str(info.value)
    assert f"the shared key is account '{AB}', but the blob endpoint" in message
    assert f"/{CD} (LOCAL_DEV_STORAGE_CONNECTIONSTRING) is account '{CD}'" in message
    assert ab_key not in message
    # Refusing early is a courtesy, not the boundary: the account itself refuses the key.
    with BlobServiceClient.from_connection_string(crossed) as raw, \
            pytest.raises(HttpResponseError) as refused:
        next(iter(raw.list_containers()))
    assert_refused_by_the_account(refused.value)


def test_an_endpoint_of_another_account_is_refused() -> None:
    ctx = SliceContext.from_env({
        "LOCAL_DEV_STORAGE_ACCOUNT": AB,
        "LOCAL_DEV_STORAGE_BLOBENDPOINT": f"http://127.0.0.1:10000/{CD}",
    })
    with pytest.raises(ContractError, match=f"is account '{CD}', but the slice's account"):
        blob_service(ctx, credential="a2V5")
    cloud = SliceContext.from_env({
        "LOCAL_DEV_STORAGE_ACCOUNT": AB,
        "LOCAL_DEV_STORAGE_QUEUEENDPOINT": f"https://{CD}.queue.core.windows.net",
    })
    with pytest.raises(ContractError, match=f"'{CD}'"):
        queue_service(cloud, credential=AzureNamedKeyCredential(AB, "a2V5"))


# -- what the contract lacks ----------------------------------------------------------------
def test_missing_contract_values_are_explained() -> None:
    empty = SliceContext.from_env({})
    with pytest.raises(ContractError, match="no blob endpoint") as info:
        blob_service(empty)
    assert "LOCAL_DEV_STORAGE_BLOBENDPOINT" in str(info.value)
    account_only = SliceContext.from_env({"LOCAL_DEV_STORAGE_ACCOUNT": AB})
    with pytest.raises(ContractError, match=f"queue endpoint for its storage account \\({AB}\\)"):
        queue_service(account_only)
    with pytest.raises(ContractError, match="LOCAL_DEV_NAME_INVOICES"):
        container(SliceContext.from_env({"LOCAL_DEV_STORAGE_BLOBENDPOINT": "https://x"}),
                  "invoices")


def test_azurite_endpoint_without_a_key_is_explained() -> None:
    ctx = SliceContext.from_env({"LOCAL_DEV_STORAGE_ACCOUNT": AB,
                                 "LOCAL_DEV_STORAGE_BLOBENDPOINT": f"http://127.0.0.1:1/{AB}"})
    with pytest.raises(ContractError, match="plain http, and Azure AD sign-in needs https") as info:
        blob_service(ctx)
    assert "LOCAL_DEV_STORAGE_CONNECTIONSTRING" in str(info.value.hint)


@pytest.mark.parametrize("text", ["AccountKey", "AccountName=x;garbage", "EndpointSuffix=x"])
def test_malformed_connection_strings_are_explained_without_the_text(text: str) -> None:
    ctx = SliceContext.from_env({"LOCAL_DEV_STORAGE_CONNECTIONSTRING": text + ";"})
    with pytest.raises(ContractError, match="LOCAL_DEV_STORAGE_CONNECTIONSTRING") as info:
        queue_service(ctx)
    assert text not in str(info.value)


def test_a_named_container_must_be_a_valid_container_name() -> None:
    ctx = SliceContext.from_env({"LOCAL_DEV_STORAGE_BLOBENDPOINT": "https://x",
                                 "LOCAL_DEV_NAME_INVOICES": "Invoices_AB"})
    with pytest.raises(ContractError, match="not a valid blob container name"):
        container(ctx, "invoices")


def test_cloud_endpoints_sign_in_with_azure_ad_and_keep_the_sdk_api_version() -> None:
    ctx = SliceContext.from_env({
        "LOCAL_DEV_STORAGE_ACCOUNT": AB,
        "LOCAL_DEV_STORAGE_BLOBENDPOINT": f"https://{AB}.blob.core.windows.net",
        "LOCAL_DEV_NAME_INVOICES": "invoices-ab",
    })
    with container(ctx, "invoices") as c:  # builds a client; sends nothing
        assert type(c.credential).__name__ == "DefaultAzureCredential"
        assert c.account_name == AB and c.container_name == "invoices-ab"
        assert c.api_version != AZURITE_API_VERSION  # the SDK's own, newer one
        c.credential.close()


async def test_async_cloud_clients_use_the_async_default_credential() -> None:
    ctx = SliceContext.from_env({"LOCAL_DEV_STORAGE_ACCOUNT": AB,
                                 "LOCAL_DEV_STORAGE_BLOBENDPOINT":
                                     f"https://{AB}.blob.core.windows.net"})
    async with async_blob_service(ctx) as svc:
        assert type(svc.credential).__module__.startswith("azure.identity.aio")
        await svc.credential.close()


def test_an_api_version_the_sdk_does_not_know_is_explained() -> None:
    ctx = SliceContext.from_env({"LOCAL_DEV_STORAGE_BLOBENDPOINT": f"http://127.0.0.1:1/{AB}"})
    with pytest.raises(ContractError, match="Unsupported API version '1999-01-01'") as info:
        blob_service(ctx, "a2V5", api_version="1999-01-01")
    assert "upgrade it" in str(info.value.hint)


def test_endpoint_shapes() -> None:
    assert account_of(f"http://127.0.0.1:10000/{AB}") == AB
    assert account_of(f"http://azurite:10000/{AB}/") == AB
    assert account_of(f"https://{AB}.blob.core.windows.net") == AB
    assert account_of(f"https://{AB}-secondary.queue.core.chinacloudapi.cn") == AB
    assert account_of("https://files.company1.example") is None
    assert is_emulator("http://localhost:10000/devstoreaccount1")
    assert is_emulator(f"http://azurite:10000/{AB}")
    assert not is_emulator(f"https://{AB}.blob.core.windows.net/")


# -- the API version pin ---------------------------------------------------------------------
@pytest.mark.azurite
def test_emulator_requests_carry_the_pinned_api_version(azurite: Azurite) -> None:
    ctx = SliceContext.from_env(contract(azurite, AB))
    hook = SeenVersions()
    with blob_service(ctx, raw_request_hook=hook) as svc:
        list(svc.list_containers())
    with queue_service(ctx, raw_request_hook=hook) as qs:
        list(qs.list_queues())
    assert hook.seen == [AZURITE_API_VERSION, AZURITE_API_VERSION]
    with blob_service(ctx, raw_request_hook=hook, api_version="2025-11-05") as svc:
        list(svc.list_containers())  # the caller's choice wins
    assert hook.seen[-1] == "2025-11-05"


@pytest.fixture(scope="module")
def strict_azurite(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite as users often start it: checking API versions. devslice.testing always passes
    --skipApiVersionCheck, so a wrapper drops it on the way (a second start costs ~1 s)."""
    if os.name == "nt":
        pytest.skip("the wrapper is a POSIX shell script")
    wrapper = tmp_path_factory.mktemp("strict") / "azurite-strict"
    wrapper.write_text(
        "#!/bin/sh\n"
        "for a in \"$@\"; do shift; [ \"$a\" = --skipApiVersionCheck ] || set -- \"$@\" \"$a\";"
        " done\n"
        f"exec '{azurite.executable}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    with Azurite(accounts=[AB], executable=str(wrapper)) as strict:
        yield strict


@pytest.mark.azurite
def test_pinned_clients_work_against_an_azurite_that_checks_versions(
        strict_azurite: Azurite) -> None:
    name = unique("strict")
    ctx = SliceContext.from_env(contract(strict_azurite, AB, LOCAL_DEV_NAME_INVOICES=name,
                                         LOCAL_DEV_NAME_JOBS=name))
    with container(ctx, "invoices") as c:
        c.create_container()
        c.upload_blob("x", b"x")
    with queue(ctx, "jobs") as q:
        q.create_queue()
        q.send_message("x")
    # The control: the SDK's default version is refused by this Azurite.
    with BlobServiceClient.from_connection_string(strict_azurite.connection_string(AB)) as raw, \
            pytest.raises(HttpResponseError, match="is not supported by Azurite"):
        raw.create_container(unique("unpinned"))


def test_the_pin_is_what_the_bundled_azurite_declares() -> None:
    """AZURITE_API_VERSION follows node_modules/azurite; a newer Azurite may raise it."""
    dist = Path(__file__).resolve().parent.parent / "node_modules/azurite/dist/src"
    if not dist.exists():
        pytest.skip("azurite is not installed (npm install)")
    for service in ("blob", "queue"):
        constants = (dist / service / "utils" / "constants.js").read_text()
        assert f'"{AZURITE_API_VERSION}"' in constants.split("ValidAPIVersions", 2)[-1]
