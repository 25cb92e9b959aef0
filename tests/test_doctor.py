"""`devslice doctor` against fake tools that answer exactly as the real ones do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from devslice.cli.app import run

from .helpers import BASE, FAKES


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in FAKES.iterdir():
        shutil.copy2(tool, bin_dir / tool.name)
    monkeypatch.setenv("PATH", str(bin_dir))  # the fakes' #!/bin/sh needs no PATH
    (tmp_path / "devslice.yaml").write_text(BASE)
    monkeypatch.chdir(tmp_path)
    return bin_dir


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, object]]]:
    code = run(["doctor", "-o", "json"])
    return code, {c["name"]: c for c in json.loads(capsys.readouterr().out)}


def test_versions_of_every_tool(fake_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = doctor(capsys)
    assert code == 0
    assert {n: c["version"] for n, c in checks.items() if n not in ("python", "ledger",
                                                                     "config")} == {
        "node": "20.20.2", "docker": "28.2.2", "docker engine": None, "k3d": "5.7.4",
        "kubectl": "1.31.2", "mirrord": "3.250.0",
    }
    engine = checks["docker engine"]
    assert engine["ok"] is True  # optional: devslice can run services as local processes
    assert "Cannot connect to the Docker daemon" in str(engine["problem"])
    assert "start Docker Desktop" in str(engine["fix"])
    assert checks["ledger"]["ok"] is True
    assert "(0 slices;" in str(checks["ledger"]["version"])


def test_missing_required_tool_fails_with_its_fix(
    fake_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake_path / "node").unlink()
    (fake_path / "mirrord").unlink()
    assert run(["doctor"]) == 1
    text = capsys.readouterr().out
    assert "problem node: node is not on PATH" in text
    assert "fix: install Node.js 20 or newer" in text
    assert "optional mirrord: mirrord is not on PATH" in text


def test_broken_config_is_reported_not_raised(
    fake_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake_path.parent / "devslice.yaml").write_text(BASE + "ledger: {backend: nope}\n")
    code, checks = doctor(capsys)
    assert code == 1
    assert "is not a ledger backend" in str(checks["config"]["problem"])
    assert checks["ledger"]["problem"] == "no valid config to find the ledger from"


def fake(bin_dir: Path, name: str, script: str) -> Path:
    """A fake tool of our own: a /bin/sh script (echo is a builtin, so no PATH is needed)."""
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def test_text_output_shows_every_check_and_the_fix_of_a_failing_optional_tool(
    fake_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["doctor"]) == 0
    text = capsys.readouterr().out
    for word in ("node", "20.20.2", "k3d", "5.7.4", "mirrord", "3.250.0"):
        assert word in text
    # The engine is installed but not running: flagged, and its fix printed (not only in JSON).
    assert ("warning docker engine: `docker info --format {{.ServerVersion}}` failed: Cannot "
            "connect to the Docker daemon") in text
    assert "fix: start Docker Desktop, or the engine with `sudo systemctl start docker`" in text
    assert not [line for line in text.splitlines() if line.startswith("problem ")]


def test_a_failing_version_command_is_a_problem_even_if_it_prints_a_version(
    fake_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake(fake_path, "docker", """\
if [ "$*" = "version --format {{.Client.Version}}" ]; then echo "28.2.2"; exit 0; fi
echo "Error response from daemon: client version 1.52 is too new. Maximum supported API \
version is 1.43" >&2
exit 1
""")
    code, checks = doctor(capsys)
    assert code == 0  # optional
    engine = checks["docker engine"]
    assert engine["version"] is None
    assert "client version 1.52 is too new" in str(engine["problem"])
    assert "start Docker Desktop" in str(engine["fix"])
    assert checks["docker"]["problem"] is None


def test_too_old_node_is_a_problem_with_its_fix(
    fake_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake(fake_path, "node", 'echo "v18.19.0"\n')
    assert run(["doctor"]) == 1
    text = capsys.readouterr().out
    assert "problem node: node 18.19.0 is too old: devslice needs 20 or newer" in text
    assert "fix: install Node.js 20 or newer" in text
    code, checks = doctor(capsys)
    assert code == 1
    assert (checks["node"]["ok"], checks["node"]["version"]) == (False, "18.19.0")


@pytest.mark.parametrize(("answer", "problem"), [
    ("Python 3.10.14", "python 3.10.14 is too old: devslice needs 3.11 or newer"),
    ("Python 3.11.0", None),
    ("Python 3.14.2", None),
])
def test_python_minimum_version(tmp_path: Path, answer: str, problem: str | None) -> None:
    from dataclasses import replace

    from devslice.facts.tools import TOOLS, probe

    python = next(t for t in TOOLS if t.name == "python")
    exe = fake(tmp_path, "python", f'echo "{answer}"\n')
    fact = probe(replace(python, argv=(str(exe), "--version")))
    assert fact.problem == problem
    assert fact.version == answer.split()[1]


def test_programs_the_config_runs_as_processes_are_checked(
    fake_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake_path.parent / "devslice.yaml").write_text(
        BASE + "cluster: {runtime: local}\nsignalR: {mode: embedded}\n")
    code, checks = doctor(capsys)
    assert code == 0 and checks["asrs-emulator"]["version"] == str(fake_path / "asrs-emulator")
    (fake_path / "asrs-emulator").unlink()
    code, checks = doctor(capsys)
    assert code == 1
    assert checks["asrs-emulator"]["problem"] == "asrs-emulator is not on PATH"
    assert checks["asrs-emulator"]["neededFor"] == "signalR.mode embedded"
    assert "Microsoft.Azure.SignalR.Emulator" in str(checks["asrs-emulator"]["fix"])


def test_azurite_is_checked_only_when_the_config_runs_it(
    fake_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURITE_BIN", "/opt/azurite/bin/azurite")
    config = fake_path.parent / "devslice.yaml"
    config.write_text(BASE + "cluster: {runtime: local}\nstorage: {mode: emulator}\n")
    code, checks = doctor(capsys)
    assert code == 0 and checks["azurite"]["version"] == "/opt/azurite/bin/azurite"
    assert checks["azurite"]["neededFor"] == "storage.mode emulator in the local runtime"
    config.write_text(BASE + "cluster: {runtime: local}\nstorage: {mode: shared}\n")
    assert "azurite" not in doctor(capsys)[1]
