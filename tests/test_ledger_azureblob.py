"""The team ledger in Azure Blob Storage, against a real Azurite: optimistic concurrency with
ETags, and documents it did not write are reported, never overwritten."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from devslice.errors import LedgerBusy, LedgerCorrupt, LedgerUnreachable
from devslice.ledger.azureblob import AzureBlobLedger
from devslice.project import Project
from devslice.slices.model import LedgerState
from devslice.slices.operations import Transition
from devslice.testing import Azurite

from .helpers import env_from

pytestmark = pytest.mark.azurite
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def container(azurite: Azurite) -> ContainerClient:
    return ContainerClient.from_connection_string(
        azurite.connection_string(), f"ledger-{uuid.uuid4().hex[:12]}")


def project(ledger: AzureBlobLedger, actor: str = "ann@laptop") -> Project:
    return Project(env_from(), Path("devslice.yaml"), ledger=ledger, clock=lambda: NOW,
                   actor=actor)


def test_first_claim_creates_container_and_document(container: ContainerClient) -> None:
    ledger = AzureBlobLedger(container, "ledger.json", "company1")
    s, created = project(ledger).claim("ab")
    assert created
    assert ledger.read().slices == {"ab": s}
    doc = container.download_blob("ledger.json").readall()
    assert b'"kind": "Ledger"' in doc and b'"team": "company1"' in doc


def test_a_write_in_between_is_detected_and_retried(container: ContainerClient) -> None:
    """Another writer changes the document between our read and our write: our If-Match
    write gets 412, we read again, and both claims end up in the ledger, apart."""
    mine = AzureBlobLedger(container, "ledger.json", "company1")
    theirs = project(AzureBlobLedger(container, "ledger.json", "company1"), actor="bob@desk")
    project(mine).claim("zz")  # the document exists, so the next write is an If-Match write
    attempts: list[LedgerState] = []

    def claim_with_interference(state: LedgerState) -> Transition[str]:
        attempts.append(state)
        if len(attempts) == 1:
            theirs.claim("cd", owner="Carl Dahl")  # lands between our read and our write
        return _claim_ab(state)

    result = mine.transact(claim_with_interference)
    assert len(attempts) == 2
    assert "cd" not in attempts[0].slices and "cd" in attempts[1].slices
    final = mine.read().slices
    assert set(final) == {"zz", "ab", "cd"}
    assert final["ab"].event_hubs.partitions != final["cd"].event_hubs.partitions
    assert result.value is not None


def _claim_ab(state: LedgerState) -> Transition[str]:
    from devslice.slices import operations as ops
    from devslice.slices.names import HandleRule
    from devslice.slices.partitions import NamespaceCapacity, PartitionPool

    pool = PartitionPool((NamespaceCapacity("embedded", 32, frozenset()),))
    t = ops.claim(state, ops.ClaimRequest(owner="Anna Berg", handle="ab"), pool, HandleRule(),
                  NOW, "ann@laptop")
    return Transition(t.state, t.changes, "ab")


def test_endless_interference_gives_up_clearly(container: ContainerClient) -> None:
    mine = AzureBlobLedger(container, "ledger.json", "company1", max_attempts=3)
    other = AzureBlobLedger(container, "ledger.json", "company1")
    project(mine).claim("zz")
    n = iter(range(100))

    def always_interfere(state: LedgerState) -> Transition[str]:
        project(other).claim(f"x{next(n)}", owner=f"Other {next(n)}")
        return _claim_ab(state)

    with pytest.raises(LedgerBusy, match="gave up after 3 attempts"):
        mine.transact(always_interfere)
    assert "ab" not in mine.read().slices


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "is not JSON"),
        (b"[1, 2]", "is not a JSON object"),
        (b'{"apiVersion": "other.tool/v1", "kind": "Ledger", "team": "company1"}',
         "has apiVersion 'other.tool/v1', expected 'devslice.dev/v1alpha1'"),
        (b'{"apiVersion": "devslice.dev/v1alpha1", "kind": "Ledger", "team": "other"}',
         "has team 'other', expected 'company1'"),
        (b'{"apiVersion": "devslice.dev/v1alpha1", "kind": "Ledger", "team": "company1", '
         b'"slices": {"ab": {"handle": 1}}}',
         "holds records devslice will not act on: slice .ab.: is unreadable"),
    ],
)
def test_foreign_or_corrupt_document_is_reported_not_overwritten(
    container: ContainerClient, body: bytes, message: str
) -> None:
    container.create_container()
    container.upload_blob("ledger.json", body)
    ledger = AzureBlobLedger(container, "ledger.json", "company1")
    with pytest.raises(LedgerCorrupt, match=message) as info:
        project(ledger).claim("ab")
    assert "never overwrites" in (info.value.hint or "")
    assert container.download_blob("ledger.json").readall() == body


def test_unreachable_ledger_names_the_url_not_the_key(azurite: Azurite) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = azurite.connection_string().replace(str(azurite.blob_port), str(port))
    client = ContainerClient.from_connection_string(conn, "devslice", retry_total=0)
    ledger = AzureBlobLedger(client, "ledger.json", "company1")
    with pytest.raises(LedgerUnreachable) as info:
        ledger.read()
    text = str(info.value)
    assert f"127.0.0.1:{port}/devstoreaccount1/devslice/ledger.json" in text
    assert azurite.key("devstoreaccount1") not in text


def test_wrong_key_is_reported_as_credentials(azurite: Azurite) -> None:
    conn = azurite.connection_string().replace(azurite.key("devstoreaccount1"), "d3Jvbmc=")
    ledger = AzureBlobLedger(ContainerClient.from_connection_string(conn, "devslice"),
                             "ledger.json", "company1")
    with pytest.raises(LedgerUnreachable) as info:
        ledger.read()
    assert "refused our credentials" in info.value.message


def test_history_is_kept_in_the_document(container: ContainerClient) -> None:
    ledger = AzureBlobLedger(container, "ledger.json", "company1")
    p = project(ledger)
    p.claim("ab")
    p.renew("ab")
    p.release("ab")
    assert [(c.action, c.actor) for c in ledger.history()] == [
        ("claim", "ann@laptop"), ("renew", "ann@laptop"), ("release", "ann@laptop")]
    assert [c.action for c in ledger.history("ab", limit=1)] == ["release"]


def test_idempotent_claim_does_not_write(container: ContainerClient) -> None:
    ledger = AzureBlobLedger(container, "ledger.json", "company1")
    p = project(ledger)
    p.claim("ab")
    etag = container.get_blob_client("ledger.json").get_blob_properties().etag
    _, created = p.claim("ab")
    assert not created
    assert container.get_blob_client("ledger.json").get_blob_properties().etag == etag


def test_a_sas_token_never_appears_in_messages(azurite: Azurite) -> None:
    sas_url = (f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1/devslice"
               "?sv=2024-08-04&sig=TOPSECRETSIG%3D")
    ledger = AzureBlobLedger(ContainerClient.from_container_url(sas_url), "ledger.json",
                             "company1")
    assert "TOPSECRET" not in ledger.location
    assert ledger.location.endswith("/devstoreaccount1/devslice/ledger.json")


def test_a_malformed_connection_string_is_a_message(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from devslice.config.model import AzureBlobLedger as Settings
    from devslice.config.model import SecretRef

    monkeypatch.setenv("L", "garbage-with-AccountKey=SECRET")
    settings = Settings(backend="azureBlob", connection_string=SecretRef(from_env="L"))
    with pytest.raises(LedgerUnreachable) as info:
        AzureBlobLedger.from_settings(settings, "company1", tmp_path)
    assert "connection string (env:L) is malformed" in info.value.message
    assert "SECRET" not in str(info.value)
