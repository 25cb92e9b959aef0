"""One output convention (issue 16): every command that prints data takes ``-o/--output
FORMAT`` with json and yaml (the same data), the human form by default; the spellings before
it (``--json``, ``env --format X``, ``-o PATH``) still work with a note on stderr only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner
from ruamel.yaml import YAML

from devslice.cli.app import cli, run
from devslice.cli.output import MACHINE, Formats, yaml_text

from .helpers import BASE, SOLO
from .test_conventions import CONFIG, complete
from .test_ledger_reach import team_blob  # noqa: F401  (a fixture)
from .test_up import world  # noqa: F401  (a fixture)

# Each command that prints data, with what it needs. "project": a local-runtime project
# with slices ab and cd (an embedded hub, so verify runs here); "world": the k3d runtime over
# wire-level fakes (tests/test_up.py), brought up once; "ledger": project, and the team's
# blob ledger in Azurite, migrated to once. ``before``: run before each of the three runs.
CASES: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
    (("slice", "claim"), "project", ()),
    (("slice", "release", "rr"), "project", ("slice", "claim", "rr")),
    (("slice", "renew", "ab", "--ttl", "2h"), "project", ()),
    (("slice", "show", "ab", "--history"), "project", ()),
    (("slice", "list"), "project", ()),
    (("slice", "gc"), "project", ()),
    (("slice", "map"), "project", ()),
    (("ledger", "check"), "project", ()),
    (("env",), "project", ()),
    (("env", "--explain"), "project", ()),
    (("verify",), "project", ()),
    (("doctor",), "project", ()),
    (("schema",), "project", ()),
    (("adx", "apply", "schema.kql", "--dry-run"), "project", ()),
    (("ledger", "migrate", "--to-connection-string-env", "TEAM_LEDGER"), "ledger", ()),
    (("plan",), "world", ()),
    (("up",), "world", ()),
    (("status",), "world", ()),
    (("down",), "world", ()),
    (("destroy", "-y"), "world", ()),
]
# What differs between two runs of the same command: times, and what a claim makes anew.
VOLATILE = {"at", "seconds", "createdAt", "updatedAt", "expiresAt", "claim", "enqueuedTime",
            "partitions", "partition"}  # a claim prefers partitions never used


def documents(out: str, fmt: str) -> list[Any]:
    """Every document of ``out``: one or more JSON texts one after another, or a YAML
    stream (``---`` between documents)."""
    if fmt == "yaml":
        return list(YAML(typ="safe", pure=True).load_all(out))
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(out.rstrip()):
        doc, at = decoder.raw_decode(out, at)
        found.append(doc)
        while at < len(out) and out[at].isspace():
            at += 1
    return found


def steady(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: steady(v) for k, v in data.items() if k not in VOLATILE}
    if isinstance(data, list):
        return [steady(v) for v in data]
    if isinstance(data, str) and "canary" in data:  # verify's canaries carry their numbers
        return " ".join(w for w in data.split() if not w.strip("#,.()").isdigit())
    return data


def same(docs: list[Any], other: list[Any]) -> bool:
    """The same documents, in any order (up's steps run in parallel), times left out."""
    def key(d: Any) -> str:
        return json.dumps(steady(d), sort_keys=True)
    return sorted(map(key, docs)) == sorted(map(key, other))


@pytest.fixture
def project(workdir: Path) -> Path:
    (workdir / "devslice.yaml").write_text(
        CONFIG + SOLO + "dataExplorer:\n  clusterUrl: http://127.0.0.1:9\n")
    (workdir / "schema.kql").write_text(".create-merge table Orders (OrderId: string)\n\n"
                                        "// a comment\n.create-merge table Lines (n: int)\n")
    assert run(["slice", "claim"]) == 0  # ab
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    return workdir


def _setting(request: pytest.FixtureRequest, where: str) -> None:
    if where == "world":
        request.getfixturevalue("world")
        assert run(["slice", "claim"]) == 0
        assert run(["up", "-o", "json"]) == 0  # from here on, up changes nothing
        return
    request.getfixturevalue("project")
    if where == "ledger":
        blob = request.getfixturevalue("team_blob")
        (Path.cwd() / "devslice.yaml").write_text(BASE + SOLO)  # migrate: no embedded hub
        assert run(["ledger", "migrate", "--to-connection-string-env", "TEAM_LEDGER",
                    "--to-container", blob.container_name, "-o", "json"]) == 0


@pytest.mark.parametrize(("args", "where", "before"), CASES,
                         ids=[" ".join(c[0][:2]) for c in CASES])
def test_every_output_as_json_yaml_and_the_old_spelling(
        request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
        args: tuple[str, ...], where: str, before: tuple[str, ...]) -> None:
    if where == "ledger":
        request.applymarker(pytest.mark.azurite)
    _setting(request, where)
    if args[:2] == ("ledger", "migrate"):
        args = (*args, "--to-container", request.getfixturevalue("team_blob").container_name)
    if args[0] in ("down", "destroy"):  # the cluster stops (goes) once; then the runs agree
        assert run([*args, "-o", "json"]) == 0
    old = ["--format", "json"] if args[0] == "env" else ["--json"]
    runs: dict[str, tuple[int, str, str]] = {}
    for name, spelling in (("json", ["-o", "json"]), ("yaml", ["-o", "yaml"]), ("old", old)):
        if before:
            assert run(list(before)) == 0
        capsys.readouterr()
        code = run([*args, *spelling])
        out, err = capsys.readouterr()
        runs[name] = (code, out, err)
    data = documents(runs["json"][1], "json")
    assert data, runs["json"]
    assert runs["json"][0] == runs["yaml"][0] == runs["old"][0]
    assert same(documents(runs["yaml"][1], "yaml"), data)
    assert same(documents(runs["old"][1], "json"), data)
    if not before and args[0] not in ("up", "slice"):  # nothing in it changes between runs
        assert runs["old"][1] == runs["json"][1]
    note = f"note: {old[0]} {'json ' if args[0] == 'env' else ''}is deprecated, use -o json\n"
    assert runs["old"][2].startswith(note) or note in runs["old"][2]
    assert "deprecated" not in runs["json"][2] + runs["yaml"][2]
    assert "\x1b[" not in runs["yaml"][1] and not runs["yaml"][1].startswith("{")


# -- the command tree ---------------------------------------------------------------------

def commands(group: click.Group = cli, path: tuple[str, ...] = ()
             ) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


def test_every_command_follows_the_convention() -> None:
    """A command added later that prints data with its own --json or --format fails here,
    and one with -o FORMAT fails until it is in CASES above."""
    with_output = set()
    for path, command in commands():
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            visible = set(param.opts + param.secondary_opts) if not param.hidden else set()
            assert not visible & {"--json", "--format"}, (path, param.opts)
            if "-o" in param.opts and not param.hidden:
                assert param.opts == ["-o", "--output"] and isinstance(param.type, Formats), path
                assert set(MACHINE) <= set(param.type.choices), path
                assert param.default == param.type.choices[0], path  # the human form
                with_output.add(path)
    assert with_output == {args[:2] if args[0] in ("slice", "ledger", "adx") else args[:1]
                           for args, _, _ in CASES}


def test_help_shows_the_formats_and_hides_the_old_spellings() -> None:
    out = CliRunner().invoke(cli, ["slice", "list", "--help"]).output
    assert "-o, --output FORMAT  Output format: table, json, yaml (default table)." in out
    assert "--json" not in out
    env_help = " ".join(CliRunner().invoke(cli, ["env", "--help"]).output.split())
    assert "-o, --output FORMAT Output format: shell (export lines for eval, the default), " \
        "dotenv, json, yaml" in env_help and "--to-file PATH" in env_help
    assert "--format" not in env_help


# -- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["slice", "list", "-o", "xml"], ["env", "-o", "ymal"],
                                  ["status", "-o", "JSON"], ["slice", "list", "--json", "-o",
                                                             "yaml"]])
def test_an_unknown_format_is_a_usage_error_naming_the_valid_ones(
        project: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert run(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    if "--json" in args:
        assert "--json and -o yaml ask for two formats" in err
    elif args[0] == "env":
        assert "'ymal' is not one of 'shell', 'dotenv', 'json', 'yaml', 'k8s'; to write a " \
            "file: --to-file ymal" in err
        assert not (project / "ymal").exists()
    else:
        assert "is not one of 'table', 'json', 'yaml'" in err


def test_tab_completes_the_format_names(project: Path) -> None:
    assert complete(project, "devslice slice list -o ") == ["table", "json", "yaml"]
    assert complete(project, "devslice env --output d") == ["dotenv"]
    assert complete(project, "devslice up -o y") == ["yaml"]


# -- env: formats and files ----------------------------------------------------------------

def test_env_files_move_to_to_file_and_the_old_o_path_still_writes(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["env", "-o", "dotenv", "--to-file", "new.env"]) == 0
    out, err = capsys.readouterr()
    assert "wrote new.env (mode 0600" in out and err == ""
    assert os.stat(project / "new.env").st_mode & 0o777 == 0o600
    assert run(["env", "--format", "dotenv", "-o", "old.env"]) == 0  # before issue 16
    out, err = capsys.readouterr()
    assert err == ("note: -o old.env is deprecated, use --to-file old.env\n"
                   "note: --format dotenv is deprecated, use -o dotenv\n")
    assert (project / "old.env").read_text() == (project / "new.env").read_text()
    assert run(["env", "-o", "k8s", "--to-file", "-", "--for", "host"]) == 0
    new_k8s = capsys.readouterr().out
    assert run(["env", "--format", "k8s", "-o", "-", "--for", "host"]) == 0
    assert capsys.readouterr().out == new_k8s and new_k8s.startswith("apiVersion: v1\n")
    assert run(["env", "-o", "yaml", "--to-file", "ab.yaml"]) == 0  # any format, to a file
    capsys.readouterr()
    assert run(["env", "-o", "yaml"]) == 0
    assert (project / "ab.yaml").read_text() == capsys.readouterr().out
    # Two files, or two formats: said, not guessed.
    assert run(["env", "-o", "x.env", "--to-file", "y.env"]) == 2
    assert "-o PATH and --to-file PATH name two files" in capsys.readouterr().err
    assert run(["env", "--format", "json", "-o", "yaml"]) == 2
    assert "--format json and -o yaml ask for two formats" in capsys.readouterr().err
    assert run(["env", "--explain", "--to-file", "x"]) == 2
    assert not (project / "x").exists()


def test_shell_output_still_evaluates_with_the_old_spelling(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval "$(devslice env --format shell)"`: the note is on stderr, stdout is the code."""
    assert run(["env", "--format", "shell"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("export LOCAL_DEV_SLICE=ab\n") and "note" not in out
    assert err == "note: --format shell is deprecated, use -o shell\n"


def test_init_writes_to_to_file_and_still_to_o_path(workdir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["init", "--to-file", "new.yaml"]) == 0
    assert capsys.readouterr().err == ""
    assert run(["init", "-o", "old.yaml"]) == 0
    assert capsys.readouterr().err == "note: -o old.yaml is deprecated, use --to-file old.yaml\n"
    assert (workdir / "old.yaml").read_text() == (workdir / "new.yaml").read_text()
    assert run(["init", "-o", "yaml"]) == 2  # a format name means a format: init has none
    assert "--to-file yaml" in capsys.readouterr().err and not (workdir / "yaml").exists()
    assert run(["init", "-o", "x.yaml", "--to-file", "y.yaml"]) == 2


# -- YAML's shape ---------------------------------------------------------------------------

def test_yaml_is_safe_block_style_in_json_order_and_strings_stay_strings() -> None:
    data = {"z": 1, "a": [{"yes": "no", "on": "off", "n": "8080", "t": "true", "x": None}],
            "path": "/tmp/a: b", "lines": "one\ntwo", "empty": {}}
    text = yaml_text(data)
    assert text.splitlines()[:2] == ["z: 1", "a:"]  # JSON's key order, block style
    assert "'yes': 'no'" in text and "'on': 'off'" in text  # YAML 1.1 readers get strings
    assert "!!" not in text and "{" not in text.replace("empty: {}", "")
    assert YAML(typ="safe", pure=True).load(text) == data
    # what a YAML 1.1 reader would take for a number, a date or null stays a string there too
    tricky = {"time": "12:30", "hex": "0x1F", "octal": "012", "day": "2026-01-01", "tilde": "~",
              "sep": "1_000", "inf": ".inf", "merge": "<<", "ports": "8080:80"}
    assert yaml.safe_load(yaml_text(tricky)) == tricky  # PyYAML reads YAML 1.1
    assert yaml_text([{"a": 1}], start=True).startswith("---\n")
