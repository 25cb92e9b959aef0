"""What `devslice env` writes is what the SDK reads: the contract end to end, including a
team's renamed variables, overrides, file secrets, expiry and the emulator storage account."""

from __future__ import annotations

import json
import subprocess
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from devslice.cli.app import run
from devslice.errors import ConfigError, SliceError
from devslice.project import Project
from devslice.sdk import SliceContext
from devslice.sdk.context import ContractError
from devslice.testing import Azurite

from .helpers import BASE, SOLO


def contract(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    assert run(["env", "-o", "json", *args]) == 0
    data: dict[str, str] = json.loads(capsys.readouterr().out)
    return data


def test_renamed_variables_still_reach_the_sdk(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "devslice.yaml").write_text(
        BASE + "contract: {prefix: DEV_, partitionIdsVariable: ORDERS_PARTITIONS}\n")
    assert run(["slice", "claim", "--partitions", "2"]) == 0
    capsys.readouterr()
    variables = contract(capsys)
    assert variables["ORDERS_PARTITIONS"] == "0,1"
    assert variables["DEVSLICE_CONTRACT_PREFIX"] == "DEV_"
    ctx = SliceContext.from_env(variables)
    assert (ctx.handle, ctx.partition_ids, ctx.data_explorer_database) == ("ab", ("0", "1"),
                                                                           "db4ab")


def test_a_slice_without_partitions_is_refused_not_treated_as_shared() -> None:
    from devslice.sdk.eventhubs import Router

    ctx = SliceContext.from_env({"LOCAL_DEV_SLICE": "ab",
                                 "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": " "})
    with pytest.raises(ContractError, match="slice 'ab' has no partitions: "
                                            "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS is not set"):
        Router(ctx)
    with pytest.raises(ContractError, match="is not a partition count"):
        SliceContext.from_env({"LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT": "lots"})
    assert SliceContext.from_env({}).is_shared


def config_errors(workdir: Path, text: str) -> str:
    (workdir / "devslice.yaml").write_text(BASE + textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        Project.load()
    return str(info.value)


def test_variable_names_must_be_shell_safe_and_outside_the_contract(workdir: Path) -> None:
    assert "'A B; touch /tmp/x; X' is not an environment variable name" in config_errors(
        workdir, "contract:\n  env: {'A B; touch /tmp/x; X': '1'}\n")
    assert ("env.LOCAL_DEV_SLICE uses a name devslice sets for each slice"
            in config_errors(workdir, "contract:\n  env: {LOCAL_DEV_SLICE: x}\n"))


def test_yaml_scalars_in_env_are_text(workdir: Path) -> None:
    (workdir / "devslice.yaml").write_text(BASE + "contract:\n  env: {PORT: 8080, DEBUG: true}\n")
    assert Project.load().env.contract.env == {"PORT": "8080", "DEBUG": "true"}


def test_overriding_a_secret_keeps_it_secret(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIG", "Endpoint=https://x.service.signalr.net;AccessKey=k1;Version=1.0;")
    (workdir / "devslice.yaml").write_text(
        BASE + SOLO + "signalR:\n  connectionString: {fromEnv: SIG}\n")
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ab\n"
        "env: {LOCAL_DEV_SIGNALR_CONNECTIONSTRING: 'AccessKey=MINE'}\n")
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert contract(capsys)["LOCAL_DEV_SIGNALR_CONNECTIONSTRING"] == "********"
    # --for host: the embedded event hub of the defaults is no use to pods
    assert run(["env", "-o", "k8s", "--for", "host", "--to-file", "-"]) == 0
    objects = capsys.readouterr().out
    config_map = objects.split("---")[0]
    assert "MINE" not in config_map and "MINE" in objects.split("---")[1]


def test_file_secrets_work_from_any_folder(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "secrets").mkdir()
    (workdir / "secrets" / "signalr.txt").write_text("Endpoint=https://x;AccessKey=FROMFILE;\n")
    (workdir / "devslice.yaml").write_text(
        BASE + SOLO + "signalR:\n  connectionString: {fromFile: secrets/signalr.txt}\n")
    assert run(["slice", "claim"]) == 0
    sub = workdir / "services" / "orders"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    capsys.readouterr()
    assert run(["env"]) == 0
    script = capsys.readouterr().out
    assert "FROMFILE" not in script
    show = 'printf %s "$LOCAL_DEV_SIGNALR_CONNECTIONSTRING"'
    done = subprocess.run(["bash", "-c", script + show], capture_output=True, text=True,
                          check=True, cwd=sub)
    assert done.stdout == "Endpoint=https://x;AccessKey=FROMFILE;"


def test_an_expired_slice_gets_no_environment(workdir: Path) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    project = Project.load()
    s, _ = project.claim("ci1", ttl=timedelta(hours=1))
    later = Project(project.env, project.config_path,
                    clock=lambda: s.created_at + timedelta(hours=2))
    with pytest.raises(SliceError, match="slice 'ci1' expired at") as info:
        later.variables("ci1")
    assert "devslice slice renew ci1" in (info.value.hint or "")


@pytest.mark.azurite
def test_emulator_storage_contract_reaches_azurite(workdir: Path, azurite: Azurite) -> None:
    """The default storage mode gives services a connection string for their own Azurite
    account, and the SDK's storage client uses it."""
    from devslice.sdk import storage

    (workdir / "devslice.yaml").write_text(BASE + f"""\
storage:
  blobEndpointTemplate: http://127.0.0.1:{azurite.blob_port}/{{account}}
  queueEndpointTemplate: http://127.0.0.1:{azurite.queue_port}/{{account}}
""")
    project = Project.load()
    project.claim("ab")
    ctx = SliceContext.from_env({v.name: str(v.value) for v in project.variables("ab")})
    service = storage.blob_service(ctx)
    name = f"roundtrip{id(ctx) % 10_000}"
    service.create_container(name)
    service.get_container_client(name).upload_blob("hello.txt", b"hi")
    assert [b.name for b in service.get_container_client(name).list_blobs()] == ["hello.txt"]


def test_a_secret_overridden_locally_is_not_printed_by_shell_output(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIG", "Endpoint=https://x;AccessKey=k1;Version=1.0;")
    (workdir / "devslice.yaml").write_text(
        BASE + SOLO + "signalR:\n  connectionString: {fromEnv: SIG}\n")
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ab\n"
        "env: {LOCAL_DEV_SIGNALR_CONNECTIONSTRING: 'AccessKey=MINE'}\n")
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["env"]) == 0
    out = capsys.readouterr().out
    assert "MINE" not in out
    assert "# LOCAL_DEV_SIGNALR_CONNECTIONSTRING is a secret from " in out
