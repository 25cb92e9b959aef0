"""The image and container steps of ``devslice up`` on a real Docker engine and registry.

Needs what ``scripts/docker-engine.sh start`` exports (``DOCKER_HOST`` and
``DEVSLICE_TEST_REGISTRY``) and the busybox base image the tests import
(``devslice-test/busybox:2``; ``make test`` leaves it). Each round, from nothing: two images
(a ``COPY`` and a ``RUN`` on the busybox base) built and pushed, and two containers (busybox
httpd on a named volume, ready once a service answers on its published port) created, through
the same resources and executor ``devslice up`` uses; then the same resources again (no-op).
Names are fresh per round, so a cold round shares nothing with the one before but the base
image and the builder's cache of the base.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.stats import median, ms, table
from devslice.adapters.docker import connect
from devslice.adapters.registry import Registry
from devslice.config.model import ImageSettings
from devslice.engine import Executor
from devslice.engine.plan import Resource
from devslice.facts.tools import docker_endpoint
from devslice.resources.containers import ContainerResource, remove_actions
from devslice.resources.images import ImageResource
from devslice.services import container_specs

BASE_IMAGE = "devslice-test/busybox:2"


@dataclass
class Round:
    cold: float
    noop: float
    steps: dict[str, float] = field(default_factory=dict)  # cold, per resource kind


@dataclass
class RealReport:
    engine: str
    rounds: list[Round]
    problems: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _world(base: Path, uid: str, docker: object, registry: Registry, host: str
           ) -> list[Resource]:
    from devslice.config.load import parse_config
    from devslice.config.model import Environment

    out: list[Resource] = []
    for i in range(2):
        ctx = base / f"svc{i}"
        ctx.mkdir(parents=True)
        (ctx / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY app.sh /app.sh\n"
                                        f"RUN echo {uid}-{i} > /version\n")
        (ctx / "app.sh").write_text(f"echo service {i}\n")
        settings = ImageSettings(name=f"bench{i}-{uid}", context=f"svc{i}")
        out.append(ImageResource(settings, base, host, docker, registry,  # type: ignore[arg-type]
                                 after=()))
    custom = "".join(
        f"    - name: bench{i}-{uid}\n"
        f"      image: {BASE_IMAGE}\n"
        f"      command: [sh, -c, \"exec httpd -f -p 8080 -h /data\"]\n"
        f"      ports: [\"127.0.0.1:{_free_port()}:8080\"]\n"
        f"      volumes: [\"bench{i}-{uid}:/data\"]\n"
        f"      ready: {{port: 8080}}\n" for i in range(2))
    env = parse_config("apiVersion: devslice.dev/v1alpha1\nkind: Environment\nteam: company1\n"
                       "storage: {mode: shared}\ncontainers:\n  custom:\n" + custom,
                       "devslice.yaml", Environment)
    for spec in container_specs(env, base, runtime="k3d"):
        out.append(ContainerResource(spec, docker, base, after=()))  # type: ignore[arg-type]
    return out


def run(quick: bool) -> RealReport:
    host = os.environ.get("DEVSLICE_TEST_REGISTRY")
    if not host:
        raise SystemExit("DEVSLICE_TEST_REGISTRY is not set: eval \"$(scripts/docker-engine.sh "
                         "start)\" first")
    endpoint = docker_endpoint()
    docker = connect(endpoint=endpoint)
    version = docker.version()
    report = RealReport(f"Docker Engine {version.version} (API {version.api_version}) at "
                        f"{endpoint.host} ({endpoint.source})", [])
    http = httpx.Client(base_url=f"http://{host}", timeout=10)
    try:
        for _ in range(2 if quick else 5):
            uid = uuid.uuid4().hex[:8]
            with tempfile.TemporaryDirectory() as tmp:
                base = Path(tmp)
                resources = _world(base, uid, docker, Registry(http), host)
                t = time.perf_counter()
                steps = Executor().apply(resources)
                cold = time.perf_counter() - t
                t = time.perf_counter()
                noop = Executor().apply(resources)  # each resource re-reads its facts
                took = time.perf_counter() - t
                if any(a.changes for s in noop for a in s.actions):
                    report.problems.append(f"round {uid}: the second up changed something")
                kinds: dict[str, float] = {}
                for s in steps:
                    kind = s.resource.split(":")[0]
                    kinds[kind] = max(kinds.get(kind, 0.0), s.seconds)
                report.rounds.append(Round(cold, took, kinds))
                for action in remove_actions(docker, [f"bench{i}-{uid}" for i in range(2)],
                                             base):
                    if action.changes and action.execute is not None:
                        action.execute()
                for i in range(2):
                    docker.client.api.remove_image(f"{host}/bench{i}-{uid}:"
                                                   f"{resources[i].tag()}",  # type: ignore[attr-defined]
                                                   noprune=True)
    finally:
        http.close()
        docker.close()
    return report


def report(r: RealReport) -> str:
    rows = [["cold up: 2 images built and pushed, 2 containers created and ready",
             ms(median([x.cold for x in r.rounds])), ms(max(x.cold for x in r.rounds))],
            ["  slowest image step (build + push)",
             ms(median([x.steps.get("image", 0.0) for x in r.rounds])),
             ms(max(x.steps.get("image", 0.0) for x in r.rounds))],
            ["  slowest container step (create, start, ready)",
             ms(median([x.steps.get("container", 0.0) for x in r.rounds])),
             ms(max(x.steps.get("container", 0.0) for x in r.rounds))],
            ["no-op up of the same 4 resources (registry HEAD, inspect)",
             ms(median([x.noop for x in r.rounds])), ms(max(x.noop for x in r.rounds))]]
    text = f"{r.engine}, {len(r.rounds)} rounds\n\n" + table(["", "median", "max"], rows)
    if r.problems:
        text += "\n\nProblems:\n" + "\n".join(f"- {p}" for p in r.problems)
    return text
