"""Issue 12: nothing in devslice.yaml, devslice.local.yaml or a value can run a command or
crash devslice. Variable names are checked at load; every value is quoted for its format by
one function and read back by a real shell, a dotenv reader and a YAML parser; durations,
deep or hostile YAML and names that differ only in case get located errors."""

from __future__ import annotations

import io
import os
import random
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml as pyyaml
from dotenv import dotenv_values
from ruamel.yaml import YAML

from devslice.cli.app import run
from devslice.config import Environment, load_config, parse_config
from devslice.config.duration import MAX_DAYS, parse_duration
from devslice.contract import render
from devslice.contract.render import UnsafeVariableName, quote
from devslice.contract.variables import Origin, Variable
from devslice.errors import ConfigError
from devslice.secrets import Secret

from .helpers import BASE

INJECTION = 'X}"; touch PWNED; echo "${X'

# Values that mean something to a shell, a dotenv reader or YAML (no NUL: no environment
# variable can hold one).
NASTY = [
    "plain", "", " ", "two words", "it's", 'say "hi"', "$HOME", "${HOME}", "${HOME:-x}",
    "$(touch PWNED)", "`touch PWNED`", "'; touch PWNED; '", '"; touch PWNED; "',
    "a\nb", "a\n$(touch PWNED)\n", "crlf\r\nline", "back\\slash", "C:\\$x", "\\", "$", "\\$",
    "\\n", "tab\there", "*", "~", "#not a comment", "8080", "true", "null", "~", "- item",
    "{a: b}", "[1, 2]", "key: value", "& *alias !tag", "%YAML", "ü✓ 日本", "trailing ",
    " leading", "!event", "\\'", "'\"'\"'", "=", "a=b", "export X=1", "\x1b[31mred",
    "\u2028sep\u2029", "\t", "--", "-n", "Endpoint=sb://x/;SharedAccessKey=k$1'\"=;",
]


def random_values(n: int, seed: int = 12) -> list[str]:
    """Seeded random strings over the characters that matter to the three formats."""
    alphabet = "ab $`'\"\\\n\r\t{}()!#;&|<>*?~=-:.,[]%@^ü日\u2028"
    rnd = random.Random(seed)
    return ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 24))) for _ in range(n)]


VALUES = NASTY + random_values(150)


def variables(values: list[str]) -> list[Variable]:
    return [Variable(f"V{i}", v, Origin.team, "test") for i, v in enumerate(values)]


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + textwrap.dedent(text), "devslice.yaml", Environment)
    return [str(i) for i in info.value.issues]


# -- 1. variable names and quoting ---------------------------------------------------------

@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_shell_output_can_never_run_a_command_and_every_value_round_trips(
        shell: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "it's $(touch PWNED).txt"
    secret_file.write_text("from-file '$(touch PWNED)'")
    vs = [*variables(VALUES),
          Variable("S_ENV", Secret("env $(touch PWNED) `x` \"'", "env:SOURCE"), Origin.secret,
                   "test"),
          Variable("S_FILE", Secret("x", f"file:{secret_file}"), Origin.secret, "test")]
    script = render.shell(vs)
    names = [v.name for v in vs]
    show = "".join(f'printf "%s\\0" "${n}"; ' for n in names)
    done = subprocess.run(
        [shell, "-c", f'eval "$SCRIPT"; {show}'], cwd=tmp_path, capture_output=True,
        env={"PATH": os.environ["PATH"], "SCRIPT": script,
             "SOURCE": "env $(touch PWNED) `x` \"'"}, check=True)
    got = done.stdout.decode().split("\0")[:-1]
    assert got == [*VALUES, "env $(touch PWNED) `x` \"'", "from-file '$(touch PWNED)'"]
    assert not (tmp_path / "PWNED").exists()


def test_dotenv_output_round_trips_through_a_dotenv_reader() -> None:
    """python-dotenv, loaded literally (interpolate=False), reads back every value; the one
    documented difference from Docker Compose, whose reading the format follows, is that it
    keeps the backslash of ``\\$`` in a double-quoted value."""
    text = render.dotenv(variables(VALUES))
    read = dotenv_values(stream=io.StringIO(text), interpolate=False)
    for i, value in enumerate(VALUES):
        written = quote(value, "dotenv")
        expected = value.replace("$", "\\$") if written.startswith('"') else value
        assert read[f"V{i}"] == expected, (value, written)
    assert len(read) == len(VALUES)  # no value became a line of its own


def test_k8s_output_round_trips_through_yaml() -> None:
    vs = [*variables(VALUES), Variable("S", Secret("k$(x)\n'\"", "env:S"), Origin.secret, "t")]
    text = render.k8s(vs, "ab", "dev-ab")
    for load in (lambda t: list(YAML(typ="safe").load_all(t)),
                 lambda t: list(pyyaml.safe_load_all(t))):
        config_map, secret = load(text)
        assert config_map["data"] == {f"V{i}": v for i, v in enumerate(VALUES)}
        assert secret["stringData"] == {"S": "k$(x)\n'\""}


def test_no_format_writes_a_name_that_is_not_a_variable_name() -> None:
    bad = [Variable("A B; touch PWNED", "1", Origin.team, "t")]
    for write in (render.shell, render.dotenv, lambda vs: render.k8s(vs, "ab")):
        with pytest.raises(UnsafeVariableName, match="is not an environment variable name"):
            write(bad)
    secret = [Variable("A", Secret("v", f"env:{INJECTION}"), Origin.secret, "t")]
    with pytest.raises(UnsafeVariableName):
        render.shell(secret)


def test_the_issues_injection_is_refused_at_load(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(
        BASE + "signalR:\n  connectionString: {fromEnv: '" + INJECTION.replace("'", "''")
        + "'}\n")
    assert run(["env"]) == 2
    err = capsys.readouterr().err
    assert (f"devslice.yaml:5:31: signalR.connectionString.fromEnv: {INJECTION!r} is not an "
            "environment variable name") in err
    assert "Traceback" not in err and not (workdir / "PWNED").exists()


@pytest.mark.parametrize(("text", "where"), [
    ("eventHubs:\n  namespaces:\n    - name: company1-ehns1\n"
     "      connectionString: {fromEnv: '1ABC'}\n", "7:35: eventHubs.namespaces[0]."
     "connectionString.fromEnv: '1ABC'"),
    ("containers:\n  custom:\n    - {name: a, image: b, secretEnv: {'A-B': {fromEnv: X}}}\n",
     "6:39: containers.custom[0].secretEnv.A-B: 'A-B'"),
    ("services:\n  - {name: a, env: {'$(x)': '1'}}\n", "5:21: services[0].env.$(x): '$(x)'"),
])
def test_every_variable_name_in_the_config_is_checked(text: str, where: str) -> None:
    (msg,) = errors(text)
    assert msg.startswith(f"devslice.yaml:{where} is not an environment variable name"), msg


def test_local_override_names_are_checked(workdir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    assert run(["slice", "claim", "ab"]) == 0
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nenv:\n  'X; touch PWNED': 1\n")
    capsys.readouterr()
    assert run(["env"]) == 2
    err = capsys.readouterr().err
    assert "devslice.local.yaml:4:3: env.X; touch PWNED: 'X; touch PWNED' is not an " in err


# -- 5. durations ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "message"), [
    ("-5.0", "-5.0 is not a duration"),
    ("0.0", "0.0 is not a duration"),
    ("1.5", "1.5 is not a duration"),
    ("true", "true is not a duration"),
    ("0", "0 is not a positive duration"),
    ("-60", "-60 is not a positive duration"),
    ("0s", "'0s' is not a positive duration"),
    ("99999999999999999999d", f"'99999999999999999999d' is longer than the maximum of "
                              f"{MAX_DAYS}d"),
    ("9" * 5000 + "d", "is longer than the maximum"),
    ("366d", f"'366d' is longer than the maximum of {MAX_DAYS}d"),
    ("[4h]", "is not a duration"),
])
def test_durations_are_positive_text_with_units_or_whole_seconds(value: str,
                                                                 message: str) -> None:
    (msg,) = errors(f"slices:\n  ttl:\n    ci: {value}\n")
    assert msg.startswith("devslice.yaml:6:9: slices.ttl.ci: ") and message in msg, msg


def test_durations_that_are_accepted() -> None:
    env = parse_config(BASE + "slices: {ttl: {ci: 90, developer: 1h30m, shared: 365d}}\n",
                       "devslice.yaml", Environment)
    assert env.slices.ttl.ci is not None and env.slices.ttl.ci.total_seconds() == 90
    assert parse_duration("1h30m") == parse_duration(5400) == parse_duration("5400")


@pytest.mark.parametrize("ttl", ["999999999d", "99999999999999999999d", "1.5", "-1h", "0"])
def test_claim_ttl_gets_a_clear_error(workdir: Path, capsys: pytest.CaptureFixture[str],
                                      ttl: str) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    for command in (["slice", "claim", "--ttl", ttl], ["slice", "renew", "ab", "--ttl", ttl]):
        assert run(command) == 2
        err = capsys.readouterr().err
        assert "Invalid value for --ttl" in err and "Traceback" not in err
        assert any(m in err for m in ("not a duration", "not a positive duration",
                                      "longer than the maximum of 365d"))


# -- 6. hostile and malformed files ---------------------------------------------------------

def load_bytes(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "devslice.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (issue,) = info.value.issues
    assert issue.line is not None and issue.column is not None
    return str(issue).replace(str(path), "devslice.yaml")


def test_deep_nesting_is_a_located_error_not_a_recursion_error(tmp_path: Path) -> None:
    flow = BASE.encode() + b"names: " + b"[" * 1000 + b"]" * 1000 + b"\n"
    assert load_bytes(tmp_path, flow) == ("devslice.yaml:4:57: nested more than 50 levels "
                                          "deep; a devslice config needs a few")
    block = BASE.encode() + b"".join(b"  " * i + b"k%d:\n" % i for i in range(1000))
    assert load_bytes(tmp_path, block).startswith("devslice.yaml:54:101: nested more than 50")


def test_non_utf8_and_nul_bytes_give_line_and_column(tmp_path: Path) -> None:
    assert load_bytes(tmp_path, BASE.encode() + b"team2: caf\xe9\n") == (
        "devslice.yaml:4:11: not UTF-8 text: byte 0xe9 cannot start or continue a character")
    assert load_bytes(tmp_path, BASE.encode() + b"# note\nteam2: a\x00b\n").startswith(
        "devslice.yaml:5:9: not valid YAML: character #x0000 is not allowed")
    assert load_bytes(tmp_path, bytes(range(256))).startswith("devslice.yaml:2:118: not UTF-8")


def test_alias_bombs_recursive_anchors_and_foreign_tags_are_refused(tmp_path: Path) -> None:
    bomb = BASE + "x0: &a0 [a,a,a,a,a,a,a,a,a,a]\n" + "".join(
        f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))
    assert load_bytes(tmp_path, bomb.encode()) == (
        "devslice.yaml:8:5: expands to more than 20000 values through anchors and aliases; "
        "write the values out instead")
    assert "an anchor refers to itself" in load_bytes(
        tmp_path, (BASE + "names: &x {a: *x}\n").encode())
    assert load_bytes(tmp_path, (BASE + "team: !!python/name:os.system\n").encode()) == (
        "devslice.yaml:4:7: the tag 'tag:yaml.org,2002:python/name:os.system' is not used in "
        "devslice config: write plain values, lists and mappings")
    assert load_bytes(tmp_path, (BASE + "team: 2024-13-45\n").encode()) == (
        "devslice.yaml:4:7: '2024-13-45' is not a valid timestamp (month must be in 1..12)")
    assert load_bytes(tmp_path, (BASE + "cluster: {servers: " + "9" * 5000 + "}\n").encode()
                      ) == "devslice.yaml:4:20: a number of 5000 digits is too large"


def test_duplicate_keys_and_a_byte_order_mark(tmp_path: Path) -> None:
    assert load_bytes(tmp_path, (BASE + "team: other\n").encode()).startswith(
        'devslice.yaml:4:1: not valid YAML: found duplicate key "team"')
    path = tmp_path / "devslice.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())  # as some Windows editors save
    assert load_config(path)[0].team == "company1"


def test_an_empty_subnet_fails_at_load_with_its_line(tmp_path: Path) -> None:
    for subnet, message in (("''", "'' is not a subnet like 172.18.0.0/16"),
                            ("10.0.0.1/16", "'10.0.0.1/16' is not a subnet"),
                            ("10.0.0.0/31", "10.0.0.0/31 is too small for a cluster network")):
        (msg,) = errors(f"cluster:\n  subnet: {subnet}\n")
        assert msg.startswith(f"devslice.yaml:5:11: cluster.subnet: {message}"), msg


# -- 7. names that differ only in case ------------------------------------------------------

def test_a_named_hub_differing_only_in_case_from_a_signalr_hub_is_refused() -> None:
    (msg,) = errors("""\
        signalR:
          hubs: [notifications]
        names:
          alerts: {template: "Notifications_{slice}", rule: signalrHub}
        """)
    assert msg.startswith(
        "devslice.yaml:7:22: names.alerts.template: 'Notifications_{slice}' can produce the "
        "same SignalR hub name as 'notifications_{slice}' at signalR.hubTemplate (the service "
        "ignores case)"), msg


@pytest.mark.parametrize(("hubs", "message"), [
    ("[orders, orders]", "'orders' is already listed at eventHubs.eventHubs[0]"),
    ("[orders, Orders]", "'Orders' and 'orders' at eventHubs.eventHubs[0] differ only in case"),
])
def test_duplicate_event_hubs_are_refused(hubs: str, message: str) -> None:
    (msg,) = errors(f"eventHubs:\n  eventHubs: {hubs}\n")
    assert msg.startswith(f"devslice.yaml:5:23: eventHubs.eventHubs[1]: {message}"), msg


def test_consumer_groups_differing_only_in_case_are_refused() -> None:
    (msg,) = errors("containers:\n  eventHubsEmulator: {consumerGroups: [audit, Audit]}\n")
    assert msg.startswith("devslice.yaml:5:47: containers.eventHubsEmulator.consumerGroups[1]: "
                          "'Audit' and 'audit'"), msg


def test_case_sensitive_services_keep_names_that_differ_in_case() -> None:
    """Data Explorer database names are case-sensitive: Db4{slice} beside db4{slice} is fine."""
    env = parse_config(BASE + "names:\n  other: {template: 'Db4{slice}', "
                       "rule: dataExplorerDatabase}\n", "devslice.yaml", Environment)
    assert env.names["other"].template == "Db4{slice}"


def test_the_local_files_slice_is_a_handle(workdir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ../../pwn\n")
    assert run(["env", "-o", "dotenv"]) == 2
    err = capsys.readouterr().err
    assert "devslice.local.yaml:3:8: slice: '../../pwn' is not allowed: expected text " in err
    assert not list(workdir.parent.glob("*.env"))


def test_explain_shows_values_as_text_not_markup(workdir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(BASE + "contract:\n  env: {A: '[/]', B: '[bold]x'}\n")
    assert run(["slice", "claim", "ab"]) == 0
    capsys.readouterr()
    assert run(["env", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "[/]" in out and "[bold]x" in out


def test_a_per_slice_event_hub_never_takes_a_shared_event_hubs_name() -> None:
    (msg,) = errors("""\
        eventHubs:
          eventHubs: [Orders-ab]
        names:
          mine: {template: "orders-{slice}", rule: eventHub}
        """)
    assert msg.startswith(
        "devslice.yaml:7:20: names.mine.template: 'orders-{slice}' can produce the same event "
        "hub name as 'Orders-ab' at eventHubs.eventHubs[0] (the service ignores case) (for "
        "example 'orders-ab')"), msg
