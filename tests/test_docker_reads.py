"""The engine's listings a no-op command makes, over plain HTTP without the Docker SDK
(issue 17): the same requests as the SDK's, the same facts, the same errors; every other verb
goes through the SDK client, made on first use."""

from __future__ import annotations

import json
import os
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import docker
import pytest

from devslice.adapters.docker import Docker, connect
from devslice.errors import CommandFailed, ToolMissing
from devslice.resources.images import context_files, every_path
from devslice.testing.dockerapi import FakeDockerEngine
from tests.helpers import free_port

LABELS = {"devslice.dev/role": "emulator", "devslice.dev/owner": None}


@pytest.fixture
def engine() -> Iterator[FakeDockerEngine]:
    with FakeDockerEngine() as fake:
        fake.add_network("k3d-devslice", "172.18.0.0/16")
        yield fake


def _requests(engine: FakeDockerEngine) -> list[tuple[str, str, str | None, dict[str, list[str]]]]:
    return [(r.method, r.path, r.api_version, r.query) for r in engine.requests]


def test_listings_over_plain_http_match_the_sdks_requests_and_facts(
        engine: FakeDockerEngine) -> None:
    sdk = Docker(docker.DockerClient(base_url=engine.base_url))
    sdk.image_pull("mcr.microsoft.com/azure-storage/azurite:latest")
    sdk.image_pull("busybox:latest")
    sdk.container_create("devslice-azurite", "mcr.microsoft.com/azure-storage/azurite:latest",
                         labels={"devslice.dev/role": "emulator", "devslice.dev/owner": "ab"})
    sdk.container_create("other", "busybox:latest", labels={"devslice.dev/role": "emulator"})
    engine.clear_requests()
    want = (sdk.container_list(LABELS), sdk.network_subnets())
    sdk_requests = _requests(engine)
    sdk.close()

    engine.clear_requests()
    light = connect(engine.base_url)
    assert light.reads is not None
    assert (light.container_list(LABELS), light.network_subnets()) == want
    assert [c.name for c in want[0]] == ["devslice-azurite"]  # "other" has no owner label
    assert want[1]["k3d-devslice"] == ["172.18.0.0/16"]
    # the SDK's handshake (made here by connect, by the SDK's client before), the same GETs
    assert _requests(engine) == [("GET", "/version", None, {}), *sdk_requests]
    assert light._client is None  # no SDK client was made for them
    light.close()


def test_other_verbs_make_the_sdk_client_with_the_version_already_asked(
        engine: FakeDockerEngine) -> None:
    light = connect(engine.base_url)
    engine.clear_requests()
    assert light.image_get("nothing:here") is None  # through the SDK
    assert light._client is not None
    assert [(r.path, r.api_version) for r in engine.requests] == [
        ("/images/nothing:here/json", engine.api_version)]  # no second version handshake
    # once the SDK client exists, the listings go through it as before
    engine.clear_requests()
    assert light.network_subnets()["k3d-devslice"] == ["172.18.0.0/16"]
    assert light.reads is not None and light._client is not None
    light.close()


def test_an_engine_that_does_not_answer_fails_at_connect_as_with_the_sdk() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ToolMissing, match=rf"the Docker engine at tcp://127.0.0.1:{port} is "
                                          "not running or cannot be reached"):
        connect(f"tcp://127.0.0.1:{port}")


class _Failing(BaseHTTPRequestHandler):
    """An engine whose version answers and whose listings fail with Docker's error body."""

    def do_GET(self) -> None:
        if self.path == "/version":
            body, status = {"ApiVersion": "1.45", "Version": "26.1.0"}, 200
        else:
            body, status = {"message": "the daemon is shutting down"}, 500
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_an_error_status_is_a_command_failure_naming_the_engines_message() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        light = connect(f"tcp://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(CommandFailed, match="list containers failed: the Docker engine "
                                                "answered 500: the daemon is shutting down"):
            light.container_list(LABELS)
        light.close()
    finally:
        server.shutdown()
        server.server_close()


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _OverSocket(_Failing):
    def address_string(self) -> str:
        return "unix"

    def do_GET(self) -> None:
        if self.path.startswith("/v1.45/networks"):
            data = json.dumps([{"Name": "bridge", "IPAM": {"Config": [
                {"Subnet": "172.17.0.0/16"}, {"Subnet": "fd00::/64"}]}}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_GET()


def test_a_unix_socket_engine_is_read_over_the_socket() -> None:
    with tempfile.TemporaryDirectory(prefix="ds-sock-") as tmp:  # short: socket paths are
        path = os.path.join(tmp, "docker.sock")  # limited to ~100 bytes
        server = _UnixHTTPServer(path, _OverSocket)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            light = connect(f"unix://{path}")
            assert light.network_subnets() == {"bridge": ["172.17.0.0/16"]}
            with pytest.raises(CommandFailed, match="answered 500"):
                light.container_list(LABELS)
            light.close()
        finally:
            server.shutdown()
            server.server_close()


def test_a_context_without_dockerignore_patterns_lists_what_the_sdks_matcher_lists(
        tmp_path: Path) -> None:
    from docker.utils import exclude_paths

    root = tmp_path / "ctx"
    (root / "src" / "deep" / "er").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "empty").mkdir()
    for rel in ("Dockerfile", "app.py", "src/a.py", "src/deep/er/b.txt", ".hidden/c", ".env"):
        (root / rel).write_text(rel)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_text("x")
    (root / "linked").symlink_to(tmp_path / "outside")  # a symlinked folder: not entered
    (root / "link.py").symlink_to(root / "app.py")
    want = sorted(n.replace(os.sep, "/") for n in exclude_paths(str(root), [],
                                                                 dockerfile="Dockerfile"))
    assert sorted(every_path(str(root))) == want
    assert context_files(root) == want
    assert "linked" in want and "linked/x" not in want
    (root / ".dockerignore").write_text("# only a comment\n\n")  # no patterns: the same
    assert context_files(root) == sorted([*want, ".dockerignore"])
    (root / ".dockerignore").write_text("src\n!src/a.py\n")  # patterns: the SDK's matcher
    assert context_files(root) == sorted(
        n.replace(os.sep, "/") for n in exclude_paths(str(root), ["src", "!src/a.py"],
                                                      dockerfile="Dockerfile"))
    assert "src/deep/er/b.txt" not in context_files(root)


def test_plain_http_clients_trust_no_certificate_and_load_no_ca_bundle() -> None:
    """The engine's and the local registry's clients speak plain HTTP: their TLS context, never
    used, verifies and trusts nothing, so an https URL would fail rather than go unchecked."""
    import ssl

    from devslice.adapters.plainhttp import trusting_nothing
    from devslice.adapters.registry import Registry

    context = trusting_nothing()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs() == [] and context.cert_store_stats()["x509_ca"] == 0
    registry = Registry.at("localhost:5050")
    assert str(registry.client.base_url) == "http://localhost:5050"
    registry.close()
    remote = Registry.at("myacr.azurecr.io/team")
    assert str(remote.client.base_url) == "https://myacr.azurecr.io"
    remote.close()
