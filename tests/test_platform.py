"""`doctor` on WSL and Docker Desktop (issue 16): detection from simulated inputs (the text of
/proc/version, `docker info`'s JSON, the Docker CLI's contexts), each failure point with its
fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devslice.cli.app import run
from devslice.facts.platform import PlatformInputs, platform_checks

from .test_doctor import doctor, fake_path  # noqa: F401  (the fixture, with fake tools)

LINUX = "Linux version 6.8.0-49-generic (buildd@lcy02-amd64-103) (gcc 13.2.0) #49-Ubuntu SMP"
WSL2 = ("Linux version 5.15.167.4-microsoft-standard-WSL2 (root@f9c826d3017f) (gcc (GCC) "
        "11.2.0, GNU ld (GNU Binutils) 2.37) #1 SMP Tue Nov 5 00:21:55 UTC 2024")
WSL1 = "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com) (gcc 5.4.0) #3636-Microsoft"
DESKTOP = {"OperatingSystem": "Docker Desktop", "ServerVersion": "27.4.0", "Name": "docker-desktop"}
ENGINE = {"OperatingSystem": "Ubuntu 24.04.1 LTS", "ServerVersion": "28.2.2", "Name": "dev"}


def rows(**kw: Any) -> dict[str, dict[str, Any]]:
    inputs = {"proc_version": LINUX, "docker_info": ENGINE, "docker_context": "default",
              "docker_source": "the default socket", "contexts": (), "base_dir": Path("/home/a"),
              "build_contexts": ()}
    inputs.update(kw)
    return {r["name"]: r for r in platform_checks(PlatformInputs(**inputs))}


def test_a_plain_linux_machine_with_its_own_engine_has_no_platform_rows() -> None:
    assert rows() == {}


def test_wsl2_with_docker_desktop_and_a_checkout_on_the_windows_drive() -> None:
    got = rows(proc_version=WSL2, docker_info=DESKTOP, base_dir=Path("/mnt/c/src/shop"),
               gateway="172.28.0.1")
    assert got["wsl"]["ok"] and got["wsl"]["version"] == "WSL 2" and not got["wsl"]["problem"]
    fs = got["wsl file system"]
    assert fs["ok"] and "Windows drive (/mnt/c/src/shop)" in fs["problem"]
    assert "clone it inside WSL" in fs["fix"]
    assert got["docker desktop"]["ok"] and got["docker desktop"]["version"] == \
        "engine 27.4.0, context default"
    gateway = got["gateway after sleep"]
    assert gateway["ok"] and gateway["version"] == "172.28.0.1"
    assert "after sleep" in gateway["problem"] and "`wsl --shutdown` first" in gateway["fix"]


def test_wsl1_cannot_run_docker_or_k3d() -> None:
    got = rows(proc_version=WSL1, docker_info=None, base_dir=Path("/home/a/shop"))
    assert not got["wsl"]["ok"] and got["wsl"]["version"] == "WSL 1"
    assert got["wsl"]["fix"] == "in PowerShell: `wsl --set-version <distro> 2`"
    assert not got["wsl file system"]["problem"]


def test_docker_desktop_reached_through_a_stray_docker_host_is_refused() -> None:
    got = rows(docker_info=DESKTOP, docker_context="default", docker_source="DOCKER_HOST")
    assert not got["docker desktop"]["ok"]
    assert got["docker desktop"]["fix"] == \
        "`docker context use desktop-linux` (and unset DOCKER_HOST)"
    assert "(`wsl --shutdown`" not in got["gateway after sleep"]["fix"]  # not WSL


def test_docker_desktop_installed_but_the_cli_on_another_context() -> None:
    got = rows(docker_info=None, contexts=("default", "desktop-linux"),
               docker_context="default", docker_source="the default socket")
    assert not got["docker desktop"]["ok"]
    assert got["docker desktop"]["fix"] == \
        "start Docker Desktop and `docker context use desktop-linux`"
    assert rows(docker_info=None, contexts=("default", "desktop-linux"),
                docker_context="desktop-linux") == {}


def test_windows_paths_in_build_contexts() -> None:
    got = rows(build_contexts=(("orders", "C:\\src\\shop\\orders"), ("billing", "services\\b"),
                               ("notifier", "services/notifier")))
    problem = got["build contexts"]
    assert not problem["ok"]
    assert "orders: C:\\src\\shop\\orders, billing: services\\b" in problem["problem"]
    assert "notifier" not in problem["problem"] and "forward slashes" in problem["fix"]


def test_doctor_reports_docker_desktop_from_docker_info(
        fake_path: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_DOCKER_INFO_JSON", json.dumps(DESKTOP))
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    code, checks = doctor(capsys)
    assert code == 1 and checks["docker desktop"]["ok"] is False
    assert "desktop-linux" in str(checks["docker desktop"]["fix"])
    monkeypatch.delenv("FAKE_DOCKER_INFO_JSON")
    assert "docker desktop" not in doctor(capsys)[1]
    assert run(["doctor"]) == 0
