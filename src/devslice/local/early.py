"""A cold `devslice up` starts the emulators as it begins, when nothing they were last started
from has changed (issue 17).

The emulators (Azurite) are most of a cold `up` on the local runtime, and the command spends
its first ~200 ms loading Python, the config model and the ledger before its plan says to
start them. So the `up` that starts them keeps what it started them from: the spec it wrote
(``spec.json``) and, in ``early.json``, a fingerprint of its inputs: devslice.yaml and
devslice.local.yaml byte for byte, the variables devslice reads (``DEVSLICE_*``,
``AZURITE_BIN``, ``PATH``), devslice's version and the Python running it. It keeps none when
the runtime was chosen from what the machine has (``runtime: auto`` with Docker and k3d
looked for), since that may differ next time. A later `up` that begins with the same
fingerprint, with the emulators' supervisor not running, no `up` or `down` acting on them and
their ports free, starts their supervisor on that spec before it loads anything else.

A guess that the plan checks, never trusted. The plan reads the running supervisor's spec
hash as for any `up`: the spec it would start -> its step waits for them as if it had just
started them, and says they began early; another spec -> it restarts them with its own. An
`up` that ends without taking them over (an error before its plan, another runtime chosen)
stops them as it exits. ``DEVSLICE_EARLY_START=0`` turns it off.

Standard library only, and nothing of devslice but the files the supervisor shares: it runs
before the CLI's own imports."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devslice import PLUGINS_OFF_MARKER, __version__
from devslice.files import LOCAL_FILENAME, config_above
from devslice.local.state import (
    MARKER,
    SPEC,
    STATE,
    busy,
    locked,
    orphans,
    poll_delays,
    read_json,
    running,
    write_json,
)

EARLY = "early.json"  # in the emulators' folder: {"inputs": fingerprint, "hash": spec hash}
SWITCH = "DEVSLICE_EARLY_START"  # "0": never start before the plan
INPUT_VARIABLES = ("AZURITE_BIN", "PATH")  # besides every DEVSLICE_*
REASON = "begun as `up` started: nothing they start from changed since the last `up`"
WAIT_FOR_STATE = 10.0  # seconds a plan waits for an early supervisor's first state

# The emulators' folders this process started a supervisor in (resolved path: its pid), and
# those of them its plan took over.
_started: dict[str, int] = {}
_adopted: set[str] = set()
_at_exit = False  # _stop_unadopted registered


def fingerprint(config: Path, environ: Mapping[str, str]) -> str:
    """What the emulators' spec is made from, as one digest (nothing of the files can be read
    back from it). The CLI's own switch for pydantic's plugins is left out: the library's
    callers (tests, scripts) run without it."""
    digest = hashlib.sha256()
    for part in (__version__, sys.executable, str(config.resolve())):
        digest.update(part.encode() + b"\0")
    for path in (config, config.parent / LOCAL_FILENAME):
        try:
            digest.update(path.read_bytes())
        except FileNotFoundError:
            digest.update(b"\0missing")
        digest.update(b"\0")
    for name in sorted(n for n in environ if n.startswith("DEVSLICE_") or n in INPUT_VARIABLES):
        if name not in (SWITCH, PLUGINS_OFF_MARKER):
            digest.update(f"{name}={environ[name]}\0".encode())
    return digest.hexdigest()


def remember(directory: Path, config: Path, spec_hash: str, settled: bool) -> None:
    """Called by the `up` that starts the emulators with spec ``spec_hash``: keep what the
    next `up` compares (nothing when the runtime was not ``settled`` by config alone)."""
    path = directory / EARLY
    if not settled:
        path.unlink(missing_ok=True)
        return
    write_json(path, {"inputs": fingerprint(config, os.environ), "hash": spec_hash})


def wanted(args: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether the command is an `up` that may begin early: `devslice up` and its own
    options (not --help; `-f` before `up` names another config: no), not switched off."""
    return (bool(args) and args[0] == "up" and not {"-h", "--help"} & set(args)
            and environ.get(SWITCH, "1") != "0")


def start(args: Sequence[str], environ: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> Path | None:
    """Start the emulators' supervisor when ``args`` is an `up` that may (see the module);
    the folder it runs in, or None. Never an error: anything odd means the plan starts them."""
    environ = os.environ if environ is None else environ
    if not wanted(args, environ) or not hasattr(os, "posix_spawn"):
        return None
    try:
        explicit = environ.get("DEVSLICE_CONFIG")
        config = Path(explicit) if explicit else config_above(cwd or Path.cwd())
        if config is None or not config.is_file():
            return None
        directory = config.resolve().parent / ".devslice" / "local" / "_emulators"
        kept = read_json(directory / EARLY)
        spec = read_json(directory / SPEC)
        if not (isinstance(kept, dict) and isinstance(spec, dict)
                and kept.get("hash") == spec.get("hash") and "hold" not in spec
                and kept.get("inputs") == fingerprint(config, environ)):
            return None
        if busy(directory) or running(directory) is not None or orphans(directory):
            return None
        with locked(directory, "devslice up (emulators, begun early)", fail_if_busy=True):
            if running(directory) is not None or _ports_taken(spec):
                return None
            (directory / STATE).unlink(missing_ok=True)
            pid = _spawn(directory)
    except Exception:  # a guess that cannot be made is no guess: the plan starts them
        return None
    global _at_exit
    if not _at_exit:
        atexit.register(_stop_unadopted)
        _at_exit = True
    _started[str(directory.resolve())] = pid
    return directory


def _ports_taken(spec: dict[str, Any]) -> bool:
    from devslice.facts.ports import port_open  # lazy: sockets only when a guess is near

    return any(port_open(int(s["ready"]["port"]), timeout=0.2)
               for s in spec.get("services", []) if (s.get("ready") or {}).get("port"))


def _spawn(directory: Path) -> int:
    """The supervisor, as the local runtime starts it (a new session, its log appended)."""
    from devslice.adapters.spawn import detached  # lazy: only when a guess is made

    return detached(sys.executable, [sys.executable, "-m", MARKER, str(directory)],
                    directory / "supervisor.log", os.environ)


def pending(directory: Path) -> bool:
    """Whether this process began the emulators of ``directory`` and its plan has not taken
    them over yet (and the supervisor running there is still the one it began)."""
    key = str(directory.resolve())
    pid = _started.get(key)
    if pid is None or key in _adopted:
        return False
    state = running(directory)
    return state is None or (state.get("supervisor") or {}).get("pid") == pid


def wait_running(directory: Path, timeout: float = WAIT_FOR_STATE) -> dict[str, Any] | None:
    """The state of the supervisor this process began in ``directory``, once it has written
    it (its first look at itself, ~50 ms after the start); None if it died first."""
    pid = _started.get(str(directory.resolve()))
    deadline = time.monotonic() + timeout
    delays = poll_delays(time.monotonic)
    while time.monotonic() < deadline:
        state = running(directory)
        if state is not None or pid is None or _exited(pid):
            return state
        time.sleep(next(delays))
    return running(directory)


def _exited(pid: int) -> bool:
    """Whether the supervisor this process started has ended (reaped here: it is our child).
    Not from its command line: just after the start, while the kernel still sets up the new
    program, /proc shows it empty, as for a process that has exited."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def adopt(directory: Path) -> None:
    """The plan takes over what this process began: from here on they are `up`'s own."""
    _adopted.add(str(directory.resolve()))


def _stop_unadopted() -> None:
    """At exit: stop what this process began and no plan took over (still the same
    supervisor, and no other `up` or `down` acting on the folder)."""
    for key, pid in list(_started.items()):
        directory = Path(key)
        if key in _adopted:
            continue
        with contextlib.suppress(Exception):
            state = wait_running(directory)
            if state is None or state["supervisor"]["pid"] != pid:
                continue  # gone, or replaced by a plan: not this process's any more
            with locked(directory, "devslice up (stopping the emulators it began)",
                        fail_if_busy=True):
                from devslice.local.runtime import stop  # lazy: only when a guess was wrong

                stop(directory)
