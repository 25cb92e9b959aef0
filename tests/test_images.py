"""Images: context hash tags, and build/push plans against a wire-level fake Docker Engine and
registry, driven by the real Docker SDK and httpx2."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx2
import pytest

from devslice.adapters.docker import Docker, connect
from devslice.adapters.registry import MANIFEST_MEDIA_TYPES, Registry
from devslice.config.model import ImageSettings
from devslice.engine import Executor
from devslice.engine.plan import make_plan
from devslice.errors import CommandFailed, ConfigError, ToolMissing
from devslice.resources.images import (
    ImageResource,
    context_files,
    context_hash,
    image_refs,
)
from devslice.testing.dockerapi import (
    OCI_INDEX,
    BuildFailure,
    FakeDockerEngine,
    FakeRegistry,
    RecordedRequest,
)

HOST = "localhost:5050"
DOCKERFILE = "FROM python:3.12-slim\nCOPY . /app\nRUN pip install -r /app/requirements.txt\n"


def write_service(root: Path) -> Path:
    ctx = root / "services" / "orders"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "requirements.txt").write_text("httpx\n")
    (ctx / "src" / "app.py").write_text("print('orders')\n")
    (ctx / ".dockerignore").write_text("# local noise\n*.log\n**/__pycache__\n!keep.log\n")
    (ctx / "debug.log").write_text("ignored\n")
    (ctx / "keep.log").write_text("kept by the ! exception\n")
    (ctx / "__pycache__").mkdir()
    (ctx / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"\x00ignored")
    return ctx


@dataclass
class World:
    base: Path
    ctx: Path
    engine: FakeDockerEngine
    registry: FakeRegistry
    docker: Docker
    http: httpx2.Client
    settings: ImageSettings

    def resource(self, settings: ImageSettings | None = None) -> ImageResource:
        return ImageResource(settings or self.settings, self.base, HOST, self.docker,
                             Registry(self.http), after=())

    def tag(self) -> str:
        s = self.settings
        return context_hash(self.ctx, s.dockerfile, s.build_args)

    def clear_requests(self) -> None:
        self.engine.clear_requests()
        self.registry.clear_requests()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    # The SDK reads proxies and credentials from ~/.docker/config.json; keep the developer's out.
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    base = tmp_path / "repo"
    ctx = write_service(base)
    settings = ImageSettings(name="orders", context="services/orders",
                             build_args={"PYTHON_VERSION": "3.12"})
    with FakeRegistry(HOST) as registry, FakeDockerEngine([registry]) as engine:
        client = docker.DockerClient(base_url=engine.base_url)
        http = httpx2.Client(base_url=registry.url)
        try:
            yield World(base, ctx, engine, registry, Docker(client), http, settings)
        finally:
            client.close()
            http.close()


def parse_call(call: str) -> tuple[str, str, dict[str, str]]:
    method, target = call.split(" ", 1)
    path, _, qs = target.partition("?")
    return method, path, dict(p.split("=", 1) for p in qs.split("&")) if qs else {}


def changing(requests: list[RecordedRequest]) -> list[str]:
    return [f"{r.method} {r.path}" for r in requests if r.changes]


# -- the context hash ------------------------------------------------------------------------


def test_context_hash_is_a_short_stable_tag(tmp_path: Path) -> None:
    ctx = write_service(tmp_path / "a")
    tag = context_hash(ctx, "Dockerfile", {"A": "1"})
    assert re.fullmatch(r"ds-[0-9a-f]{12}", tag)
    assert context_hash(ctx, "Dockerfile", {"A": "1"}) == tag
    # A fresh clone elsewhere, with other timestamps, gets the same tag.
    copy = tmp_path / "b" / "orders"
    shutil.copytree(ctx, copy)
    os.utime(copy / "src" / "app.py", (1_000_000, 1_000_000))
    assert context_hash(copy, "Dockerfile", {"A": "1"}) == tag


def test_context_hash_changes_with_files_dockerfile_and_build_args(tmp_path: Path) -> None:
    ctx = write_service(tmp_path)
    seen = {context_hash(ctx, "Dockerfile", {"A": "1"})}

    def changed(build_args: dict[str, str] | None = None, dockerfile: str = "Dockerfile") -> bool:
        tag = context_hash(ctx, dockerfile, {"A": "1"} if build_args is None else build_args)
        new = tag not in seen
        seen.add(tag)
        return new

    (ctx / "src" / "app.py").write_text("print('orders v2')\n")
    assert changed()
    (ctx / "src" / "new.py").write_text("")
    assert changed()
    (ctx / "src" / "new.py").chmod(0o755)
    assert changed(), "the executable bit reaches the image"
    (ctx / "Dockerfile").write_text(DOCKERFILE + "CMD [\"python\", \"/app/src/app.py\"]\n")
    assert changed()
    assert changed(build_args={"A": "2"})
    assert changed(build_args={"A": "2", "B": "1"})
    assert not changed(build_args={"B": "1", "A": "2"}), "build arg order does not matter"
    (ctx / "Dockerfile.prod").write_text("FROM scratch\n")
    assert changed(build_args={"B": "1", "A": "2"}, dockerfile="Dockerfile.prod")
    (ctx / "keep.log").write_text("changed\n")
    assert changed(build_args={"B": "1", "A": "2"}, dockerfile="Dockerfile.prod")


def test_context_hash_ignores_what_dockerignore_excludes(tmp_path: Path) -> None:
    ctx = write_service(tmp_path)
    tag = context_hash(ctx)
    (ctx / "debug.log").write_text("other noise\n")
    (ctx / "trace.log").write_text("new noise\n")
    (ctx / "__pycache__" / "other.pyc").write_bytes(b"\x01")
    (ctx / "src" / "__pycache__").mkdir()
    (ctx / "src" / "__pycache__" / "app.pyc").write_bytes(b"\x02")
    assert context_hash(ctx) == tag
    assert set(context_files(ctx)) == {".dockerignore", "Dockerfile", "keep.log",
                                       "requirements.txt", "src", "src/app.py"}
    # Editing .dockerignore changes what is sent, so it changes the tag.
    (ctx / ".dockerignore").write_text("*.log\n**/__pycache__\n")
    assert context_hash(ctx) != tag
    # As in Docker, a pattern without **/ matches at the context root only.
    (ctx / ".dockerignore").write_text("*.log\n__pycache__\n")
    assert "src/__pycache__/app.pyc" in context_files(ctx)


def test_the_hashed_files_are_the_ones_the_sdk_sends(world: World) -> None:
    world.docker.image_build(world.ctx, "Dockerfile", f"{HOST}/orders:ds-test", {})
    (build,) = world.engine.builds
    assert sorted(build.files) == context_files(world.ctx)


# -- plans and their execution -----------------------------------------------------------


def test_first_plan_builds_and_pushes_with_the_exact_calls(world: World) -> None:
    tag = world.tag()
    ref = f"{HOST}/orders:{tag}"
    actions = world.resource().plan()

    assert [(a.resource, a.verb) for a in actions] == [("image:orders", "build"),
                                                       ("image:orders", "push")]
    build, push = actions
    assert build.reason == f"context changed: no image {tag} in the registry"
    assert build.calls == (f'POST /build?t={ref}&dockerfile=Dockerfile&rm=True&forcerm=True'
                           f'&buildargs={{"PYTHON_VERSION": "3.12"}}',)
    assert push.calls == (f"POST /images/{HOST}/orders/push?tag={tag}",)
    # Planning only read: the registry (HEAD) and the engine's image cache (GET).
    assert changing(world.engine.requests + world.registry.requests) == []
    assert [(r.method, r.path) for r in world.registry.requests] == [
        ("HEAD", f"/v2/orders/manifests/{tag}")]

    world.clear_requests()
    for action in actions:
        assert action.execute is not None
        action.execute()

    sent = [r for r in world.engine.requests if r.changes]
    assert [(r.method, r.path) for r in sent] == [
        ("POST", "/build"), ("POST", f"/images/{HOST}/orders/push")]
    for call, request in zip([build.calls[0], push.calls[0]], sent, strict=True):
        method, path, query = parse_call(call)
        assert (request.method, request.path) == (method, path)
        assert {k: request.param(k) for k in query} == query  # the plan shows what is sent
    (record,) = world.engine.builds
    assert record.tags == (ref,)
    assert record.dockerfile == "Dockerfile"
    assert record.buildargs == {"PYTHON_VERSION": "3.12"}
    assert set(record.files) == {".dockerignore", "Dockerfile", "keep.log", "requirements.txt",
                                 "src", "src/app.py"}
    assert world.engine.image(ref) is not None
    assert world.registry.has("orders", tag)


def test_apply_then_replan_is_all_noop_and_only_reads(world: World) -> None:
    resource = world.resource()
    Executor().apply([resource])
    tag = world.tag()
    assert world.registry.has("orders", tag)

    world.clear_requests()
    plan = make_plan([resource])
    assert plan.empty
    assert plan.render() == f"= image:orders: orders:{tag} already in {HOST}\nnothing to do\n"
    assert changing(world.engine.requests + world.registry.requests) == []
    assert world.engine.requests == []  # the registry alone answers an unchanged image
    # A second apply changes nothing either.
    Executor().apply([resource])
    assert changing(world.engine.requests + world.registry.requests) == []
    assert len(world.engine.builds) == 1


def test_unchanged_image_is_skipped_even_after_the_local_cache_is_gone(world: World) -> None:
    Executor().apply([world.resource()])
    world.engine.remove_all_images()
    assert make_plan([world.resource()]).empty


def test_changing_a_file_changes_the_tag_and_plans_a_build(world: World) -> None:
    Executor().apply([world.resource()])
    old = world.tag()
    (world.ctx / "src" / "app.py").write_text("print('orders v2')\n")
    new = world.tag()
    assert new != old

    actions = world.resource().plan()
    assert [a.verb for a in actions] == ["build", "push"]
    assert actions[0].reason == f"context changed: no image {new} in the registry"
    assert f"t={HOST}/orders:{new}" in actions[0].calls[0]
    Executor().apply([world.resource()])
    assert world.registry.tags("orders") == sorted([old, new])
    assert image_refs([world.settings], world.base, HOST) == {"orders": f"{HOST}/orders:{new}"}


def test_image_built_but_missing_from_the_registry_is_only_pushed(world: World) -> None:
    Executor().apply([world.resource()])
    world.registry.clear()  # the registry was recreated; the engine still has the image
    tag = world.tag()
    (push,) = world.resource().plan()
    assert push.verb == "push"
    assert push.reason == f"built locally, no image {tag} in the registry"
    world.clear_requests()
    Executor().apply([world.resource()])
    assert changing(world.engine.requests) == [f"POST /images/{HOST}/orders/push"]
    assert world.registry.has("orders", tag)


def test_failing_build_shows_the_engines_error_and_output(world: World) -> None:
    world.engine.build_failure = BuildFailure(code=2, output=["ERROR: No matching distribution "
                                                              "found for httpx"])
    with pytest.raises(CommandFailed) as caught:
        Executor().apply([world.resource()])
    message = str(caught.value)
    assert message.startswith(f"docker build of {HOST}/orders:{world.tag()} failed: The command "
                              "'/bin/sh -c pip install -r /app/requirements.txt' returned a "
                              "non-zero code: 2")
    assert "ERROR: No matching distribution found for httpx" in message
    assert "Step 3/3 : RUN pip install -r /app/requirements.txt" in message
    assert changing(world.engine.requests) == ["POST /build"]  # nothing pushed
    assert world.registry.tags("orders") == []
    assert world.engine.containers == {}  # forcerm: the failed RUN's container is gone
    # Fixed, the next plan still builds.
    world.engine.build_failure = None
    assert [a.verb for a in world.resource().plan()] == ["build", "push"]


def test_the_fake_keeps_a_failed_runs_container_without_forcerm(world: World) -> None:
    """What forcerm prevents, as the real engine does it (tests/test_docker_real_images.py)."""
    world.engine.build_failure = BuildFailure(code=2)
    client = world.docker.client.api
    for _ in client.build(path=str(world.ctx), tag=f"{HOST}/orders:x", rm=True, decode=True):
        pass
    assert [c.status for c in world.engine.containers.values()] == ["exited"]


@pytest.mark.parametrize(("dockerfile", "where", "what"), [
    ("FROM python:3.12\nRUN --mount=type=cache,target=/root/.cache pip install httpx\n",
     ":2:5:", "`RUN --mount` needs BuildKit"),
    ("FROM python:3.12\nRUN <<EOF\npip install httpx\nEOF\n", ":2:5:", "a heredoc"),
    ("# syntax=docker/dockerfile:1\nFROM python:3.12\n", ":1:1:", "`# syntax=docker/"),
    ("FROM python:3.12\nCOPY --link . /app\n", ":2:6:", "`COPY --link`"),
])
def test_buildkit_only_syntax_is_refused_before_building(world: World, dockerfile: str,
                                                         where: str, what: str) -> None:
    (world.ctx / "Dockerfile").write_text(dockerfile)
    with pytest.raises(ConfigError, match="classic builder") as caught:
        world.resource().plan()
    assert f"{world.ctx / 'Dockerfile'}{where}" in str(caught.value) and what in str(caught.value)
    assert world.engine.builds == []  # said before anything was sent


@pytest.mark.parametrize(("dockerfile", "message"), [
    ("FROM python:3.12\nRUN --mount=type=cache,target=/x true\n",
     "the --mount option requires BuildKit"),
    ("FROM python:3.12\nRUN <<EOF\necho hi\nEOF\n",
     "dockerfile parse error line 3: unknown instruction: ECHO"),
])
def test_the_fake_builder_refuses_buildkit_syntax_as_the_classic_one_does(
        world: World, dockerfile: str, message: str) -> None:
    (world.ctx / "Dockerfile").write_text(dockerfile)
    with pytest.raises(CommandFailed, match=message):
        world.docker.image_build(world.ctx, "Dockerfile", f"{HOST}/orders:x", {})


def test_missing_dockerfile_in_the_context_is_the_engines_http_error(world: World) -> None:
    with pytest.raises(CommandFailed, match=r"answered 500: Cannot locate specified Dockerfile: "
                                            r"Dockerfile\.dev"):
        world.docker.image_build(world.ctx, "Dockerfile.dev", f"{HOST}/orders:ds-x", {})


def test_engine_down_is_tool_missing_with_a_hint(world: World) -> None:
    url = world.engine.base_url
    world.engine.stop()
    with pytest.raises(ToolMissing) as caught:
        world.docker.ping()
    assert caught.value.message == ("could not ping the Docker engine: the Docker engine is not "
                                    f"running (nothing answers at {url.replace('tcp', 'http')})")
    assert caught.value.hint is not None and "start Docker" in caught.value.hint
    # Planning needs the engine once the registry lacks the image.
    with pytest.raises(ToolMissing, match="Docker engine is not running"):
        world.resource().plan()
    # The SDK asks for the API version while connecting, so connect() fails the same way.
    with pytest.raises(ToolMissing, match="not running or cannot be reached"):
        connect(url)


def test_registry_not_running_yet_plans_build_and_push_fails_cleanly(world: World) -> None:
    world.registry.stop()
    actions = world.resource().plan()
    assert [a.verb for a in actions] == ["build", "push"]
    assert actions[0].reason == f"context changed: registry {HOST} not running yet"
    with pytest.raises(CommandFailed, match=r'docker push .* failed: Get "http://localhost:5050/'
                                            r'v2/": .*connection refused'):
        Executor().apply([world.resource()])


def test_push_to_an_unknown_registry_fails_with_the_stream_error(world: World) -> None:
    ref = "registry.invalid:5000/orders"
    world.docker.image_build(world.ctx, "Dockerfile", f"{ref}:v1", {})
    with pytest.raises(CommandFailed, match="no such host"):
        world.docker.image_push(ref, "v1")
    # The engine reaches the registry before it looks the tag up.
    world.docker.image_build(world.ctx, "Dockerfile", f"{HOST}/orders:v1", {})
    with pytest.raises(CommandFailed, match=f"tag does not exist: {HOST}/orders:v2"):
        world.docker.image_push(f"{HOST}/orders", "v2")
    with pytest.raises(CommandFailed, match="An image does not exist locally with the tag: "
                                            f"{HOST}/payments"):
        world.docker.image_push(f"{HOST}/payments", "v1")


def test_image_tag_and_get(world: World) -> None:
    image_id = world.docker.image_build(world.ctx, "Dockerfile", f"{HOST}/orders:a", {})
    world.docker.image_tag(image_id, f"{HOST}/orders", "b")
    fact = world.docker.image_get(f"{HOST}/orders:b")
    assert fact is not None and fact.id == image_id
    assert set(fact.tags) == {f"{HOST}/orders:a", f"{HOST}/orders:b"}
    assert world.docker.image_get(f"{HOST}/orders:c") is None
    assert world.docker.version().api_version == "1.47"


def test_registry_check_sends_accept_headers_for_oci_indexes(tmp_path: Path) -> None:
    # The containerd image store pushes an OCI index; distribution hides it from clients that
    # do not accept that type.
    with FakeRegistry(HOST) as registry, httpx2.Client(base_url=registry.url) as http:
        registry.put("orders", "ds-0123456789ab", OCI_INDEX)
        assert Registry(http).manifest_exists("orders", "ds-0123456789ab")
        assert registry.requests[-1].headers["Accept"] == ", ".join(MANIFEST_MEDIA_TYPES)
        assert http.head("/v2/orders/manifests/ds-0123456789ab").status_code == 404
        assert not Registry(http).manifest_exists("orders", "ds-ffffffffffff")
        assert not Registry(http).manifest_exists("payments", "ds-0123456789ab")


def test_missing_context_is_a_config_error(world: World) -> None:
    settings = ImageSettings(name="billing", context="services/billing")
    with pytest.raises(ConfigError, match=r"images\[name=billing\]\.context: 'services/billing' "
                                          "is not a folder"):
        world.resource(settings).plan()
    with pytest.raises(ConfigError, match="dockerfile"):
        image_refs([ImageSettings(name="orders", context="services/orders",
                                  dockerfile="Dockerfile.none")], world.base, HOST)
