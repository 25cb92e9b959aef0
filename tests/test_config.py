"""devslice.yaml: the starter file validates, and each kind of bad input gets a message that
names file, line and column, the bad value and what was expected."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from devslice.config import Environment, load_config, parse_config
from devslice.config.starter import starter_text, write_starter
from devslice.errors import ConfigError, DevsliceError

from .helpers import BASE, env_from


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "devslice.yaml", Environment)
    return [str(i) for i in info.value.issues]


def test_starter_file_validates_and_keeps_its_comments(tmp_path: Path) -> None:
    path = write_starter(tmp_path / "devslice.yaml", team="company1")
    env, found = load_config(path)
    assert found == path
    assert env.team == "company1"
    assert env.storage.account_template == "{team}stacc4{slice}"
    assert env.ledger.backend == "sqlite"
    assert "# The ledger records who holds which slice" in path.read_text()


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "devslice.yaml"
    path.write_text("keep me")
    with pytest.raises(ConfigError, match="already exists"):
        write_starter(path, team="company1")
    assert path.read_text() == "keep me"


def test_init_rejects_bad_team() -> None:
    with pytest.raises(DevsliceError, match="'My-Team' is not a valid team prefix"):
        starter_text("My-Team")


def test_defaults_are_embedded() -> None:
    env = env_from()
    assert env.event_hubs.mode == "embedded"
    assert [(n.name, n.partitions) for n in env.event_hubs.namespaces] == [("embedded", 32)]
    assert env.contract.partition_ids_variable == "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS"


def test_missing_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml: no such file" in str(info.value)


def test_config_found_in_a_parent_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "devslice.yaml").write_text(BASE)
    sub = tmp_path / "services" / "orders"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    _, found = load_config()
    assert found == tmp_path / "devslice.yaml"


def test_yaml_syntax_error_has_line_and_column() -> None:
    assert errors(BASE + "eventHubs:\n  eventHubs: [orders\nstorage: {}\n") == [
        "devslice.yaml:6:8: not valid YAML: while parsing a flow sequence expected ',' or ']', "
        "but got ':'"
    ]


def test_duplicate_key_is_an_error_not_a_silent_override() -> None:
    (msg,) = errors(BASE + "team: other\n")
    assert msg.startswith("devslice.yaml:4:1: not valid YAML: found duplicate key \"team\"")


def test_wrong_api_version_and_kind() -> None:
    assert errors("apiVersion: devslice.dev/v2\nkind: Cluster\nteam: company1\n") == [
        "devslice.yaml:1:13: apiVersion: 'devslice.dev/v2' is not allowed: expected "
        "'devslice.dev/v1alpha1'",
        "devslice.yaml:2:7: kind: 'Cluster' is not allowed: expected 'Environment'",
    ]


def test_missing_team() -> None:
    assert errors("apiVersion: devslice.dev/v1alpha1\nkind: Environment\n") == [
        "devslice.yaml:1:1: team: required key 'team' is missing"
    ]


def test_unknown_key_suggests_the_right_one() -> None:
    (msg,) = errors(BASE + "eventHubs:\n  partitionPerSlice: 2\n")
    assert msg.startswith(
        "devslice.yaml:5:3: eventHubs.partitionPerSlice: unknown key 'partitionPerSlice'; did "
        "you mean 'partitionsPerSlice'? expected one of: embeddedMaxSizeMb, embeddedPath, "
        "embeddedRetention, eventHubs, mode, "
    )


def test_too_many_partitions_names_the_limit() -> None:
    (msg,) = errors(BASE + """\
eventHubs:
  namespaces:
    - name: company1-ehns1
      partitions: 40
""")
    assert msg == ("devslice.yaml:7:19: eventHubs.namespaces[0].partitions: 40 is not allowed: "
                   "expected less than or equal to 32")


def test_reserved_partition_out_of_range() -> None:
    (msg,) = errors(BASE + """\
eventHubs:
  namespaces:
    - {name: company1-ehns1, partitions: 4, reserved: [4]}
""")
    assert msg == ("devslice.yaml:6:7: eventHubs.namespaces[0]: reserved partition 4 does not "
                   "exist: this namespace's event hubs have partitions 0 to 3")


def test_all_partitions_reserved() -> None:
    (msg,) = errors(BASE + """\
eventHubs:
  namespaces:
    - {name: company1-ehns1, partitions: 2, reserved: [0, 1]}
""")
    assert msg == ("devslice.yaml:6:55: eventHubs.namespaces[0].reserved: all 2 partitions of "
                   "company1-ehns1 are reserved; leave at least one for slices")


def test_bad_team_prefix() -> None:
    (msg,) = errors("apiVersion: devslice.dev/v1alpha1\nkind: Environment\nteam: Company-1\n")
    assert msg.startswith("devslice.yaml:3:7: team: 'Company-1' is not allowed: expected text "
                          "matching")


def test_inline_secret_is_refused() -> None:
    (msg,) = errors(BASE + "signalR:\n  connectionString: Endpoint=https://x;AccessKey=abc\n")
    assert msg.startswith("devslice.yaml:5:21: signalR.connectionString:")
    assert "AccessKey=abc" not in msg  # the secret is not echoed back
    assert msg.endswith("secrets are not written in devslice.yaml: expected {fromEnv: VARIABLE} "
                        "or {fromFile: PATH}")


def test_secret_ref_needs_exactly_one_source() -> None:
    (msg,) = errors(BASE + "signalR:\n  connectionString: {fromEnv: A, fromFile: b}\n")
    assert msg == ("devslice.yaml:5:21: signalR.connectionString: give exactly one of fromEnv, "
                   "fromFile or fromKeyVault")


def test_bad_duration() -> None:
    (msg,) = errors(BASE + "slices:\n  ttl:\n    ci: 4 hours\n")
    assert msg == ("devslice.yaml:6:9: slices.ttl.ci: '4 hours' is not a duration: expected a "
                   "number and a unit (s, m, h, d, w), for example 30m, 4h, 2d or 1h30m, or "
                   "whole seconds")


def test_unknown_ledger_backend() -> None:
    (msg,) = errors(BASE + "ledger:\n  backend: postgres\n")
    assert msg == ("devslice.yaml:5:12: ledger.backend: 'postgres' is not a ledger backend: "
                   "expected 'sqlite' or 'azureBlob'")


def test_blob_ledger_needs_a_way_in() -> None:
    (msg,) = errors(BASE + "ledger:\n  backend: azureBlob\n")
    assert msg == "devslice.yaml:5:3: ledger: give exactly one of accountUrl or connectionString"


def test_storage_template_too_long_for_longest_handle() -> None:
    (msg,) = errors(BASE + "storage:\n  accountTemplate: '{team}storageacct4{slice}'\n")
    assert msg.startswith("devslice.yaml:5:20: storage.accountTemplate: "
                          "'{team}storageacct4{slice}' "
                          "can produce an invalid name for handle")
    assert "a storage account name needs 3 to 24" in msg


def test_template_without_slice_would_collide() -> None:
    (msg,) = errors(BASE + "dataExplorer:\n  databaseTemplate: devdb\n")
    assert msg == ("devslice.yaml:5:21: dataExplorer.databaseTemplate: 'devdb' does not contain "
                   "{slice}, so every slice would get the same Data Explorer database name; add "
                   "{slice}")


def test_signalr_hub_template_with_hyphen() -> None:
    (msg,) = errors(BASE + "signalR:\n  hubs: [notifications]\n  hubTemplate: '{hub}-{slice}'\n")
    assert msg.startswith("devslice.yaml:6:16: signalR.hubTemplate: 'notifications-{slice}' can "
                          "produce an invalid name")
    assert "(no hyphens)" in msg


def test_two_templates_that_can_meet_are_a_collision() -> None:
    (msg,) = errors(BASE + """\
names:
  orders: {template: 'in{slice}', rule: container}
  invoices: {template: 'inv{slice}', rule: container}
""")
    assert msg == (
        "devslice.yaml:6:24: names.invoices.template: 'inv{slice}' can produce the same blob "
        "container name as 'in{slice}' at names.orders.template (for example 'inva0'); make "
        "their fixed parts differ"
    )


def test_unknown_placeholder() -> None:
    (msg,) = errors(BASE + "names:\n  q: {template: '{slice}-{user}', rule: queue}\n")
    assert msg == ("devslice.yaml:5:17: names.q.template: '{slice}-{user}' uses {user}; the "
                   "placeholders allowed here are {slice}, {team}")


def test_several_problems_reported_together_in_file_order() -> None:
    found = errors(BASE + """\
eventHubs:
  partitionsPerSlice: 0
storage:
  mode: cloud
""")
    assert [m.split(": ")[0] for m in found] == ["devslice.yaml:5:23", "devslice.yaml:7:9"]


def test_schema_is_json_schema_with_camel_case_keys() -> None:
    schema = Environment.model_json_schema(by_alias=True)
    json.dumps(schema)
    assert {"apiVersion", "kind", "team", "ledger", "eventHubs", "signalR"} <= set(
        schema["properties"])
    assert schema["required"] == ["apiVersion", "kind", "team"]


def test_endpoint_template_placeholders() -> None:
    (msg,) = errors(
        BASE + "storage:\n  blobEndpointTemplate: 'https://{acount}.blob.core.windows.net'\n")
    assert msg == ("devslice.yaml:5:25: storage.blobEndpointTemplate: "
                   "'https://{acount}.blob.core.windows.net' uses {acount}; the placeholders "
                   "allowed here are {account}, {slice}, {team}")


def test_signalr_hub_name_with_hyphen_is_reported_at_the_hub() -> None:
    (msg,) = errors(BASE + "signalR:\n  hubs: [notifications, order-events]\n")
    assert msg == ("devslice.yaml:5:25: signalR.hubs[1]: 'order-events' is not a valid SignalR "
                   "hub name: a letter, then letters, digits, '_', '`', ',', '.', '[' or ']' "
                   "(no hyphens)")


def test_signalr_hubs_that_share_a_variable_or_differ_only_in_case() -> None:
    found = errors(BASE + """\
signalR:
  hubs:
    - Orders
    - orders
    - order.events
    - order_events
    - Orders
    - dashboard
""")
    assert found == [
        "devslice.yaml:7:7: signalR.hubs[1]: 'orders' and 'Orders' at signalR.hubs[0] differ "
        "only in case, which SignalR ignores (it lower-cases hub names); rename one",
        "devslice.yaml:9:7: signalR.hubs[3]: 'order_events' and 'order.events' at "
        "signalR.hubs[2] would both set the variable LOCAL_DEV_SIGNALR_HUB_ORDER_EVENTS; "
        "rename one so they differ in more than case and punctuation",
        "devslice.yaml:10:7: signalR.hubs[4]: 'Orders' is already listed at signalR.hubs[0]; "
        "list each hub once",
    ]


def test_handle_rule_is_built_in_one_place(tmp_path: Path) -> None:
    from devslice.config.checks import handle_rule
    from devslice.project import Project
    from devslice.slices.names import HandleRule

    env = env_from("slices:\n  handle: {minLength: 3, maxLength: 5}\n")
    assert handle_rule(env) == HandleRule(3, 5)
    assert Project(env, tmp_path / "devslice.yaml").handle_rule == handle_rule(env)


def test_a_folder_given_as_the_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value.issues[0]) == f"{tmp_path}: is a folder, not a file"
    assert info.value.hint == "pass the path of a devslice.yaml file with -f/--file"
    (tmp_path / "devslice.yaml").write_text(BASE)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.hint == f"pass the file itself, e.g. -f {tmp_path / 'devslice.yaml'}"


@pytest.mark.parametrize(("text", "found"), [
    ("- apiVersion: devslice.dev/v1alpha1\n- kind: Environment\n", "a list"),
    ("just words\n", "text"),
    ("42\n", "a number"),
])
def test_a_document_that_is_not_a_mapping_says_what_it_is(text: str, found: str) -> None:
    assert errors(text) == [f"devslice.yaml:1:1: expected a mapping of keys, found {found}"]


def test_env_values_are_text_as_written(tmp_path: Path) -> None:
    from devslice.config.local import load_local

    env = env_from("""\
contract:
  env:
    PORT: 8080
    VERSION: 1.10
    DEBUG: true
    MASK: 0x1F
    SINCE: 2024-01-01
    NAME: "quoted"
""")
    assert env.contract.env == {"PORT": "8080", "VERSION": "1.10", "DEBUG": "true",
                                "MASK": "0x1F", "SINCE": "2024-01-01", "NAME": "quoted"}
    (tmp_path / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ab\n"
        "env: {LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT: 4, FEATURE_X: false, RATIO: 0.50}\n")
    local, _ = load_local(tmp_path)
    assert local is not None
    assert local.env == {"LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT": "4", "FEATURE_X": "false",
                         "RATIO": "0.50"}


def test_a_value_fitting_no_member_of_a_union_is_one_error() -> None:
    (msg,) = errors(BASE + "services:\n  - {name: web, port: eighty}\n")
    assert msg == ("devslice.yaml:5:23: services[0].port: 'eighty' is not allowed: expected a "
                   "valid integer or 'auto'")
