"""Which Docker engine devslice talks to (issue 13, item 1): resolved once as the Docker CLI
does (DOCKER_HOST, DOCKER_CONTEXT, the current context in config.json and its meta store), and
used for docker-py, the registry check and k3d alike. Each test has a DOCKER_CONFIG of its
own; the engine a context names is the wire-level fake."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from devslice.adapters.docker import connect
from devslice.adapters.runner import SubprocessRunner
from devslice.engine.environment import Tools
from devslice.errors import ToolMissing
from devslice.facts.tools import DEFAULT_DOCKER_HOST, docker_endpoint
from devslice.project import Project
from devslice.testing.dockerapi import FakeDockerEngine

from .helpers import BASE


def add_context(config: Path, name: str, host: str, *, tls: bool = False) -> Path:
    """A context as `docker context create NAME --docker host=HOST` stores it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {
        "docker": {"Host": host, "SkipTLSVerify": False}}}))
    if tls:
        (config / "contexts" / "tls" / digest / "docker").mkdir(parents=True)
    return meta


def use(config: Path, name: str) -> None:
    """`docker context use NAME`."""
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(json.dumps({"auths": {}, "currentContext": name}))


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "docker-config"
    path.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_no_setting_is_the_default_socket(config: Path) -> None:
    e = docker_endpoint()
    assert (e.host, e.context, e.source) == (DEFAULT_DOCKER_HOST, "default", "the default socket")


def test_the_current_context_of_config_json(config: Path) -> None:
    add_context(config, "colima", "unix:///home/me/.colima/default/docker.sock")
    use(config, "colima")
    e = docker_endpoint()
    assert (e.host, e.context) == ("unix:///home/me/.colima/default/docker.sock", "colima")
    assert "current context" in e.source and e.machine == "localhost"


def test_docker_context_beats_the_current_one_and_docker_host_beats_both(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_context(config, "colima", "unix:///colima.sock")
    add_context(config, "remote", "tcp://build-box:2376", tls=True)
    use(config, "colima")
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    e = docker_endpoint()
    assert (e.host, e.context, e.machine) == ("tcp://build-box:2376", "remote", "build-box")
    assert e.tls_dir is not None and e.tls_verify
    assert e.env()["DOCKER_HOST"] == "tcp://build-box:2376" and e.env()["DOCKER_CONTEXT"] == ""
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")  # rootless
    assert docker_endpoint().host == "unix:///run/user/1000/docker.sock"


def test_default_named_explicitly_is_the_default_socket(config: Path) -> None:
    use(config, "default")
    assert docker_endpoint().host == DEFAULT_DOCKER_HOST


def test_a_context_that_does_not_exist_is_an_error_not_another_engine(config: Path) -> None:
    use(config, "rancher-desktop")
    with pytest.raises(ToolMissing, match=r"Docker context 'rancher-desktop' \(from the current "
                                          r"context in .*config\.json\) does not exist") as info:
        docker_endpoint()
    assert "docker context ls" in str(info.value.hint)


def test_an_unreadable_config_json_is_said(config: Path) -> None:
    (config / "config.json").write_text("{not json")
    with pytest.raises(ToolMissing, match=r"cannot read .*config\.json"):
        docker_endpoint()


def test_a_missing_socket_is_said_at_once(config: Path) -> None:
    add_context(config, "desktop", f"unix://{config}/no.sock")
    use(config, "desktop")
    with pytest.raises(ToolMissing, match=r"engine at unix://.*no\.sock \(context 'desktop'"):
        connect()


def test_up_talks_to_the_contexts_engine_and_hands_it_to_k3d(
        config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker.from_env() would have gone to /var/run/docker.sock; the context's engine is the
    one that answers, the registry is checked on its machine, and k3d gets DOCKER_HOST."""
    (tmp_path / "devslice.yaml").write_text(BASE)
    with FakeDockerEngine() as engine:
        add_context(config, "desktop", engine.base_url)
        use(config, "desktop")
        tools = Tools.real(Project.load(tmp_path / "devslice.yaml"))
        try:
            assert tools.docker.ping()
            assert [r.path for r in engine.requests][-1] == "/_ping"
            assert str(tools.registry.client.base_url) == "http://127.0.0.1:5050"
            assert tools.k3d.env is not None and tools.k3d.env["DOCKER_HOST"] == engine.base_url
            done = SubprocessRunner().run(
                [sys.executable, "-c", "import os; print(os.environ['DOCKER_HOST'], "
                 "repr(os.environ['DOCKER_CONTEXT']))"], env=tools.k3d.env)
            assert done.stdout.split() == [engine.base_url, "''"]
        finally:
            tools.close()
