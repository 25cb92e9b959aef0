"""fromKeyVault: a secret read from Azure Key Vault with azure-keyvault-secrets, against the
wire-level fake (devslice.testing.arm), reaches the pods' Secret and nothing else (issue 15)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from devslice.access.keyvault import VAULTS
from devslice.cli.app import run
from devslice.config.model import KeyVaultRef
from devslice.errors import SecretUnavailable
from devslice.project import Project
from devslice.testing.arm import FakeAzure, StaticToken

from .helpers import BASE

SECRET = "Endpoint=sb://company1-ehns1.servicebus.windows.net/;SharedAccessKey=kv+s3cr3t="
CONFIG = BASE + textwrap.dedent("""\
    ledger: {backend: sqlite, soloTeam: true}
    eventHubs:
      mode: shared
      namespaces:
        - name: company1-ehns1
          connectionString: {fromKeyVault: {vault: company1-kv, secret: eventhubs-connection}}
""")


@pytest.fixture
def vault(workdir: Path) -> Iterator[FakeAzure]:
    with FakeAzure() as fake:
        fake.secrets[("company1-kv", "eventhubs-connection")] = SECRET

        def client(url: str, credential: Any) -> Any:
            from azure.keyvault.secrets import SecretClient

            # The fake answers at 127.0.0.1, so the challenge's resource (vault.azure.net)
            # cannot match the host: that one check is off here, never in production.
            name = url.removeprefix("https://").split(".")[0]
            return SecretClient(fake.vault_url(name), credential,
                                verify_challenge_resource=False,
                                connection_verify=str(fake.ca_path))

        saved = (VAULTS.credential, VAULTS.client_factory)
        VAULTS.credential, VAULTS.client_factory = StaticToken(), client
        VAULTS.begin()
        try:
            yield fake
        finally:
            VAULTS.credential, VAULTS.client_factory = saved
            VAULTS.begin()


def test_a_key_vault_secret_reaches_the_pods_secret_and_nothing_else(
        vault: FakeAzure, workdir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # the --explain table on one line per variable
    (workdir / "devslice.yaml").write_text(CONFIG)
    Project.load().claim("ab")
    capsys.readouterr()
    assert run(["env", "--slice", "ab", "-o", "k8s"]) == 0
    config_map, secret = YAML(typ="safe").load_all(
        (workdir / ".devslice" / "ab.k8s.yaml").read_text())
    assert secret["stringData"] == {"LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING": SECRET}
    assert SECRET not in json.dumps(config_map)
    capsys.readouterr()
    assert run(["env", "--slice", "ab", "-o", "json"]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert json.loads(out.out)["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"] == "********"
    for argv in (["env", "--slice", "ab"], ["env", "--slice", "ab", "--explain"]):
        assert run(argv) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    # eval "$(devslice env)" reads it with the Azure CLI, as it reads fromEnv and fromFile.
    assert 'export LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING="$(az keyvault secret show ' \
        "--vault-name company1-kv --name eventhubs-connection --query value -o tsv)" in out.out
    # The vault was asked with a bearer token after its challenge, as the real one demands.
    reads = [r for r in vault.requests if r.path.rstrip("/") == "/vaults/company1-kv/secrets/"
             "eventhubs-connection"]
    assert reads and reads[0].api_version


def test_key_vault_values_are_cached_for_one_command_only(vault: FakeAzure) -> None:
    ref = KeyVaultRef(vault="company1-kv", secret="eventhubs-connection")
    before = VAULTS.reads
    assert VAULTS.read(ref) == SECRET
    assert VAULTS.read(ref) == SECRET
    assert VAULTS.reads == before + 1  # cached within the command
    vault.secrets[("company1-kv", "eventhubs-connection")] = "rotated"
    VAULTS.begin()  # the next command
    assert VAULTS.read(ref) == "rotated"


def test_a_missing_key_vault_secret_is_a_clear_error(vault: FakeAzure) -> None:
    with pytest.raises(SecretUnavailable) as info:
        VAULTS.read(KeyVaultRef(vault="company1-kv", secret="nope"))
    assert info.value.message == "secret nope in Key Vault company1-kv does not exist"
    assert "az keyvault secret set --vault-name company1-kv --name nope" in str(info.value.hint)


def test_vault_urls_follow_the_cloud() -> None:
    from devslice.access.keyvault import Vaults

    v = Vaults()
    assert v.url("company1-kv") == "https://company1-kv.vault.azure.net"
    v.begin("china")
    assert v.url("company1-kv") == "https://company1-kv.vault.azure.cn"
    v.begin("usgovernment")
    assert v.url("company1-kv") == "https://company1-kv.vault.usgovcloudapi.net"
