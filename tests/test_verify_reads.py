"""Issue 17: `verify` reads the ledger once (on Azure Blob each read is the whole document),
and every check uses that read. Counted with real backends whose `read` counts."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from devslice.ledger.azureblob import AzureBlobLedger
from devslice.ledger.sqlite import SqliteLedger
from devslice.project import Project
from devslice.slices.model import LedgerState
from devslice.testing import Azurite
from devslice.verify import verify

from .test_start_fences import Clock, contract, embedded_project, publish


class CountingSqlite(SqliteLedger):
    reads = 0

    def read(self) -> LedgerState:
        self.reads += 1
        return super().read()


class CountingBlob(AzureBlobLedger):
    reads = 0

    def read(self) -> LedgerState:
        self.reads += 1
        return super().read()


def _verified(project: Project, ledger: CountingSqlite | CountingBlob) -> int:
    project.claim("aa", owner="Ann A")
    publish(contract(project, "aa"), "orders", [f"aa-{i}" for i in range(3)])
    ledger.reads = 0
    checks = verify(project, "aa", runtime="local")
    assert [c.status for c in checks if c.status == "failed"] == [], checks
    assert any(c.name.startswith("a canary") and c.status == "ok" for c in checks), checks
    return ledger.reads


def test_verify_reads_a_sqlite_ledger_once(workdir: Path) -> None:
    loaded = embedded_project(workdir, Clock())
    ledger = CountingSqlite(workdir / "ledger.db", loaded.env.team)
    project = Project(loaded.env, loaded.config_path, ledger=ledger, clock=Clock())
    assert _verified(project, ledger) == 1


@pytest.mark.azurite
def test_verify_reads_an_azure_blob_ledger_once(workdir: Path, azurite: Azurite) -> None:
    loaded = embedded_project(workdir, Clock())
    container = ContainerClient.from_connection_string(
        azurite.connection_string(), f"ledger-{uuid.uuid4().hex[:12]}")
    ledger = CountingBlob(container, "ledger.json", loaded.env.team)
    project = Project(loaded.env, loaded.config_path, ledger=ledger, clock=Clock())
    assert _verified(project, ledger) == 1
