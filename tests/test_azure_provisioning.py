"""A slice's resources in Azure, provisioned by `plan`/`up` through the official management
SDKs against a wire-level fake of Resource Manager (devslice.testing.arm; issue 15)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devslice.access.azure import Azure, AzureLoginRequired, AzureNameTaken, claim_of
from devslice.cloud.plan import slice_resources
from devslice.engine import Executor
from devslice.engine.plan import make_plan
from devslice.project import Project
from devslice.testing.arm import FakeAzure, StaticToken, seed_team

SUB = "00000000-0000-0000-0000-000000000001"
CONFIG = f"""\
apiVersion: devslice.dev/v1alpha1
kind: Environment
team: company1
ledger: {{backend: sqlite, soloTeam: true}}
eventHubs:
  mode: shared
  eventHubs: [orders]
  namespaces: [{{name: company1-ehns, partitions: 4}}]
storage: {{mode: shared, blobEndpointTemplate: "https://{{account}}.blob.core.windows.net"}}
dataExplorer:
  mode: shared
  clusterUrl: https://company1adx.westeurope.kusto.windows.net
  softDeletePeriod: 30d
  hotCachePeriod: 2d
  dataConnection: {{database: ingest, name: orders-connection}}
  schemaScript: schema.kql
signalR: {{mode: shared, endpoint: "https://x.service.signalr.net", hubs: [notifications]}}
names:
  invoices: {{template: "inv4{{slice}}", rule: container}}
  jobs: {{template: "jobs4{{slice}}", rule: queue}}
  billing: {{template: "billing-{{slice}}", rule: consumerGroup}}
azure:
  subscription: "{SUB}"
  resourceGroup: rg1
  location: westeurope
  tags: {{costCenter: "42"}}
"""


@pytest.fixture
def fake() -> Iterator[FakeAzure]:
    with FakeAzure(subscription=SUB) as f:
        seed_team(f, "rg1", kusto_cluster="company1adx",
                  data_connection=("ingest", "orders-connection", "Multi"),
                  eventhub_namespace="company1-ehns", eventhubs=["orders"])
        yield f


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("DEVSLICE_OWNER", "ann.b@example.com")
    (tmp_path / "devslice.yaml").write_text(CONFIG)
    (tmp_path / "schema.kql").write_text(".create-merge table Orders (Id: string)\n")
    project = Project.load(tmp_path / "devslice.yaml")
    project.claim("ab")
    return project


def azure_for(project: Project, fake: FakeAzure, credential: object = None) -> Azure:
    """The official clients pointed at the fake, trusting its certificate."""
    azure = Azure.from_settings(project.env.azure, credential=credential or StaticToken(),
                                environ={}, connection_verify=str(fake.ca_path),
                                polling_interval=0)
    azure.management_endpoint = fake.url
    return azure


def resources(project: Project, fake: FakeAzure, applied: list[str] | None = None,
              **kw: object) -> list:
    return slice_resources(project, "ab", azure_for(project, fake),
                           apply_schema=(applied if applied is not None else []).append,
                           **kw)  # type: ignore[arg-type]


def test_a_new_slices_plan_lists_the_azure_calls_and_changes_nothing(
        project: Project, fake: FakeAzure) -> None:
    plan = make_plan(resources(project, fake))
    text = plan.render()
    base = f"{fake.url}/subscriptions/{SUB}"
    assert f"POST {base}/providers/Microsoft.Storage/checkNameAvailability" in text
    assert f"PUT {base}/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/" \
           "company1stacc4ab (StorageV2, Standard_LRS, westeurope, TLS1_2, no public blob " \
           "access" in text
    for child in ("blobServices/default/containers/inv4ab",
                  "blobServices/default/containers/eventhub-checkpoints",
                  "queueServices/default/queues/jobs4ab"):
        assert f"storageAccounts/company1stacc4ab/{child}" in text
    assert "Microsoft.Kusto/clusters/company1adx/databases/db4ab (ReadWrite, softDeletePeriod " \
           "P30D, hotCachePeriod P2D)" in text
    assert "Microsoft.EventHub/namespaces/company1-ehns/eventhubs/orders/consumergroups/" \
           "billing-ab" in text
    assert "data connection ingest/orders-connection allows multi-database routing" in text
    assert "SignalR hubs notifications_ab are logical: nothing needs creating" in text
    assert fake.changing() == []


def test_up_creates_everything_tagged_and_a_second_up_only_reads(
        project: Project, fake: FakeAzure) -> None:
    applied: list[str] = []
    Executor().apply(resources(project, fake, applied))
    s = project.get("ab")
    account = fake.get(fake.rid("rg1", "Microsoft.Storage", ("storageAccounts",
                                                             "company1stacc4ab")))
    assert account is not None
    assert account["tags"] == {"costCenter": "42", "managed-by": "devslice",
                               "devslice-team": "company1", "devslice-slice": "ab",
                               "devslice-claim": claim_of(s)}
    assert account["kind"] == "StorageV2" and account["sku"] == {"name": "Standard_LRS"}
    assert account["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert account["properties"]["allowBlobPublicAccess"] is False
    db = fake.get(fake.rid("rg1", "Microsoft.Kusto", ("clusters", "company1adx"),
                           ("databases", "db4ab")))
    assert db is not None and db["properties"]["softDeletePeriod"] == "P30D"
    assert db["properties"]["provisioningState"] == "Succeeded"
    assert applied == ["db4ab"]  # the schema script ran on the new database
    group = fake.get(fake.rid("rg1", "Microsoft.EventHub", ("namespaces", "company1-ehns"),
                              ("eventhubs", "orders"), ("consumergroups", "billing-ab")))
    assert group is not None
    assert json.loads(group["properties"]["userMetadata"])["devslice-claim"] == claim_of(s)
    # Long-running creates were polled through Location and Azure-AsyncOperation.
    assert any("/operations/" in r.path for r in fake.requests)
    assert any("/operationresults/" in r.path for r in fake.requests)

    seen = len(fake.requests)
    again = make_plan(resources(project, fake))
    assert again.empty, again.render()
    Executor().apply(resources(project, fake))
    assert [r for r in fake.requests[seen:] if r.method not in ("GET",)] == []
    assert applied == ["db4ab"]


def test_a_storage_account_name_taken_elsewhere_names_the_template(
        project: Project, fake: FakeAzure) -> None:
    fake.taken_elsewhere.add("company1stacc4ab")
    with pytest.raises(AzureNameTaken) as info:
        make_plan(resources(project, fake))
    assert "company1stacc4ab is taken elsewhere in Azure" in info.value.message
    assert "storage.accountTemplate ('{team}stacc4{slice}')" in str(info.value.hint)


def test_an_untagged_account_of_the_same_name_is_used_but_never_changed(
        project: Project, fake: FakeAzure) -> None:
    rid = fake.rid("rg1", "Microsoft.Storage", ("storageAccounts", "company1stacc4ab"))
    fake.put(rid, {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_GRS"},
                   "tags": {"owner": "someone"}})
    plan = make_plan(resources(project, fake))
    assert "exists without devslice's tags: used as it is, never changed or deleted" in \
        plan.render()
    Executor().apply(resources(project, fake))
    assert fake.get(rid)["tags"] == {"owner": "someone"}  # type: ignore[index]
    assert not [r for r in fake.changing() if r.path.endswith("company1stacc4ab")]


def test_single_database_routing_is_reported_not_changed(
        project: Project, fake: FakeAzure) -> None:
    conn = fake.rid("rg1", "Microsoft.Kusto", ("clusters", "company1adx"),
                    ("databases", "ingest"), ("dataConnections", "orders-connection"))
    fake.get(conn)["properties"]["databaseRouting"] = "Single"  # type: ignore[index]
    text = make_plan(resources(project, fake)).render()
    assert "attention: data connection ingest/orders-connection has databaseRouting Single" \
        in text
    Executor().apply(resources(project, fake))
    assert fake.get(conn)["properties"]["databaseRouting"] == "Single"  # type: ignore[index]
    assert not [r for r in fake.changing() if "dataConnections" in r.path]


def test_an_interrupted_create_is_picked_up_by_the_next_up(
        project: Project, fake: FakeAzure) -> None:
    """Ctrl-C during the wait: Azure goes on; the next plan sees the account being created."""
    fake.lro_polls = 10**6  # never finishes while nobody asks again
    azure = azure_for(project, fake)
    azure.storage.storage_accounts.begin_create(
        "rg1", "company1stacc4ab", {"location": "westeurope", "kind": "StorageV2",
                                    "sku": {"name": "Standard_LRS"}, "tags": {}})
    plan = make_plan(resources(project, fake))
    assert "storage account company1stacc4ab is Creating (an earlier `up` was interrupted)" \
        in plan.render()
    fake.lro_polls = 0
    Executor().apply(resources(project, fake))
    assert make_plan(resources(project, fake)).empty


class Expired:
    """What azure-identity raises when `az login` expired or never happened."""

    def get_token(self, *scopes: str, **kwargs: object) -> object:
        from azure.identity import CredentialUnavailableError

        raise CredentialUnavailableError("Please run 'az login' to set up an account")


def test_a_missing_login_is_one_clear_error_naming_az_login(
        project: Project, fake: FakeAzure) -> None:
    azure = azure_for(project, fake, credential=Expired())
    with pytest.raises(AzureLoginRequired) as info:
        make_plan(slice_resources(project, "ab", azure))
    assert "not signed in to Azure" in info.value.message
    assert "az login" in str(info.value.hint)
    assert fake.requests == [] or all(r.method == "GET" for r in fake.requests)


def test_the_clouds_endpoints_follow_the_setting(project: Project) -> None:
    from devslice.config.model import AzureSettings

    china = Azure.from_settings(AzureSettings(subscription=SUB, resource_group="rg",
                                              cloud="china"), environ={})
    assert china.endpoint == "https://management.chinacloudapi.cn"
    assert china.cloud.storage_suffix == "core.chinacloudapi.cn"
    gov = Azure.from_settings(AzureSettings(subscription=SUB, resource_group="rg",
                                            cloud="usgovernment"), environ={})
    assert gov.endpoint == "https://management.usgovcloudapi.net"
    assert gov.cloud.vault_suffix == "vault.usgovcloudapi.net"


def test_verify_reports_the_data_connections_routing(project: Project, fake: FakeAzure) -> None:
    from devslice.verify import verify

    def routing() -> tuple[str, str]:
        checks = {c.name: c for c in verify(project, "ab", runtime="local",
                                            azure=azure_for(project, fake))}
        c = checks["events reach the slice's database"]
        return c.status, c.detail

    assert routing() == ("ok", "data connection ingest/orders-connection allows "
                               "multi-database routing")
    conn = fake.rid("rg1", "Microsoft.Kusto", ("clusters", "company1adx"),
                    ("databases", "ingest"), ("dataConnections", "orders-connection"))
    fake.get(conn)["properties"]["databaseRouting"] = "Single"  # type: ignore[index]
    status, detail = routing()
    assert status == "failed" and "databaseRouting Single" in detail
    assert fake.changing() == []


def test_the_fake_answers_as_resource_manager_documents(project: Project,
                                                         fake: FakeAzure) -> None:
    """What the fake must refuse, through the official client: a missing parent is 404, a
    name taken elsewhere is 409, a missing resource is 404, no token is 401."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
    )
    from azure.mgmt.storage import StorageManagementClient

    azure = azure_for(project, fake)
    with pytest.raises(ResourceNotFoundError, match="ParentResourceNotFound"):
        azure.storage.blob_containers.create("rg1", "nosuchaccount", "c1", {"properties": {}})
    with pytest.raises(ResourceNotFoundError, match="ResourceGroupNotFound"):
        azure.storage.storage_accounts.get_properties("rg-missing", "company1stacc4ab")
    with pytest.raises(ResourceNotFoundError, match="ResourceNotFound"):
        azure.storage.storage_accounts.get_properties("rg1", "company1stacc4ab")
    fake.taken_elsewhere.add("takenname1")
    with pytest.raises(HttpResponseError) as info:
        azure.storage.storage_accounts.begin_create(
            "rg1", "takenname1", {"location": "westeurope", "kind": "StorageV2",
                                  "sku": {"name": "Standard_LRS"}}).result()
    assert info.value.status_code == 409 and "StorageAccountAlreadyTaken" in str(info.value)
    check = azure.storage.storage_accounts.check_name_availability(
        {"name": "takenname1", "type": "Microsoft.Storage/storageAccounts"})
    assert check.name_available is False and check.reason == "AlreadyExists"

    class NoToken:
        def get_token(self, *scopes: str, **kwargs: object) -> object:
            from azure.core.credentials import AccessToken

            return AccessToken("", 4070908800)

    bare = StorageManagementClient(NoToken(), SUB, base_url=fake.url,  # type: ignore[arg-type]
                                   connection_verify=str(fake.ca_path))
    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as denied:
        bare.storage_accounts.get_properties("rg1", "company1stacc4ab")
    assert denied.value.status_code == 401


def test_up_adopt_tags_a_same_named_account_as_the_slices(project: Project,
                                                         fake: FakeAzure) -> None:
    rid = fake.rid("rg1", "Microsoft.Storage", ("storageAccounts", "company1stacc4ab"))
    fake.put(rid, {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
                   "tags": {"owner": "someone"}})
    plan = make_plan(resources(project, fake, adopt=True)).render()
    assert "storage account company1stacc4ab: " in plan and "tags -> devslice's" in plan
    Executor().apply(resources(project, fake, adopt=True))
    tags = fake.get(rid)["tags"]  # type: ignore[index]
    assert tags["owner"] == "someone"  # theirs kept
    assert tags["devslice-claim"] == claim_of(project.get("ab"))
    assert make_plan(resources(project, fake)).empty  # adopted: ours from now on
