"""The local runtime as an engine resource, and the calls `down`, `status` and `logs` make.

Two supervisors per slice: one for the emulators every slice of the checkout shares (each
service's process, from :func:`devslice.services.processes`), one for the slice's own
services, each started with the slice's contract in its environment."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devslice import services
from devslice.adapters.runner import SubprocessRunner
from devslice.errors import CommandFailed, ConfigError, ConfigIssue, DevsliceError
from devslice.facts.ports import free_ports, port_open
from devslice.local import early
from devslice.local.state import (
    GO,
    LOGS,
    MARKER,
    SPEC,
    STATE,
    SUPERVISOR_LOG,
    alive,
    busy,
    locked,
    orphans,
    poll_delays,
    process_start,
    read_json,
    running,
    spec_digest,
    supervisor_argv,
    write_json,
)
from devslice.resources.plan import Action, noop
from devslice.services.base import ProcessSpec

if TYPE_CHECKING:
    from devslice.project import Project

KEY = "local"
SHARED_KEY = "local:emulators"


def shared_dir(project: Project) -> Path:
    """The emulators every slice of this checkout shares (one Azurite, all their accounts)."""
    return project.base_dir / ".devslice" / "local" / "_emulators"


def local_dir(project: Project, handle: str) -> Path:
    """One folder per slice, so two slices of one checkout never replace each other's
    processes (their ports must differ: see devslice.yaml's services)."""
    return project.base_dir / ".devslice" / "local" / handle


ServiceSpec = ProcessSpec  # the name the local runtime's callers know


def service_specs(project: Project, handle: str) -> list[ServiceSpec]:
    """The slice's services, each with the slice's contract in its environment."""
    contract = {v.name: (v.value if isinstance(v.value, str) else v.value.reveal())
                for v in project.variables(handle)}
    previous = {s["name"]: s for s in (read_json(local_dir(project, handle) / SPEC) or {})
                .get("services", [])}
    out = []
    for i, svc in enumerate(project.env.services):
        if not svc.run:
            raise ConfigError([ConfigIssue(str(project.config_path), None, None,
                                           f"services[{i}].run",
                                           f"service {svc.name!r} has no run: command; the local "
                                           "runtime starts services from it")],
                              hint="add run: (e.g. `run: python -m orders`) or use the k3d runtime")
        try:
            argv = shlex.split(svc.run)
        except ValueError as exc:
            raise ConfigError([ConfigIssue(str(project.config_path), None, None,
                                           f"services[{i}].run", f"{svc.run!r}: {exc}")]) from None
        ready: dict[str, Any] = {}
        if svc.ready is not None:
            ready = {k: v for k, v in (("port", svc.ready.port), ("log", svc.ready.log)) if v}
            ready["timeout"] = svc.ready.timeout.total_seconds()
        extra: dict[str, str] = {}
        if svc.port is not None:
            port = svc.port if isinstance(svc.port, int) else _auto_port(previous.get(svc.name))
            extra["PORT"] = str(port)
            ready.setdefault("port", port)
        out.append(ServiceSpec(svc.name, argv, str((project.base_dir / svc.cwd).resolve()),
                               {**contract, **svc.env, **extra}, ready))
    return out


def _auto_port(previous: dict[str, Any] | None) -> int:
    """The port this slice's service had (a plan must not change it), else a free one."""
    if previous and (previous.get("env") or {}).get("PORT"):
        return int(previous["env"]["PORT"])
    return free_ports(1)[0]


def container_only(project: Project) -> list[ConfigIssue]:
    """Modes whose emulator exists only as a container image, which the local runtime (no
    Docker) cannot run."""
    return services.container_only(project.env, str(project.config_path))


def _emulators(project: Project) -> list[ServiceSpec]:
    """The emulators that run as processes, as their services say (the embedded event hub
    needs no process: it is a file)."""
    problems = container_only(project)
    if problems:
        raise ConfigError(problems, hint="or run with Docker and k3d (cluster.runtime: k3d)")
    return services.processes(project, shared_dir(project))


def spec_hash(specs: list[ServiceSpec]) -> str:
    return spec_digest([dataclasses.asdict(s) for s in specs])


def in_use(directory: Path) -> bool:
    """Whether the slice of ``directory`` runs anything (a supervisor, or processes a killed
    one left behind) or another `up`/`down` is acting on it now."""
    return running(directory) is not None or bool(orphans(directory)) or busy(directory)


def slice_lock(project: Project, handle: str, what: str, fail_if_busy: bool = False,
               on_wait: Callable[[str], None] | None = None) -> Any:
    """One `up` or `down` of a slice at a time: hold this around everything that decides
    and changes what runs (a second waits, telling ``on_wait`` for whom, or with
    ``fail_if_busy`` raises SliceBusy). The CLI's `up` holds it from plan to ready, which
    also tells a `down` of another slice that this one is about to use the emulators."""
    return locked(local_dir(project, handle), f"{what} of slice {handle}", fail_if_busy,
                  on_wait)


class LocalRuntimeResource:
    """A supervisor and the processes it keeps up: the slice's services, or (with
    ``shared=True``) the emulators every slice of the checkout uses."""

    def __init__(self, project: Project, handle: str, shared: bool = False,
                 progress: Callable[[str, str], None] | None = None,
                 runner: SubprocessRunner | None = None) -> None:
        self.runner = runner or SubprocessRunner()  # mongosh and the detached supervisor
        self.project = project
        self.handle = handle
        self.shared = shared
        self.progress = progress
        self.key = SHARED_KEY if shared else KEY
        self.after: tuple[str, ...] = () if shared else (SHARED_KEY,)
        self.directory = shared_dir(project) if shared else local_dir(project, handle)

    def specs(self) -> list[ServiceSpec]:
        if self.shared:
            return _emulators(self.project)
        return service_specs(self.project, self.handle)

    def plan(self) -> list[Action]:
        specs = self.specs()
        state = running(self.directory)
        notes = [noop(self.key, note) for note in
                 (services.process_notes(self.project, specs) if self.shared else [])]
        return notes + [dataclasses.replace(a, execute=self._apply)
                        if a.changes and a.execute is not None else a
                        for a in self._plan(specs, state)]

    def _apply(self) -> None:
        """Act under the folder's lock, on facts read again under it: an `up` that waited
        for another finds the work done and starts no second supervisor."""
        what = f"devslice up (emulators, for slice {self.handle})" if self.shared else \
            f"devslice up of slice {self.handle}"
        with locked(self.directory, what, on_wait=self._say):
            specs = self.specs()
            if any(s.name == "azurite" for s in specs):
                from devslice.tools.azurite import ensure_azurite  # lazy: storage emulated

                # Azurite on first use: where planning said it would be (devslice's cache)
                ensure_azurite(self.project.base_dir, progress=self._say)
            for a in self._plan(specs, running(self.directory)):
                if a.changes and a.execute is not None:
                    a.execute()

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(self.key, line)

    def _plan(self, specs: list[ServiceSpec], state: dict[str, Any] | None) -> list[Action]:
        if not specs:
            if state is None:
                return [noop(self.key, "nothing to run")]
            return [Action(self.key, "stop", "nothing to run any more", (), self._stop)]
        names = ", ".join(s.name for s in specs)
        desired = spec_hash(specs)
        calls = (" ".join(supervisor_argv(self.directory)),)
        if state is None:
            return [self._not_running(specs, desired, names, calls)]
        if state["supervisor"]["spec"] != desired:
            old = {s["name"] for s in (read_json(self.directory / SPEC) or {}).get("services", [])}
            changed = sorted({s.name for s in specs} ^ old) or [names]
            guessed = "; begun as `up` started, from the last `up`'s spec" \
                if self.shared and early.pending(self.directory) else ""
            return [Action(self.key, "restart",
                           f"the services changed ({', '.join(changed)}){guessed}",
                           calls, lambda: self._restart(specs, desired))]
        if state["supervisor"].get("held"):
            return [Action(self.key, "start", f"run {names} as local processes", calls,
                           lambda: self._release(specs, desired))]
        broken = _unhealthy(state)
        if broken:
            return [Action(self.key, "restart", f"not healthy: {', '.join(broken)}", calls,
                           lambda: self._restart(specs, desired))]
        if self.shared:
            begun = self._begun(specs, state, names, calls)
            if begun is not None:
                return [begun]
        ports = {s.name: s.ready.get("port") for s in specs}
        states = ", ".join(f"{n} {s['state']}" + (f" :{ports[n]}" if ports.get(n) else "")
                           for n, s in state["services"].items())
        return [noop(self.key, f"running: {states}")]

    def _begun(self, specs: list[ServiceSpec], state: dict[str, Any], names: str,
               calls: tuple[str, ...]) -> Action | None:
        """Emulators running the planned spec, begun before this plan: by this `up` as it
        started (take them over), or by another `up` (wait until they are ready)."""
        if early.pending(self.directory):  # it runs nothing more: no calls
            return Action(self.key, "start", f"run {names} as local processes ({early.REASON})",
                          (), lambda: self._adopt(specs))
        starting = [n for n, s in state["services"].items() if s["state"] == "starting"]
        if starting:  # the slice's services need them ready
            return Action(self.key, "wait", f"{', '.join(starting)} starting", (),
                          lambda: _wait_for(self.directory, specs))
        return None

    def _not_running(self, specs: list[ServiceSpec], desired: str, names: str,
                     calls: tuple[str, ...]) -> Action:
        """No supervisor: start one, after stopping what a dead one left running."""
        left = orphans(self.directory)
        if left:
            sup = ((read_json(self.directory / STATE) or {}).get("supervisor") or {})
            return Action(self.key, "restart", (
                f"the supervisor (pid {sup.get('pid')}) is gone; orphaned processes it left "
                "running: " + ", ".join(f"{n} (pid {p})" for n, p in left.items())
                + "; they are stopped and started again"), calls,
                lambda: self._restart(specs, desired))
        return Action(self.key, "start", f"run {names} as local processes", calls,
                      lambda: self._start(specs, desired))

    def _stop(self) -> None:
        stop(self.directory)

    def _restart(self, specs: list[ServiceSpec], desired: str) -> None:
        stop(self.directory)
        self._start(specs, desired)

    def _start(self, specs: list[ServiceSpec], desired: str, held: bool = False) -> None:
        """Start the supervisor and wait for its services; ``held``: it starts them only when
        released (:meth:`_release`), and this returns once it runs."""
        stop(self.directory)  # processes a killed supervisor left behind, if any
        for s in specs:
            port = s.ready.get("port")
            if port and port_open(int(port)):
                raise CommandFailed(
                    f"port {port} for {s.name} is already taken by another process",
                    hint=f"stop what listens on {port} (`ss -ltnp | grep :{port}`), or change "
                    "the port in devslice.yaml")
        write_json(self.directory / SPEC, {"hash": desired, "services": [
            {"name": s.name, "argv": s.argv, "cwd": s.cwd, "env": s.env, "ready": s.ready}
            for s in specs], **({"hold": {"parent": os.getpid()}} if held else {})},
            private=True)
        (self.directory / STATE).unlink(missing_ok=True)
        if held:
            (self.directory / GO).unlink(missing_ok=True)
            os.mkfifo(self.directory / GO, 0o600)
        if self.shared:  # what the next `up` may start them from as it begins
            early.remember(self.directory, self.project.config_path, desired,
                           _early_ledger(self.project))
        # A new session: the supervisor outlives this CLI (and a Ctrl-C in its terminal).
        self.runner.start_detached(supervisor_argv(self.directory),
                                   log=self.directory / SUPERVISOR_LOG)
        if not held:
            self._started(specs)

    def _adopt(self, specs: list[ServiceSpec]) -> None:
        """Take over the emulators this `up` began before its plan (see early.py)."""
        early.adopt(self.directory)
        self._started(specs)

    def _started(self, specs: list[ServiceSpec]) -> None:
        """Wait for the services of the supervisor just started; with the emulators, start
        the slice's supervisor held meanwhile and, once they are ready, what they need made
        (containers, users)."""
        slice_dir = self._start_slice_early() if self.shared else None
        try:
            _wait_for(self.directory, specs)
            if self.shared:
                services.after_start(self.project, specs, self.runner)
        except BaseException:
            if slice_dir is not None:
                stop(slice_dir)
            raise

    def _start_slice_early(self) -> Path | None:
        """While the emulators start, the slice's supervisor too, held: it imports and waits
        for `up` to release it once the emulators are ready and the slice's containers exist
        (issue 17). It stops by itself if this process ends first (a failed `up`). Nothing
        when the slice runs, is busy, or cannot start now: its own step then does as always."""
        if not hasattr(os, "pidfd_open"):  # Linux 5.3+: how a held supervisor watches `up`
            return None
        own = LocalRuntimeResource(self.project, self.handle, runner=self.runner)
        directory = own.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if busy(directory) or running(directory) is not None or orphans(directory):
                return None
            specs = own.specs()
            if not specs:
                return None
            with locked(directory, f"devslice up of slice {self.handle}", fail_if_busy=True):
                own._start(specs, spec_hash(specs), held=True)
        except (DevsliceError, OSError):
            return None
        return directory

    def _release(self, specs: list[ServiceSpec], desired: str) -> None:
        """Tell a held supervisor to start its services, and wait for them; one that is gone
        (or never opened its FIFO) is replaced by a new one."""
        deadline = time.monotonic() + 10
        delays = poll_delays(time.monotonic)
        fd = None
        while fd is None and time.monotonic() < deadline and running(self.directory):
            try:
                fd = os.open(self.directory / GO, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: not opened for reading yet
                time.sleep(next(delays))
        if fd is None:
            self._restart(specs, desired)
            return
        try:
            os.write(fd, b"go")
        finally:
            os.close(fd)
        _wait_for(self.directory, specs)


def _early_ledger(project: Project) -> tuple[Path, list[str]] | None:
    """What the next `up` compares besides the config to begin the emulators early
    (devslice.local.early): the SQLite ledger's slices, which the emulators' accounts follow.
    None when that cannot be known cheaply (a ledger elsewhere) or the runtime was chosen by
    what this machine has now (``runtime: auto`` looks for Docker and k3d), not by config
    or DEVSLICE_RUNTIME alone."""
    forced = os.environ.get("DEVSLICE_RUNTIME")
    chosen = project.env.cluster.runtime
    settled = forced == "local" if forced else (
        chosen == "local" or (chosen == "auto" and bool(services.machine_only(project.env))))
    ledger = project.env.ledger
    if not settled or ledger.backend != "sqlite":
        return None
    return project.base_dir / ledger.path, [s.handle for s in project.slices()]


def _wait_for(directory: Path, specs: list[ServiceSpec]) -> None:
    wait_ready(directory, [s.name for s in specs],
               max((float(s.ready.get("timeout", 0)) for s in specs), default=0) + 10)


def _unhealthy(state: dict[str, Any]) -> list[str]:
    """The supervised services that failed, never got ready, or keep crashing."""
    return [f"{n} {s['state']}" + (f" ({s['detail']})" if s.get("detail") else "")
            for n, s in state["services"].items()
            if s["state"] in ("failed", "unready") or _crash_looping(s)]


def _crash_looping(service: dict[str, Any]) -> bool:
    """Three crashes in a row, each before a healthy run (older state files: restarts)."""
    return int(service.get("crashes", service.get("restarts", 0))) >= 3


def wait_ready(directory: Path, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delays = poll_delays(time.monotonic)
    while time.monotonic() < deadline:
        state = read_json(directory / STATE) or {}
        services = state.get("services") or {}
        if names and all(services.get(n, {}).get("state") == "ready" for n in names):
            return
        if not names and state:
            return
        bad = [n for n in names if services.get(n, {}).get("state") in ("failed", "unready")
               or _crash_looping(services.get(n, {}))]
        if bad:
            raise CommandFailed(f"{bad[0]} did not become ready "
                                f"({services[bad[0]].get('detail') or 'it keeps crashing'}):\n"
                                + "\n".join(tail(directory, bad[0], 10)),
                                hint=f"`devslice logs {bad[0]}`; the others keep running")
        time.sleep(next(delays))
    raise CommandFailed(f"the services were not ready after {timeout:.0f}s",
                        hint="`devslice status` and `devslice logs` show where they are")


def stop_slice(project: Project, handle: str, fail_if_busy: bool = False,
               on_wait: Callable[[str], None] | None = None) -> list[int]:
    """Stop the slice's processes, then the shared emulators when no slice of the checkout
    uses them any more: none runs a supervisor, none has processes a killed supervisor left
    behind, and no `up` of another slice is under way (it holds its slice's lock)."""
    if not shared_dir(project).parent.exists():
        return []  # the local runtime never ran in this checkout
    with slice_lock(project, handle, "devslice down", fail_if_busy, on_wait):
        stopped = stop(local_dir(project, handle))
    shared = shared_dir(project)
    with locked(shared, f"devslice down (emulators, for slice {handle})", fail_if_busy,
                on_wait):
        if emulators_unused(shared):
            stopped += stop(shared)
    return stopped


def emulators_unused(shared: Path) -> bool:
    """Whether no slice of the checkout uses the emulators of ``shared``: none runs a
    supervisor, none has processes a killed one left, no `up` of one is under way."""
    return not any(d.is_dir() and d != shared and in_use(d) for d in shared.parent.iterdir())


def stop(directory: Path) -> list[int]:
    """Stop the supervisor and every process it started; returns the pids it stopped. Works
    when the supervisor itself was killed: the recorded process groups are stopped directly,
    each only if its leader is the process recorded (by start time) or gone."""
    state = read_json(directory / STATE) or {}
    services = state.get("services") or {}
    ours = [s for s in services.values() if s.get("pgid") and _ours(s)]
    sup = state.get("supervisor") or {}
    pid = sup.get("pid")
    stopped: list[int] = []
    if pid and alive(pid, MARKER, sup.get("started")):
        stopped.append(pid)
        os.kill(pid, signal.SIGTERM)  # it stops its services, all at once, then itself
        deadline = time.monotonic() + 15
        while alive(pid, MARKER, sup.get("started")) and time.monotonic() < deadline:
            # our own child when this `up` began it (devslice.local.early): reaped, or a
            # zombie still shows a start time where /proc is missing (macOS: `ps`)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
    # What is left (a supervisor killed with SIGKILL leaves its children), each group checked
    # again just before it is signalled: the supervisor may have stopped it meanwhile.
    groups = [int(s["pgid"]) for s in ours]
    _stop_groups([int(s["pgid"]) for s in ours if _ours(s)])
    if state:
        state["supervisor"] = {"pid": None, "spec": None}
        for s in services.values():
            s.update(pid=None, pgid=None, started=None, state="stopped")
        write_json(directory / STATE, state)
    return stopped + groups


def _ours(service: dict[str, Any]) -> bool:
    """Whether the recorded process group may be signalled: its leader is the process that
    was started (same start time), or gone (then no other process can lead a group of that
    id, and any member left is one of ours). A recycled pid is another program's."""
    now = process_start(int(service["pid"])) if service.get("pid") else None
    return now is None or service.get("started") in (None, now)


def _stop_groups(groups: list[int], grace: float = 5.0) -> None:
    """SIGTERM to every group, SIGKILL to those still there after ``grace`` seconds."""
    left = []
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
            left.append(pgid)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:
        left = [g for g in left if _group_exists(g)]
        time.sleep(0.05)
    for pgid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tail(directory: Path, name: str, lines: int) -> list[str]:
    path = directory / LOGS / f"{name}.log"
    if not path.exists():
        return []
    return path.read_text(errors="replace").splitlines()[-lines:]


def follow(directory: Path, names: list[str], follow: bool,
           from_end: bool = False) -> Iterator[str]:
    """Log lines prefixed by service; with ``follow``, new lines as they come; with
    ``from_end``, only lines written from now on."""
    offsets: dict[str, int] = {}
    if from_end:
        for name in names:
            path = directory / LOGS / f"{name}.log"
            offsets[name] = path.stat().st_size if path.exists() else 0
    width = max((len(n) for n in names), default=0)
    while True:
        for name in names:
            path = directory / LOGS / f"{name}.log"
            if not path.exists():
                continue
            with open(path, "rb") as f:
                f.seek(offsets.get(name, 0))
                chunk = f.read()
                offsets[name] = f.tell()
            for line in chunk.decode(errors="replace").splitlines():
                yield f"{name:<{width}} | {line}"
        if not follow:
            return
        time.sleep(0.2)

