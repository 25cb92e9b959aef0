"""`devslice doctor` against fake tools that answer exactly as the real ones do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from devslice.cli.app import run

from .helpers import BASE

FAKES = Path(__file__).parent / "fakes"


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
    code = run(["doctor", "--json"])
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
    assert "(0 slices)" in str(checks["ledger"]["version"])


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
