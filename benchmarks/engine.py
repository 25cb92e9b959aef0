"""The environment engine: a no-op ``devslice up`` and a cold ``devslice up`` with slow fakes.

Every system the engine drives is the fake the tests use (``tests/test_up.py``): the fake
``k3d`` executable (``tests/fakes/k3d``, state in ``FAKE_K3D_STATE``, every argv logged to
``FAKE_K3D_LOG``), :class:`~devslice.testing.dockerapi.FakeDockerEngine` and
:class:`~devslice.testing.dockerapi.FakeRegistry` (HTTP, each request recorded) and
:class:`~devslice.testing.kubeapi.FakeKubeAPI` (HTTP, each request recorded), reached through a
kubeconfig whose context is ``k3d-devslice``. The process environment and working folder are
set for the run and restored afterwards.

**No-op up.** The world of ``tests/test_up.py`` (one image, two manifest layers), converged
by one ``devslice up``; then ``devslice up -o json`` again and again, in this process
(``devslice.cli.app.run``, stdout captured) and as a subprocess (interpreter start included,
with a bytecode cache as after a normal install). Per up: wall time, and the calls each system
received (k3d invocations from the log; HTTP requests from the fakes' records).

**Cold up.** The same kind of world with several images, from nothing (a new world per run),
with known delays: the fake k3d behind a wrapper that sleeps before ``registry create`` and
``cluster create``, and an engine that sleeps in ``POST /build`` and ``POST /images/…/push``.
The critical path is the longest path through the resources' ``after`` graph with those
delays; the run goes through ``Project.load``, ``Tools.real``, ``environment.build`` and
``Executor.apply`` as ``devslice up`` does, and its StepReports give the per-step breakdown.
Each cold up is followed by the baseline in a fresh world of its own: the critical path's calls
made directly (``k3d registry create``, ``k3d cluster create --config``, the applies).

**Goals** (issue 17), printed first: the no-op as a command (wall, and its CPU from
``getrusage`` against ``python -c pass`` timed between the ups; the command's figures hold the
one fake ``k3d node list`` it runs, a Python process, which the baseline does not: it is timed
alone between the ups too and printed beside them), one read per system, and the
cold up ×1 against the known critical path and against the direct baseline.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.local import free_ports
from benchmarks.stats import median, ms, percentile, table
from devslice.testing.dockerapi import FakeDockerEngine, FakeRegistry
from devslice.testing.kubeapi import FakeKubeAPI

REPO = Path(__file__).resolve().parent.parent
FAKE_K3D = REPO / "tests" / "fakes" / "k3d"
SYSTEMS = ("k3d", "docker", "registry", "kube")
NOOP_GOAL = 0.4  # seconds per no-op up (issue 17)
RATIO_GOAL = 1.15  # cold up wall / critical path

CONFIG_HEAD = """\
apiVersion: devslice.dev/v1alpha1
kind: Environment
team: company1
# shared services: pods reach them (embedded stand-ins are refused for pods)
eventHubs: {mode: shared, namespaces: [{name: company1-ehns1}]}
# a SQLite ledger with shared services: this machine is the team (the ledger merge's check)
ledger: {soloTeam: true}
"""
PLATFORM = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: traefik-settings}
data: {entryPoint: web}
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: {name}
          image: {name}
"""


# -- the world -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delays:
    """Known delays of the slow fakes, in seconds."""

    registry_create: float = 0.0
    cluster_create: float = 0.0
    build: float = 0.0  # per image
    push: float = 0.0  # per image

    def scaled(self, factor: float) -> Delays:
        return Delays(self.registry_create * factor, self.cluster_create * factor,
                      self.build * factor, self.push * factor)

    def of(self, key: str) -> float:
        """The known delay of one resource's changes on a fresh machine."""
        if key == "registry":
            return self.registry_create
        if key == "cluster":
            return self.cluster_create
        if key.startswith("image:"):
            return self.build + self.push
        return 0.0


class SlowEngine(FakeDockerEngine):
    """The fake engine, taking ``delays.build`` per build and ``delays.push`` per push (after
    the request has arrived, before answering); requests are served in parallel."""

    def __init__(self, delays: Delays, **kw: Any) -> None:
        super().__init__(**kw)
        self.delays = delays

    def _build(self, ex: Any, name: str, headers: dict[str, str]) -> None:
        time.sleep(self.delays.build)
        super()._build(ex, name, headers)

    def _push(self, ex: Any, name: str, headers: dict[str, str]) -> None:
        time.sleep(self.delays.push)
        super()._push(ex, name, headers)


def _k3d_wrapper(real: Path, delays: Delays) -> str:
    """A k3d that sleeps before the slow verbs, then becomes the fake (same argv, same log)."""
    return textwrap.dedent(f"""\
        #!/bin/sh
        case "$1 $2" in
          "registry create") sleep {delays.registry_create:.3f} ;;
          "cluster create") sleep {delays.cluster_create:.3f} ;;
        esac
        exec {shlex.quote(str(real))} "$@"
        """)


@dataclass
class Calls:
    """Calls each system received, by kind: ``{"k3d": Counter({"cluster list": 1}), ...}``."""

    by_system: dict[str, Counter[str]] = field(
        default_factory=lambda: {s: Counter() for s in SYSTEMS})
    connects: Counter[str] | None = None  # adapters made (kube, docker); None: not seen

    def count(self, system: str) -> int:
        return sum(self.by_system[system].values())

    def changes(self, system: str) -> int:
        return sum(n for what, n in self.by_system[system].items() if _changes(system, what))

    @property
    def total(self) -> int:
        return sum(self.count(s) for s in SYSTEMS)


def _changes(system: str, what: str) -> bool:
    if system == "k3d":
        return what.split()[-1] in ("create", "start", "stop", "delete")
    return what.split()[0] not in ("GET", "HEAD")


class World:
    """A project and the fakes, with the environment a ``devslice`` process needs."""

    def __init__(self, root: Path, images: list[str], delays: Delays | None = None) -> None:
        self.root = root
        self.images = images
        self.delays = delays or Delays()
        self.project = root / "project"
        self.k3d_log = root / "k3d.log"
        self._stack = contextlib.ExitStack()
        self._marks: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._connects: Counter[str] = Counter()

    def __enter__(self) -> World:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        root = self.root
        bin_dir, real_dir = root / "bin", root / "fake"
        bin_dir.mkdir()
        real_dir.mkdir()
        if self.delays.registry_create or self.delays.cluster_create:
            shutil.copy2(FAKE_K3D, real_dir / "k3d")
            (bin_dir / "k3d").write_text(_k3d_wrapper(real_dir / "k3d", self.delays))
            (bin_dir / "k3d").chmod(0o755)
        else:
            shutil.copy2(FAKE_K3D, bin_dir / "k3d")
        self.registry = self._stack.enter_context(FakeRegistry())
        self.registry.host = f"localhost:{self.registry.port}"  # the name images are pushed to
        self.engine = self._stack.enter_context(
            SlowEngine(self.delays, registries=[self.registry]))
        self.kube = self._stack.enter_context(FakeKubeAPI())
        kubeconfig = root / "kubeconfig"
        kubeconfig.write_text(json.dumps(self.kube.kubeconfig(context="k3d-devslice")))
        self.env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "FAKE_K3D_STATE": str(root / "k3d.json"),
            "FAKE_K3D_LOG": str(self.k3d_log),
            "FAKE_K3D_PYTHON": sys.executable,
            "DOCKER_CONFIG": str(root / "docker-config"),  # no proxy build args
            "DOCKER_HOST": self.engine.base_url,
            "KUBECONFIG": str(kubeconfig),
            "DEVSLICE_OWNER": "Anna Berg <anna@example.com>",
            "DEVSLICE_ACTOR": "bench@local",
        }
        self._write_project()
        self._stack.enter_context(_environment(self.env, unset=("DEVSLICE_SLICE",
                                                                 "DEVSLICE_CONFIG")))
        self._stack.enter_context(contextlib.chdir(self.project))
        self._stack.enter_context(_counting_connects())
        code, out = cli(["slice", "claim"])
        if code != 0:
            raise RuntimeError(f"devslice slice claim exited {code}: {out[-500:]}")

    def _write_project(self) -> None:
        p = self.project
        for name in self.images:
            (p / "services" / name).mkdir(parents=True)
            (p / "services" / name / "Dockerfile").write_text(
                "FROM python:3.11-slim\nCOPY app.py /app.py\n")
            (p / "services" / name / "app.py").write_text(f"print({name!r})\n")
        deployments = "---\n".join(DEPLOYMENT.format(name=n) for n in self.images)
        for layer, text in (("platform", PLATFORM), ("services", deployments)):
            (p / "deploy" / layer).mkdir(parents=True)
            (p / "deploy" / layer / "objects.yaml").write_text(text)
        images = "".join(f"  - {{name: {n}, context: services/{n}}}\n" for n in self.images)
        blob, queue, table = free_ports(3)
        (p / "devslice.yaml").write_text(CONFIG_HEAD + textwrap.dedent(f"""\
            # Azurite as a container (issue 14: one container listing per command)
            storage:
              mode: emulator
              blobEndpointTemplate: "http://127.0.0.1:{blob}/{{account}}"
              queueEndpointTemplate: "http://127.0.0.1:{queue}/{{account}}"
            containers:
              azurite: {{blobPort: {blob}, queuePort: {queue}, tablePort: {table}}}
            cluster:
              registry: {{name: devslice-registry, port: {self.registry.port}}}
            images:
            """) + images + textwrap.dedent("""\
            manifests:
              - {name: platform, path: deploy/platform}
              - {name: services, path: deploy/services}
            """))

    # -- calls ---

    def _k3d_lines(self) -> list[list[str]]:
        if not self.k3d_log.exists():
            return []
        return [json.loads(line)[1:] for line in self.k3d_log.read_text().splitlines()]

    def mark(self) -> None:
        """Calls from now on are what :meth:`calls` returns."""
        self._marks = (len(self._k3d_lines()), len(self.engine.requests),
                       len(self.registry.requests), len(self.kube.requests))
        self._connects = CONNECTS.copy()

    def calls(self) -> Calls:
        k, d, r, c = self._marks
        out = Calls()
        for argv in self._k3d_lines()[k:]:
            words = [a for a in argv if not a.startswith("-")]
            out.by_system["k3d"][" ".join(words[:2] if words[0] != "version" else words[:1])
                                 ] += 1
        for req in self.engine.requests[d:]:
            out.by_system["docker"][f"{req.method} {_docker_path(req.path)}"] += 1
        for req in self.registry.requests[r:]:
            out.by_system["registry"][f"{req.method} {req.path}"] += 1
        for kreq in self.kube.requests[c:]:
            out.by_system["kube"][f"{kreq.method} {kreq.path}"
                                  + ("?labelSelector=…" if "labelSelector" in kreq.query
                                     else "")] += 1
        out.connects = CONNECTS - self._connects
        return out


def _docker_path(path: str) -> str:
    for suffix in ("/json", "/push", "/tag"):
        if path.startswith("/images/") and path.endswith(suffix):
            return f"/images/…{suffix}"
    return path


@contextlib.contextmanager
def _environment(values: Mapping[str, str], unset: tuple[str, ...] = ()) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for key in unset:
            os.environ.pop(key, None)
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


CONNECTS: Counter[str] = Counter()  # adapter connections made in this process, by kind


@contextlib.contextmanager
def _counting_connects() -> Iterator[None]:
    """Count ``devslice.adapters.{kube,docker}.connect`` calls (what ``Tools.real``'s lazy
    adapters call on first use), without changing what they do."""
    import devslice.adapters.docker as docker_adapter
    import devslice.adapters.kube as kube_adapter

    modules: dict[str, Any] = {"kube": kube_adapter, "docker": docker_adapter}
    saved = {name: module.connect for name, module in modules.items()}

    def counting(name: str) -> Any:
        def connect(*args: Any, **kw: Any) -> Any:
            CONNECTS[name] += 1
            return saved[name](*args, **kw)

        return connect

    for name, module in modules.items():
        module.connect = counting(name)
    try:
        yield
    finally:
        for name, module in modules.items():
            module.connect = saved[name]


def cli(args: list[str]) -> tuple[int, str]:
    """``devslice ARGS`` in this process; (exit code, stdout)."""
    from devslice.cli.app import run

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run(args)
    return code, out.getvalue()


def _ready(stdout: str) -> dict[str, Any]:
    """The last event of `devslice up -o json`: {"event": "ready", "changes": n, ...}."""
    last: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    if last.get("event") != "ready":
        raise RuntimeError(f"devslice up -o json ended with {last}")
    return last


# -- no-op up ------------------------------------------------------------------------------


@dataclass
class NoopResult:
    mode: str
    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # a subprocess's CPU (getrusage), per up
    calls: list[Calls] = field(default_factory=list)  # one per up
    steps: dict[str, list[float]] = field(default_factory=dict)  # resource -> seconds per up
    ready: list[float] = field(default_factory=list)  # the `ready` event's seconds
    executor: list[float] = field(default_factory=list)  # the last step event's `at`
    problems: list[str] = field(default_factory=list)

    def add(self, seconds: float, calls: Calls, code: int, stdout: str, stderr: str = ""
            ) -> None:
        self.samples.append(seconds)
        self.calls.append(calls)
        try:
            events = [json.loads(line) for line in stdout.splitlines()]
            ready = _ready(stdout)
        except (ValueError, IndexError, RuntimeError):
            events, ready = [], {}
        if code != 0 or ready.get("changes") != 0:
            self.problems.append(f"a no-op up exited {code} with {ready or 'no ready event'}: "
                                 f"{(stdout + stderr)[-300:]}")
        changing = [f"{s}: {w}" for s in SYSTEMS for w in calls.by_system[s] if _changes(s, w)]
        if changing:
            self.problems.append(f"a no-op up made changing calls: {', '.join(changing)}")
        for event in events:
            if event.get("event") == "done":
                self.steps.setdefault(event["resource"], []).append(event["seconds"])
        if ready:
            self.ready.append(ready["seconds"])
            self.executor.append(max(e.get("at", 0.0) for e in events))


@dataclass
class FakeCost:
    """What something costs by itself, run alone."""

    what: str
    samples: list[float]


@dataclass
class NoopReport:
    inprocess: NoopResult
    subprocess: NoopResult
    alone: list[FakeCost]
    converge_seconds: float
    baseline: list[tuple[float, float]] = field(default_factory=list)  # `python -c pass`
    # the one fake `k3d node list -o json` a no-op makes (a Python process), run alone between
    # the ups: (wall, CPU); the command's wall and CPU hold it, `python -c pass` does not
    fake_k3d: list[tuple[float, float]] = field(default_factory=list)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)  # at the end of the timed ups


def _child(argv: list[str], env: dict[str, str]
           ) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, CPU seconds of the child and what it waited for, the result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


# What `devslice up` imports before its first step (cli.engine's `_resources`, the resources
# and adapters): timed in a fresh interpreter against `python -c pass`.
UP_IMPORTS = ("devslice.cli.app, devslice.cli.engine, devslice.cli.progress, devslice.project, "
              "devslice.engine.environment, devslice.engine.executor, devslice.resources.k3d, "
              "devslice.resources.images, devslice.resources.manifests, devslice.adapters.kube, "
              "devslice.adapters.docker, devslice.adapters.registry, devslice.contract.render")


def _time_alone(what: str, argv: list[str], runs: int, env: dict[str, str]) -> FakeCost:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return FakeCost(what, samples)


def run_noop(quick: bool) -> NoopReport:
    from devslice.adapters.kube import connect as kube_connect
    from devslice.adapters.registry import Registry
    from devslice.contract.render import k8s_objects
    from devslice.engine.environment import kube_context
    from devslice.project import Project
    from devslice.resources.manifests import slice_config_hash

    ups = 10 if quick else 30
    procs = 5 if quick else 15
    with (
        tempfile.TemporaryDirectory(prefix="devslice-bench-engine-") as tmp,
        World(Path(tmp), ["orders"]) as world,
    ):
        started = time.perf_counter()
        code, out = cli(["up", "-o", "json"])
        converge = time.perf_counter() - started
        if code != 0 or _ready(out)["changes"] == 0:
            raise RuntimeError(f"the first devslice up did not converge: {out[-800:]}")

        inproc = NoopResult("in process (`devslice.cli.app.run`)")
        for _ in range(ups):
            world.mark()
            started = time.perf_counter()
            code, out = cli(["up", "-o", "json"])
            inproc.add(time.perf_counter() - started, world.calls(), code, out)

        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp, "pycache"))
        python = str(Path(sys.prefix) / "bin" / "python")
        argv = [str(Path(sys.prefix) / "bin" / "devslice"), "up", "-o", "json"]
        sub = NoopResult("subprocess (`devslice up -o json`, bytecode cached)")
        subprocess.run(argv, env=env, capture_output=True, check=True)  # fills the cache
        baseline: list[tuple[float, float]] = []
        fake_k3d: list[tuple[float, float]] = []
        k3d = shutil.which("k3d") or "k3d"
        for _ in range(procs):  # interleaved with the baselines, so all see the same load
            wall, cpu, _done = _child([python, "-c", "pass"], env)
            baseline.append((wall, cpu))
            wall, cpu, _done = _child([k3d, "node", "list", "-o", "json"], env)
            fake_k3d.append((wall, cpu))
            world.mark()
            seconds, cpu, done = _child(argv, env)
            calls = world.calls()
            calls.connects = None  # made in the other process: not seen here
            sub.add(seconds, calls, done.returncode, done.stdout, done.stderr)
            sub.cpu.append(cpu)
        load = os.getloadavg()

        alone = [
            _time_alone("`python -c pass` (bytecode cached)", [python, "-c", "pass"], procs, env),
            _time_alone("`python -c 'import …'`: the modules `up` loads (bytecode cached)",
                        [python, "-c", f"import {UP_IMPORTS}"], procs, env),
            _time_alone("one fake `k3d version` (a Python script)", [k3d, "version"], procs, env),
            _time_alone("one fake `k3d node list -o json` (the no-op's one k3d call)",
                        [k3d, "node", "list", "-o", "json"], procs, env),
        ]
        project = Project.load()
        handle = project.current_handle()
        objects = k8s_objects(project.variables(handle), handle)
        alone.append(FakeCost("`slice_config_hash` (scrypt, in `environment.build`)",
                              _timed(lambda: slice_config_hash(objects), procs)))
        host = f"localhost:{project.env.cluster.registry.port}"
        alone.append(FakeCost("`Registry.at(host)` (an httpx2 client, made on first use)",
                              _timed(lambda: Registry.at(host).close(), procs)))
        import httpx2

        alone.append(FakeCost("`httpx2.create_ssl_context()`: the CA bundle lightkube loads for "
                              "the fake's kubeconfig, which names no CA (a real k3d kubeconfig "
                              "names its cluster's CA: ~0.5 ms)",
                              _timed(lambda: httpx2.create_ssl_context(verify=True), procs)))
        context = kube_context(project)
        alone.append(FakeCost("`adapters.kube.connect(context)` (the kube adapter's first use)",
                              _timed(lambda: kube_connect(context=context).close(), procs)))
    return NoopReport(inproc, sub, alone, converge, baseline, fake_k3d, load)


def _timed(fn: Any, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


# -- cold up -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    resource: str
    after: tuple[str, ...]
    known: float  # the known delay of its changes
    started: float  # since Executor.apply began
    seconds: float
    verbs: tuple[str, ...]


@dataclass
class ColdRun:
    wall: float  # Project.load .. Executor.apply .. close, as `devslice up` does
    apply_wall: float  # Executor.apply alone
    before_apply: float  # Project.load, Tools.real, environment.build
    steps: list[Step]
    calls: Calls
    critical: float  # the known-delay critical path
    critical_path: list[str]
    measured_critical: float  # the same graph with each step's measured seconds


@dataclass
class ColdReport:
    factor: float  # the delays are DELAYS times this
    delays: Delays
    images: list[str]
    runs: list[ColdRun]
    problems: list[str] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)  # the critical path's creates, alone


def critical_path(steps: Mapping[str, tuple[tuple[str, ...], float]]) -> tuple[float, list[str]]:
    """Longest path through ``{key: (after, seconds)}``: (its length, its keys in order)."""
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}

    def visit(key: str) -> float:
        if key not in finish:
            after, seconds = steps[key]
            best = max(after, key=visit, default=None)
            via[key] = best
            finish[key] = seconds + (finish[best] if best is not None else 0.0)
        return finish[key]

    end = max(reversed(list(steps)), key=visit)  # ties: the last in dependency order
    path: list[str] = []
    at: str | None = end
    while at is not None:
        path.append(at)
        at = via[at]
    return finish[end], path[::-1]


def cold_once(world: World) -> ColdRun:
    from devslice.engine import Executor
    from devslice.engine.environment import Tools, build
    from devslice.project import Project

    world.mark()
    t0 = time.perf_counter()
    project = Project.load()
    handle = project.current_handle(None)
    tools = Tools.real(project)
    try:
        resources = build(project, handle, tools)
        t1 = time.perf_counter()
        reports = Executor().apply(resources)
        t2 = time.perf_counter()
    finally:
        tools.close()
    wall = time.perf_counter() - t0
    after = {r.key: tuple(r.after) for r in resources}
    steps = [Step(r.resource, after[r.resource], world.delays.of(r.resource), r.started,
                  r.seconds, tuple(a.verb for a in r.actions if a.changes)) for r in reports]
    known, path = critical_path({s.resource: (s.after, s.known) for s in steps})
    measured, _ = critical_path({s.resource: (s.after, s.seconds) for s in steps})
    return ColdRun(wall, t2 - t1, t1 - t0, steps, world.calls(), known, path, measured)


def direct_once(world: World) -> float:
    """The baseline: the critical path's own calls as a user would make them, one after
    the other in a fresh world, no devslice in between: `k3d registry create`, `k3d cluster
    create --config` (the file devslice would write, written before timing) and a server-side
    apply of each object of the slice's config and the two layers through one client. The
    same slow fakes, so this holds their delays and process starts, and nothing of devslice's."""
    from devslice.adapters.kube import connect as kube_connect
    from devslice.contract.render import k8s_objects
    from devslice.engine.environment import kube_context
    from devslice.project import Project
    from devslice.resources.k3d import dump_config, k3d_config
    from devslice.resources.manifests import load_layer

    project = Project.load()
    c = project.env.cluster
    config = world.root / "k3d-direct.yaml"
    config.write_text(dump_config(k3d_config(c, subnet="172.18.0.0/16")))
    objects = [*k8s_objects(project.variables(project.current_handle(None)),
                            project.current_handle(None)),
               *(m.obj for layer in project.env.manifests
                 for m in load_layer(project.base_dir / layer.path))]
    k3d = shutil.which("k3d") or "k3d"
    started = time.perf_counter()
    for argv in ([k3d, "registry", "create", c.registry.name, "-p", str(c.registry.port)],
                 [k3d, "cluster", "create", "--config", str(config)]):
        subprocess.run(argv, capture_output=True, check=True)
    kube = kube_connect(context=kube_context(project))
    try:
        for obj in objects:
            kube.apply(obj)
    finally:
        kube.close()
    return time.perf_counter() - started


def run_cold(quick: bool, factor: float, images: list[str]) -> ColdReport:
    runs = 2 if quick else 5
    delays = DELAYS.scaled(factor)
    report = ColdReport(factor, delays, images, [])
    for i in range(runs + 1):  # the first loads the lazily imported modules: not counted
        with tempfile.TemporaryDirectory(prefix="devslice-bench-cold-") as tmp, \
                World(Path(tmp), images, delays) as world:
            run = cold_once(world)
            missing = [n for n in images if not world.registry.tags(n)]
            if missing:
                report.problems.append(f"cold up left images unpushed: {missing}")
            if world.kube.get("apps/v1", "Deployment", images[0], "default") is None:
                report.problems.append("cold up applied no Deployment")
        with tempfile.TemporaryDirectory(prefix="devslice-bench-direct-") as tmp, \
                World(Path(tmp), images, delays) as world:  # interleaved: the same load
            direct = direct_once(world)
        if i:
            report.runs.append(run)
            report.direct.append(direct)
    return report


# -- report --------------------------------------------------------------------------------


def _counts(values: list[int]) -> str:
    """``3`` when every up made 3, ``2–4`` when they differed."""
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _connects(calls: list[Calls], kind: str) -> str:
    seen = [c.connects[kind] for c in calls if c.connects is not None]
    return _counts(seen) if seen else "n/a"


def _breakdown(calls: Calls, system: str) -> str:
    items = calls.by_system[system]
    if not items:
        return "none"
    head = f"{calls.count(system)} ({calls.changes(system)} changing): "
    return head + ", ".join(f"`{what}`" + (f" ×{n}" if n > 1 else "")
                            for what, n in items.items())


def _med(values: list[float]) -> str:
    return ms(median(values)) if values else "n/a"


def report_noop(r: NoopReport) -> str:
    modes = (r.inprocess, r.subprocess)
    rows = []
    for res in modes:
        s = sorted(res.samples)
        rows.append([res.mode, str(len(s)), ms(median(s)), ms(percentile(s, 95)), ms(s[0]),
                     *(_counts([c.count(x) for c in res.calls]) for x in SYSTEMS),
                     _counts([c.total for c in res.calls]),
                     str(sum(c.changes(x) for c in res.calls for x in SYSTEMS)),
                     f"{_connects(res.calls, 'kube')} / {_connects(res.calls, 'docker')}"])
    one = r.inprocess.calls[-1]
    inproc, sub = median(r.inprocess.samples), median(r.subprocess.samples)
    parts = [["`up`, from its first line to the `ready` event", *(_med(m.ready) for m in modes)],
             ["… of which `Executor.apply` (the last step event's `at`)",
              *(_med(m.executor) for m in modes)]]
    parts += [[f"step `{k}` (its `done` event)", *(_med(m.steps.get(k, [])) for m in modes)]
              for k in r.inprocess.steps]
    out = [
        table(["no-op `up`", "ups", "median", "p95", "min", *[f"{x} calls" for x in SYSTEMS],
               "all calls", "changing calls (all ups)", "kube / docker adapters made"], rows),
        "",
        f"Goal < {NOOP_GOAL * 1000:.0f} ms per no-op up: "
        f"{'met' if inproc < NOOP_GOAL else 'NOT met'} in process ({ms(inproc)}), "
        f"{'met' if sub < NOOP_GOAL else 'NOT met'} as a subprocess ({ms(sub)}).",
        # Issue 14: each read made once per up (one `k3d cluster list`, one `registry list`,
        # one Kubernetes LIST per kind, no GET twice), in every up of both modes.
        "Goal one read per system (no read repeated within an up, in any up): "
        + ("met" if all(n <= 1 for m in modes for c in m.calls for x in SYSTEMS
                         for n in c.by_system[x].values()) else "NOT met") + " ("
        + ", ".join(f"{x} {one.count(x)}" for x in SYSTEMS) + " calls in the last up in "
        "process).",
        "",
        "The calls of one no-op up:",
        "",
        *[f"- {x}: {_breakdown(one, x)}" for x in SYSTEMS],
        "",
        "Where the time goes (medians; the steps overlap where the graph allows):",
        "",
        table(["part", "in process", "subprocess"], parts),
        "",
        "And some parts by themselves:",
        "",
        table(["run alone", "runs", "median"],
              [[c.what, str(len(c.samples)), ms(median(c.samples))] for c in r.alone]
              + [["the converging first `up` in process (from nothing, imports included)", "1",
                  ms(r.converge_seconds)]]),
    ]
    for res in modes:
        out += [f"\n**problem ({res.mode}):** {p}" for p in dict.fromkeys(res.problems)]
    return "\n".join(out)


def report_cold(r: ColdReport) -> str:
    d = r.delays
    rows = []
    for i, run in enumerate(r.runs, 1):
        rows.append([str(i), ms(run.wall), ms(run.before_apply), ms(run.apply_wall),
                     ms(run.critical), f"**{run.wall / run.critical:.2f}x**",
                     f"{run.apply_wall / run.critical:.2f}x", ms(run.wall - run.critical),
                     ms(run.measured_critical), f"{run.apply_wall / run.measured_critical:.2f}x",
                     f"{_connects([run.calls], 'kube')} / {_connects([run.calls], 'docker')}"])
    ratios = [run.wall / run.critical for run in r.runs]
    med = median(ratios)
    last = r.runs[-1]
    out = [
        f"Delays: `k3d registry create` {ms(d.registry_create)}, `k3d cluster create` "
        f"{ms(d.cluster_create)}, per image `POST /build` {ms(d.build)} and "
        f"`POST /images/…/push` {ms(d.push)}; {len(r.images)} images "
        f"({', '.join(r.images)}). Critical path {' → '.join(f'`{k}`' for k in last.critical_path)}"
        f" = {ms(last.critical)}.",
        "",
        table(["run", "wall (`up`)", "before apply (load, build)", "`Executor.apply`",
               "critical path", "wall / critical", "apply / critical", "wall − critical",
               "critical path of measured steps", "apply / that", "kube / docker adapters made"],
              rows),
        "",
        f"Goal wall / critical path < {RATIO_GOAL}: {'met' if med < RATIO_GOAL else 'NOT met'} "
        f"(median {med:.2f}x over {len(r.runs)} runs, "
        f"{min(ratios):.2f}x–{max(ratios):.2f}x). The same critical path's calls made "
        f"directly (`k3d registry create`, `k3d cluster create`, the applies; interleaved "
        f"runs): {', '.join(ms(d) for d in r.direct)}.",
        "",
        "Steps of the last run (start since `Executor.apply` began; known: the injected delay; "
        "overhead: seconds − known):",
        "",
        table(["step", "after", "start", "seconds", "known", "overhead", "changes"],
              [[f"`{s.resource}`", ", ".join(s.after) or "-", ms(s.started), ms(s.seconds),
                ms(s.known), ms(s.seconds - s.known), ", ".join(s.verbs) or "-"]
               for s in last.steps]),
        "",
        "Calls of the last run:",
        "",
        *[f"- {x}: {_breakdown(last.calls, x)}" for x in SYSTEMS],
    ]
    out += [f"\n**problem:** {p}" for p in dict.fromkeys(r.problems)]
    return "\n".join(out)


DELAYS = Delays(registry_create=0.2, cluster_create=0.6, build=0.4, push=0.1)
COLD_IMAGES = ["orders", "billing", "stock"]
SCALES = (1, 4)  # the cold up with DELAYS, then with every delay four times as long


@dataclass
class Measured:
    noop: NoopReport
    cold: list[ColdReport]

    @property
    def problems(self) -> list[str]:
        return [*self.noop.inprocess.problems, *self.noop.subprocess.problems,
                *(p for c in self.cold for p in c.problems)]


def run(quick: bool) -> Measured:
    noop = run_noop(quick)
    cold = [run_cold(quick, factor, COLD_IMAGES) for factor in SCALES]
    return Measured(noop, cold)


def goals(m: Measured) -> list[list[str]]:
    """Issue 17's figures for the k3d path: [figure, measured, goal, met]."""
    sub = m.noop.subprocess
    wall, cpu = median(sub.samples), median(sub.cpu)
    base_wall = median([w for w, _ in m.noop.baseline])
    base_cpu = median([c for _, c in m.noop.baseline])
    modes = (m.noop.inprocess, sub)
    once = all(n <= 1 for r in modes for c in r.calls for x in SYSTEMS
               for n in c.by_system[x].values())
    last = sub.calls[-1]
    k3d_wall = median([w for w, _ in m.noop.fake_k3d]) if m.noop.fake_k3d else 0.0
    k3d_cpu = median([c for _, c in m.noop.fake_k3d]) if m.noop.fake_k3d else 0.0
    load = " / ".join(f"{x:.2f}" for x in m.noop.load)
    out = [["no-op `up`, k3d path (fake world), as a command",
            f"{ms(wall)} wall, {ms(cpu)} CPU (`python -c pass` in the same run: "
            f"{ms(base_wall)} / {ms(base_cpu)}; {wall / base_wall:.1f}x); of which the fake "
            f"`k3d node list` (a Python process the baseline does not hold), alone in the "
            f"same run: {ms(k3d_wall)} / {ms(k3d_cpu)}; load {load}",
            f"< {NOOP_GOAL * 1000:.0f} ms", "yes" if wall < NOOP_GOAL else "**no**"],
           ["no-op `up`, k3d path: reads per system",
            ", ".join(f"{x} {last.count(x)}" for x in SYSTEMS) + " (no read twice: "
            + ("yes" if once else "NO") + ")",
            "one read per system (k3d 1; Kubernetes: one LIST per kind)",
            "yes" if once and last.count("k3d") <= 1 else "**no**"]]
    for c in m.cold:
        if c.factor != 1 or not c.runs:
            continue
        ratio = median([r.wall / r.critical for r in c.runs])
        direct = median(c.direct) if c.direct else float("nan")
        out.append([f"cold `up`, k3d path, known delays x{c.factor:g}: wall / critical path",
                    f"{ratio:.2f}x ({ms(median([r.wall for r in c.runs]))} / "
                    f"{ms(c.runs[-1].critical)})", f"< {RATIO_GOAL}x",
                    "yes" if ratio < RATIO_GOAL else "**no**"])
        vs = median([r.wall for r in c.runs]) / direct
        out.append([f"cold `up`, k3d path, x{c.factor:g}: wall / the same creates and applies "
                    "made directly (same run)",
                    f"{vs:.2f}x ({ms(median([r.wall for r in c.runs]))} / {ms(direct)})",
                    f"< {RATIO_GOAL}x", "yes" if vs < RATIO_GOAL else "**no**"])
    return out


def report(m: Measured) -> str:
    out = ["Goals:", "", table(["figure (issue 17)", "measured", "goal", "met"], goals(m)),
           "", "### No-op `devslice up`", "", report_noop(m.noop)]
    for c in m.cold:
        out += ["", f"### Cold `devslice up`, delays ×{c.factor:g}", "",
                report_cold(c)]
    return "\n".join(out)
