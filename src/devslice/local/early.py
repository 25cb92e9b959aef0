"""A cold `devslice up` starts the emulators as it begins, when nothing they were last started
from has changed (issue 17).

The emulators (Azurite) are most of a cold `up` on the local runtime, and the command spends
its first ~200 ms loading Python, the config model and the ledger before its plan says to
start them. So the `up` that starts them keeps what it started them from: the spec it wrote
(``spec.json``) and, in ``early.json``, a fingerprint of its inputs: devslice.yaml and
devslice.local.yaml byte for byte, the variables devslice reads (``DEVSLICE_*``,
``AZURITE_BIN``, ``PATH``), devslice's version and the Python running it, and the handles of
the slices in the SQLite ledger (Azurite's accounts follow them). It keeps none when the
runtime was chosen from what the machine has (``runtime: auto`` with Docker and k3d looked
for), nor with a ledger elsewhere (reading it is what beginning early saves). A later `up`
that begins with the same fingerprint and slices, with the emulators' supervisor not
running, no `up` or `down` acting on them and their ports free, starts their supervisor on
that spec before it loads anything else, and records it in ``state.json`` at once, so that
another `up` or `down` sees it running from then on.

A guess that the plan checks, never trusted. The plan reads the running supervisor's spec
hash as for any `up`: the spec it would start -> its step waits for them as if it had just
started them, and says they began early; another spec -> it restarts them with its own. An
`up` that ends without taking them over (an error before its plan) stops them as it exits,
unless another slice of the checkout uses them by then; one killed by a signal leaves them
running, as after any `up` killed past its first step (`down` stops them).
``DEVSLICE_EARLY_START=0`` turns it off.

Standard library only, and nothing of devslice but the files the supervisor shares: it runs
before the CLI's own imports."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devslice import PLUGINS_OFF_MARKER, __version__
from devslice.files import LOCAL_FILENAME, config_above
from devslice.local.state import (
    SPEC,
    STATE,
    SUPERVISOR_LOG,
    busy,
    locked,
    orphans,
    process_start,
    read_json,
    running,
    spec_digest,
    supervisor_argv,
    write_json,
)

EARLY = "early.json"  # in the emulators' folder: {"inputs", "hash", "ledger"} (see remember)
SWITCH = "DEVSLICE_EARLY_START"  # "0": never start before the plan
INPUT_VARIABLES = ("AZURITE_BIN", "PATH")  # besides every DEVSLICE_*
REASON = "begun as `up` started, unchanged since the last `up`"

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
    for path in (config, config.resolve().parent / LOCAL_FILENAME):
        try:
            digest.update(path.read_bytes())
        except FileNotFoundError:
            digest.update(b"\0missing")
        digest.update(b"\0")
    for name in sorted(n for n in environ if n.startswith("DEVSLICE_") or n in INPUT_VARIABLES):
        if name not in (SWITCH, PLUGINS_OFF_MARKER):
            digest.update(f"{name}={environ[name]}\0".encode())
    return digest.hexdigest()


def remember(directory: Path, config: Path, spec_hash: str,
             ledger: tuple[Path, list[str]] | None) -> None:
    """Called by the `up` that starts the emulators with spec ``spec_hash``: keep what the
    next `up` compares. ``ledger``: the SQLite ledger's file and the handles of its slices as
    the spec was made; None keeps nothing (the runtime was not chosen by config alone, or the
    ledger is not a file here)."""
    path = directory / EARLY
    if ledger is None:
        path.unlink(missing_ok=True)
        return
    file, handles = ledger
    write_json(path, {"inputs": fingerprint(config, os.environ), "hash": spec_hash,
                      "ledger": {"path": str(file.resolve()), "handles": handles}},
               private=True)


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
        if running(directory) is not None or busy(directory) or orphans(directory):
            return None  # first: a no-op `up` finds them running and pays nothing more
        spec = _kept_spec(directory, config, environ)
        if spec is None:
            return None
        with locked(directory, "devslice up (emulators, begun early)", fail_if_busy=True):
            if running(directory) is not None or _ports_taken(spec):
                return None
            return _begin(directory, spec)
    except Exception:  # a guess that cannot be made is no guess: the plan starts them
        return None


def _kept_spec(directory: Path, config: Path, environ: Mapping[str, str]
               ) -> dict[str, Any] | None:
    """The spec the last `up` started the emulators with, if nothing it was made from has
    changed since (the inputs' digest, the ledger's slices) and it is as `up` wrote it."""
    kept = read_json(directory / EARLY)
    spec = read_json(directory / SPEC)
    if not (isinstance(kept, dict) and isinstance(spec, dict)
            and kept.get("hash") == spec.get("hash") and "hold" not in spec
            and spec["hash"] == spec_digest(spec["services"])
            and kept.get("inputs") == fingerprint(config, environ)
            and _same_slices(kept.get("ledger"))):
        return None
    return spec


def _same_slices(kept: Any) -> bool:
    """Whether the SQLite ledger holds the slices it held when the spec was made: its
    ``slices`` table read directly, read-only (devslice.ledger.sqlite, which checks the file
    before it trusts it, loads pydantic: ~90 ms that this look exists to save). A file that is
    not a ledger answers differently or not at all: no guess."""
    if not isinstance(kept, dict) or not isinstance(kept.get("handles"), list):
        return False
    import sqlite3  # lazy: only when a guess is near

    path = Path(str(kept["path"]))
    if not path.is_file():
        return kept["handles"] == []  # no ledger yet: no slice yet
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        handles = [h for (h,) in db.execute("SELECT handle FROM slices ORDER BY handle")]
    return bool(handles == kept["handles"])


def _begin(directory: Path, spec: dict[str, Any]) -> Path:
    """Start the supervisor and record it at once, as running, its services starting (it
    writes its own state within ~50 ms): from here every `up`, `down` and `status` sees it."""
    global _at_exit
    if not _at_exit:
        atexit.register(_stop_unadopted)
        _at_exit = True
    (directory / STATE).unlink(missing_ok=True)
    pid = _spawn(directory)
    _started[str(directory.resolve())] = pid
    write_json(directory / STATE, {
        "supervisor": {"pid": pid, "spec": spec["hash"], "started": process_start(pid)},
        "services": {s["name"]: {"pid": None, "pgid": None, "started": None,
                                 "state": "starting", "restarts": 0, "crashes": 0,
                                 "detail": ""} for s in spec["services"]}})
    return directory


def _ports_taken(spec: dict[str, Any]) -> bool:
    from devslice.facts.ports import port_open  # lazy: sockets only when a guess is near

    return any(port_open(int(s["ready"]["port"]), timeout=0.2)
               for s in spec.get("services", []) if (s.get("ready") or {}).get("port"))


def _spawn(directory: Path) -> int:
    """The supervisor, as the local runtime starts it (a new session, its log appended)."""
    from devslice.adapters.spawn import detached  # lazy: only when a guess is made

    argv = supervisor_argv(directory)
    return detached(argv[0], argv, directory / SUPERVISOR_LOG, os.environ)


def pending(directory: Path) -> bool:
    """Whether this process began the emulators of ``directory``, they still run (the same
    supervisor), and its plan has not taken them over yet."""
    key = str(directory.resolve())
    pid = _started.get(key)
    if pid is None or key in _adopted:
        return False
    state = running(directory)
    return state is not None and (state.get("supervisor") or {}).get("pid") == pid


def adopt(directory: Path) -> None:
    """The plan takes over what this process began: from here on they are `up`'s own."""
    _adopted.add(str(directory.resolve()))


def _stop_unadopted() -> None:
    """At exit: stop what this process began and no plan took over, if it is still the
    supervisor running there, nobody acts on the folder, and no slice of the checkout uses
    the emulators (a slice that runs, or whose `up` is under way)."""
    for key in list(_started):
        directory = Path(key)
        if key in _adopted:
            continue
        with contextlib.suppress(Exception):
            # lazy: only when a guess was not taken over
            from devslice.local.runtime import emulators_unused, stop

            with locked(directory, "devslice up (stopping the emulators it began)",
                        fail_if_busy=True):
                if pending(directory) and emulators_unused(directory):
                    stop(directory)
