"""`slice release` / `slice gc` with --delete-resources, and `adx reset` on a real cluster,
against the Resource Manager fake, through the CLI with the real credential chain
(DefaultAzureCredential reaching a fake `az`; issue 15)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devslice.access.azure import Azure, AzureLoginRequired
from devslice.cli.app import run
from devslice.cloud.plan import slice_resources
from devslice.engine import Executor
from devslice.engine.plan import make_plan
from devslice.project import Project
from devslice.testing.arm import FakeAzure, seed_team

from .helpers import FAKES
from .test_azure_provisioning import CONFIG, SUB


@pytest.fixture
def fake() -> Iterator[FakeAzure]:
    with FakeAzure(subscription=SUB, lro_polls=0) as f:
        seed_team(f, "rg1", kusto_cluster="company1adx",
                  data_connection=("ingest", "orders-connection", "Multi"),
                  eventhub_namespace="company1-ehns", eventhubs=["orders"])
        yield f


@pytest.fixture
def cli_azure(fake: FakeAzure, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """devslice.yaml pointing at the fake; `az` is the fake CLI; the fake's certificate
    trusted through REQUESTS_CA_BUNDLE (what requests, under azure-core, reads)."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").symlink_to(FAKES / "az")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_path))
    monkeypatch.setenv("DEVSLICE_OWNER", "ann.b@example.com")
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_FEDERATED_TOKEN_FILE", "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP",
                 "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    (workdir / "devslice.yaml").write_text(
        CONFIG + f"  managementEndpoint: {fake.url}\n")
    (workdir / "schema.kql").write_text(".create-merge table Orders (Id: string)\n")
    return workdir


def up(project: Project, handle: str) -> None:
    """`up`'s Azure part, with the CLI's own adapter (DefaultAzureCredential -> fake az)."""
    azure = Azure.from_settings(project.env.azure, polling_interval=0)
    Executor().apply(slice_resources(project, handle, azure, apply_schema=lambda db: None))
    azure.close()


def account(fake: FakeAzure, name: str) -> dict | None:  # type: ignore[type-arg]
    return fake.get(fake.rid("rg1", "Microsoft.Storage", ("storageAccounts", name)))


def test_release_deletes_only_what_is_tagged_for_the_claim(
        cli_azure: Path, fake: FakeAzure, capsys: pytest.CaptureFixture[str]) -> None:
    project = Project.load()
    project.claim("ab")
    project.claim("cd", owner="carl.d@example.com")
    up(project, "ab")
    # cd's account exists already, made by hand: same name, no devslice tags.
    fake.put(fake.rid("rg1", "Microsoft.Storage", ("storageAccounts", "company1stacc4cd")),
             {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
              "tags": {"owner": "carl"}})
    assert account(fake, "company1stacc4ab") is not None
    capsys.readouterr()

    assert run(["slice", "release", "cd", "--force", "--delete-resources", "-y", "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    refused = {r["kind"]: r for r in out["resources"]}
    assert refused["storage account"]["outcome"] == "refused"
    assert "--adopt" in refused["storage account"]["reason"]
    assert account(fake, "company1stacc4cd") is not None  # never deleted without --adopt

    assert run(["slice", "release", "ab", "--delete-resources", "-y", "-o", "json"]) == 0
    done = {r["kind"]: r["outcome"] for r in json.loads(capsys.readouterr().out)["resources"]}
    assert done == {"storage account": "deleted", "database": "deleted",
                    "consumer group": "deleted"}
    assert account(fake, "company1stacc4ab") is None
    assert fake.get(fake.rid("rg1", "Microsoft.Kusto", ("clusters", "company1adx"),
                             ("databases", "db4ab"))) is None
    # The team's own resources are untouched.
    assert fake.get(fake.rid("rg1", "Microsoft.Kusto", ("clusters", "company1adx"),
                             ("databases", "ingest"))) is not None
    assert fake.get(fake.rid("rg1", "Microsoft.EventHub", ("namespaces", "company1-ehns"),
                             ("eventhubs", "orders"))) is not None


def test_adopt_deletes_an_untagged_account_of_the_slice(
        cli_azure: Path, fake: FakeAzure, capsys: pytest.CaptureFixture[str]) -> None:
    Project.load().claim("cd", owner="carl.d@example.com")
    rid = fake.rid("rg1", "Microsoft.Storage", ("storageAccounts", "company1stacc4cd"))
    fake.put(rid, {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "x"}})
    assert run(["slice", "release", "cd", "--force", "--delete-resources", "-y",
                "--adopt"]) == 0
    assert fake.get(rid) is None


def test_a_failed_delete_is_recorded_and_retried_by_the_next_gc(
        cli_azure: Path, fake: FakeAzure, capsys: pytest.CaptureFixture[str]) -> None:
    project = Project.load()
    project.claim("ab")
    up(project, "ab")
    rid = fake.rid("rg1", "Microsoft.Storage", ("storageAccounts", "company1stacc4ab"))
    fake.fail_deletes.add(rid.lower())
    assert run(["slice", "release", "ab", "--delete-resources", "-y"]) == 1
    assert "recorded in the ledger" in capsys.readouterr().out
    assert fake.get(rid) is not None
    assert any(c.action == "azure-leftover" for c in project.ledger.history(limit=1000))
    fake.fail_deletes.clear()
    assert run(["slice", "gc", "--delete-resources", "-y", "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["outcome"] for r in out["resources"]] == ["deleted"]
    assert fake.get(rid) is None
    # Nothing is left to retry.
    assert run(["slice", "gc", "--delete-resources", "-y", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["resources"] == []


def test_adx_reset_recreates_the_database_on_a_real_cluster(
        cli_azure: Path, fake: FakeAzure, capsys: pytest.CaptureFixture[str]) -> None:
    project = Project.load()
    project.claim("ab")
    up(project, "ab")
    rid = fake.rid("rg1", "Microsoft.Kusto", ("clusters", "company1adx"), ("databases", "db4ab"))
    before = len(fake.requests)
    assert run(["adx", "reset", "--slice", "ab", "-y", "--no-schema"]) == 0
    calls = [(r.method, r.path) for r in fake.requests[before:] if r.method != "GET"]
    assert ("DELETE", rid) in calls and ("PUT", rid) in calls
    assert calls.index(("DELETE", rid)) < calls.index(("PUT", rid))
    assert fake.get(rid)["properties"]["provisioningState"] == "Succeeded"  # type: ignore[index]
    assert "re-created database db4ab" in capsys.readouterr().out


def test_an_expired_login_is_one_error_naming_az_login(
        cli_azure: Path, fake: FakeAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_AZ_LOGGED_OUT", "1")
    project = Project.load()
    project.claim("ab")
    azure = Azure.from_settings(project.env.azure)
    with pytest.raises(AzureLoginRequired) as info:
        make_plan(slice_resources(project, "ab", azure))
    assert "az login" in str(info.value.hint)
    assert fake.requests == []
