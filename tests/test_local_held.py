"""A cold `up` starts the slice's supervisor while the emulators start (issue 17): held, it
imports and waits for `up` to release it, and starts no service before that; one whose `up`
ended without releasing it (a failed Azurite or container step) stops by itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devslice.cli.app import run
from devslice.local.state import GO, SPEC, STATE, read_json, write_json

from .helpers import BASE, SOLO, free_ports, gone, local_with_azurite, wait_for

SERVICE = ("import pathlib, time; pathlib.Path('started').touch(); print('up', flush=True); "
           "time.sleep(60)")


def _held(tmp_path: Path, parent: int) -> subprocess.Popen[bytes]:
    write_json(tmp_path / SPEC, {"hash": "h", "hold": {"parent": parent}, "services": [
        {"name": "svc", "argv": [sys.executable, "-c", SERVICE], "cwd": str(tmp_path),
         "env": {}, "ready": {"log": "up", "timeout": 20}}]})
    os.mkfifo(tmp_path / GO)
    return subprocess.Popen([sys.executable, "-m", "devslice.local.supervisor", str(tmp_path)])


def _state(directory: Path) -> dict[str, object]:
    return read_json(directory / STATE) or {}


def test_a_held_supervisor_starts_its_services_only_when_released(tmp_path: Path) -> None:
    sup = _held(tmp_path, os.getpid())
    try:
        wait_for(lambda: bool(_state(tmp_path)), what="the held supervisor's state")
        state = _state(tmp_path)
        assert state["supervisor"]["held"] is True  # type: ignore[index]
        assert state["services"] == {"svc": {  # waiting, nothing spawned
            "pid": None, "pgid": None, "started": None, "state": "held", "restarts": 0,
            "crashes": 0, "detail": ""}}
        assert not (tmp_path / "started").exists()
        fd = os.open(tmp_path / GO, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"go")
        os.close(fd)
        wait_for(lambda: _state(tmp_path)["services"]["svc"]["state"] == "ready",  # type: ignore[index]
                 what="the released service ready")
        assert (tmp_path / "started").exists()
        assert "held" not in _state(tmp_path)["supervisor"]  # type: ignore[operator]
    finally:
        sup.terminate()
        sup.wait(20)
    assert _state(tmp_path)["supervisor"]["pid"] is None  # type: ignore[index]


def test_a_held_supervisor_whose_up_ended_stops_without_starting_anything(
        tmp_path: Path) -> None:
    """The `up` that started it failed (Azurite never ready, a container not made) and
    exited: the supervisor stops, nothing started, nothing left running."""
    parent = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    sup = _held(tmp_path, parent.pid)
    try:
        wait_for(lambda: bool(_state(tmp_path)), what="the held supervisor's state")
        assert sup.poll() is None
        assert parent.stdin is not None
        parent.stdin.close()
        parent.wait(20)
        assert sup.wait(20) == 0
    finally:
        if sup.poll() is None:
            sup.kill()
    state = _state(tmp_path)
    assert state["supervisor"]["pid"] is None  # type: ignore[index]
    assert state["services"]["svc"]["pid"] is None  # type: ignore[index]
    assert not (tmp_path / "started").exists()


@pytest.mark.azurite
def test_a_cold_up_starts_the_slices_supervisor_held_while_azurite_starts(
        workdir: Path) -> None:
    """Through `up`: the slice's supervisor was started held (its spec names this process
    as the `up` to wait for) before Azurite was ready, and released after; `down` stops
    all."""
    blob, queue = free_ports(2)
    (workdir / "devslice.yaml").write_text(
        BASE + SOLO + local_with_azurite(blob, queue) + textwrap.dedent(f"""\
        services:
          - name: svc
            run: {sys.executable} -c "{SERVICE}"
            ready: {{log: up}}
        """))
    assert run(["slice", "claim"]) == 0
    directory = workdir / ".devslice" / "local" / "ab"
    emulators = workdir / ".devslice" / "local" / "_emulators"
    try:
        assert run(["up"]) == 0
        assert read_json(directory / SPEC)["hold"] == {"parent": os.getpid()}  # type: ignore[index]
        state = _state(directory)
        assert state["services"]["svc"]["state"] == "ready"  # type: ignore[index]
        assert "held" not in state["supervisor"]  # type: ignore[operator]
        assert (workdir / "started").exists()
        assert run(["up"]) == 0  # a second `up` changes nothing
        assert _state(directory)["supervisor"] == state["supervisor"]
    finally:
        pids = [int(s["pid"]) for d in (directory, emulators)
                for s in (_state(d).get("services") or {}).values()  # type: ignore[attr-defined]
                if s.get("pid")]
        assert run(["down"]) == 0
    assert pids and all(gone(p) for p in pids)
