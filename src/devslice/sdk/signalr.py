"""SignalR on the slice's hubs: negotiate for clients, send from the server over REST.

Azure SignalR Service in serverless mode needs no SDK. A client negotiates (it is told the
service URL and given a JWT signed with the AccessKey); a server sends by POSTing to the REST
API with a JWT of its own. Both tokens are HS256 over the UTF-8 bytes of the AccessKey, with
``aud`` the URL they are for (shared/reference/facts.md, "Azure SignalR Service").

This module does both on the slice's hub: ``notifications`` becomes ``notifications_ab``
through the contract (``LOCAL_DEV_SIGNALR_HUB_NOTIFICATIONS``) and stays ``notifications``
in shared environments. Hub names go into URLs lower-cased, as the .NET SDK sends them.

Isolation between hubs is a convention, not a boundary: whoever holds the AccessKey can sign
for any hub. Slices stay apart because only servers sign, and they ask this module for the
slice's hub. For the same reason the AccessKey and the tokens never appear in a message, repr
or log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypedDict
from urllib.parse import quote, urlsplit

from devslice.errors import CommandFailed
from devslice.sdk.context import DEFAULT_PREFIX, ContractError, SliceContext, variable_key
from devslice.slices.names import RULES

if TYPE_CHECKING:  # httpx is imported when a message is first sent
    import httpx

CONNECTION_STRING_VARIABLE = f"{DEFAULT_PREFIX}SIGNALR_CONNECTIONSTRING"
DEFAULT_LIFETIME = timedelta(hours=1)  # the .NET SDK's default for client tokens
# A server token is used for one request; a short life limits what a logged header is worth.
SEND_TOKEN_LIFETIME = timedelta(minutes=5)
DEFAULT_TIMEOUT = 10.0
_VERSION = re.compile(r"1\.\d+[\w.-]*")  # the .NET SDK accepts service version 1.x only
_MAX_SERVER_MESSAGE = 300


class SignalRConfigError(ContractError):
    """The SignalR connection string or a hub name cannot be used."""

    exit_code = 2


class SignalRSendFailed(CommandFailed):
    """The service refused a message, or could not be reached (``status`` is then None)."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None,
                 server_message: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.server_message = server_message


class Negotiation(TypedDict):
    """The negotiate answer a SignalR client expects."""

    url: str
    accessToken: str


@dataclass(frozen=True)
class SignalRConnection:
    """A parsed connection string ``Endpoint=...;AccessKey=...;Version=1.0;``.

    ``endpoint`` is the service itself (``Port`` applied): servers send there and tokens are
    addressed to it. ``client_endpoint`` is what clients are told to connect to: the
    ``ClientEndpoint`` (a proxy in front of the service) when given, else ``endpoint``.
    """

    endpoint: str
    access_key: str = field(repr=False)
    client_endpoint: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> SignalRConnection:
        """Parse as the .NET SDK does: keys case-insensitive, duplicates refused, unknown keys
        ignored; ``Port`` replaces the endpoint's port."""
        settings: dict[str, str] = {}
        for number, part in enumerate((p for p in text.split(";") if p.strip()), start=1):
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep or not key:
                # Never quote the part: it might be a mistyped AccessKey.
                raise _bad(f"part {number} of the SignalR connection string is not Key=Value")
            if key in settings:
                # A mangled key ("AccessKey:<key>=") may hold the secret: name only real keys.
                name = repr(key) if key.isalpha() else "a setting"
                raise _bad(f"the SignalR connection string gives {name} twice")
            settings[key] = value.strip()

        endpoint = _origin(settings.get("endpoint"), "Endpoint")
        if settings.get("authtype") and not settings.get("accesskey"):
            raise _bad(
                f"the SignalR connection string for {endpoint} signs in with Microsoft Entra ID "
                "(AuthType), which devslice cannot sign tokens with",
                "use a connection string with an AccessKey (Keys in the Azure portal)",
            )
        access_key = settings.get("accesskey")
        if not access_key:
            raise _bad(f"the SignalR connection string for {endpoint} has no AccessKey")
        version = settings.get("version") or None
        if version is not None and not _VERSION.fullmatch(version):
            raise _bad(f"SignalR connection string version {version!r} is not supported",
                       "the service speaks version 1.x; write Version=1.0")
        if "port" in settings:
            endpoint = _with_port(endpoint, settings["port"])
        client = settings.get("clientendpoint")
        client_endpoint = _origin(client, "ClientEndpoint") if client else endpoint
        return cls(endpoint, access_key, client_endpoint, version)


def _bad(message: str, hint: str | None = None) -> SignalRConfigError:
    return SignalRConfigError(
        message, hint or f"copy the connection string from the Azure portal into "
        f"{CONNECTION_STRING_VARIABLE}: Endpoint=https://<name>.service.signalr.net;"
        "AccessKey=<key>;Version=1.0;")


def _origin(value: str | None, key: str) -> str:
    """``scheme://host[:port]`` from an endpoint value, or a clear error."""
    if not value:
        raise _bad(f"the SignalR connection string has no {key}")
    try:
        parts = urlsplit(value.strip().rstrip("/"))
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise _bad(f"SignalR {key} {value!r} is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path \
            or parts.query or parts.fragment:
        raise _bad(f"SignalR {key} {value!r} is not of the form https://<host>[:port]")
    return f"{parts.scheme}://{parts.netloc}"


def _with_port(endpoint: str, port: str) -> str:
    if not port.isdigit() or not 0 < int(port) <= 0xFFFF:
        raise _bad(f"SignalR Port {port!r} is not a port number (1-65535)")
    parts = urlsplit(endpoint)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return f"{parts.scheme}://{host}:{int(port)}"


class _SignalRBase:
    """What the sync and async variants share: hubs, tokens, requests and their answers."""

    def __init__(
        self,
        connection_string: str | SignalRConnection,
        ctx: SliceContext | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.connection = (connection_string if isinstance(connection_string, SignalRConnection)
                           else SignalRConnection.parse(connection_string))
        self.ctx = ctx if ctx is not None else SliceContext.from_env()
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_context(cls, ctx: SliceContext | None = None, **kwargs: Any) -> Self:
        """Built from the contract: ``LOCAL_DEV_SIGNALR_CONNECTIONSTRING`` and the hub map."""
        ctx = ctx if ctx is not None else SliceContext.from_env()
        if not ctx.signalr_connection_string:
            where = f" for {ctx.signalr_endpoint}" if ctx.signalr_endpoint else ""
            raise SignalRConfigError(
                f"the slice's contract has no SignalR connection string{where}",
                hint=f"set signalR.connectionString in devslice.yaml (it becomes "
                f"{CONNECTION_STRING_VARIABLE}); an endpoint alone cannot sign tokens",
            )
        return cls(ctx.signalr_connection_string, ctx, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.connection.endpoint!r}, " \
               f"slice={self.ctx.handle!r})"

    # -- hubs and tokens ------------------------------------------------------------------------
    def slice_hub(self, hub: str) -> str:
        """The hub the service sees for ``hub``: the slice's, lower-cased.

        The hub as written must be valid too: shared environments use it as it is, and a
        name that works only inside a slice would fail there first.
        """
        mapped = self.ctx.hub(hub)
        for name in dict.fromkeys((hub, mapped)):
            problem = RULES["signalrHub"].problem(name)
            if not problem:
                continue
            if name != hub:
                hint = (f"the contract maps hub {hub!r} to it ({DEFAULT_PREFIX}SIGNALR_HUB_"
                        f"{variable_key(hub)}); fix signalR.hubTemplate in devslice.yaml")
            else:
                example = f" (for example {hub.replace('-', '_')!r})" if "-" in hub else ""
                hint = f"rename the hub{example}"
            raise SignalRConfigError(problem, hint=hint)
        return mapped.lower()

    def negotiate(self, hub: str, user_id: str | None = None,
                  lifetime: timedelta = DEFAULT_LIFETIME) -> Negotiation:
        """The answer to a client's negotiate request for the slice's ``hub``.

        ``url`` points at the client endpoint; the token is addressed to the service itself
        (a ``ClientEndpoint`` proxy forwards to it), as the .NET SDK does. ``nameid`` carries
        ``user_id``, which ``send_to_user`` reaches.
        """
        if lifetime <= timedelta(0):
            raise ValueError(f"token lifetime must be positive, not {lifetime}")
        if user_id is not None and not user_id:
            raise ValueError("user_id must not be empty (None for an anonymous client)")
        name = self.slice_hub(hub)
        audience = f"{self.connection.endpoint}/client/?hub={name}"
        url = f"{self.connection.client_endpoint}/client/?hub={name}"
        return {"url": url, "accessToken": self._token(audience, lifetime, user_id)}

    def _token(self, audience: str, lifetime: timedelta, user_id: str | None = None) -> str:
        import jwt  # lazy: pyjwt, ~50 ms, only to sign a token

        now = self._clock()
        claims: dict[str, Any] = {"aud": audience, "iat": int(now.timestamp()),
                                  "exp": int((now + lifetime).timestamp())}
        if user_id is not None:
            claims["nameid"] = user_id
        return jwt.encode(claims, self.connection.access_key.encode("utf-8"), algorithm="HS256")

    # -- sending --------------------------------------------------------------------------------
    def _request(self, hub: str, user_id: str | None, target: str,
                 arguments: Sequence[Any]) -> _Request:
        """URL, headers and body of one REST send; the token's ``aud`` is the URL exactly.

        The URL is percent-encoded here, so that httpx sends the very string that was signed.
        """
        if not target:
            raise ValueError("target (the client method to call) must not be empty")
        name = self.slice_hub(hub)
        url = f"{self.connection.endpoint}/api/v1/hubs/{quote(name, safe='')}"
        what = f"{target!r} to hub {name!r}"
        if user_id is not None:
            if not user_id:
                raise ValueError("user_id must not be empty")
            url += f"/users/{quote(user_id, safe='')}"
            what += f" for user {user_id!r}"
        token = self._token(url, SEND_TOKEN_LIFETIME)
        return _Request(url, {"Authorization": f"Bearer {token}"},
                        {"target": target, "arguments": list(arguments)}, what, token)

    def _refused(self, request: _Request, status: int, text: str) -> SignalRSendFailed:
        message = self._redact(" ".join(text.split()), request.token)[:_MAX_SERVER_MESSAGE]
        hint = {
            401: "the AccessKey does not match the service; copy the connection string again "
                 f"into {CONNECTION_STRING_VARIABLE}",
            403: "the key may not send to this hub; check the service's access policies",
            404: f"no SignalR REST API at {self.connection.endpoint}; check the Endpoint",
            429: "the service is throttling; send less often or retry later",
        }.get(status, "the service failed; retry later" if status >= 500 else None)
        detail = f": {message}" if message else ""
        return SignalRSendFailed(f"SignalR refused {request.what} with HTTP {status}{detail}",
                                 hint=hint, status=status, server_message=message)

    def _unreachable(self, request: _Request, exc: Exception) -> SignalRSendFailed:
        reason = self._redact(str(exc) or type(exc).__name__, request.token)
        return SignalRSendFailed(
            f"could not send {request.what}: SignalR at {self.connection.endpoint} "
            f"did not answer ({reason})",
            hint="check the Endpoint in the connection string and the network")

    def _redact(self, text: str, token: str) -> str:
        return text.replace(token, "<token>").replace(self.connection.access_key, "<key>")


@dataclass(frozen=True)
class _Request:
    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: dict[str, Any]
    what: str
    token: str = field(repr=False)


class SliceSignalR(_SignalRBase):
    """SignalR for a service in a slice, over a blocking ``httpx.Client``.

    ``ctx`` maps hubs to the slice's (default: the process's contract, read with
    ``SliceContext.from_env()``; an empty one for shared environments). Pass ``client`` to
    share one (tests pass a real one); without it one is created on the first send and closed
    by ``close()``.
    """

    def __init__(
        self,
        connection_string: str | SignalRConnection,
        ctx: SliceContext | None = None,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(connection_string, ctx, clock=clock)
        self._client = client
        self._owns_client = client is None

    def send_to_all(self, hub: str, target: str, arguments: Sequence[Any] = ()) -> None:
        """Call ``target(*arguments)`` on every client of the slice's ``hub``."""
        self._send(self._request(hub, None, target, arguments))

    def send_to_user(self, hub: str, user_id: str, target: str,
                     arguments: Sequence[Any] = ()) -> None:
        """Call ``target(*arguments)`` on the clients of ``user_id`` in the slice's ``hub``."""
        self._send(self._request(hub, user_id, target, arguments))

    def _send(self, request: _Request) -> None:
        import httpx  # lazy: httpx, ~75 ms, only when calling the service

        if self._client is None:
            self._client = httpx.Client(timeout=DEFAULT_TIMEOUT)
        try:
            response = self._client.post(request.url, json=request.body, headers=request.headers)
        except httpx.HTTPError as exc:
            raise self._unreachable(request, exc) from exc
        if not response.is_success:
            raise self._refused(request, response.status_code, response.text)

    def close(self) -> None:
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncSliceSignalR(_SignalRBase):
    """The asyncio variant of :class:`SliceSignalR`, over ``httpx.AsyncClient``."""

    def __init__(
        self,
        connection_string: str | SignalRConnection,
        ctx: SliceContext | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(connection_string, ctx, clock=clock)
        self._client = client
        self._owns_client = client is None

    async def send_to_all(self, hub: str, target: str, arguments: Sequence[Any] = ()) -> None:
        await self._send(self._request(hub, None, target, arguments))

    async def send_to_user(self, hub: str, user_id: str, target: str,
                           arguments: Sequence[Any] = ()) -> None:
        await self._send(self._request(hub, user_id, target, arguments))

    async def _send(self, request: _Request) -> None:
        import httpx  # lazy: httpx, ~75 ms, only when calling the service

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        try:
            response = await self._client.post(request.url, json=request.body,
                                               headers=request.headers)
        except httpx.HTTPError as exc:
            raise self._unreachable(request, exc) from exc
        if not response.is_success:
            raise self._refused(request, response.status_code, response.text)

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
