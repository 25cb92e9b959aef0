"""A cold `up` begins the emulators before its plan when nothing they start from changed since
the last `up` started them (issue 17; devslice/local/early.py): a guess the plan checks, taken
over when right, replaced when wrong, stopped when the `up` ends without taking it over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devslice.local import early
from devslice.local.state import SPEC, STATE, read_json, running, write_json

from .helpers import BASE, SOLO, free_ports, gone, local_with_azurite, wait_for

SLEEPER = "import time; print('up', flush=True); time.sleep(60)"


# --- the guess itself, with a supervisor of a stand-in emulator -------------------------


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A checkout whose last `up` started an emulator (a sleeping Python) and kept the
    guess for the next: (config, the emulators' folder, the environment it was kept with)."""
    config = tmp_path / "devslice.yaml"
    config.write_text(BASE)
    directory = tmp_path / ".devslice" / "local" / "_emulators"
    directory.mkdir(parents=True)
    write_json(directory / SPEC, {"hash": "h1", "services": [
        {"name": "emu", "argv": [sys.executable, "-c", SLEEPER], "cwd": str(tmp_path),
         "env": {}, "ready": {"log": "up", "timeout": 20}}]}, private=True)
    environ = {k: v for k, v in os.environ.items() if k != early.SWITCH}
    write_json(directory / early.EARLY, {"inputs": early.fingerprint(config, environ),
                                         "hash": "h1"})
    yield config, directory, environ
    state = read_json(directory / STATE) or {}
    for pid in [(state.get("supervisor") or {}).get("pid"),
                *[s.get("pid") for s in (state.get("services") or {}).values()]]:
        if pid and not gone(pid):
            os.kill(pid, 9)
    early._started.clear()
    early._adopted.clear()


def test_only_an_up_may_begin_early() -> None:
    assert early.wanted(["up"], {})
    assert early.wanted(["up", "-o", "json", "--slice", "ab"], {})
    assert not early.wanted(["plan"], {})
    assert not early.wanted(["status"], {})
    assert not early.wanted([], {})
    assert not early.wanted(["up", "--help"], {})
    assert not early.wanted(["up"], {early.SWITCH: "0"})


def test_an_unchanged_checkout_begins_its_emulators_and_an_up_that_ends_without_them_stops_them(
        kept: tuple[Path, Path, dict[str, str]]) -> None:
    config, directory, environ = kept
    assert early.start(["up"], environ, cwd=config.parent) == directory
    state = early.wait_running(directory)
    assert state is not None and state["supervisor"]["spec"] == "h1"
    assert early.pending(directory)
    wait_for(lambda: (read_json(directory / STATE) or {})["services"]["emu"]["state"] == "ready",
             what="the begun emulator ready")
    emu = read_json(directory / STATE)["services"]["emu"]["pid"]
    early._stop_unadopted()  # what the `up` does as it exits, nothing having taken them over
    assert running(directory) is None
    assert gone(emu) and gone(state["supervisor"]["pid"])


def test_what_the_plan_took_over_stays_when_the_up_exits(
        kept: tuple[Path, Path, dict[str, str]]) -> None:
    config, directory, environ = kept
    assert early.start(["up"], environ, cwd=config.parent) == directory
    assert early.wait_running(directory) is not None
    early.adopt(directory)
    assert not early.pending(directory)
    early._stop_unadopted()
    assert running(directory) is not None


@pytest.mark.parametrize("change", ["config", "local file", "variable", "spec", "held",
                                    "switch off", "no guess kept"])
def test_nothing_begins_when_what_the_emulators_start_from_changed(
        kept: tuple[Path, Path, dict[str, str]], change: str) -> None:
    config, directory, environ = kept
    if change == "config":
        config.write_text(BASE + "# a comment is a change too\n")
    elif change == "local file":
        (config.parent / "devslice.local.yaml").write_text("slice: ab\n")
    elif change == "variable":
        environ = {**environ, "AZURITE_BIN": "/elsewhere/azurite"}
    elif change == "spec":  # a spec written since, by something other than `up`'s start
        spec = read_json(directory / SPEC)
        write_json(directory / SPEC, {**spec, "hash": "h2"})
    elif change == "held":
        spec = read_json(directory / SPEC)
        write_json(directory / SPEC, {**spec, "hold": {"parent": os.getpid()}})
    elif change == "switch off":
        environ = {**environ, early.SWITCH: "0"}
    else:
        (directory / early.EARLY).unlink()
    assert early.start(["up"], environ, cwd=config.parent) is None
    assert read_json(directory / STATE) is None  # no supervisor was started


def test_nothing_begins_on_a_taken_port_or_beside_a_running_supervisor(
        kept: tuple[Path, Path, dict[str, str]]) -> None:
    import socket

    config, directory, environ = kept
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        spec = read_json(directory / SPEC)
        spec["services"][0]["ready"]["port"] = s.getsockname()[1]
        write_json(directory / SPEC, spec)
        assert early.start(["up"], environ, cwd=config.parent) is None
    spec["services"][0]["ready"].pop("port")
    write_json(directory / SPEC, spec)
    assert early.start(["up"], environ, cwd=config.parent) == directory
    assert early.wait_running(directory) is not None
    early._started.clear()  # another `up` now: it finds the supervisor running
    assert early.start(["up"], environ, cwd=config.parent) is None


def test_the_variables_the_cli_sets_for_itself_are_no_change(
        kept: tuple[Path, Path, dict[str, str]]) -> None:
    """The CLI turns pydantic's plugins off for itself; an `up` run through the library (a
    test, a script) keeps the same guess."""
    from devslice import PLUGINS_OFF_MARKER

    config, _, environ = kept
    assert early.fingerprint(config, {**environ, PLUGINS_OFF_MARKER: "1",
                                      early.SWITCH: "1"}) == early.fingerprint(config, environ)


# --- through `devslice up`, with Azurite -------------------------------------------------


def _cli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "devslice", *args], cwd=root, text=True,
                          capture_output=True, timeout=180)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


def _emulators_step(out: str) -> list[dict[str, Any]]:
    """The local:emulators actions an `up -o json` reported."""
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [a for e in events for a in e.get("actions", [])
            if e.get("resource") == "local:emulators"] or \
        [e for e in events if e.get("resource") == "local:emulators"]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Path]:
    blob, queue = free_ports(2)
    (tmp_path / "devslice.yaml").write_text(
        BASE + SOLO + local_with_azurite(blob, queue) + textwrap.dedent(f"""\
        services:
          - name: svc
            run: {sys.executable} -c "{SLEEPER}"
            ready: {{log: up}}
        """))
    _cli(tmp_path, "slice", "claim")
    _cli(tmp_path, "up")
    _cli(tmp_path, "down")
    yield tmp_path
    _cli(tmp_path, "down", check=False)


@pytest.mark.azurite
def test_an_up_after_down_begins_azurite_before_its_plan_and_waits_for_it(shop: Path) -> None:
    emulators = shop / ".devslice" / "local" / "_emulators"
    done = _cli(shop, "up", "-o", "json")
    assert early.REASON in done.stdout
    state = read_json(emulators / STATE)
    assert state["services"]["azurite"]["state"] == "ready"
    assert read_json(shop / ".devslice" / "local" / "ab" / STATE)["services"]["svc"][
        "state"] == "ready"
    assert _cli(shop, "status", check=False).returncode == 0
    assert state["supervisor"]["spec"] == read_json(emulators / early.EARLY)["hash"]


@pytest.mark.azurite
def test_an_up_after_a_config_change_plans_as_always(shop: Path) -> None:
    with open(shop / "devslice.yaml", "a") as f:
        f.write("# changed\n")
    done = _cli(shop, "up", "-o", "json")
    assert early.REASON not in done.stdout
    assert "run azurite as local processes" in done.stdout


@pytest.mark.azurite
def test_a_wrong_guess_is_replaced_by_what_the_plan_starts(shop: Path) -> None:
    """The kept spec no longer is what the plan would start (here: its hash, as after an
    upgrade that changes how specs are made): begun anyway, then restarted with the plan's."""
    emulators = shop / ".devslice" / "local" / "_emulators"
    planned = read_json(emulators / SPEC)["hash"]
    write_json(emulators / SPEC, {**read_json(emulators / SPEC), "hash": "stale"},
               private=True)
    write_json(emulators / early.EARLY, {**read_json(emulators / early.EARLY), "hash": "stale"})
    done = _cli(shop, "up", "-o", "json")
    assert "the services changed" in done.stdout  # the restart's reason
    assert read_json(emulators / STATE)["supervisor"]["spec"] == planned


@pytest.mark.azurite
def test_an_up_that_fails_before_its_plan_stops_the_azurite_it_began(shop: Path) -> None:
    emulators = shop / ".devslice" / "local" / "_emulators"
    _cli(shop, "slice", "release", "--yes")
    done = _cli(shop, "up", check=False)
    assert done.returncode != 0
    state = read_json(emulators / STATE) or {}
    assert running(emulators) is None
    pid = ((state.get("services") or {}).get("azurite") or {}).get("pid")
    assert pid is None or gone(pid)
