"""Opt-in: provisioning and teardown against real Azure Resource Manager (issue 15).

Set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP (an existing group you may create storage
accounts in) and DEVSLICE_LIVE_AZURE_LOCATION (e.g. westeurope), and sign in (`az login`, or
AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET). DEVSLICE_LIVE_KEYVAULT and
DEVSLICE_LIVE_KEYVAULT_SECRET add the Key Vault test. Each run uses a fresh storage account
name and deletes it at the end.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.live
NEEDED = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "DEVSLICE_LIVE_AZURE_LOCATION")
MISSING = [v for v in NEEDED if not os.environ.get(v)]


@pytest.mark.skipif(bool(MISSING), reason=f"live Azure settings are not set: {', '.join(MISSING)}")
def test_a_slices_storage_account_is_created_tagged_read_only_again_and_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devslice.access.azure import Azure
    from devslice.cloud.plan import slice_resources
    from devslice.cloud.teardown import delete_slice_resources
    from devslice.engine import Executor
    from devslice.engine.plan import make_plan
    from devslice.project import Project

    team = "ds" + uuid.uuid4().hex[:6]  # a fresh, global storage account name per run
    (tmp_path / "devslice.yaml").write_text(f"""\
apiVersion: devslice.dev/v1alpha1
kind: Environment
team: {team}
ledger: {{backend: sqlite, soloTeam: true}}
storage: {{mode: shared, blobEndpointTemplate: "https://{{account}}.blob.core.windows.net"}}
eventHubs: {{mode: shared, eventHubs: [orders], namespaces: [{{name: live-ehns}}]}}
names: {{invoices: {{template: "inv4{{slice}}", rule: container}}}}
azure: {{location: {os.environ["DEVSLICE_LIVE_AZURE_LOCATION"]}}}
""")
    monkeypatch.setenv("DEVSLICE_OWNER", "live.test@example.com")
    project = Project.load(tmp_path / "devslice.yaml")
    s, _ = project.claim("lv")
    azure = Azure.from_settings(project.env.azure)
    try:
        Executor().apply(slice_resources(project, "lv", azure))
        assert make_plan(slice_resources(project, "lv", azure)).empty
    finally:
        removals = delete_slice_resources(azure, project.env, s, project.ledger)
        azure.close()
    assert [r.outcome for r in removals if r.kind == "storage account"] == ["deleted"]


@pytest.mark.skipif(not (os.environ.get("DEVSLICE_LIVE_KEYVAULT")
                         and os.environ.get("DEVSLICE_LIVE_KEYVAULT_SECRET")),
                    reason="live Key Vault settings are not set: DEVSLICE_LIVE_KEYVAULT, "
                    "DEVSLICE_LIVE_KEYVAULT_SECRET")
def test_a_key_vault_secret_is_read() -> None:
    from devslice.access.keyvault import Vaults
    from devslice.config.model import KeyVaultRef

    value = Vaults().read(KeyVaultRef(vault=os.environ["DEVSLICE_LIVE_KEYVAULT"],
                                      secret=os.environ["DEVSLICE_LIVE_KEYVAULT_SECRET"]))
    assert value
