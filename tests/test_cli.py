"""The command line: every command documented with an example, and what a user sees for
each kind of bad input (a message and a hint, never a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from devslice import __version__
from devslice.cli.app import cli, run

from .helpers import BASE, requirements


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out.extend(all_commands(cmd, (*prefix, name)))
    return out


COMMANDS = all_commands(cli)


def test_the_command_tree_is_what_the_docs_promise() -> None:
    assert set(COMMANDS) >= {
        ("init",), ("schema",), ("doctor",), ("env",), ("slice",), ("slice", "claim"),
        ("slice", "release"), ("slice", "renew"), ("slice", "show"), ("slice", "list"),
        ("slice", "gc"), ("slice", "map"),
    }


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*path, "--help"]) == 0
    text = capsys.readouterr().out
    assert "Example" in text, f"`devslice {' '.join(path)} --help` shows no example"


def test_readme_mentions_every_command() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for path in COMMANDS:
        assert f"devslice {' '.join(path)}" in readme, f"README does not show {path}"


def devslice(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devslice", *args], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=60)


def test_version_in_a_real_process(tmp_path: Path) -> None:
    done = devslice("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"devslice {__version__}\n")


def test_a_fresh_folder_walkthrough(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["init", "--team", "company1"]) == 0
    assert run(["slice", "claim"]) == 0
    out = capsys.readouterr().out
    assert "claimed slice ab" in out and "company1stacc4ab" in out
    assert run(["slice", "claim"]) == 0
    assert "you already hold slice ab" in capsys.readouterr().out
    assert run(["slice", "claim", "--owner", "Carl Dahl", "--partitions", "2"]) == 0
    capsys.readouterr()
    assert run(["slice", "map"]) == 0
    picture = capsys.readouterr().out
    assert "embedded  32 partitions, 29 free" in picture
    assert " 0 ab" in picture and " 1 cd" in picture and " 2 cd" in picture
    assert "2 slices live, 29 partitions free: room for 29 more slices" in picture
    # The current slice is the one claimed here for me, not the one claimed for Carl.
    assert run(["env"]) == 0
    assert "export LOCAL_DEV_SLICE=ab\n" in capsys.readouterr().out
    assert run(["slice", "release"]) == 0
    assert "released slice ab" in capsys.readouterr().out


def test_json_on_every_listing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(BASE + "slices: {ttl: {ci: 1h}}\n")
    assert run(["slice", "claim", "-o", "json"]) == 0
    claimed = json.loads(capsys.readouterr().out)
    assert (claimed["handle"], claimed["created"], claimed["eventHubs"]["partitions"]) == (
        "ab", True, [0])
    assert claimed["names"]["storageAccount"] == "company1stacc4ab"
    assert run(["slice", "claim", "--kind", "ci", "--owner", "pipeline", "-o", "json"]) == 0
    ci = json.loads(capsys.readouterr().out)
    assert ci["handle"] == "ci1" and ci["expiresAt"] is not None
    assert run(["slice", "list", "-o", "json"]) == 0
    assert [s["handle"] for s in json.loads(capsys.readouterr().out)] == ["ab", "ci1"]
    assert run(["slice", "show", "ab", "--history", "-o", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [c["action"] for c in shown["history"]] == ["claim"]
    assert run(["slice", "map", "-o", "json"]) == 0
    picture = json.loads(capsys.readouterr().out)
    assert picture["free"] == 30
    assert picture["namespaces"][0]["cells"][1] == {"partition": 1, "state": "held",
                                                    "handle": "ci1"}
    assert run(["slice", "gc", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"dryRun": False, "reclaimed": []}
    assert run(["doctor", "-o", "json"]) in (0, 1)
    names = [c["name"] for c in json.loads(capsys.readouterr().out)]
    assert names[-2:] == ["config", "ledger"]


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Environment"
    assert "eventHubs" in schema["properties"]


# -- bad input: what the user sees ------------------------------------------------------------


def test_no_config_in_a_real_process(tmp_path: Path) -> None:
    done = devslice("slice", "list", cwd=tmp_path)
    assert done.returncode == 2
    assert "no devslice.yaml here or in any parent folder" in done.stderr
    assert "hint: run `devslice init`" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_error_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "devslice.yaml").write_text(BASE + "eventHubs:\n  partitionsPerSlice: 99\n")
    done = devslice("slice", "claim", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "error: invalid configuration:\n"
        f"  {tmp_path / 'devslice.yaml'}:5:23: eventHubs.partitionsPerSlice: 99 is not "
        "allowed: expected less than or equal to 32\n"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["slice", "claim", "A-B"], 2, "error: 'A-B' is not a valid slice handle: expected 2 to 8 "
                                       "characters, a lowercase letter first"),
        (["slice", "claim", "toolonghandle"], 2, "is not a valid slice handle"),
        (["slice", "release", "zz"], 1, "error: no slice 'zz' in the ledger (live slices: ab)"),
        (["slice", "claim", "ab", "--owner", "Someone Else"], 1,
         "error: slice 'ab' is held by Anna Berg <anna@example.com>"),
        (["slice", "release", "ab", "--owner", "x"], 2, "No such option '--owner'"),
        (["slice", "claim", "--ttl", "soon"], 2, "'soon' is not a duration"),
        (["slice", "claim", "--partitions", "40"], 2, "40 is not in the range 1<=x<=32"),
        (["env", "--slice", "zz"], 1, "error: no slice 'zz' in the ledger"),
    ],
)
def test_bad_input_gets_a_clear_message(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    assert run(["slice", "claim", "ab"]) == 0
    capsys.readouterr()
    assert run(args) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_releasing_someone_elses_slice_needs_force(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    assert run(["slice", "release", "cd"]) == 1
    err = capsys.readouterr().err
    assert "slice 'cd' belongs to Carl Dahl, not Anna Berg <anna@example.com>" in err
    assert "pass --force" in err
    assert run(["slice", "release", "cd", "--force"]) == 0
    assert run(["slice", "show", "cd"]) == 1


def test_full_pool_says_how_many_are_free_and_what_to_do(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "devslice.yaml").write_text(BASE + """\
eventHubs:
  namespaces:
    - {name: company1-ehns1, partitions: 3, reserved: [0]}
""")
    assert run(["slice", "claim", "ab"]) == 0
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl", "--partitions", "2"]) == 1
    err = capsys.readouterr().err
    assert ("error: no Event Hubs namespace has 2 free partitions (company1-ehns1 has 1 free; 1 "
            "free in all, at most 1 in one namespace)") in err
    assert "add another namespace under eventHubs.namespaces in devslice.yaml" in err


def test_unreachable_ledger(workdir: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LEDGER", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                       "AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    (workdir / "devslice.yaml").write_text(BASE + """\
ledger:
  backend: azureBlob
  connectionString: {fromEnv: TEST_LEDGER}
""")
    assert run(["slice", "list"]) == 1
    err = capsys.readouterr().err
    assert ("error: cannot reach the ledger at "
            "http://127.0.0.1:9/devstoreaccount1/devslice/ledger.json") in err
    assert "a2V5" not in err


def test_missing_ledger_secret(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(BASE + """\
ledger:
  backend: azureBlob
  connectionString: {fromEnv: NOT_SET_ANYWHERE}
""")
    assert run(["slice", "list"]) == 1
    assert "error: the secret NOT_SET_ANYWHERE is not set" in capsys.readouterr().err


def test_unwritable_output_is_a_message(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    assert run(["slice", "claim"]) == 0
    (workdir / "blocker").write_text("a file, not a folder")
    assert run(["env", "-o", "dotenv", "--to-file", "blocker/ab.env"]) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "blocker" in err and "Traceback" not in err


def test_a_missing_or_folder_config_file_is_not_called_invalid(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["-f", "nope.yaml", "slice", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nope.yaml: no such file\n")
    assert "invalid configuration" not in err
    assert run(["-f", str(workdir), "slice", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {workdir}: is a folder, not a file\n")
    assert "no such file" not in err


def test_problems_in_the_local_file_are_counted_under_its_name(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    (workdir / "devslice.local.yaml").write_text(
        "apiVersion: devslice.dev/v1alpha1\nkind: LocalOverrides\nslise: ab\nenv: [A]\n")
    assert run(["env"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: devslice.local.yaml has 2 problems:\n")
    assert "devslice.yaml has" not in err


def test_renewing_someone_elses_slice_needs_force(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl", "--ttl", "1h"]) == 0
    assert run(["slice", "claim", "ab", "--ttl", "1h"]) == 0
    capsys.readouterr()
    assert run(["slice", "renew", "cd"]) == 1
    err = capsys.readouterr().err
    assert "error: slice 'cd' belongs to Carl Dahl, not Anna Berg <anna@example.com>" in err
    assert "pass --force" in err
    assert run(["slice", "renew", "ab"]) == 0  # one's own: no --force needed
    assert run(["slice", "renew", "cd", "--force", "-o", "json"]) == 0
    capsys.readouterr()
    assert run(["slice", "show", "cd", "--history", "-o", "json"]) == 0
    history = json.loads(capsys.readouterr().out)["history"]
    assert [c["action"] for c in history] == ["claim", "renew"]
    assert "(forced; owner Carl Dahl)" in history[-1]["detail"]


@pytest.mark.parametrize("kind", ["ci", "shared"])
def test_only_a_developer_slice_for_oneself_becomes_current(
    workdir: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    assert run(["slice", "claim"]) == 0
    assert run(["slice", "claim", "--kind", kind]) == 0  # no --owner: for me, but not "mine"
    assert run(["slice", "claim", "--owner", "Anna Berg <anna@example.com>", "--kind", kind,
                "--partitions", "2", "xy"]) == 0
    capsys.readouterr()
    assert run(["env"]) == 0
    assert "export LOCAL_DEV_SLICE=ab\n" in capsys.readouterr().out


def test_claiming_again_with_other_settings_is_a_conflict_not_the_old_slice(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "devslice.yaml").write_text(BASE)
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["slice", "claim", "--partitions", "3"]) == 1
    err = capsys.readouterr().err
    assert ("error: you already hold slice 'ab' as developer with 1 partition, not "
            "developer with 3") in err
    assert "release it first (`devslice slice release ab`)" in err


def test_storage_floors_know_the_api_version_pinned_for_azurite() -> None:
    """pyproject's floors must be versions whose SDK accepts AZURITE_API_VERSION (older ones
    raise ValueError for an api_version they do not know). First to know 2026-06-06:
    azure-storage-blob 12.30.0 and azure-storage-queue 12.17.0 (their changelogs)."""
    import re

    from azure.storage.blob._serialize import _SUPPORTED_API_VERSIONS as BLOB
    from azure.storage.queue._serialize import _SUPPORTED_API_VERSIONS as QUEUE

    from devslice.sdk.storage import AZURITE_API_VERSION

    assert AZURITE_API_VERSION in BLOB and AZURITE_API_VERSION in QUEUE
    floors = {}
    for dep in [d for group in requirements().values() for d in group]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", dep)
        if m:
            floors[m.group(1)] = tuple(int(p) for p in m.group(2).split("."))
    assert floors["azure-storage-blob"] >= (12, 30)
    assert floors["azure-storage-queue"] >= (12, 17)
    assert floors["pydantic"] >= (2, 11)


def test_docs_say_what_the_code_does(workdir: Path) -> None:
    docs = Path(__file__).parent.parent / "docs"
    config = (docs / "config.md").read_text()
    assert run(["init", "--team", "company1"]) == 0
    assert not (workdir / ".gitignore").exists()  # so the docs must not promise one
    assert "ignored by git" not in config
    assert "add `devslice.local.yaml` to your `.gitignore`" in config
    sdk = " ".join((docs / "sdk.md").read_text().split())
    assert "round robin over the slice's" not in sdk
    assert "One `send` call goes to one partition" in sdk
    assert "The embedded hub (below) has no epochs" in sdk
