"""A cold `up` begins the emulators before its plan when nothing they start from changed since
the last `up` started them (issue 17; devslice/local/early.py): a guess the plan checks, taken
over when right, replaced when wrong, stopped when the `up` ends without taking it over."""

from __future__ import annotations

import contextlib
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
from devslice.local.state import SPEC, STATE, read_json, running, spec_digest, write_json

from .helpers import BASE, SOLO, free_ports, gone, local_with_azurite, supervisors, wait_for

SLEEPER = "import time; print('up', flush=True); time.sleep(60)"


# --- the guess itself, with a supervisor of a stand-in emulator -------------------------


@pytest.fixture
def kept(workdir: Path) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A checkout whose last `up` started an emulator (a sleeping Python) and kept the
    guess for the next: (config, the emulators' folder, the environment it was kept with)."""
    config = workdir / "devslice.yaml"
    config.write_text(BASE + SOLO)
    directory = workdir / ".devslice" / "local" / "_emulators"
    directory.mkdir(parents=True)
    services = [{"name": "emu", "argv": [sys.executable, "-c", SLEEPER], "cwd": str(workdir),
                 "env": {}, "ready": {"log": "up", "timeout": 20}}]
    write_json(directory / SPEC, {"hash": spec_digest(services), "services": services},
               private=True)
    environ = {k: v for k, v in os.environ.items() if k != early.SWITCH}
    write_json(directory / early.EARLY, {
        "inputs": early.fingerprint(config, environ), "hash": spec_digest(services),
        "ledger": {"path": str(workdir / ".devslice" / "ledger.db"), "handles": []}})
    yield config, directory, environ
    for pid in supervisors(directory):
        os.kill(pid, 9)
    state = read_json(directory / STATE) or {}
    for pid in [s.get("pid") for s in (state.get("services") or {}).values()]:
        if pid and not gone(pid):
            os.kill(pid, 9)
    early._started.clear()
    early._adopted.clear()


@contextlib.contextmanager
def _lock_held(directory: Path) -> Iterator[None]:
    """Another process holding ``directory``'s lock, as an `up` or `down` acting on it."""
    directory.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen([sys.executable, "-c", (
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"),
            str(directory / "lock")], stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            yield
        finally:
            holder.kill()


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
    state = running(directory)  # recorded at once, before the supervisor writes its own
    assert state is not None
    assert state["supervisor"]["spec"] == read_json(directory / SPEC)["hash"]
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
    early.adopt(directory)
    assert not early.pending(directory)
    early._stop_unadopted()
    assert running(directory) is not None


def test_what_another_slice_uses_is_left_running_at_exit(
        kept: tuple[Path, Path, dict[str, str]]) -> None:
    """Slice cd's `up` found them starting and waits for them: a failed `up` of ab must not
    stop them under it."""
    config, directory, environ = kept
    assert early.start(["up"], environ, cwd=config.parent) == directory
    with _lock_held(directory.parent / "cd"):
        early._stop_unadopted()
    assert running(directory) is not None


def test_two_ups_at_once_begin_one_supervisor(kept: tuple[Path, Path, dict[str, str]]) -> None:
    """The first records its supervisor as running before it lets go of the folder's lock,
    so the second, a moment later, finds it (not a second Azurite on the same ports)."""
    config, directory, environ = kept
    assert early.start(["up"], environ, cwd=config.parent) == directory
    assert early.start(["up"], environ, cwd=config.parent) is None
    assert len(supervisors(directory)) == 1


def test_a_down_while_the_guess_waits_for_its_plan_leaves_nothing(
        kept: tuple[Path, Path, dict[str, str]]) -> None:
    from devslice.local.runtime import stop

    config, directory, environ = kept
    assert early.start(["up"], environ, cwd=config.parent) == directory
    stop(directory)  # `down` of the last slice: it sees the supervisor recorded, and stops it
    assert not early.pending(directory)
    early._stop_unadopted()
    assert supervisors(directory) == []
    assert running(directory) is None


@pytest.mark.parametrize("change", ["config", "local file", "variable", "runtime variable",
                                    "PATH", "spec", "hand-edited spec", "held", "switch off",
                                    "no guess kept", "a slice claimed", "no ledger kept"])
def test_nothing_begins_when_what_the_emulators_start_from_changed(
        kept: tuple[Path, Path, dict[str, str]], change: str) -> None:
    config, directory, environ = kept
    if change == "config":
        config.write_text(BASE + SOLO + "# a comment is a change too\n")
    elif change == "local file":
        (config.parent / "devslice.local.yaml").write_text("slice: ab\n")
    elif change == "variable":
        environ = {**environ, "AZURITE_BIN": "/elsewhere/azurite"}
    elif change == "runtime variable":
        environ = {**environ, "DEVSLICE_RUNTIME": "k3d"}
    elif change == "PATH":
        environ = {**environ, "PATH": "/elsewhere:" + environ.get("PATH", "")}
    elif change == "spec":  # a spec written since, by something other than `up`'s start
        spec = read_json(directory / SPEC)
        spec["services"][0]["argv"] = [sys.executable, "-c", "pass"]
        write_json(directory / SPEC, {**spec, "hash": spec_digest(spec["services"])})
    elif change == "hand-edited spec":  # its argv changed, its hash not: not as `up` wrote it
        spec = read_json(directory / SPEC)
        spec["services"][0]["argv"] = [sys.executable, "-c", "print('not azurite')"]
        write_json(directory / SPEC, spec)
    elif change == "held":
        spec = read_json(directory / SPEC)
        write_json(directory / SPEC, {**spec, "hold": {"parent": os.getpid()}})
    elif change == "switch off":
        environ = {**environ, early.SWITCH: "0"}
    elif change == "no guess kept":
        (directory / early.EARLY).unlink()
    elif change == "a slice claimed":  # Azurite's accounts follow the ledger's slices
        from devslice.cli.app import run

        assert run(["slice", "claim"]) == 0
    else:  # the last `up` kept none: a ledger elsewhere, or the runtime chosen by the machine
        early.remember(directory, config, read_json(directory / SPEC)["hash"], None)
        assert not (directory / early.EARLY).exists()
    assert early.start(["up"], environ, cwd=config.parent) is None
    assert read_json(directory / STATE) is None  # no supervisor was started


def test_the_ledgers_slices_are_read_as_the_ledger_reads_them(
        kept: tuple[Path, Path, dict[str, str]]) -> None:
    """early.py reads the SQLite ledger's table directly (the ledger's module loads pydantic):
    the same handles as the ledger itself, and a file that is no ledger is no match."""
    from devslice.cli.app import run
    from devslice.project import Project

    config, _, _ = kept
    assert run(["slice", "claim"]) == 0
    assert run(["slice", "claim", "cd", "--owner", "Carl Dahl"]) == 0
    path = config.parent / ".devslice" / "ledger.db"
    handles = [s.handle for s in Project.load(str(config)).slices()]
    assert handles == ["ab", "cd"]
    assert early._same_slices({"path": str(path), "handles": handles})
    assert not early._same_slices({"path": str(path), "handles": ["ab"]})
    assert early._same_slices({"path": str(path.with_name("none.db")), "handles": []})
    path.with_name("other.db").write_text("not a database")
    import sqlite3

    with pytest.raises(sqlite3.DatabaseError):  # start() takes any error for "no guess"
        early._same_slices({"path": str(path.with_name("other.db")), "handles": []})


def test_the_runtime_chosen_by_the_machine_keeps_no_guess(
        kept: tuple[Path, Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    from devslice.local.runtime import _early_ledger
    from devslice.project import Project

    config, _, _ = kept
    monkeypatch.delenv("DEVSLICE_RUNTIME", raising=False)
    config.write_text(BASE + SOLO + "cluster: {runtime: auto}\nstorage: {mode: emulator}\n"
                      "eventHubs: {mode: shared, namespaces: [{name: company1-ehns1}]}\n")
    assert _early_ledger(Project.load(str(config))) is None  # Docker and k3d looked for
    config.write_text(BASE + SOLO + "cluster: {runtime: local}\n")
    assert _early_ledger(Project.load(str(config))) is not None


def test_nothing_begins_beside_another_up_an_orphan_or_when_the_start_fails(
        kept: tuple[Path, Path, dict[str, str]]) -> None:
    from devslice.local.state import process_start

    config, directory, environ = kept
    with _lock_held(directory):  # another `up` or `down` acting on the emulators
        assert early.start(["up"], environ, cwd=config.parent) is None
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as orphan:
        try:  # a killed supervisor left its emulator running
            write_json(directory / STATE, {"supervisor": {"pid": None, "spec": None},
                                           "services": {"emu": {
                                               "pid": orphan.pid, "pgid": orphan.pid,
                                               "started": process_start(orphan.pid),
                                               "state": "ready"}}})
            assert early.start(["up"], environ, cwd=config.parent) is None
        finally:
            orphan.kill()
    (directory / STATE).unlink()
    (directory / "supervisor.log").mkdir()  # the supervisor's log cannot be opened
    assert early.start(["up"], environ, cwd=config.parent) is None
    assert supervisors(directory) == []


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
    wait_for(lambda: (read_json(directory / STATE) or {})["services"]["emu"]["state"] == "ready",
             what="the begun emulator ready")
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
def test_an_up_after_a_config_change_plans_as_always_and_keeps_a_new_guess(shop: Path) -> None:
    emulators = shop / ".devslice" / "local" / "_emulators"
    before = read_json(emulators / early.EARLY)["inputs"]
    with open(shop / "devslice.yaml", "a") as f:
        f.write("# changed\n")
    done = _cli(shop, "up", "-o", "json")
    assert early.REASON not in done.stdout
    assert "run azurite as local processes" in done.stdout
    assert read_json(emulators / early.EARLY)["inputs"] not in (None, before)


@pytest.mark.azurite
def test_a_wrong_guess_is_replaced_by_what_the_plan_starts(shop: Path) -> None:
    """The kept spec no longer is what the plan would start (here: Azurite's accounts, as
    when the guess missed a change): begun anyway, then restarted with the plan's."""
    emulators = shop / ".devslice" / "local" / "_emulators"
    planned = read_json(emulators / SPEC)["hash"]
    spec = read_json(emulators / SPEC)
    spec["services"][0]["env"]["AZURITE_ACCOUNTS"] = "stale:a2V5"
    stale = spec_digest(spec["services"])
    write_json(emulators / SPEC, {**spec, "hash": stale}, private=True)
    write_json(emulators / early.EARLY, {**read_json(emulators / early.EARLY), "hash": stale})
    done = _cli(shop, "up", "-o", "json")
    assert "begun as `up` started, from the last `up`'s spec" in done.stdout  # the restart
    state = read_json(emulators / STATE)
    assert state["supervisor"]["spec"] == planned
    assert supervisors(emulators) == [state["supervisor"]["pid"]]  # the guess is gone


@pytest.mark.azurite
def test_an_up_that_fails_before_its_plan_stops_the_azurite_it_began(shop: Path) -> None:
    emulators = shop / ".devslice" / "local" / "_emulators"
    import sqlite3

    with contextlib.closing(sqlite3.connect(shop / ".devslice" / "ledger.db")) as db, db:
        db.execute("UPDATE slices SET doc = '{' WHERE handle = 'ab'")  # a damaged record
    done = _cli(shop, "up", check=False)  # the slices are the same: it begins; then fails
    assert done.returncode != 0 and "ledger" in done.stderr, done.stderr
    # it began them (the lock's last holder says so) and stopped them as it exited
    assert "stopping the emulators it began" in (emulators / "lock").read_text()
    assert running(emulators) is None
    assert supervisors(emulators) == []
