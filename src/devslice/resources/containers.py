"""Local containers as resources: desired spec from ``containers:`` in devslice.yaml, facts from
:class:`devslice.adapters.docker.Docker`, actions with reasons (key ``container:<name>``).

The applied spec is recorded on the container itself, as labels: ``devslice.dev/spec-hash``
(what is compared) and ``devslice.dev/spec`` (the readable aspects, so a reason can say
"recreate mongodb: image mongo:7 -> mongo:8"). Labels never hold a secret: a secret appears
in them as its reference (``env:SFTP_PASSWORD``). Whether a secret's *value* changed is
tracked by a digest salted with the container id in ``.devslice/containers/<name>.json``,
beside which setup scripts have run.

Reconcile decisions (after ctlptl's ``registry.go`` ``Apply``):

- missing -> create and start (pull first if the engine lacks the image);
- a container of that name devslice did not make -> refuse, never touch it;
- spec drift (labels), a changed secret, or a generated file gone from disk -> recreate,
  naming what changed (named volumes are kept: the data outlives the container);
- stopped -> start (``unless-stopped`` does not restart a container someone stopped);
- running and the same -> nothing.

After a create, recreate or start the action waits for readiness (a TCP port on 127.0.0.1, a
command exiting 0 inside the container, or a log line). Setup scripts then run once each, and
again only when their text changes or the container was recreated; a failing script raises
:class:`SetupFailed` with its output and leaves every container as it is.

Facts are read in ``read(reader)``: every container resource of a command shares one
container listing (:mod:`devslice.facts.docker`); ``plan(facts)`` reads and writes nothing.
Generated files (users.conf, Config.json) and the state file are written by the actions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devslice.adapters.dockerdata import (
    ContainerFact,
    ExecResult,
    Mount,
    PortBinding,
    PortInUse,
    create_call,
    exec_call,
    pull_call,
    remove_call,
    start_call,
    stop_call,
    volume_create_call,
    volume_remove_call,
)
from devslice.errors import CommandFailed
from devslice.facts import docker as docker_facts
from devslice.facts.ports import port_bindable, port_serves
from devslice.facts.world import Reader
from devslice.files import write_atomic
from devslice.resources.plan import Action, noop
from devslice.secrets import Secret

if TYPE_CHECKING:
    from devslice.adapters.docker import Docker

LABEL_MANAGED_BY = "devslice.dev/managed-by"
LABEL_CONTAINER = "devslice.dev/container"
LABEL_SPEC_HASH = "devslice.dev/spec-hash"
LABEL_SPEC = "devslice.dev/spec"
MANAGED_BY = "devslice"
STATE_DIR = ".devslice/containers"
OUTPUT_LINES = 40  # of a failing setup script or an unready container, shown in the error
_HASH_VERSION = "devslice-container-v1"  # bump to recreate every container if the recipe changes


class SetupFailed(CommandFailed):
    """A setup script exited non-zero; ``output`` is what it printed."""

    def __init__(self, message: str, output: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.output = output


class NotReady(CommandFailed):
    """A container did not become ready in time."""


# ------------------------------------------------------------------ desired state


@dataclass(frozen=True)
class Readiness:
    """What must hold, all of it: a service answering on a *host* port of 127.0.0.1 (not
    only Docker's proxy: :func:`~devslice.facts.ports.port_serves`), a command exiting 0
    inside the container, a line in its output."""

    port: int | None = None
    command: tuple[str, ...] = ()
    log: str | None = None
    timeout: float = 60.0

    def describe(self) -> str:
        parts = []
        if self.port is not None:
            parts.append(f"a service answers on 127.0.0.1:{self.port} (not only Docker's proxy)")
        if self.command:
            parts.append(f"`{' '.join(self.command)}` succeeds")
        if self.log is not None:
            parts.append(f"its output shows {self.log!r}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Setup:
    """A script run with ``docker exec``; ``argv`` holds the script's text already."""

    name: str
    argv: tuple[str, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(list(self.argv)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GeneratedFile:
    """A file devslice writes for a container to mount (users.conf, Config.json). Secret
    content is written with mode 0600 and never described beyond its sources."""

    path: Path
    content: str | Secret

    @property
    def secret(self) -> bool:
        return isinstance(self.content, Secret)

    def text(self) -> str:
        return self.content.reveal() if isinstance(self.content, Secret) else self.content


@dataclass(frozen=True)
class ContainerSpec:
    name: str  # the container is devslice-<name>; the resource container:<name>
    image: str
    command: tuple[str, ...] = ()
    env: Mapping[str, str | Secret] = field(default_factory=dict)
    ports: tuple[PortBinding, ...] = ()
    mounts: tuple[Mount, ...] = ()
    restart: str = "unless-stopped"
    extra_hosts: tuple[str, ...] = ()
    readiness: Readiness | None = None
    setup: tuple[Setup, ...] = ()
    files: tuple[GeneratedFile, ...] = ()
    after: tuple[str, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)  # extra aspects for reasons

    @property
    def container_name(self) -> str:
        return f"devslice-{self.name}"

    def secrets(self) -> dict[str, Secret]:
        """Every secret the container gets, by its source (``env:X``, ``file:/path``)."""
        out = {v.source: v for v in self.env.values() if isinstance(v, Secret)}
        for f in self.files:
            if isinstance(f.content, Secret):
                out[f.content.source] = f.content
        return out

    def aspects(self) -> dict[str, str]:
        """What a user would name when saying what changed, as text without secret values."""
        out = {"image": self.image, "command": " ".join(self.command) or "(image default)"}
        for key, value in sorted(self.env.items()):
            out[f"env {key}"] = f"<secret {value.source}>" if isinstance(value, Secret) else value
        out["ports"] = ", ".join(str(p) for p in self.ports) or "none"
        out["volumes"] = ", ".join(str(m) for m in self.mounts) or "none"
        out["restart"] = self.restart
        if self.extra_hosts:
            out["extra hosts"] = ", ".join(self.extra_hosts)
        for f in self.files:
            out[f"file {f.path.name}"] = (
                f"<secret {f.content.source}>" if isinstance(f.content, Secret)
                else hashlib.sha256(f.content.encode()).hexdigest()[:12])
        out.update(self.notes)
        return out

    def spec_hash(self) -> str:
        data = json.dumps([_HASH_VERSION, self.aspects()], sort_keys=True).encode()
        return hashlib.sha256(data).hexdigest()[:16]

    def labels(self) -> dict[str, str]:
        return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_CONTAINER: self.name,
                LABEL_SPEC_HASH: self.spec_hash(),
                LABEL_SPEC: json.dumps(self.aspects(), sort_keys=True, separators=(",", ":"))}


def spec_changes(labels: Mapping[str, str], spec: ContainerSpec) -> list[str]:
    """ "image mongo:7 -> mongo:8" for each aspect that differs from the recorded spec."""
    if labels.get(LABEL_SPEC_HASH) == spec.spec_hash():
        return []
    try:
        applied = json.loads(labels.get(LABEL_SPEC, ""))
    except ValueError:
        applied = None
    if not isinstance(applied, dict):
        return ["spec changed (the container holds no readable record of its spec)"]
    desired = spec.aspects()
    changes = []
    for key in sorted(set(applied) | set(desired)):
        have, want = applied.get(key), desired.get(key)
        if have == want:
            continue
        if key.startswith(("env ", "file ")) or len(f"{have}{want}") > 120:
            what = "added" if have is None else "removed" if want is None else "changed"
            changes.append(f"{key} {what}")
        else:
            changes.append(f"{key} {have or 'none'} -> {want or 'none'}")
    return changes or ["spec changed"]


# ------------------------------------------------------------------ state


def state_path(base_dir: Path, name: str) -> Path:
    return Path(base_dir) / STATE_DIR / f"{name}.json"


def read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 (state and generated files may hold secrets)."""
    write_atomic(path, text, 0o600)


def secret_digest(container_id: str, secret: Secret) -> str:
    # Salted with the container id: the state file never holds a bare hash of a password.
    return hashlib.sha256(f"{container_id}\0{secret.reveal()}".encode()).hexdigest()[:16]


# ------------------------------------------------------------------ facts


def port_taken(port: PortBinding) -> bool:
    """Whether a host port is held, tried as the engine's proxy would bind it."""
    return port.protocol == "tcp" and not port_bindable(port.host_port,
                                                          port.host_ip or "0.0.0.0")


@dataclass
class ContainerFacts:
    """What ``plan`` compares: the container (None: missing), its state file, each generated
    file on disk (``same``, ``differs`` or ``missing``, by path); and, read only when the
    plan (re)creates it, whether the engine has the image and which of the spec's host ports
    another program holds."""

    container: ContainerFact | None
    state: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    image_present: bool = False
    ports_taken: frozenset[int] = frozenset()


def _ours(fact: ContainerFact) -> bool:
    return fact.labels.get(LABEL_MANAGED_BY) == MANAGED_BY


# ------------------------------------------------------------------ the resource


class ContainerResource:
    """One local container kept in its desired spec (``container:<name>``)."""

    def __init__(self, spec: ContainerSpec, docker: Docker, base_dir: Path, *,
                 after: tuple[str, ...] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 poll: float = 0.25) -> None:
        self.spec = spec
        self.docker = docker
        self.base_dir = Path(base_dir)
        self.key = f"container:{spec.name}"
        self.after: tuple[str, ...] = spec.after if after is None else after
        self._clock, self._sleep, self._poll = clock, sleep, poll
        self._ready = False  # checked once per apply

    @property
    def state_path(self) -> Path:
        return state_path(self.base_dir, self.spec.name)

    def read(self, reader: Reader) -> ContainerFacts:
        """The container (from the one listing), its state file, the generated files on
        disk; and, only when the plan would (re)create it, the image and the host ports."""
        fact = docker_facts.container(reader, self.docker, self.spec.container_name)
        facts = ContainerFacts(
            fact, read_state(self.state_path),
            {str(f.path): "missing" if not f.path.exists() else
             "same" if _same_file(f) else "differs" for f in self.spec.files})
        if self._rebuilds(facts):
            own = fact.host_ports if fact is not None else ()
            facts.image_present = docker_facts.image_present(reader, self.docker, self.spec.image)
            facts.ports_taken = frozenset(p.host_port for p in self.spec.ports
                                          if p.host_port not in own and port_taken(p))
        return facts

    def plan(self, facts: ContainerFacts | None = None) -> list[Action]:
        facts = facts or self.read(Reader())
        spec, cname = self.spec, self.spec.container_name
        fact = facts.container
        if fact is None:
            self._check_ports(facts)
            calls = (*self._volume_calls(), *self._pull_calls(facts), create_call(cname),
                     start_call(cname))
            return [Action(self.key, "create", f"container {cname} does not exist", calls,
                           self._create),
                    *self._setup_actions(spec.setup, "new container")]
        if not _ours(fact):
            raise CommandFailed(
                f"a container named {cname} exists, but devslice did not create it "
                f"(no label {LABEL_MANAGED_BY}={MANAGED_BY}); devslice leaves it alone",
                hint=f"remove it (`docker rm -f {cname}`) if it is a leftover, then run "
                "devslice up again")
        state = facts.state
        known = state.get("container") == fact.id
        changes = self._changes(facts)
        if changes:
            self._check_ports(facts)
            calls = (remove_call(cname), *self._volume_calls(), *self._pull_calls(facts),
                     create_call(cname), start_call(cname))
            return [Action(self.key, "recreate", f"recreate {spec.name}: {'; '.join(changes)}",
                           calls, self._recreate),
                    *self._setup_actions(spec.setup, "recreated container")]
        actions = []
        if not fact.running:
            actions.append(Action(self.key, "start", f"container {cname} is {fact.status}",
                                  (start_call(cname),), self._start))
        done = state.get("setup") if known else {}
        pending = [s for s in spec.setup if (done or {}).get(s.name) != s.digest]
        why = {s.name: ("its script changed" if (done or {}).get(s.name) else
                        "not run yet in this container") for s in pending}
        actions += self._setup_actions(tuple(pending), why)
        if not actions:
            reason = f"container {cname} already running with the same spec"
            if not known and spec.secrets():
                reason += (f"; its secrets not compared (no record in {STATE_DIR}/"
                           f"{self.state_path.name})")
            return [noop(self.key, reason)]
        return actions

    # -- plan helpers --

    def _rebuilds(self, facts: ContainerFacts) -> bool:
        """Whether the plan creates or recreates the container (and so needs the image and
        host-port facts)."""
        fact = facts.container
        return fact is None or (_ours(fact) and bool(self._changes(facts)))

    def _changes(self, facts: ContainerFacts) -> list[str]:
        """What differs from the spec: labels, secrets (when the state file knows the
        container) and the generated files on disk."""
        fact = facts.container
        assert fact is not None
        changes = spec_changes(fact.labels, self.spec)
        known = facts.state.get("container") == fact.id
        secrets_changed = self._secret_changes(fact.id, facts.state) if known else []
        changes += secrets_changed
        for f in self.spec.files:
            on_disk = facts.files.get(str(f.path), "missing")
            if on_disk == "missing":
                changes.append(f"generated file {f.path.name} is missing")
            elif on_disk == "differs" and not (f.secret and secrets_changed):
                changes.append(f"generated file {f.path.name} differs on disk")
        return changes

    def _pull_calls(self, facts: ContainerFacts) -> tuple[str, ...]:
        return () if facts.image_present else (pull_call(self.spec.image),)

    def _check_ports(self, facts: ContainerFacts) -> None:
        for p in self.spec.ports:
            if p.host_port in facts.ports_taken:
                raise PortInUse(
                    f"container {self.spec.container_name} cannot publish host port "
                    f"{p.host_port} ({p}): it is already in use by another program or "
                    "container", p.host_port,
                    hint=f"stop what listens there (`ss -ltnp 'sport = :{p.host_port}'`, "
                    f"`docker ps`), or choose another host port for {self.spec.name} in "
                    "devslice.yaml")

    def _secret_changes(self, container_id: str, state: Mapping[str, Any]) -> list[str]:
        recorded = state.get("secrets") or {}
        changed = [source for source, secret in sorted(self.spec.secrets().items())
                   if recorded.get(source) != secret_digest(container_id, secret)]
        return [f"secret {s} changed" for s in changed]

    def _setup_actions(self, scripts: tuple[Setup, ...],
                       why: str | Mapping[str, str]) -> list[Action]:
        cname = self.spec.container_name
        return [Action(self.key, "setup",
                       f"run setup script {s.name} in {cname} "
                       f"({why if isinstance(why, str) else why[s.name]})",
                       (exec_call(cname),), _bind(self._run_setup, s)) for s in scripts]

    # -- actions --

    def _volume_calls(self) -> tuple[str, ...]:
        return tuple(volume_create_call(m.source) for m in self.spec.mounts
                     if m.kind == "volume")

    def _create(self) -> None:
        spec = self.spec
        for f in spec.files:
            write_private(f.path, f.text())
        for m in spec.mounts:  # labelled, so `destroy` removes only volumes devslice made
            if m.kind == "volume":
                self.docker.volume_ensure(m.source, {LABEL_MANAGED_BY: MANAGED_BY})
        cid = self.docker.container_run(
            spec.container_name, spec.image, command=spec.command,
            env={k: v.reveal() if isinstance(v, Secret) else v for k, v in spec.env.items()},
            labels=spec.labels(), ports=spec.ports, mounts=spec.mounts, restart=spec.restart,
            extra_hosts=spec.extra_hosts)
        # A new container: no setup script has run in it yet.
        self._write_state({"container": cid, "setup": {}, "secrets": {
            source: secret_digest(cid, s) for source, s in spec.secrets().items()}})
        self._wait_ready()

    def _recreate(self) -> None:
        self.docker.container_remove(self.spec.container_name)
        self.state_path.unlink(missing_ok=True)  # if create fails now, the next plan creates
        self._create()

    def _start(self) -> None:
        self.docker.container_start(self.spec.container_name)
        self._wait_ready()

    def _run_setup(self, script: Setup) -> None:
        cname = self.spec.container_name
        self._wait_ready()
        # keep_output: the output of a script that fails at once survives engine 20.10
        result = self.docker.container_exec(cname, script.argv,
                                            keep_output=f"/tmp/devslice-setup-{script.digest}.log")
        if result.exit_code != 0:
            raise _setup_failed(cname, script, result)
        state = read_state(self.state_path)
        fact = self.docker.container_get(cname)
        if fact is not None and state.get("container") != fact.id:
            state = {"container": fact.id, "setup": {}, "secrets": {
                source: secret_digest(fact.id, s) for source, s in self.spec.secrets().items()}}
        state.setdefault("setup", {})[script.name] = script.digest
        self._write_state(state)

    def _write_state(self, state: Mapping[str, Any]) -> None:
        write_private(self.state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def _wait_ready(self) -> None:
        ready = self.spec.readiness
        if ready is None or self._ready:
            return
        cname = self.spec.container_name
        deadline = self._clock() + ready.timeout
        wait = min(0.05, self._poll)  # issue 17: soon at first, then every poll seconds
        while True:
            if self._is_ready(ready):
                self._ready = True
                return
            fact = self.docker.container_get(cname)
            if fact is not None and not fact.running:
                raise NotReady(f"container {cname} stopped ({fact.status}) before it was ready"
                               + self._logs_tail(), hint=f"see `docker logs {cname}`")
            if self._clock() >= deadline:
                raise NotReady(f"container {cname} was not ready after {ready.timeout:g} s: "
                               f"waited until {ready.describe()}" + self._logs_tail(),
                               hint=f"see `docker logs {cname}`; a slow machine may need a "
                               "longer readiness timeout in devslice.yaml")
            self._sleep(wait)
            wait = min(wait * 2, self._poll)

    def _is_ready(self, ready: Readiness) -> bool:
        cname = self.spec.container_name
        if ready.log is not None and ready.log not in self.docker.container_logs(cname):
            return False
        if ready.port is not None and not port_serves(ready.port):
            return False
        return not ready.command or self.docker.container_exec(cname, ready.command).exit_code == 0

    def _logs_tail(self) -> str:
        with contextlib.suppress(CommandFailed):
            text = self.docker.container_logs(self.spec.container_name, tail=OUTPUT_LINES)
            if text.strip():
                return "\n" + _indent(text)
        return ""


# ------------------------------------------------------------------ down and destroy


def _managed(docker: Docker, names: list[str]) -> list[Any]:
    """The containers devslice made for ``names``, by their labels (a container of that name
    that devslice did not make is never touched)."""
    wanted = set(names)
    return sorted((f for f in docker.container_list({LABEL_MANAGED_BY: MANAGED_BY})
                   if f.labels.get(LABEL_CONTAINER) in wanted), key=lambda f: f.name)


def stop_actions(docker: Docker, names: list[str], timeout: int = 10) -> list[Action]:
    """`devslice down`: stop the containers; nothing is deleted, and `up` starts them again
    (a container someone stopped stays stopped under ``unless-stopped``). Each waits up to
    ``timeout`` seconds after SIGTERM; the actions are independent, so the CLI runs them at
    once (:meth:`Executor.run_actions`)."""
    out = []
    for fact in _managed(docker, names):
        key = f"container:{fact.labels[LABEL_CONTAINER]}"
        if fact.status in ("created", "exited", "dead"):  # restarting and paused still run
            out.append(noop(key, f"container {fact.name} already stopped ({fact.status})"))
        else:
            out.append(Action(key, "stop", f"stop container {fact.name}; its data stays",
                              (stop_call(fact.name, timeout),),
                              _stop(docker, fact.name, timeout)))
    return out


def remove_actions(docker: Docker, names: list[str], base_dir: Path,
                   keep_volumes: bool = False) -> list[Action]:
    """`devslice destroy`: remove the containers, then, unless ``keep_volumes``, the named
    volumes devslice made for them (labelled; a volume of the team's own, or one another
    container still uses, is kept and said so)."""
    facts = _managed(docker, names)
    out = []
    for fact in facts:
        name = fact.labels[LABEL_CONTAINER]

        def remove(cname: str = fact.name, name: str = name) -> None:
            docker.container_remove(cname)
            state_path(Path(base_dir), name).unlink(missing_ok=True)

        out.append(Action(f"container:{name}", "delete", f"remove container {fact.name}",
                          (remove_call(fact.name),), remove))
    if keep_volumes:
        return out
    ours = set(docker.volume_list({LABEL_MANAGED_BY: MANAGED_BY}))
    removing = {f.id for f in facts}
    others = [f for f in docker.container_list({}) if f.id not in removing]
    for volume in sorted({v for f in facts for v in f.volumes}):
        key = f"volume:{volume}"
        users = [f.name for f in others if volume in f.volumes]
        if volume not in ours:
            out.append(noop(key, f"volume {volume} kept: devslice did not create it"))
        elif users:
            out.append(noop(key, f"volume {volume} kept: {', '.join(users)} still uses it"))
        else:
            out.append(Action(key, "delete", f"remove volume {volume} and its data",
                              (volume_remove_call(volume),),
                              _bind_name(docker.volume_remove, volume)))
    return out


def _stop(docker: Docker, name: str, timeout: int) -> Callable[[], None]:
    return lambda: docker.container_stop(name, timeout)


def _bind_name(fn: Callable[[str], None], name: str) -> Callable[[], None]:
    return lambda: fn(name)


def _bind(fn: Callable[[Setup], None], script: Setup) -> Callable[[], None]:
    return lambda: fn(script)


def _same_file(f: GeneratedFile) -> bool:
    try:
        return f.path.read_text(encoding="utf-8") == f.text()
    except OSError:
        return False


def _indent(text: str) -> str:
    lines = text.rstrip("\n").splitlines()[-OUTPUT_LINES:]
    return "\n".join(f"  {line}" for line in lines)


def _setup_failed(cname: str, script: Setup, result: ExecResult) -> SetupFailed:
    shown = _indent(result.output) if result.output.strip() else "  (no output)"
    return SetupFailed(
        f"setup script {script.name} failed in container {cname} (exit code "
        f"{result.exit_code}):\n{shown}", result.output,
        hint="fix the script and run devslice up again: it runs again, the container and "
        "everything else are left as they are")
