"""The environment contract: what services read, where each value comes from, and where
secrets may and may not go."""

from __future__ import annotations

import json
import stat
import subprocess
import textwrap
from pathlib import Path

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from devslice.cli.app import run
from devslice.contract import Origin, render
from devslice.errors import SecretUnavailable
from devslice.project import Project
from devslice.services.storage import account_key as azurite_account_key

from .helpers import BASE, SOLO

SECRET = "Endpoint=sb://company1-ehns1.servicebus.windows.net/;SharedAccessKey=s3cr3t+K3y="
SHARED = BASE + SOLO + textwrap.dedent("""\
    eventHubs:
      mode: shared
      namespaces:
        - name: company1-ehns1
          reserved: [0]
          connectionString: {fromEnv: TEST_EH_CONNECTION}
    dataExplorer:
      clusterUrl: https://company1dev.westeurope.kusto.windows.net
      routing: {table: Events, format: json}
    signalR:
      endpoint: https://company1-dev.service.signalr.net
      hubs: [notifications, dashboard]
    names:
      billing: {template: 'billing-{slice}', rule: consumerGroup}
    contract:
      env: {FEATURE_FLAGS: dev}
""")


@pytest.fixture
def shared(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    (workdir / "devslice.yaml").write_text(SHARED)
    monkeypatch.setenv("TEST_EH_CONNECTION", SECRET)
    project = Project.load()
    project.claim("ab", partitions=2)
    return project


def test_contract_variables_and_their_origins(shared: Project) -> None:
    got = {v.name: (v.value if not v.is_secret else "SECRET", v.origin)
           for v in shared.variables("ab")}
    a, t, s = Origin.allocation, Origin.team, Origin.secret
    claimed = shared.get("ab").created_at
    assert got == {
        "LOCAL_DEV_SLICE": ("ab", a),
        # no event hub listed: every one is fenced at the claim time (issue 11)
        "LOCAL_DEV_SLICE_CLAIM": (f"ab-{claimed:%Y%m%d%H%M%S%f}", a),
        "LOCAL_DEV_EVENTHUBS_STARTFENCE": (
            f"*={claimed.replace(tzinfo=None).isoformat(timespec='microseconds')}Z", a),
        "LOCAL_DEV_SLICE_KIND": ("developer", a),
        "LOCAL_DEV_TEAM": ("company1", t),
        "LOCAL_DEV_HOST_ADDRESS": ("172.18.0.1", t),  # not host.k3d.internal: k3d sleep bug
        "LOCAL_DEV_EVENTHUBS_MODE": ("shared", t),
        "LOCAL_DEV_EVENTHUBS_NAMESPACE": ("company1-ehns1", a),
        "LOCAL_DEV_EVENTHUBS_FULLYQUALIFIEDNAMESPACE": ("company1-ehns1.servicebus.windows.net", t),
        "LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT": ("32", t),
        "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": ("1,2", a),
        "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING": ("SECRET", s),
        "LOCAL_DEV_STORAGE_ACCOUNT": ("company1stacc4ab", a),
        "LOCAL_DEV_STORAGE_BLOBENDPOINT": ("http://127.0.0.1:10000/company1stacc4ab", a),
        "LOCAL_DEV_STORAGE_QUEUEENDPOINT": ("http://127.0.0.1:10001/company1stacc4ab", a),
        "LOCAL_DEV_STORAGE_CONNECTIONSTRING": (
            "DefaultEndpointsProtocol=http;AccountName=company1stacc4ab;AccountKey="
            + azurite_account_key("company1stacc4ab")
            + ";BlobEndpoint=http://127.0.0.1:10000/company1stacc4ab;QueueEndpoint="
            "http://127.0.0.1:10001/company1stacc4ab;", t),
        "LOCAL_DEV_STORAGE_MODE": ("emulator", t),
        "LOCAL_DEV_DATAEXPLORER_MODE": ("shared", t),
        "LOCAL_DEV_SIGNALR_MODE": ("shared", t),
        "LOCAL_DEV_DATAEXPLORER_CLUSTERURL": (
            "https://company1dev.westeurope.kusto.windows.net", t),
        "LOCAL_DEV_DATAEXPLORER_DATABASE": ("db4ab", a),
        "LOCAL_DEV_DATAEXPLORER_TABLE": ("Events", t),
        "LOCAL_DEV_DATAEXPLORER_FORMAT": ("json", t),
        "LOCAL_DEV_SIGNALR_ENDPOINT": ("https://company1-dev.service.signalr.net", t),
        "LOCAL_DEV_SIGNALR_HUB_NOTIFICATIONS": ("notifications_ab", a),
        "LOCAL_DEV_SIGNALR_HUB_DASHBOARD": ("dashboard_ab", a),
        "LOCAL_DEV_NAME_BILLING": ("billing-ab", a),
        "FEATURE_FLAGS": ("dev", t),
    }


def test_partition_variable_name_is_configurable(workdir: Path) -> None:
    (workdir / "devslice.yaml").write_text(
        BASE + "contract: {partitionIdsVariable: EVENTHUBS__PARTITIONS}\n")
    project = Project.load()
    project.claim("ab")
    names = [v.name for v in project.variables("ab")]
    assert "EVENTHUBS__PARTITIONS" in names
    assert "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS" not in names


def test_personal_override_wins_and_says_so(shared: Project, workdir: Path) -> None:
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ab\n"
        "env: {LOCAL_DEV_DATAEXPLORER_DATABASE: db4ab_experiment, MY_DEBUG: '1'}\n")
    got = {v.name: v for v in shared.variables("ab")}
    db = got["LOCAL_DEV_DATAEXPLORER_DATABASE"]
    assert (db.value, db.origin, db.source) == (
        "db4ab_experiment", Origin.override, "devslice.local.yaml")
    assert got["MY_DEBUG"].origin is Origin.override


def test_missing_secret_is_a_clear_error(shared: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_EH_CONNECTION")
    with pytest.raises(SecretUnavailable, match="the secret TEST_EH_CONNECTION is not set"):
        shared.variables("ab")


def test_dotenv_is_written_private_and_holds_the_secret(
    shared: Project, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["env", "--slice", "ab", "-o", "dotenv"]) == 0
    path = workdir / ".devslice" / "ab.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS=1,2\n" in text
    assert f'LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING="{SECRET}"' in text
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "mode 0600" in out.out


def test_shell_output_refers_to_secrets_and_works_under_eval(
    shared: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["env", "--slice", "ab", "-o", "shell"]) == 0
    script = capsys.readouterr().out
    assert SECRET not in script
    assert 'export LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING="${TEST_EH_CONNECTION}"' in script
    done = subprocess.run(
        ["bash", "-c", script + 'printf "%s|%s" "$LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS" '
                                '"$LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"'],
        capture_output=True, text=True, check=True,
    )
    assert done.stdout == f"1,2|{SECRET}"


def test_json_masks_secrets(shared: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["env", "--slice", "ab", "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"] == "********"
    assert data["LOCAL_DEV_SLICE"] == "ab"


@pytest.mark.parametrize("explain", [[], ["--explain"]])
def test_yaml_is_the_json_data_secrets_masked(shared: Project, capsys: pytest.CaptureFixture[str],
                                              explain: list[str]) -> None:
    assert run(["env", "--slice", "ab", *explain, "-o", "yaml"]) == 0
    text = capsys.readouterr().out
    assert SECRET not in text and "********" in text
    assert run(["env", "--slice", "ab", *explain, "-o", "json"]) == 0
    assert YAML(typ="safe").load(text) == json.loads(capsys.readouterr().out)


def test_explain_shows_origins_without_secrets(
    shared: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["env", "--slice", "ab", "--explain", "-o", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"] == {
        "name": "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING", "value": "********", "origin": "secret",
        "source": "devslice.yaml eventHubs.namespaces[company1-ehns1].connectionString "
                  "(env:TEST_EH_CONNECTION)", "secret": True}
    assert rows["LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"]["origin"] == "slice allocation"
    assert rows["LOCAL_DEV_TEAM"]["origin"] == "team default"
    assert run(["env", "--slice", "ab", "--explain"]) == 0
    table = capsys.readouterr().out
    assert SECRET not in table and "secret" in table and "slice allocation" in table


def test_k8s_objects_validate_and_keep_secrets_out_of_the_configmap(
    shared: Project, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["env", "--slice", "ab", "-o", "k8s", "--namespace", "dev-ab"]) == 0
    path = workdir / ".devslice" / "ab.k8s.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config_map, secret = YAML(typ="safe").load_all(path.read_text())
    for obj in (config_map, secret):
        kubernetes_validate.validate(obj, "1.30", strict=True)
        assert obj["metadata"]["namespace"] == "dev-ab"
        assert obj["metadata"]["labels"]["devslice.dev/slice"] == "ab"
    assert SECRET not in json.dumps(config_map)
    assert "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING" not in config_map["data"]
    assert secret["stringData"] == {"LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING": SECRET}
    assert config_map["data"]["LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT"] == "32"  # a string
    assert SECRET not in capsys.readouterr().out


def test_dotenv_quotes_values_that_need_it() -> None:
    from devslice.contract.variables import Variable

    text = render.dotenv([Variable("A", 'two words "quoted"', Origin.team, "x"),
                          Variable("B", "plain-1,2", Origin.team, "x")])
    assert 'A="two words \\"quoted\\""\n' in text
    assert "B=plain-1,2\n" in text


@pytest.mark.parametrize(("value", "written"), [
    # Docker Compose expands $VAR and ${VAR} in unquoted and double-quoted values; single
    # quotes are literal there, and nothing inside them is backslash-escaped.
    ("$HOME", "'$HOME'"),
    ("pa$$word and ${HOME}", "'pa$$word and ${HOME}'"),
    ('say "$HOME"', "'say \"$HOME\"'"),
    ("C:\\$x", '"C:\\\\\\$x"'),  # a backslash: double quotes, Compose's \$ for the dollar
    ("it's $HOME", '"it\'s \\$HOME"'),  # a single quote and $: double quotes with \$
    ("two\n$lines", '"two\\n\\$lines"'),
    ("no dollar here", '"no dollar here"'),
    ("plain-1,2", "plain-1,2"),
])
def test_dotenv_keeps_dollars_literal_for_docker_compose(value: str, written: str) -> None:
    from devslice.contract.variables import Variable

    text = render.dotenv([Variable("A", value, Origin.team, "x")])
    assert text.splitlines()[1] == f"A={written}"
