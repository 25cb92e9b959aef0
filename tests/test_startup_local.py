"""What the local runtime's commands load and ask, in every `status`, `plan` and `up` (issue 17):
no Docker SDK, no requests, no aiohttp, no storage SDK; the emulator's containers are listed
over plain HTTP with a kept SAS, and still noticed when they go missing."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devslice.testing import Azurite
from tests.helpers import free_port, write_azurite_slice_config

REPO = Path(__file__).resolve().parent.parent

# Imported only by paths the local runtime does not take (the k3d path, the registry, the
# cloud, the SDK's event hubs): a command of the local runtime that loads one pays for it.
NEVER_LOCAL = ("docker", "requests", "aiohttp", "azure.storage.blob", "azure.storage.queue",
               "azure.core", "azure.eventhub", "lightkube", "httpx", "urllib3",
               "devslice.adapters.k3d", "devslice.adapters.docker",
               # the containers' types, which only the container runtimes build
               "devslice.resources.containers", "devslice.adapters.dockerdata",
               "devslice.resources.builtins", "devslice.resources.dataexplorer")

# Not loaded by a piped `status` or `plan` whose devslice.yaml is as before: the output is
# written without rich, and the file's data is the one kept (ruamel only reads a changed file).
NEVER_PIPED = ("rich", "ruamel.yaml")

# Runs the CLI as `devslice ARGS` does and prints the modules it loaded, last line.
LOADED = """\
import atexit, json, sys
atexit.register(lambda: print("\\nMODULES " + json.dumps(sorted(sys.modules))))
import devslice.cli
devslice.cli.main(sys.argv[1:])
"""


def _config(root: Path, azurite: Azurite, suffix: int) -> None:
    write_azurite_slice_config(root, azurite.blob_port, azurite.queue_port, suffix, "local")


def _resource(root: Path, azurite: Azurite) -> object:
    from devslice.cloud.storage import EmulatorContainersResource
    from devslice.engine.environment import Tools, build
    from devslice.project import Project

    project = Project.load(root / "devslice.yaml")
    resources = build(project, "ab", Tools(None, None, None, None), "local")  # type: ignore[arg-type]
    (emulated,) = [r for r in resources if isinstance(r, EmulatorContainersResource)]
    emulated.after = ()  # Azurite runs already (the fixture's)
    return emulated


@pytest.fixture
def project_root(tmp_path: Path, azurite: Azurite) -> Path:
    from devslice.project import Project

    root = tmp_path / "p"
    root.mkdir()
    _config(root, azurite, time.monotonic_ns() % 10**8)
    Project.load(root / "devslice.yaml").claim("ab", owner="ann.b@example.com")
    return root


def _kept(root: Path) -> dict[str, str]:
    return json.loads((root / ".devslice" / "storage-sas.json").read_text())


@pytest.mark.azurite
def test_a_kept_sas_lists_the_containers_and_a_missing_one_is_still_noticed(
        project_root: Path, azurite: Azurite) -> None:
    from azure.storage.blob import BlobServiceClient

    from devslice.adapters.storagelist import account_sas
    from devslice.engine import Executor
    from devslice.engine.plan import make_plan
    from devslice.services.storage import account_key

    emulated = _resource(project_root, azurite)
    first = make_plan([emulated]).render()  # type: ignore[list-item]
    assert "is missing in the storage emulator" in first
    account = "company1stacc4ab"
    assert account in _kept(project_root)  # made by the SDK once, kept
    Executor().apply([emulated])  # type: ignore[list-item]
    assert make_plan([emulated]).empty  # type: ignore[list-item]

    # A kept SAS is used as it is: one that expires in 2030 is still there after a plan.
    lasting = account_sas(account, account_key(account), datetime(2030, 1, 1, tzinfo=UTC))
    (project_root / ".devslice" / "storage-sas.json").write_text(json.dumps({account: lasting}))
    assert make_plan([emulated]).empty  # type: ignore[list-item]
    assert _kept(project_root) == {account: lasting}

    # Someone deletes the container (or Azurite's data): the next plan says so.
    (name,) = [c for c in emulated.containers if c.startswith("inv")]  # type: ignore[attr-defined]
    BlobServiceClient.from_connection_string(
        azurite.connection_string(account)).delete_container(name)
    text = make_plan([emulated]).render()  # type: ignore[list-item]
    assert f"blob container {account}/{name} is missing" in text
    assert _kept(project_root) == {account: lasting}


@pytest.mark.azurite
@pytest.mark.parametrize("kept", ["expired", "forged", "garbage"])
def test_a_refused_or_broken_sas_is_made_again(project_root: Path, azurite: Azurite,
                                               kept: str) -> None:
    from devslice.adapters.storagelist import account_sas
    from devslice.engine import Executor
    from devslice.engine.plan import make_plan
    from devslice.services.storage import account_key

    emulated = _resource(project_root, azurite)
    Executor().apply([emulated])  # type: ignore[list-item]
    account = "company1stacc4ab"
    sas_file = project_root / ".devslice" / "storage-sas.json"
    if kept == "expired":
        text = json.dumps({account: account_sas(account, account_key(account),
                                                datetime.now(UTC) - timedelta(days=1))})
    elif kept == "forged":
        text = json.dumps({account: account_sas(account, account_key("someoneelse"),
                                                datetime(2030, 1, 1, tzinfo=UTC))})
    else:
        text = "{not json"
    sas_file.write_text(text)
    assert make_plan([emulated]).empty  # type: ignore[list-item]  # nothing reported missing
    assert sas_file.read_text() != text
    assert account in _kept(project_root)


def test_a_storage_emulator_not_running_yet_shows_what_up_will_create(tmp_path: Path) -> None:
    """Nothing listens on the endpoints (a fresh machine): the plan lists the containers to
    create, no error; the executor plans again once the emulators are up."""
    from devslice.cloud.storage import EmulatorContainersResource
    from devslice.engine.plan import make_plan
    from tests.helpers import env_from

    port = free_port()
    env = env_from(f"""\
storage:
  mode: embedded
  blobEndpointTemplate: "http://127.0.0.1:{port}/{{account}}"
  queueEndpointTemplate: "http://127.0.0.1:{port}/{{account}}"
names:
  invoices: {{template: "inv{{slice}}", rule: container}}
""")
    emulated = EmulatorContainersResource(env, "ab", sas_file=tmp_path / "sas.json")
    text = make_plan([emulated]).render()
    assert "blob container company1stacc4ab/invab is missing in the storage emulator" in text


def _loaded(root: Path, *args: str) -> tuple[set[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVSLICE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    done = subprocess.run([sys.executable, "-c", LOADED, *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    last = done.stdout.rstrip().rsplit("\n", 1)[-1]
    assert last.startswith("MODULES "), (done.stdout, done.stderr)
    return set(json.loads(last[len("MODULES "):])), done.stdout + done.stderr


@pytest.mark.azurite
def test_status_and_plan_of_the_local_runtime_load_no_engine_sdk_http_stack_or_storage_sdk(
        project_root: Path) -> None:
    _loaded(project_root, "plan", "--slice", "ab")  # the first plan: the SAS, by the SDK
    for command in ("status", "plan"):
        modules, output = _loaded(project_root, command, "--slice", "ab")
        assert "storage-containers:company1stacc4ab" in output, output
        assert "devslice.local.runtime" in modules  # the local runtime's path was taken
        heavy = sorted(m for m in NEVER_LOCAL + NEVER_PIPED if m in modules)
        assert heavy == [], f"`devslice {command}` loaded {heavy}"


# -- the YAML data of a valid config, kept (issue 17) ----------------------------------------

def _written(root: Path, services: str) -> Path:
    (root / ".devslice").mkdir(exist_ok=True)
    path = root / "devslice.yaml"
    path.write_text(f"apiVersion: devslice.dev/v1alpha1\nkind: Environment\nteam: company1\n"
                    f"cluster: {{runtime: local}}\nservices:\n{services}")
    return path


def test_a_kept_config_is_used_only_for_the_same_text_and_errors_stay_located(
        tmp_path: Path) -> None:
    from devslice.config.load import DATA_CACHE, load_config
    from devslice.errors import ConfigError

    path = _written(tmp_path, "  - {name: billing, run: python -m billing}\n")
    assert load_config(path.resolve())[0].services[0].run == "python -m billing"
    kept = json.loads((tmp_path / DATA_CACHE).read_text())
    (entry,) = kept.values()
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "text" not in entry
    # only the developer reads it: devslice.local.yaml's env overrides are kept here too
    assert stat.S_IMODE((tmp_path / DATA_CACHE).stat().st_mode) == 0o600

    # a changed file is read again: the change is seen
    _written(tmp_path, "  - {name: billing, run: python -m billing2}\n")
    assert load_config(path.resolve())[0].services[0].run == "python -m billing2"

    # an error in a changed file keeps its line and column
    _written(tmp_path, "  - {name: billing, run: python -m billing2}\n  - {name: Bad!}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path.resolve())
    assert any(i.line == 7 and i.column for i in raised.value.issues), raised.value.issues

    # kept data that no longer validates (another version's, altered): the file decides
    _written(tmp_path, "  - {name: billing, run: python -m billing3}\n")
    load_config(path.resolve())
    kept = json.loads((tmp_path / DATA_CACHE).read_text())
    for entry in kept.values():
        entry["data"]["services"] = "not a list"
    (tmp_path / DATA_CACHE).write_text(json.dumps(kept))
    assert load_config(path.resolve())[0].services[0].run == "python -m billing3"
    (tmp_path / DATA_CACHE).write_text("{broken")
    assert load_config(path.resolve())[0].services[0].run == "python -m billing3"


def test_a_date_in_an_env_map_is_kept_as_the_text_written(tmp_path: Path) -> None:
    from devslice.config.load import DATA_CACHE, load_config

    path = _written(tmp_path, "  - {name: billing, run: python -m billing}\n")
    path.write_text(path.read_text() + "contract:\n  env: {WHEN: 2026-01-01}\n")
    env = load_config(path.resolve())[0]
    assert env.contract.env["WHEN"] == "2026-01-01"  # written as text (a date to YAML)
    assert load_config(path.resolve())[0].contract.env["WHEN"] == "2026-01-01"
    kept = json.loads((tmp_path / DATA_CACHE).read_text())
    assert all(e["data"]["contract"]["env"]["WHEN"] == "2026-01-01" for e in kept.values())
