"""Service images against a real Docker engine and registry (issue 13): build, content-hash
tags, push, the no-op second plan, and the ways builds fail for real. The base image is the
busybox-static rootfs the session imports; the registry is the one scripts/docker-engine.sh
starts (DEVSLICE_TEST_REGISTRY)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from devslice.adapters.docker import Docker, connect
from devslice.adapters.registry import Registry
from devslice.config.model import ImageSettings
from devslice.engine import Executor
from devslice.errors import CommandFailed, ConfigError
from devslice.facts.tools import DockerEndpoint
from devslice.resources.images import ImageResource, context_hash

pytestmark = pytest.mark.docker


@dataclass
class Real:
    base: Path
    ctx: Path
    docker: Docker
    registry: Registry
    host: str  # 127.0.0.1:PORT, as the engine pushes to it
    name: str  # the image's name, unique to the test
    base_image: str
    calls: list[str] = field(default_factory=list)

    def settings(self, **kw: Any) -> ImageSettings:
        return ImageSettings(name=self.name, context="svc", **kw)

    def resource(self, **kw: Any) -> ImageResource:
        return ImageResource(self.settings(**kw), self.base, self.host, self.docker,
                             self.registry, after=())

    def tag(self, **kw: Any) -> str:
        s = self.settings(**kw)
        return context_hash(self.ctx, s.dockerfile, s.build_args)

    def changing(self) -> list[str]:
        return [c for c in self.calls if not c.startswith(("GET ", "HEAD "))]

    def run(self, ref: str, *argv: str) -> str:
        out = self.docker.client.containers.run(ref, list(argv), remove=True)
        return out.decode() if isinstance(out, bytes) else str(out)


@pytest.fixture
def real(real_engine: DockerEndpoint, busybox_image: str, real_registry: str, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Real]:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    ctx = tmp_path / "repo" / "svc"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nARG GREETING=hello\n"
                                    "COPY app.sh /app.sh\nRUN echo $GREETING > /greeting\n")
    (ctx / "app.sh").write_text("echo app\n")
    (ctx / ".dockerignore").write_text("*.log\n")
    (ctx / "debug.log").write_text("not sent\n")
    adapter = connect(endpoint=real_engine)
    http = httpx2.Client(base_url=f"http://{real_registry}", timeout=10)
    world = Real(tmp_path / "repo", ctx, adapter, Registry(http), real_registry,
                 f"svc{uuid.uuid4().hex[:8]}", busybox_image)

    def record(response: Any, *args: Any, **kwargs: Any) -> None:
        path = re.sub(r"^/v[0-9.]+", "", response.request.path_url.split("?")[0])
        world.calls.append(f"{response.request.method} {path}")

    adapter.client.api.hooks["response"].append(record)
    http.event_hooks["request"].append(
        lambda r: world.calls.append(f"{r.method} registry {r.url.path}"))
    try:
        yield world
    finally:
        api = adapter.client.api
        # By tag, without pruning: untagged parents are build cache other tests share.
        for image in api.images(name=f"{real_registry}/{world.name}"):
            for ref in image.get("RepoTags") or []:
                if ref.startswith(f"{real_registry}/{world.name}:"):
                    api.remove_image(ref, noprune=True)
        adapter.close()
        http.close()


def test_build_and_push_to_the_registry_under_the_content_hash(real: Real) -> None:
    tag = real.tag()
    resource = real.resource()
    assert [a.verb for a in resource.plan()] == ["build", "push"]
    Executor().apply([resource])
    assert real.registry.manifest_exists(real.name, tag)
    ref = f"{real.host}/{real.name}:{tag}"
    assert real.run(ref, "cat", "/greeting", "/app.sh") == "hello\necho app\n"
    assert "not sent" not in real.run(ref, "ls", "/")  # .dockerignore honoured


def test_second_plan_is_noop_and_only_reads(real: Real) -> None:
    Executor().apply([real.resource()])
    real.calls.clear()
    (action,) = real.resource().plan()
    assert action.verb == "noop"
    assert action.reason == f"{real.name}:{real.tag()} already in {real.host}"
    assert real.changing() == []


def test_noop_even_after_the_local_image_is_gone(real: Real) -> None:
    Executor().apply([real.resource()])
    real.docker.client.api.remove_image(f"{real.host}/{real.name}:{real.tag()}", noprune=True)
    assert [a.verb for a in real.resource().plan()] == ["noop"]


def test_a_changed_file_or_build_arg_is_a_new_tag_and_a_build(real: Real) -> None:
    Executor().apply([real.resource()])
    first = real.tag()
    (real.ctx / "app.sh").write_text("echo app v2\n")
    assert real.tag() != first
    assert [a.verb for a in real.resource().plan()] == ["build", "push"]
    args = {"GREETING": "hej"}
    Executor().apply([real.resource(build_args=args)])
    ref = f"{real.host}/{real.name}:{real.tag(build_args=args)}"
    assert real.run(ref, "cat", "/greeting", "/app.sh") == "hej\necho app v2\n"
    (debug := real.ctx / "debug.log").write_text("ignored, so the same tag\n")
    assert real.tag(build_args=args) == ref.rsplit(":", 1)[1] and debug.exists()


def test_built_locally_but_missing_from_the_registry_is_only_pushed(real: Real) -> None:
    ref = f"{real.host}/{real.name}:{real.tag()}"
    real.docker.image_build(real.ctx, "Dockerfile", ref)
    (action,) = real.resource().plan()
    assert (action.verb, action.reason) == (
        "push", f"built locally, no image {real.tag()} in the registry")
    real.calls.clear()
    Executor().apply([real.resource()])
    assert [c for c in real.changing() if not c.startswith("POST registry")] == [
        f"POST /images/{real.host}/{real.name}/push"]
    assert real.registry.manifest_exists(real.name, real.tag())


def test_a_failing_run_shows_the_engines_error_and_leaves_no_container(real: Real) -> None:
    marker = uuid.uuid4().hex
    # The LABEL is inherited by the RUN step's container, so it can be found afterwards.
    (real.ctx / "Dockerfile").write_text(
        f"FROM {real.base_image}\nLABEL devslice.test={marker}\n"
        "RUN echo 'E: Unable to locate package nosuch' && exit 7\n")
    with pytest.raises(CommandFailed) as caught:
        Executor().apply([real.resource()])
    message = str(caught.value)
    assert "returned a non-zero code: 7" in message
    assert "E: Unable to locate package nosuch" in message
    assert "Step 3/3 : RUN" in message
    left = real.docker.client.api.containers(all=True, filters={"label": f"devslice.test={marker}"})
    assert left == []  # forcerm: no stopped intermediate container
    assert not real.registry.manifest_exists(real.name, real.tag())


def test_a_missing_base_image_is_the_engines_error(real: Real) -> None:
    (real.ctx / "Dockerfile").write_text(f"FROM {real.host}/no-such-base-{real.name}:1\n")
    with pytest.raises(CommandFailed, match=r"docker build of .* failed: .*(manifest unknown|not "
                                            r"found)"):
        Executor().apply([real.resource()])


def test_a_missing_dockerfile_is_a_config_error_before_the_engine(real: Real) -> None:
    with pytest.raises(ConfigError, match=r"'Dockerfile\.dev' is not a file"):
        real.resource(dockerfile="Dockerfile.dev").plan()


def test_the_engines_own_refusal_of_buildkit_syntax_matches_the_fake(real: Real) -> None:
    """The classic builder's messages the fake reproduces (test_images.py)."""
    for text, message in (
            (f"FROM {real.base_image}\nRUN --mount=type=cache,target=/x true\n",
             "the --mount option requires BuildKit"),
            (f"FROM {real.base_image}\nRUN <<EOF\necho hi\nEOF\n",
             "dockerfile parse error line 3: unknown instruction: ECHO")):
        (real.ctx / "Dockerfile").write_text(text)
        with pytest.raises(CommandFailed, match=message):
            real.docker.image_build(real.ctx, "Dockerfile", f"{real.host}/{real.name}:x")


def test_buildkit_syntax_is_refused_before_anything_is_sent(real: Real) -> None:
    (real.ctx / "Dockerfile").write_text(
        f"FROM {real.base_image}\nRUN --mount=type=cache,target=/x true\n")
    real.calls.clear()
    with pytest.raises(ConfigError, match=r"Dockerfile:2:5: `RUN --mount` needs BuildKit"):
        Executor().apply([real.resource()])
    assert real.changing() == []


def test_push_to_a_registry_that_is_not_running_fails_cleanly(real: Real) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ref = f"127.0.0.1:{port}/{real.name}"
    real.docker.image_tag(real.base_image, ref, "x")
    try:
        with pytest.raises(CommandFailed, match=rf"docker push {ref}:x failed: .*connection "
                                                r"refused"):
            real.docker.image_push(ref, "x")
    finally:
        real.docker.client.api.remove_image(f"{ref}:x")


def test_tag_and_get(real: Real) -> None:
    assert real.docker.image_get(f"{real.host}/{real.name}:none") is None
    real.docker.image_tag(real.base_image, f"{real.host}/{real.name}", "t1")
    fact = real.docker.image_get(f"{real.host}/{real.name}:t1")
    assert fact is not None and f"{real.host}/{real.name}:t1" in fact.tags


def test_a_dockerfile_in_a_subfolder_and_one_outside_the_context(real: Real) -> None:
    (real.ctx / "docker").mkdir()
    (real.ctx / "docker" / "Dockerfile.dev").write_text(
        f"FROM {real.base_image}\nCOPY app.sh /dev.sh\n")
    Executor().apply([real.resource(dockerfile="docker/Dockerfile.dev")])
    tag = real.tag(dockerfile="docker/Dockerfile.dev")
    assert real.run(f"{real.host}/{real.name}:{tag}", "cat", "/dev.sh") == "echo app\n"
    # Outside the context: the SDK sends it under a random name; the tag hashes its content.
    (real.base / "Dockerfile.shared").write_text(f"FROM {real.base_image}\nCOPY app.sh /x.sh\n")
    Executor().apply([real.resource(dockerfile="../Dockerfile.shared")])
    tag = real.tag(dockerfile="../Dockerfile.shared")
    assert real.run(f"{real.host}/{real.name}:{tag}", "cat", "/x.sh") == "echo app\n"


def test_dockerignore_exceptions_reach_the_engine_as_hashed(real: Real) -> None:
    (real.ctx / ".dockerignore").write_text("*.log\n!keep.log\n**/__pycache__\n")
    (real.ctx / "keep.log").write_text("kept\n")
    (real.ctx / "pkg" / "__pycache__").mkdir(parents=True)
    (real.ctx / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"\0")
    (real.ctx / "Dockerfile").write_text(f"FROM {real.base_image}\nCOPY . /ctx\n")
    Executor().apply([real.resource()])
    ref = f"{real.host}/{real.name}:{real.tag()}"
    listing = real.run(ref, "find", "/ctx").split()
    assert "/ctx/keep.log" in listing and "/ctx/debug.log" not in listing
    assert not any("__pycache__" in p for p in listing)
    before = real.tag()
    (real.ctx / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"\1")  # ignored: same tag
    assert real.tag() == before


def test_an_undeclared_build_arg_is_the_engines_warning_not_a_failure(real: Real) -> None:
    lines: list[str] = []
    real.docker.on_output = lines.append
    Executor().apply([real.resource(build_args={"GREETING": "hi", "UNUSED": "x"})])
    ref = f"{real.host}/{real.name}:{real.tag(build_args={'GREETING': 'hi', 'UNUSED': 'x'})}"
    assert real.run(ref, "cat", "/greeting") == "hi\n"
    assert any("[UNUSED] were not consumed" in line for line in lines), lines
