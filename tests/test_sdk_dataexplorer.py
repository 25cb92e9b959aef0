"""Data Explorer: splitting a team's KQL schema script, applying it to the slice's database and
re-creating that database, against a fake Kusto engine that speaks the real REST protocol on
127.0.0.1 to the real azure-kusto-data client; and the ``devslice adx`` commands end to end."""

from __future__ import annotations

import contextlib
import io
import json
import os
import string
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.kusto.data import KustoClient, KustoConnectionStringBuilder
from hypothesis import given
from hypothesis import strategies as st

from devslice.cli.app import run
from devslice.sdk.context import SliceContext
from devslice.sdk.dataexplorer import (
    AppliedCommand,
    CommandRejected,
    DataExplorer,
    DataExplorerAccessDenied,
    DataExplorerError,
    DataExplorerNotConfigured,
    DataExplorerUnreachable,
    InvalidDatabaseName,
    KqlScriptError,
    NoSliceDatabase,
    parse_kql,
    split_kql,
)
from devslice.testing.kusto import FakeKusto, Seen

from .helpers import BASE, SOLO


@pytest.fixture
def kusto() -> Iterator[FakeKusto]:
    with FakeKusto() as fake:
        yield fake


@pytest.fixture
def client(kusto: FakeKusto) -> Iterator[KustoClient]:
    """The real azure-kusto-data client, pointed at the fake engine without sign-in."""
    with KustoClient(KustoConnectionStringBuilder.with_no_authentication(kusto.url)) as c:
        yield c


@pytest.fixture
def adx(kusto: FakeKusto, client: KustoClient) -> DataExplorer:
    return DataExplorer(kusto.url, client)


# -- splitting scripts ------------------------------------------------------------------------

SCHEMA = '''\
// Schema of the orders service. Apply with: devslice adx apply schema.kql

.create-merge table Orders (
    OrderId: string,
    // who ordered
    CustomerId: string,
    Amount: decimal,   // in EUR
    CreatedAt: datetime
)


// Events carry camelCase fields.
.create-or-alter table Orders ingestion json mapping "OrdersMapping"
```
[
  {"column": "OrderId",    "Properties": {"Path": "$.orderId"}},

  {"column": "CustomerId", "Properties": {"Path": "$.customerId"}},
// still JSON, not a comment: it sits inside the fence
  {"column": "CreatedAt",  "Properties": {"Path": "$.createdAt"}}
]
```

.create-or-alter function with (folder = "reports", docstring = "Orders per day")
OrdersPerDay(since: datetime) {
    Orders
    | where CreatedAt > since   // only recent ones
    | summarize Orders = count(), Amount = sum(Amount) by bin(CreatedAt, 1d)
}
    \t
.alter table Orders policy streamingingestion '{"IsEnabled": true}'
.alter-merge table Orders policy retention softdelete = 30d

.alter table Orders policy ingestionbatching @'{"MaximumBatchingTimeSpan": "00:01:00"}'
'''


def test_a_realistic_schema_script_splits_into_its_commands() -> None:
    commands = parse_kql(SCHEMA, "schema.kql")
    assert [c.text for c in commands] == [
        ".create-merge table Orders (\n    OrderId: string,\n    CustomerId: string,\n"
        "    Amount: decimal,   // in EUR\n    CreatedAt: datetime\n)",
        '.create-or-alter table Orders ingestion json mapping "OrdersMapping"\n```\n[\n'
        '  {"column": "OrderId",    "Properties": {"Path": "$.orderId"}},\n\n'
        '  {"column": "CustomerId", "Properties": {"Path": "$.customerId"}},\n'
        "// still JSON, not a comment: it sits inside the fence\n"
        '  {"column": "CreatedAt",  "Properties": {"Path": "$.createdAt"}}\n]\n```',
        '.create-or-alter function with (folder = "reports", docstring = "Orders per day")\n'
        "OrdersPerDay(since: datetime) {\n    Orders\n    | where CreatedAt > since   // only "
        "recent ones\n    | summarize Orders = count(), Amount = sum(Amount) by "
        "bin(CreatedAt, 1d)\n}",
        # No blank line between them: one command, as Kusto.Explorer would send it.
        ".alter table Orders policy streamingingestion '{\"IsEnabled\": true}'\n"
        ".alter-merge table Orders policy retention softdelete = 30d",
        ".alter table Orders policy ingestionbatching "
        "@'{\"MaximumBatchingTimeSpan\": \"00:01:00\"}'",
    ]
    assert [(c.line, c.where) for c in commands] == [
        (3, "schema.kql:3"), (13, "schema.kql:13"), (24, "schema.kql:24"),
        (31, "schema.kql:31"), (34, "schema.kql:34")]
    assert split_kql(SCHEMA) == [c.text for c in commands]


def test_line_endings_byte_order_mark_and_empty_scripts() -> None:
    assert split_kql("\ufeff.show tables\r\n\r\n.show functions\r\n") == [
        ".show tables", ".show functions"]
    assert split_kql("") == []
    assert split_kql("\n// only a comment\n   \n") == []


def test_tilde_fences_and_backticks_inside_strings() -> None:
    script = ".set-or-append T <| print x = ~~~a\n\nb~~~\n\n.alter x '```' ('(')\n\n.z"
    assert split_kql(script) == [".set-or-append T <| print x = ~~~a\n\nb~~~",
                                 ".alter x '```' ('(')", ".z"]


def test_an_unterminated_fence_names_the_line_it_opens_on() -> None:
    script = ".show tables\n\n.create table T ingestion json mapping 'M'\n```\n[\n\n.show x\n"
    with pytest.raises(KqlScriptError, match=r"^schema\.kql:4: the multi-line string opened "
                       r"with ``` is never closed") as caught:
        parse_kql(script, "schema.kql")
    assert caught.value.exit_code == 2


def test_a_blank_line_inside_an_open_bracket_is_an_error_not_a_split() -> None:
    script = textwrap.dedent("""\
        .create-or-alter function F() {
            T
            | where x == "}"   // a brace in a string or comment does not close it }

            | count
        }
        """)
    with pytest.raises(KqlScriptError) as caught:
        parse_kql(script, "f.kql")
    assert str(caught.value).startswith(
        "f.kql:4: a blank line inside the command that starts at line 1, whose '{' from line 1 "
        "is still open")
    assert "a blank line ends a command" in str(caught.value)


def test_verbatim_strings_take_backslashes_literally() -> None:
    # @"C:\data\" ends at its second quote, so the '(' after it is open at the blank line.
    with pytest.raises(KqlScriptError, match="'\\(' from line 1"):
        split_kql('.x @"C:\\data\\" (\n\n)')
    # In a regular string \" is an escaped quote: the '(' is inside the string.
    assert split_kql('.x "C:\\data\\" (\n\n)') == ['.x "C:\\data\\" (', ")"]
    assert split_kql('.x @"say ""(""" y\n\n.z') == ['.x @"say ""(""" y', ".z"]


SAFE = string.ascii_letters + string.digits + "_-:,.=|<>+*$ "
words = st.text(SAFE, min_size=1, max_size=12).map(str.strip).filter(bool)
literals = st.text(SAFE + "(){}[]/`~", max_size=12).map(lambda t: f"'{t}'")
fenced = st.lists(st.text(SAFE + "(){}[]/'\"\t", max_size=12), max_size=4).map(
    lambda lines: "```" + "\n".join(lines) + "```")
brackets = st.lists(words, min_size=1, max_size=3).map(lambda ls: "(\n" + "\n".join(ls) + "\n)")
pieces = st.lists(st.tuples(st.sampled_from([" ", "\n"]),
                            st.one_of(words, literals, fenced, brackets)), max_size=5)
kql_commands = st.builds(lambda head, rest: "." + head + "".join(s + p for s, p in rest),
                         words, pieces)
separators = st.sampled_from(["\n\n", "\n\n\n", "\n \t\n", "\n\n// note\n", "\n// note\n\n",
                              "\n\n// a\n\n// b\n\n"])


@given(st.lists(st.tuples(kql_commands, separators), min_size=1, max_size=6),
       st.sampled_from(["", "\n", "// header\n", "\n\n"]))
def test_joining_commands_with_blank_lines_and_splitting_gives_them_back(
    parts: list[tuple[str, str]], lead: str
) -> None:
    commands = [c for c, _ in parts]
    script = lead + "".join(c + sep for c, sep in parts)
    parsed = parse_kql(script)
    assert [c.text for c in parsed] == commands
    lines = script.split("\n")
    assert [lines[c.line - 1] for c in parsed] == [c.split("\n", 1)[0] for c in commands]


# -- the client, against the fake engine ------------------------------------------------------


def test_apply_sends_each_command_in_order_to_the_slice_database(
    kusto: FakeKusto, adx: DataExplorer
) -> None:
    kusto.databases["db4ab"] = set()
    commands = parse_kql(SCHEMA, "schema.kql")
    seen: list[AppliedCommand] = []
    done = adx.apply("db4ab", commands, on_applied=seen.append)
    assert kusto.commands == [("db4ab", c.text) for c in commands]
    assert [d.index for d in done] == [1, 2, 3, 4, 5] and done == seen
    assert kusto.databases["db4ab"] == {"Orders"}
    for request in kusto.seen:
        assert request.authorization is None  # no sign-in: with_no_authentication
        assert request.app == "devslice"
        assert request.request_id and request.request_id.startswith("devslice.adx.apply;")
        assert request.properties["Options"] == {}


def test_apply_stops_at_the_first_failure_and_says_which_command(
    kusto: FakeKusto, adx: DataExplorer
) -> None:
    kusto.databases["db4ab"] = set()
    script = ".create table A (x: string)\n\n.create table B (x: string)\n\n" \
             ".create table A (x: string)\n\n.create table C (x: string)\n"
    with pytest.raises(CommandRejected) as caught:
        adx.apply("db4ab", parse_kql(script, "s.kql"))
    assert kusto.commands == [("db4ab", ".create table A (x: string)"),
                              ("db4ab", ".create table B (x: string)"),
                              ("db4ab", ".create table A (x: string)")]
    e = caught.value
    assert e.message == (
        "Data Explorer rejected command 3 of 4 (s.kql:5: .create table A (x: string)): Entity "
        "'A' of kind 'Table' already exists. [BadRequest_EntityAlreadyExists]")
    assert (e.code, e.server_message) == ("BadRequest_EntityAlreadyExists",
                                          "Entity 'A' of kind 'Table' already exists.")
    assert e.hint is not None and ".create-merge table" in e.hint
    assert "the 2 commands before it were applied (Kusto rolls nothing back)" in e.hint
    assert kusto.databases["db4ab"] == {"A", "B"}


def test_apply_to_a_database_that_does_not_exist(kusto: FakeKusto, adx: DataExplorer) -> None:
    with pytest.raises(CommandRejected, match=r"command 1 of 1 \(\.show tables\): Database "
                       r"'db4ab' was not found\. \[BadRequest_DatabaseNotExist\]") as caught:
        adx.apply("db4ab", [".show tables"])
    assert "`devslice adx reset` creates it" in str(caught.value.hint)


def test_apply_refuses_queries_before_sending_anything(
    kusto: FakeKusto, adx: DataExplorer
) -> None:
    with pytest.raises(KqlScriptError, match=r"^s\.kql:3: command 2 is not a management command:"
                       r" Orders \| take 10"):
        adx.apply("db4ab", parse_kql(".show tables\n\nOrders | take 10\n", "s.kql"))
    assert kusto.seen == []


def test_reset_drops_and_creates_the_database_in_the_admin_database(
    kusto: FakeKusto, adx: DataExplorer
) -> None:
    kusto.databases["db4ab"] = {"Orders"}
    assert adx.reset("db4ab") == [".drop database ['db4ab'] ifexists",
                                  ".create database ['db4ab'] volatile"]
    assert kusto.commands == [("NetDefaultDB", ".drop database ['db4ab'] ifexists"),
                              ("NetDefaultDB", ".create database ['db4ab'] volatile")]
    assert kusto.databases["db4ab"] == set()  # empty again
    assert all(s.request_id and s.request_id.startswith("devslice.adx.reset;")
               for s in kusto.seen)
    adx.reset("db4ab")  # and again, from any state
    assert kusto.databases["db4ab"] == set()


def test_reset_can_persist_in_fresh_folders(kusto: FakeKusto, client: KustoClient) -> None:
    times = iter([datetime(2026, 7, 1, 9, 30, tzinfo=UTC), datetime(2026, 7, 1, 9, 31, tzinfo=UTC)])
    adx = DataExplorer(kusto.url, client, persist_root="/kustodata/dbs/", clock=lambda: next(times))
    first = adx.reset("db4ab")[1]
    assert first == (".create database ['db4ab'] persist ("
                     '@"/kustodata/dbs/db4ab/20260701T093000000000Z/md", '
                     '@"/kustodata/dbs/db4ab/20260701T093000000000Z/data")')
    second = adx.reset("db4ab")[1]
    assert "20260701T093100000000Z" in second  # `.drop database` detaches: never reuse folders
    assert "db4ab" in kusto.databases


@pytest.mark.parametrize("name", [
    "db4ab'] ifexists\n.drop database ['shared",
    "db4ab\"]; .drop database shared",
    "x|y",
    "__reserved",
    "a" * 261,
])
def test_a_name_that_could_inject_is_refused_before_any_request(
    kusto: FakeKusto, adx: DataExplorer, name: str
) -> None:
    with pytest.raises(InvalidDatabaseName) as caught:
        adx.reset(name)
    assert caught.value.exit_code == 2
    with pytest.raises(InvalidDatabaseName):
        adx.apply(name, [".show tables"])
    assert kusto.seen == []


def test_names_with_spaces_dots_and_hyphens_are_quoted(adx: DataExplorer) -> None:
    assert adx.reset_commands("db4ab.exp-1 x") == [
        ".drop database ['db4ab.exp-1 x'] ifexists", ".create database ['db4ab.exp-1 x'] volatile"]


def test_a_shared_environment_is_never_reset(kusto: FakeKusto, adx: DataExplorer) -> None:
    shared = SliceContext.from_env({"LOCAL_DEV_DATAEXPLORER_CLUSTERURL": kusto.url})
    assert shared.data_explorer_database is None
    with pytest.raises(NoSliceDatabase, match="no slice database") as caught:
        adx.reset(shared.data_explorer_database)
    assert "claim a slice" in str(caught.value.hint)
    with pytest.raises(NoSliceDatabase):
        adx.apply(None, [".create-merge table T (x: string)"])
    with pytest.raises(NoSliceDatabase):
        adx.reset("")
    assert kusto.seen == []


def test_from_context_needs_a_cluster_url(kusto: FakeKusto, client: KustoClient) -> None:
    ctx = SliceContext.from_env({"LOCAL_DEV_DATAEXPLORER_CLUSTERURL": kusto.url + "/",
                                 "LOCAL_DEV_DATAEXPLORER_DATABASE": "db4ab"})
    assert DataExplorer.from_context(ctx, client).cluster_url == kusto.url
    with pytest.raises(DataExplorerNotConfigured, match="DATAEXPLORER_CLUSTERURL is not set"):
        DataExplorer.from_context(SliceContext.from_env({}))
    with pytest.raises(DataExplorerNotConfigured, match="is not a Data Explorer cluster URL"):
        DataExplorer("company1dev.westeurope")


# -- foreign errors become devslice errors ----------------------------------------------------


def test_an_unreachable_cluster() -> None:
    url = "http://127.0.0.1:9"  # the discard port: nothing listens there
    with DataExplorer(url) as adx, pytest.raises(DataExplorerUnreachable) as caught:
        adx.apply("db4ab", [".show tables"])
    assert str(caught.value).startswith(
        f"cannot reach Data Explorer at {url} (command 1 of 1 (.show tables)): ")
    assert "docker ps" in str(caught.value.hint)


def test_a_wrong_token_is_access_denied(kusto: FakeKusto) -> None:
    kusto.token = "right"
    kcsb = KustoConnectionStringBuilder.with_token_provider(kusto.url, lambda: "wrong")
    with KustoClient(kcsb) as c:
        adx = DataExplorer(kusto.url, c)
        with pytest.raises(DataExplorerAccessDenied, match="refused step 1 of 2") as caught:
            adx.reset("db4ab")
        assert kusto.seen[0].authorization == "Bearer wrong"
        assert "az login" in str(caught.value.hint)
    with KustoClient(KustoConnectionStringBuilder.with_token_provider(kusto.url, lambda: "right")
                     ) as c:
        DataExplorer(kusto.url, c).reset("db4ab")
    assert "db4ab" in kusto.databases


def test_forbidden_throttled_and_a_failed_second_reset_step(
    kusto: FakeKusto, adx: DataExplorer
) -> None:
    r = Seen("/v1/rest/mgmt", "db4ab", "", {}, None, None, None)
    kusto.databases["db4ab"] = set()
    kusto.canned.append((403, FakeKusto.error(r, "Forbidden", "Principal 'x' is not authorized "
                                              "to perform operation 'Alter table'.")))
    with pytest.raises(DataExplorerAccessDenied, match="is not authorized"):
        adx.apply("db4ab", [".alter table T policy caching hot = 1d"])
    kusto.canned.extend([(200, FakeKusto.table(["Result"], [["Completed"]])), (429, {})])
    with pytest.raises(DataExplorerError, match="is throttling requests") as caught:
        adx.apply("db4ab", [".show tables", ".show tables"])
    assert "the 1 command before it was applied" in str(caught.value.hint)
    kusto.canned.extend([(200, FakeKusto.table(["DatabaseName"], [["db4ab"]])),
                         (400, FakeKusto.error(r, "BadRequest_InvalidPath", "Path exists."))])
    with pytest.raises(CommandRejected, match=r"step 2 of 2 of re-creating database 'db4ab' "
                       r"\(\.create database \['db4ab'\] volatile\): Path exists\.") as rejected:
        adx.reset("db4ab")
    assert "the database was dropped and is not there now" in str(rejected.value.hint)


def test_a_cluster_that_cannot_create_databases_gets_the_azure_way_out(
    kusto: FakeKusto, client: KustoClient
) -> None:
    # The requests go to the fake; the URL says "a real cluster", which is what the hint reads.
    adx = DataExplorer("https://company1dev.westeurope.kusto.windows.net", client)
    r = Seen("/v1/rest/mgmt", "NetDefaultDB", "", {}, None, None, None)
    kusto.canned.append((403, FakeKusto.error(r, "Forbidden", "Principal is not authorized.")))
    with pytest.raises(DataExplorerAccessDenied) as denied:
        adx.reset("db4ab")
    assert "`az kusto database create`" in str(denied.value.hint)
    kusto.canned.extend([(200, FakeKusto.table(["DatabaseName"], [["db4ab"]])),
                         (400, FakeKusto.error(r, "BadRequest_SyntaxError", "Syntax error."))])
    with pytest.raises(CommandRejected) as rejected:
        adx.reset("db4ab")
    assert rejected.value.hint == (
        "`.create database` and `.drop database` work on the Kusto emulator; on an Azure Data "
        "Explorer cluster a database is an Azure resource: re-create it with `az kusto database "
        "create` (or drop its tables and apply the schema again); the database was dropped and "
        "is not there now")


# -- the CLI, end to end ----------------------------------------------------------------------


@pytest.fixture
def slice_ab(workdir: Path, kusto: FakeKusto) -> Path:
    """A project whose devslice.yaml points at the fake engine, with slice ab claimed."""
    (workdir / "devslice.yaml").write_text(
        BASE + SOLO + f"dataExplorer:\n  clusterUrl: {kusto.url}\n")
    assert run(["slice", "claim", "ab"]) == 0
    (workdir / "schema.kql").write_text(SCHEMA)
    return workdir


def test_cli_reset_then_apply(slice_ab: Path, kusto: FakeKusto,
                              capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run(["adx", "reset", "-y"]) == 0
    assert f"re-created database db4ab on {kusto.url}, empty" in capsys.readouterr().out
    assert run(["adx", "apply", "schema.kql"]) == 0
    out = capsys.readouterr().out
    assert "ok 1/5  .create-merge table Orders (" in out
    assert f"applied 5 commands to database db4ab on {kusto.url}" in out
    assert kusto.commands == [
        ("NetDefaultDB", ".drop database ['db4ab'] ifexists"),
        ("NetDefaultDB", ".create database ['db4ab'] volatile"),
        *[("db4ab", c) for c in split_kql(SCHEMA)],
    ]
    assert all(s.authorization is None for s in kusto.seen)  # http:// is the emulator: no sign-in


def test_cli_dry_run_sends_nothing(slice_ab: Path, kusto: FakeKusto,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run(["adx", "apply", "schema.kql", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"dry run: 5 commands for database db4ab on {kusto.url} (slice ab); "
                          "nothing sent\n1  .create-merge table Orders (    # schema.kql:3\n"
                          "       OrderId: string,\n")
    assert "\n5  .alter table Orders policy ingestionbatching" in out
    assert run(["adx", "apply", "schema.kql", "--dry-run", "-o", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {k: plan[k] for k in ("slice", "cluster", "database", "dryRun")} == {
        "slice": "ab", "cluster": kusto.url, "database": "db4ab", "dryRun": True}
    assert [(c["index"], c["line"]) for c in plan["commands"]] == [
        (1, 3), (2, 13), (3, 24), (4, 31), (5, 34)]
    assert kusto.seen == []


def test_cli_apply_json_and_a_failure(slice_ab: Path, kusto: FakeKusto,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    kusto.databases["db4ab"] = set()
    capsys.readouterr()
    assert run(["adx", "apply", "schema.kql", "-o", "json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["dryRun"] is False and len(done["commands"]) == 5
    (slice_ab / "bad.kql").write_text(".create table A (x: string)\n\n"
                                      ".create table A (x: string)\n")
    assert run(["adx", "apply", "bad.kql"]) == 1
    err = capsys.readouterr().err
    assert ("error: Data Explorer rejected command 2 of 2 (bad.kql:3: .create table A (x: "
            "string)): Entity 'A' of kind 'Table' already exists.") in err
    assert "the 1 command before it was applied" in err and "Traceback" not in err


def test_cli_reset_asks_first_and_honours_the_personal_override(
    slice_ab: Path, kusto: FakeKusto, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    (slice_ab / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslice: ab\n"
        "env: {LOCAL_DEV_DATAEXPLORER_DATABASE: db4ab_experiment}\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    capsys.readouterr()
    assert run(["adx", "reset"]) == 1
    out = capsys.readouterr()
    assert ("Drop database 'db4ab_experiment' on " + kusto.url + " (slice ab; name from "
            "personal override (devslice.local.yaml)) and create it empty?") in out.out
    assert "aborted" in out.err and kusto.seen == []
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert run(["adx", "reset"]) == 0
    assert "db4ab_experiment" in kusto.databases and "db4ab" not in kusto.databases


def test_cli_errors_are_messages(workdir: Path, kusto: FakeKusto,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    assert run(["slice", "claim", "ab"]) == 0
    (workdir / "s.kql").write_text(".show tables\n```\n")
    capsys.readouterr()
    assert run(["adx", "reset", "-y"]) == 1
    err = capsys.readouterr().err
    assert "error: slice ab has no Data Explorer cluster" in err
    assert "hint: set dataExplorer.clusterUrl in devslice.yaml" in err
    (workdir / "devslice.yaml").write_text(
        BASE + SOLO + f"dataExplorer: {{clusterUrl: {kusto.url}}}\n")
    assert run(["adx", "apply", "s.kql"]) == 2
    assert "error: s.kql:2: the multi-line string opened with ``` is never closed" in (
        capsys.readouterr().err)
    (workdir / "s.kql").write_bytes(b".show \xff tables\n")
    assert run(["adx", "apply", "s.kql"]) == 2
    assert "error: s.kql: not UTF-8 text (byte 6)" in capsys.readouterr().err
    assert run(["adx", "apply", "missing.kql"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert kusto.seen == []


# -- a real cluster, when asked for -----------------------------------------------------------

LIVE_CLUSTER = os.environ.get("DEVSLICE_LIVE_ADX_CLUSTER")


@pytest.mark.live
@pytest.mark.skipif(not LIVE_CLUSTER, reason="set DEVSLICE_LIVE_ADX_CLUSTER (a cluster URL, or "
                    "http://localhost:8080 for the Kusto emulator) and DEVSLICE_LIVE_ADX_DATABASE")
def test_live_apply_a_tiny_script() -> None:
    assert LIVE_CLUSTER is not None
    database = os.environ.get("DEVSLICE_LIVE_ADX_DATABASE", "devslicelive")
    table = f"DevsliceLive{uuid.uuid4().hex[:8]}"
    script = f"""\
// a tiny schema: one table and a function over it
.create-merge table {table} (Id: string, At: datetime)

.create-or-alter function with (folder = "devslice") {table}Count() {{
    {table} | count
}}
"""
    with DataExplorer(LIVE_CLUSTER) as adx:
        if LIVE_CLUSTER.startswith("http://"):
            adx.reset(database)  # the emulator creates databases; a cluster's must exist
        try:
            done = adx.apply(database, parse_kql(script, "live.kql"))
            assert [d.command.line for d in done] == [2, 4]
            shown = adx.client.execute_mgmt(database, ".show tables").primary_results[0]
            assert table in [row["TableName"] for row in shown]
        finally:
            adx.apply(database, [f".drop function {table}Count ifexists",
                                 f".drop table {table} ifexists"])


def test_the_emulator_database_resource_creates_once_and_waits_for_the_emulator(
        kusto: FakeKusto) -> None:
    from devslice.resources.dataexplorer import EmulatorDatabaseResource

    with socket_closed_port() as dead:
        waiting = EmulatorDatabaseResource("db4ab", f"http://127.0.0.1:{dead}").plan()
    assert [(a.verb, a.reason) for a in waiting] == [
        ("create", f"database db4ab: the Kusto emulator at http://127.0.0.1:{dead} does not "
                   "answer yet")]
    resource = EmulatorDatabaseResource("db4ab", kusto.url)
    (action,) = resource.plan()
    assert (action.verb, action.reason) == ("create", "database db4ab is missing in the Kusto "
                                                      "emulator")
    assert action.calls[0].startswith(
        ".create database ['db4ab'] persist (@\"/kustodata/dbs/db4ab/")
    assert action.execute is not None
    action.execute()
    assert "db4ab" in kusto.databases
    assert [(a.verb, a.reason) for a in resource.plan()] == [
        ("noop", "database db4ab exists in the Kusto emulator")]
    assert DataExplorer(kusto.url).databases() == ["NetDefaultDB", "db4ab"]


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])  # bound, not listening: connections are refused


@pytest.mark.parametrize("eol", ["\r", "\u2028", "\u2029", "\r\n", "\n"])
def test_every_line_break_kusto_knows_ends_a_line(eol: str) -> None:
    """Kusto.Language ends a line at CR LF, CR, LF, U+2028 and U+2029: a file saved with CR
    only is two commands, not one."""
    script = eol.join([".create table A (x: int)", "", "// a note",
                       ".create table B (", "  y: string)", ""])
    commands = parse_kql(script, "s.kql")
    assert [(c.text, c.line) for c in commands] == [
        (".create table A (x: int)", 1), (".create table B (\n  y: string)", 4)]
    with pytest.raises(KqlScriptError, match=r"^s\.kql:2: a blank line inside"):
        parse_kql(eol.join([".create table C (", "", "  z: int)"]), "s.kql")
