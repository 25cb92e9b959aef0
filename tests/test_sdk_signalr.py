"""SignalR on the slice's hub: connection strings, negotiate tokens checked with PyJWT, and
REST sends received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devslice.sdk import SliceContext
from devslice.sdk.signalr import (
    AsyncSliceSignalR,
    SignalRConfigError,
    SignalRConnection,
    SignalRSendFailed,
    SliceSignalR,
)

KEY = base64.b64encode(bytes(range(32))).decode()  # shaped like a real AccessKey (44 chars)
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
SLICE_AB = SliceContext.from_env({
    "LOCAL_DEV_SLICE": "ab",
    "LOCAL_DEV_SIGNALR_HUB_NOTIFICATIONS": "notifications_ab",
    "LOCAL_DEV_SIGNALR_HUB_DASHBOARD": "Dashboard_AB",
})
SHARED = SliceContext()


@dataclass
class Received:
    method: str
    path: str  # the raw request target, as it arrived
    headers: dict[str, str]
    body: bytes


@dataclass
class HubServer:
    """What a SignalR REST endpoint sees; answers ``status`` with ``reply``."""

    port: int = 0
    status: int = 202
    reply: str = ""
    echo_headers: bool = False
    received: list[Received] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection_string(self, key: str = KEY) -> str:
        return f"Endpoint={self.endpoint};AccessKey={key};Version=1.0;"


@pytest.fixture
def server() -> Iterator[HubServer]:
    state = HubServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append(Received(self.command, self.path,
                                           {k.lower(): v for k, v in self.headers.items()}, body))
            reply = state.reply
            if state.echo_headers:  # a careless proxy: the error page quotes the request
                reply += " " + json.dumps(dict(self.headers.items()))
            data = reply.encode()
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def verify(token: str, audience: str, key: str = KEY) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, key.encode("utf-8"), algorithms=["HS256"],
                                           audience=audience, options={"require": ["exp"]})
    return claims


# -- connection strings ---------------------------------------------------------------------
def test_connection_string_parts() -> None:
    c = SignalRConnection.parse(
        f"endpoint=https://company1-dev.service.signalr.net/;ACCESSKEY={KEY};version=1.0;"
        "Port=8443;ClientEndpoint=https://signalr.company1.example")
    assert c.endpoint == "https://company1-dev.service.signalr.net:8443"
    assert c.client_endpoint == "https://signalr.company1.example"
    assert c.access_key == KEY and c.version == "1.0"
    assert KEY not in repr(c) and KEY not in str(c)


@given(st.permutations(["Endpoint=https://x.service.signalr.net", f"AccessKey={KEY}",
                        "Version=1.0"]),
       st.lists(st.booleans(), min_size=40, max_size=40))
def test_keys_are_case_insensitive_in_any_order(parts: list[str], upper: list[bool]) -> None:
    flags = iter(upper)
    mixed = ";".join(
        "".join(ch.upper() if next(flags, False) else ch.lower() for ch in k) + "=" + v
        for k, _, v in (p.partition("=") for p in parts))
    c = SignalRConnection.parse(mixed + ";")
    assert (c.endpoint, c.access_key, c.version) == ("https://x.service.signalr.net", KEY, "1.0")


@pytest.mark.parametrize(("text", "expected"), [
    (f"AccessKey={KEY};Version=1.0;", "has no Endpoint"),
    ("Endpoint=https://x.service.signalr.net;Version=1.0;", "has no AccessKey"),
    (f"Endpoint=x.service.signalr.net;AccessKey={KEY}", "is not of the form"),
    (f"Endpoint=https://x.service.signalr.net/hub;AccessKey={KEY}", "is not of the form"),
    (f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};Version=2.0", "version '2.0'"),
    (f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};Port=http", "Port 'http'"),
    (f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};Port=70000", "Port '70000'"),
    (f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};endpoint=https://y", "twice"),
    (f"Endpoint=https://x.service.signalr.net;AccessKey {KEY.rstrip('=')}", "part 2 "),
    (f"Endpoint=https://x.service.signalr.net;AccessKey:{KEY};AccessKey:{KEY}", "a setting twice"),
    (f"Endpoint=https://x.service.signalr.net;AccessKey:{KEY}", "has no AccessKey"),
    ("Endpoint=https://x.service.signalr.net;AuthType=aad;ClientId=abc", "Microsoft Entra"),
    (f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};ClientEndpoint=ftp://p",
     "ClientEndpoint 'ftp://p'"),
])
def test_bad_connection_strings_are_explained_without_the_key(text: str, expected: str) -> None:
    with pytest.raises(SignalRConfigError) as info:
        SignalRConnection.parse(text)
    assert expected in str(info.value)
    assert info.value.hint
    assert KEY not in str(info.value)


def test_from_context_needs_the_connection_string() -> None:
    ctx = SliceContext.from_env({"LOCAL_DEV_SLICE": "ab",
                                 "LOCAL_DEV_SIGNALR_ENDPOINT": "https://x.service.signalr.net"})
    with pytest.raises(SignalRConfigError, match="no SignalR connection string for https://x"):
        SliceSignalR.from_context(ctx)
    ctx = SliceContext.from_env({
        "LOCAL_DEV_SIGNALR_CONNECTIONSTRING": f"Endpoint=https://x.service.signalr.net;"
                                              f"AccessKey={KEY};Version=1.0;",
        "LOCAL_DEV_SIGNALR_HUB_NOTIFICATIONS": "notifications_ab"})
    with SliceSignalR.from_context(ctx) as hub:
        assert hub.slice_hub("notifications") == "notifications_ab"
        assert KEY not in repr(hub)


# -- negotiate ------------------------------------------------------------------------------
def test_negotiate_gives_the_slice_hub_and_a_token_for_it() -> None:
    hub = SliceSignalR(f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};Version=1.0;",
                       SLICE_AB)
    before = datetime.now(UTC)
    answer = hub.negotiate("notifications", user_id="anna")
    assert answer["url"] == "https://x.service.signalr.net/client/?hub=notifications_ab"
    claims = verify(answer["accessToken"], audience=answer["url"])
    assert claims["nameid"] == "anna"
    expires = datetime.fromtimestamp(int(str(claims["exp"])), UTC)
    assert before + timedelta(minutes=59) < expires <= datetime.now(UTC) + timedelta(hours=1)


def test_negotiate_token_fails_with_another_key_or_audience() -> None:
    hub = SliceSignalR(f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};", SLICE_AB)
    answer = hub.negotiate("notifications")
    with pytest.raises(jwt.InvalidSignatureError):
        verify(answer["accessToken"], answer["url"], key=OTHER_KEY)
    with pytest.raises(jwt.InvalidAudienceError):  # another slice's hub is another audience
        verify(answer["accessToken"], "https://x.service.signalr.net/client/?hub=notifications_cd")
    assert "nameid" not in verify(answer["accessToken"], answer["url"])


def test_negotiate_token_expires_after_its_lifetime() -> None:
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    hub = SliceSignalR(f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};", SLICE_AB,
                       clock=lambda: two_hours_ago)
    expired = hub.negotiate("notifications")
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(expired["accessToken"], expired["url"])
    longer = hub.negotiate("notifications", lifetime=timedelta(hours=3))
    verify(longer["accessToken"], longer["url"])
    with pytest.raises(ValueError, match="positive"):
        hub.negotiate("notifications", lifetime=timedelta(0))


def test_hub_names_are_lower_cased_and_shared_environments_use_the_hub_as_is() -> None:
    cs = f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};"
    assert SliceSignalR(cs, SLICE_AB).negotiate("dashboard")["url"].endswith("?hub=dashboard_ab")
    shared = SliceSignalR(cs, SHARED).negotiate("Notifications")
    assert shared["url"] == "https://x.service.signalr.net/client/?hub=notifications"
    verify(shared["accessToken"], shared["url"])


def test_a_client_endpoint_is_where_clients_go_the_token_stays_the_services() -> None:
    hub = SliceSignalR(f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};"
                       "ClientEndpoint=https://signalr.company1.example", SLICE_AB)
    answer = hub.negotiate("notifications")
    assert answer["url"] == "https://signalr.company1.example/client/?hub=notifications_ab"
    verify(answer["accessToken"], "https://x.service.signalr.net/client/?hub=notifications_ab")


def test_hyphenated_hub_names_are_refused() -> None:
    cs = f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};"
    with pytest.raises(SignalRConfigError, match="no hyphens") as info:
        SliceSignalR(cs, SHARED).negotiate("live-updates")
    assert "'live_updates'" in str(info.value)
    bad_template = SliceContext.from_env({"LOCAL_DEV_SIGNALR_HUB_NOTIFICATIONS": "notif-ab"})
    with pytest.raises(SignalRConfigError, match="LOCAL_DEV_SIGNALR_HUB_NOTIFICATIONS"):
        SliceSignalR(cs, bad_template).negotiate("notifications")


# -- sending over REST ----------------------------------------------------------------------
def test_send_to_all_posts_to_the_slice_hub_with_a_token_for_that_url(server: HubServer) -> None:
    with httpx.Client() as client:
        hub = SliceSignalR(server.connection_string(), SLICE_AB, client=client)
        hub.send_to_all("notifications", "invoicePaid", [{"id": 7}, "EUR"])
    [got] = server.received
    assert (got.method, got.path) == ("POST", "/api/v1/hubs/notifications_ab")
    assert json.loads(got.body) == {"target": "invoicePaid", "arguments": [{"id": 7}, "EUR"]}
    assert got.headers["content-type"] == "application/json"
    scheme, token = got.headers["authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = verify(token, audience=server.endpoint + got.path)
    assert int(str(claims["exp"])) <= datetime.now(UTC).timestamp() + 5 * 60 + 1


def test_send_to_user_signs_the_encoded_url_it_sends(server: HubServer) -> None:
    with httpx.Client() as client:
        SliceSignalR(server.connection_string(), SLICE_AB, client=client).send_to_user(
            "Dashboard", "anna berg/ü", "refresh")
    [got] = server.received
    assert got.path == "/api/v1/hubs/dashboard_ab/users/anna%20berg%2F%C3%BC"
    assert json.loads(got.body) == {"target": "refresh", "arguments": []}
    verify(got.headers["authorization"].removeprefix("Bearer "), server.endpoint + got.path)


def test_shared_environment_sends_to_the_hub_as_is(server: HubServer) -> None:
    with SliceSignalR(server.connection_string(), SHARED) as hub:  # its own httpx.Client
        hub.send_to_all("notifications", "ping")
    assert [r.path for r in server.received] == ["/api/v1/hubs/notifications"]


def test_a_server_error_becomes_a_clear_error_without_secrets(server: HubServer) -> None:
    server.status, server.reply, server.echo_headers = 500, "hub is on fire", True
    with httpx.Client() as client, pytest.raises(SignalRSendFailed) as info:
        SliceSignalR(server.connection_string(), SLICE_AB, client=client).send_to_all(
            "notifications", "invoicePaid", [1])
    error = info.value
    token = server.received[0].headers["authorization"].removeprefix("Bearer ")
    assert error.status == 500
    assert "HTTP 500" in str(error) and "hub is on fire" in str(error)
    assert "'notifications_ab'" in str(error) and "retry" in str(error)
    assert token not in str(error) and token not in error.server_message
    assert KEY not in str(error)


def test_an_unreachable_service_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    with SliceSignalR(f"Endpoint=http://127.0.0.1:{port};AccessKey={KEY};", SLICE_AB) as hub, \
            pytest.raises(SignalRSendFailed, match="did not answer") as info:
        hub.send_to_all("notifications", "ping")
    assert info.value.status is None


def test_a_bad_hub_name_sends_nothing(server: HubServer) -> None:
    with httpx.Client() as client, pytest.raises(SignalRConfigError):
        SliceSignalR(server.connection_string(), SHARED, client=client).send_to_all(
            "live-updates", "ping")
    assert server.received == []


async def test_async_sends_the_same_requests(server: HubServer) -> None:
    async with httpx.AsyncClient() as client:
        hub = AsyncSliceSignalR(server.connection_string(), SLICE_AB, client=client)
        await hub.send_to_all("notifications", "invoicePaid", [7])
        await hub.send_to_user("notifications", "anna", "invoicePaid", [8])
        server.status = 401
        with pytest.raises(SignalRSendFailed, match="HTTP 401") as info:
            await hub.send_to_all("notifications", "invoicePaid", [9])
        server.status = 202
    assert "AccessKey does not match" in str(info.value.hint)
    assert [r.path for r in server.received] == ["/api/v1/hubs/notifications_ab",
                                                 "/api/v1/hubs/notifications_ab/users/anna",
                                                 "/api/v1/hubs/notifications_ab"]
    for got in server.received:
        verify(got.headers["authorization"].removeprefix("Bearer "), server.endpoint + got.path)
    async with AsyncSliceSignalR(server.connection_string(), SLICE_AB) as owned:
        await owned.send_to_all("notifications", "ping")
    assert len(server.received) == 4
