"""Issue 16: devslice installed from its wheels works in an empty folder, fetching the pinned
Azurite into its own cache on first use (with a fake npm: tests/fakes/npm)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from devslice.errors import CommandFailed
from devslice.tools.azurite import (
    AZURITE_VERSION,
    AzuriteNotFound,
    cached_azurite,
    ensure_azurite,
    locate_azurite,
)

from .helpers import FAKES, REPO, built_wheels, fresh_venv

SYSTEM_PATH = "/usr/bin:/bin"  # sh, mkdir, ln for the fake npm (no azurite there)


def test_pinned_version_is_the_one_package_json_and_its_lock_name() -> None:
    package = json.loads((REPO / "package.json").read_text())
    lock = json.loads((REPO / "package-lock.json").read_text())
    assert package["devDependencies"]["azurite"] == AZURITE_VERSION
    assert lock["packages"]["node_modules/azurite"]["version"] == AZURITE_VERSION


def _fake_npm_path(tmp_path: Path, with_npm: bool = True) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if with_npm:
        (bin_dir / "npm").symlink_to(FAKES / "npm")
    # without npm: only the empty folder (the machine's own npm is in SYSTEM_PATH)
    return f"{bin_dir}{os.pathsep}{SYSTEM_PATH}" if with_npm else str(bin_dir)


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEVSLICE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AZURITE_BIN", raising=False)
    monkeypatch.delenv("FAKE_NPM_SOURCE", raising=False)
    monkeypatch.setenv("FAKE_NPM_LOG", str(tmp_path / "npm.log"))
    (tmp_path / "project").mkdir()
    return tmp_path


def test_installs_the_pinned_azurite_into_the_cache_once(
        cache_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _fake_npm_path(cache_env))
    said: list[str] = []
    exe = ensure_azurite(cache_env / "project", progress=said.append, checkout=None)
    folder = cache_env / "cache" / f"azurite-{AZURITE_VERSION}"
    assert exe == cached_azurite() == folder / "node_modules" / ".bin" / "azurite"
    assert subprocess.run([exe, "--silent"], capture_output=True, text=True,
                          check=True).stdout.startswith(f"azurite azurite@{AZURITE_VERSION}")
    calls = (cache_env / "npm.log").read_text().splitlines()
    assert calls == [f"install --prefix {folder}.partial-{os.getpid()} "
                     f"azurite@{AZURITE_VERSION} --no-audit --no-fund"]
    assert len(said) == 1 and f"installing Azurite {AZURITE_VERSION} into {folder}" in said[0]
    assert sorted(p.name for p in (cache_env / "cache").iterdir()) == [folder.name]
    # Found there next time: npm is not asked again, nothing is said.
    assert ensure_azurite(cache_env / "project", progress=said.append, checkout=None) == exe
    assert len((cache_env / "npm.log").read_text().splitlines()) == 1 and len(said) == 1


def test_a_project_azurite_comes_first_and_nothing_is_installed(
        cache_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _fake_npm_path(cache_env))
    own = cache_env / "project" / "node_modules" / ".bin" / "azurite"
    own.parent.mkdir(parents=True)
    own.write_text("#!/bin/sh\n")
    (cache_env / "project" / "sub").mkdir()
    assert ensure_azurite(cache_env / "project" / "sub", checkout=None) == own
    assert not (cache_env / "npm.log").exists()
    monkeypatch.setenv("AZURITE_BIN", "/opt/azurite/bin/azurite")
    assert locate_azurite(cache_env / "project", checkout=None) == \
        Path("/opt/azurite/bin/azurite")


def test_without_npm_it_says_how_to_get_node(
        cache_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _fake_npm_path(cache_env, with_npm=False))
    assert locate_azurite(cache_env / "project", checkout=None) is None
    with pytest.raises(AzuriteNotFound) as caught:
        ensure_azurite(cache_env / "project", checkout=None)
    assert "npm is not on PATH" in caught.value.message
    assert "Node.js" in (caught.value.hint or "") and "AZURITE_BIN" in (caught.value.hint or "")
    assert not (cache_env / "cache").exists()


def test_a_failed_npm_install_leaves_no_half_installed_copy(
        cache_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _fake_npm_path(cache_env))
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    with pytest.raises(CommandFailed) as caught:
        ensure_azurite(cache_env / "project", checkout=None)
    assert "ENOTFOUND" in caught.value.message and "AZURITE_BIN" in (caught.value.hint or "")
    assert list((cache_env / "cache").iterdir()) == []
    monkeypatch.delenv("FAKE_NPM_FAIL")  # the network is back: the next `up` installs it
    assert ensure_azurite(cache_env / "project", checkout=None).exists()


# -- the wheel, in a fresh venv, in an empty folder (slow: builds and installs, ~1 min) -------

@pytest.mark.slow
@pytest.mark.azurite
def test_the_wheel_runs_the_starter_config_in_an_empty_folder(tmp_path: Path) -> None:
    node_modules = REPO / "node_modules"
    if not (node_modules / ".bin" / "azurite").exists():
        if os.environ.get("DEVSLICE_REQUIRE_AZURITE"):
            pytest.fail("DEVSLICE_REQUIRE_AZURITE is set, but node_modules has no azurite")
        pytest.skip("azurite is not installed (npm install); CI sets DEVSLICE_REQUIRE_AZURITE")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONPATH", "VIRTUAL_ENV", "AZURITE_BIN", "DEVSLICE_CACHE")}
    wheels = built_wheels()
    # The developer's line (README): `pip install devslice`, which brings devslice-sdk.
    venv = fresh_venv(tmp_path / "venv", str(wheels.devslice), wheels=wheels).parent
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**clean, "PATH": f"{venv / 'bin'}{os.pathsep}{_fake_npm_path(tmp_path)}",
           "HOME": str(tmp_path / "home"), "DEVSLICE_CACHE": str(tmp_path / "cache"),
           "FAKE_NPM_LOG": str(tmp_path / "npm.log"), "FAKE_NPM_SOURCE": str(node_modules),
           "DEVSLICE_OWNER": "Anna Berg <anna@example.com>", "DEVSLICE_ACTOR": "tester@ci"}

    def devslice(*args: str, ok: bool = True) -> str:
        done = subprocess.run([venv / "bin" / "devslice", *args], capture_output=True,
                              text=True, env=env, cwd=empty, timeout=300)
        assert "Traceback" not in done.stderr, done.stderr
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    try:
        devslice("init")
        devslice("slice", "claim", "ab")
        folder = tmp_path / "cache" / f"azurite-{AZURITE_VERSION}"
        checks = {c["name"]: c for c in json.loads(devslice("doctor", "-o", "json"))}
        assert checks["azurite"]["ok"] is True
        assert f"`up` installs Azurite {AZURITE_VERSION} into {folder}" in \
            checks["azurite"]["version"]
        no_node = {**env, "PATH": str(venv / "bin")}
        done = subprocess.run([venv / "bin" / "devslice", "doctor", "-o", "json"], env=no_node,
                              cwd=empty, capture_output=True, text=True)
        checks = {c["name"]: c for c in json.loads(done.stdout)}
        assert done.returncode == 1 and checks["azurite"]["ok"] is False
        assert "npm is not on PATH" in checks["azurite"]["problem"]
        assert "Node.js" in checks["azurite"]["fix"]
        plan = devslice("plan")  # planning needs no tool: it says what `up` will do
        assert f"`up` installs Azurite {AZURITE_VERSION} into {folder}" in plan
        assert not (tmp_path / "npm.log").exists()
        up = devslice("up")
        assert f"installing Azurite {AZURITE_VERSION} into {folder}" in up
        assert (tmp_path / "npm.log").read_text().count("install --prefix") == 1
        verify = devslice("verify")
        assert "a canary on each partition arrives there only" in verify
        assert "Azurite is not installed" not in devslice("plan")
    finally:
        down = devslice("down", ok=False)
    assert "stopped" in down
    # A service's tests: devslice[testing] brings what devslice.testing's fakes import.
    testing = [m.stem for m in (REPO / "src" / "devslice" / "testing").glob("*.py")]
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--find-links", wheels.folder,
                    f"{wheels.devslice}[testing]"], check=True, env=clean, cwd=tmp_path)
    subprocess.run([venv / "bin" / "python", "-c", "import importlib\n"
                    f"for m in {testing!r}: importlib.import_module('devslice.testing.' + m)"],
                   check=True, env=clean, cwd=empty)
