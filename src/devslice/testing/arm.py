"""Azure Resource Manager and Key Vault on 127.0.0.1 over HTTPS, on the wire, for tests of code
that provisions Azure resources with the official management SDKs (azure-mgmt-storage,
azure-mgmt-kusto, azure-mgmt-eventhub) and reads Key Vault secrets (azure-keyvault-secrets).

It follows the documented behaviour of Resource Manager (learn.microsoft.com: "Azure REST API
reference", "Track asynchronous Azure operations", "Async operations"):

- ``PUT`` is create-or-update: 201 (or 202 for a long-running create) for a new resource, 200
  for an existing one; tags are replaced by what the body carries and read back as written.
- Long-running operations: storage accounts answer 202 with ``Location`` (poll it: 202 while
  running, then 200 with the resource); Data Explorer databases answer 201/202 with
  ``Azure-AsyncOperation`` (poll it: ``{"status": "InProgress"}``, then ``Succeeded``).
  Both carry ``Retry-After: 0`` so clients poll at once. ``lro_polls`` says how many polls
  report "still running".
- ``GET`` of a missing resource is 404 with ARM's error body (``ResourceNotFound``,
  ``ResourceGroupNotFound``, ``ParentResourceNotFound``); ``GET`` of a collection lists it.
- Storage account names are global: ``taken_elsewhere`` holds names used in other
  subscriptions; ``checkNameAvailability`` says so, and a ``PUT`` of one is 409
  ``StorageAccountAlreadyTaken``.
- Requests without ``Authorization: Bearer`` are 401 (the SDKs refuse to send a bearer token
  over plain HTTP, hence TLS with a certificate made at start).
- Key Vault: ``GET {vault}/secrets/{name}`` at ``https://127.0.0.1:PORT/vaults/{vault}``; the
  first unauthenticated request gets the documented 401 challenge (``WWW-Authenticate: Bearer
  authorization=..., resource=...``).

Every request is recorded (``requests``), so a test can assert that a second ``up`` sends no
``PUT`` or ``DELETE``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

# Resource types whose create is long-running, and how the service reports it.
LOCATION_POLLED = {"microsoft.storage/storageaccounts"}
ASYNC_POLLED = {"microsoft.kusto/clusters/databases"}
# Types whose create answers 200, not 201 (the REST reference: Queue - Create,
# Consumer Groups - Create Or Update).
CREATED_200 = {"microsoft.storage/storageaccounts/queueservices/queues",
               "microsoft.eventhub/namespaces/eventhubs/consumergroups"}
# Child "service" segments that exist whenever their parent does (blobServices/default).
IMPLICIT = {("blobservices", "default"), ("queueservices", "default"),
            ("fileservices", "default"), ("tableservices", "default")}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # without the query
    api_version: str | None


class StaticToken:
    """A credential handing out one fixed token (azure-core's ``TokenCredential``)."""

    def __init__(self, token: str = "fake-token") -> None:
        self.token = token
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        # lazy: azure-core, only when a token is asked for
        from azure.core.credentials import AccessToken

        self.scopes.extend(scopes)
        return AccessToken(self.token, int(dt.datetime.now(dt.UTC).timestamp()) + 3600)

    def close(self) -> None:
        pass


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (it is its own CA)."""
    # lazy: cryptography, only to make the test certificate
    from cryptography import x509

    # lazy: cryptography, only to make the test certificate
    from cryptography.hazmat.primitives import hashes, serialization

    # lazy: cryptography, only to make the test certificate
    from cryptography.hazmat.primitives.asymmetric import ec

    # lazy: cryptography, only to make the test certificate
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devslice fake azure")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _pairs(segments: list[str]) -> list[tuple[str, str]]:
    return [(segments[i], segments[i + 1] if i + 1 < len(segments) else "")
            for i in range(0, len(segments), 2)]


@dataclass
class Parsed:
    subscription: str
    group: str | None
    provider: str | None  # e.g. microsoft.storage (lower case)
    pairs: list[tuple[str, str]]  # (type, name) after the provider; the last name may be ""
    action: str | None = None  # checkNameAvailability
    provider_cased: str = ""
    cased_pairs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def type(self) -> str:
        return "/".join([self.provider or "", *(t for t, _ in self.pairs)]).lower()


@dataclass
class FakeAzure:
    subscription: str = "00000000-0000-0000-0000-000000000001"
    tenant: str = "00000000-0000-0000-0000-0000000000aa"
    taken_elsewhere: set[str] = field(default_factory=set)  # storage account names
    lro_polls: int = 1  # polls that report "still running" before an operation ends
    fail_deletes: set[str] = field(default_factory=set)  # lower-case ids whose DELETE is 500
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower-case id -> body
    groups: dict[str, str] = field(default_factory=dict)  # lower-case name -> location
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)  # (vault, name) -> value
    requests: list[Seen] = field(default_factory=list)
    _operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _dir: tempfile.TemporaryDirectory[str] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeAzure:
        self._dir = tempfile.TemporaryDirectory(prefix="fakearm-")
        self.ca_path, key_path = _certificate(Path(self._dir.name))
        fake = self

        class Handler(_Handler):
            azure = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_path, key_path)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._dir is not None:
            self._dir.cleanup()

    def __enter__(self) -> FakeAzure:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def vault_url(self, vault: str) -> str:
        return f"{self.url}/vaults/{vault}"

    # -- seeding what the team owns ----------------------------------------------------------
    def add_group(self, name: str, location: str = "westeurope") -> None:
        self.groups[name.lower()] = location

    def rid(self, group: str, provider: str, *pairs: tuple[str, str]) -> str:
        path = "/".join(f"{t}/{n}" for t, n in pairs)
        return f"/subscriptions/{self.subscription}/resourceGroups/{group}/providers/" \
               f"{provider}/{path}"

    def put(self, rid: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add a resource directly (what the team made by hand, or what exists already)."""
        parsed = _parse(rid)
        assert parsed is not None
        stored = self._stored(rid, parsed, body, None)
        self.resources[rid.lower()] = stored
        return stored

    def get(self, rid: str) -> dict[str, Any] | None:
        return self.resources.get(rid.lower())

    def changing(self) -> list[Seen]:
        """Requests that could change something (not GET, not a name check)."""
        return [s for s in self.requests if s.method in ("PUT", "PATCH", "DELETE")]

    # -- ARM ---------------------------------------------------------------------------------
    def _stored(self, rid: str, parsed: Parsed, body: dict[str, Any],
                old: dict[str, Any] | None) -> dict[str, Any]:
        out = dict(old or {})
        for key, value in body.items():
            if key == "properties" and isinstance(value, dict):
                out["properties"] = {**out.get("properties", {}), **value}
            else:
                out[key] = value
        type_parts = [parsed.provider_cased, *(t for t, _ in parsed.cased_pairs)]
        out["id"] = rid
        out["name"] = parsed.pairs[-1][1]
        out["type"] = "/".join(type_parts)
        out.setdefault("properties", {})["provisioningState"] = "Succeeded"
        if parsed.type == "microsoft.storage/storageaccounts":
            account = parsed.pairs[-1][1]
            out["properties"].setdefault("primaryEndpoints", {
                "blob": f"https://{account}.blob.core.windows.net/",
                "queue": f"https://{account}.queue.core.windows.net/"})
        return out

    def _group_location(self, group: str | None) -> str | None:
        return self.groups.get((group or "").lower())

    def _parent_missing(self, rid: str, parsed: Parsed
                        ) -> tuple[int, dict[str, str], Any] | None:
        if parsed.group is not None and parsed.group.lower() not in self.groups:
            return _error(404, "ResourceGroupNotFound",
                          f"Resource group '{parsed.group}' could not be found.")
        head = rid.split("/providers/")[0] + "/providers/" + (parsed.provider or "")
        for i in range(1, len(parsed.pairs)):
            pair = (parsed.pairs[i - 1][0].lower(), parsed.pairs[i - 1][1].lower())
            head += f"/{parsed.pairs[i - 1][0]}/{parsed.pairs[i - 1][1]}"
            if pair in IMPLICIT:
                continue
            if head.lower() not in self.resources:
                return _error(404, "ParentResourceNotFound",
                              f"Can not perform requested operation on nested resource. "
                              f"Parent resource '{parsed.pairs[i - 1][1]}' not found.")
        return None

    def handle_arm(self, method: str, rid: str, query: dict[str, str],
                   body: dict[str, Any] | None) -> tuple[int, dict[str, str], Any]:
        parsed = _parse(rid)
        if parsed is None:
            return _error(400, "InvalidResourceId", f"'{rid}' is not a resource id")
        if parsed.subscription.lower() != self.subscription.lower():
            return _error(404, "SubscriptionNotFound",
                          f"The subscription '{parsed.subscription}' could not be found.")
        if parsed.action == "checknameavailability":
            return self._check_name(body or {})
        if parsed.provider is None and parsed.group is not None and not parsed.pairs:
            location = self._group_location(parsed.group)
            if location is None:
                return _error(404, "ResourceGroupNotFound",
                              f"Resource group '{parsed.group}' could not be found.")
            return 200, {}, {"id": rid, "name": parsed.group, "location": location}
        key = rid.lower()
        collection = parsed.pairs and parsed.pairs[-1][1] == ""
        if collection:
            if method != "GET":
                return _error(405, "MethodNotAllowed", "collections are read-only")
            missing = self._parent_missing(rid + "x", _parse(rid + "x") or parsed)
            if missing:
                return missing
            prefix = key.rstrip("/") + "/"
            items = [r for k, r in self.resources.items()
                     if k.startswith(prefix) and "/" not in k[len(prefix):]]
            return 200, {}, {"value": items}
        if method == "GET":
            found = self.resources.get(key)
            if found is None:
                return self._not_found(rid, parsed)
            return 200, {}, found
        if method == "PUT":
            return self._put(rid, parsed, body or {})
        if method == "PATCH":
            found = self.resources.get(key)
            if found is None:
                return self._not_found(rid, parsed)
            self.resources[key] = self._stored(rid, parsed, body or {}, found)
            return 200, {}, self.resources[key]
        if method == "DELETE":
            return self._delete(rid, parsed)
        return _error(405, "MethodNotAllowed", f"{method} is not supported")

    def _not_found(self, rid: str, parsed: Parsed) -> tuple[int, dict[str, str], Any]:
        missing = self._parent_missing(rid, parsed)
        if missing:
            return missing
        return _error(404, "ResourceNotFound",
                      f"The Resource '{parsed.type}/{parsed.pairs[-1][1]}' under resource group "
                      f"'{parsed.group}' was not found.")

    def _check_name(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        name = str(body.get("name", ""))
        if not (3 <= len(name) <= 24 and name.isalnum() and name == name.lower()):
            return 200, {}, {"nameAvailable": False, "reason": "AccountNameInvalid",
                             "message": f"{name} is not a valid storage account name."}
        if name in self.taken_elsewhere or self._account_anywhere(name):
            return 200, {}, {"nameAvailable": False, "reason": "AlreadyExists",
                             "message": f"The storage account named {name} is already taken."}
        return 200, {}, {"nameAvailable": True}

    def _account_anywhere(self, name: str) -> str | None:
        for key in self.resources:
            if key.endswith(f"/providers/microsoft.storage/storageaccounts/{name.lower()}"):
                return key
        return None

    def _put(self, rid: str, parsed: Parsed, body: dict[str, Any]
             ) -> tuple[int, dict[str, str], Any]:
        missing = self._parent_missing(rid, parsed)
        if missing:
            return missing
        key = rid.lower()
        old = self.resources.get(key)
        if parsed.type == "microsoft.storage/storageaccounts" and old is None:
            name = parsed.pairs[-1][1]
            if name in self.taken_elsewhere:
                return _error(409, "StorageAccountAlreadyTaken",
                              f"The storage account named {name} is already taken.")
            if self._account_anywhere(name):
                return _error(409, "StorageAccountAlreadyExists",
                              f"The storage account named {name} already exists under the "
                              "subscription.")
            if "location" not in body or "sku" not in body or "kind" not in body:
                return _error(400, "InvalidRequestContent", "location, sku and kind are required")
        stored = self._stored(rid, parsed, body, old)
        if old is not None or (parsed.type not in LOCATION_POLLED
                               and parsed.type not in ASYNC_POLLED):
            self.resources[key] = stored
            created = 200 if old is not None or parsed.type in CREATED_200 else 201
            return created, {}, stored
        # A long-running create: the resource reads "Creating" until the operation ends (it
        # ends when polled: a client that stops polling leaves it Creating, as an interrupted
        # `up` would see it; a PUT again answers 200 and finishes it).
        self.resources[key] = dict(stored, properties={**stored["properties"],
                                                       "provisioningState": "Creating"})
        op = uuid.uuid4().hex
        self._operations[op] = {"left": self.lro_polls, "rid": rid, "result": stored,
                                "delete": False}
        base = f"{self._base}/subscriptions/{self.subscription}/providers/{parsed.provider}"
        api = f"api-version={self._api}"
        if parsed.type in LOCATION_POLLED:
            return 202, {"Location": f"{base}/operations/{op}?monitor=true&{api}",
                         "Retry-After": "0"}, None
        creating = dict(stored, properties={**stored["properties"],
                                            "provisioningState": "Creating"})
        return 201, {"Azure-AsyncOperation": f"{base}/locations/x/operationresults/{op}?{api}",
                     "Retry-After": "0"}, creating

    def _delete(self, rid: str, parsed: Parsed) -> tuple[int, dict[str, str], Any]:
        key = rid.lower()
        if key in self.fail_deletes:
            return _error(500, "InternalServerError", "The delete failed; try again later.")
        if key not in self.resources:
            return 204, {}, None
        if parsed.type in ASYNC_POLLED:
            op = uuid.uuid4().hex
            self._operations[op] = {"left": self.lro_polls, "rid": rid, "result": None,
                                    "delete": True}
            base = f"{self._base}/subscriptions/{self.subscription}/providers/{parsed.provider}" \
                f"/locations/x/operationresults/{op}"
            return 202, {"Azure-AsyncOperation": f"{base}?api-version={self._api}",
                         "Location": f"{base}?monitor=true&api-version={self._api}",
                         "Retry-After": "0"}, None
        prefix = key + "/"
        for k in [k for k in self.resources if k == key or k.startswith(prefix)]:
            del self.resources[k]
        return 200, {}, None

    def handle_operation(self, op: str, monitor: bool) -> tuple[int, dict[str, str], Any]:
        state = self._operations.get(op)
        if state is None:
            return _error(404, "OperationNotFound", f"operation {op} not found")
        if state["left"] > 0:
            state["left"] -= 1
            if monitor:
                return 202, {"Location": f"{self._base}{self._path}", "Retry-After": "0"}, None
            return 200, {"Retry-After": "0"}, {"status": "InProgress"}
        key = state["rid"].lower()
        if state["delete"]:
            prefix = key + "/"
            for k in [k for k in self.resources if k == key or k.startswith(prefix)]:
                del self.resources[k]
        else:
            self.resources[key] = state["result"]
        if monitor:
            return (200, {}, state["result"]) if state["result"] is not None else (204, {}, None)
        return 200, {}, {"status": "Succeeded"}

    # -- Key Vault -------------------------------------------------------------------------
    def handle_vault(self, vault: str, rest: str, authorized: bool
                     ) -> tuple[int, dict[str, str], Any]:
        if not authorized:
            return 401, {"WWW-Authenticate":
                         f'Bearer authorization="https://login.microsoftonline.com/'
                         f'{self.tenant}", resource="https://vault.azure.net"'}, \
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a "
                           "Bearer or PoP token."}}
        parts = [p for p in rest.split("/") if p]
        if len(parts) < 2 or parts[0] != "secrets":
            return 400, {}, {"error": {"code": "BadParameter", "message": "not a secret path"}}
        value = self.secrets.get((vault, parts[1]))
        if value is None:
            return 404, {}, {"error": {"code": "SecretNotFound", "message":
                                       f"A secret with (name/id) {parts[1]} was not found in "
                                       "this key vault."}}
        # The id a real vault gives: its own host, /secrets/NAME/VERSION.
        sid = f"https://{vault}.vault.azure.net/secrets/{parts[1]}/{uuid.uuid4().hex}"
        return 200, {}, {"value": value, "id": sid, "attributes": {"enabled": True}}

    _base = ""
    _path = ""
    _api = ""


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Any]:
    return status, {}, {"error": {"code": code, "message": message}}


def _parse(rid: str) -> Parsed | None:
    segments = [s for s in rid.split("/") if s]
    if len(segments) < 2 or segments[0].lower() != "subscriptions":
        return None
    sub = segments[1]
    rest = segments[2:]
    group = None
    if rest and rest[0].lower() == "resourcegroups":
        if len(rest) < 2:
            return None
        group, rest = rest[1], rest[2:]
    if not rest:
        return Parsed(sub, group, None, [])
    if rest[0].lower() != "providers" or len(rest) < 2:
        return None
    provider = rest[1].lower()
    after = rest[2:]
    if len(after) == 1:
        return Parsed(sub, group, provider, [], action=after[0].lower())
    pairs = _pairs(after)
    return Parsed(sub, group, provider, [(t.lower(), n) for t, n in pairs],
                  provider_cased=rest[1], cased_pairs=pairs)


class _Handler(BaseHTTPRequestHandler):
    azure: FakeAzure
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {}, {"error": {"code": "InvalidJson", "message": "bad JSON"}})
            return
        fake = self.azure
        auth = self.headers.get("Authorization") or ""
        authorized = auth.startswith("Bearer ") and bool(auth[len("Bearer "):].strip())
        with fake._lock:
            fake.requests.append(Seen(self.command, url.path, query.get("api-version")))
            if url.path.startswith("/vaults/"):
                _, _, vault, *rest = url.path.split("/")
                status, headers, out = fake.handle_vault(vault, "/".join(rest), authorized)
                self._send(status, headers, out)
                return
            if not authorized:
                self._send(401, {}, {"error": {"code": "AuthenticationFailed", "message":
                                               "Authentication failed. The 'Authorization' "
                                               "header is missing."}})
                return
            if "api-version" not in query:
                self._send(400, {}, {"error": {"code": "MissingApiVersionParameter", "message":
                                               "The api-version query parameter (?api-version=)"
                                               " is required for all requests."}})
                return
            fake._base = fake.url
            fake._path = self.path
            fake._api = query["api-version"]
            segments = url.path.split("/")
            if "operations" in segments or "operationresults" in segments:
                status, headers, out = fake.handle_operation(segments[-1],
                                                             "monitor" in query)
            else:
                status, headers, out = fake.handle_arm(self.command, url.path, query, body)
        self._send(status, headers, out)

    def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST = _serve


def seed_team(fake: FakeAzure, group: str, *, kusto_cluster: str | None = None,
              data_connection: tuple[str, str, str] | None = None,
              eventhub_namespace: str | None = None, eventhubs: Iterable[str] = ()) -> None:
    """What the team owns already: a resource group, a Data Explorer cluster (with a database
    holding an Event Hubs data connection: ``(database, name, "Single"|"Multi")``) and an
    Event Hubs namespace with its event hubs."""
    fake.add_group(group)
    if kusto_cluster:
        cluster = fake.rid(group, "Microsoft.Kusto", ("clusters", kusto_cluster))
        fake.put(cluster, {"location": "westeurope", "sku": {"name": "Dev(No SLA)_Standard_E2a_v4",
                                                             "tier": "Basic"}})
        if data_connection:
            db, name, routing = data_connection
            fake.put(f"{cluster}/databases/{db}", {"kind": "ReadWrite",
                                                   "location": "westeurope"})
            fake.put(f"{cluster}/databases/{db}/dataConnections/{name}", {
                "kind": "EventHub", "location": "westeurope",
                "properties": {"databaseRouting": routing, "consumerGroup": "$Default",
                               "eventHubResourceId": "/x"}})
    if eventhub_namespace:
        ns = fake.rid(group, "Microsoft.EventHub", ("namespaces", eventhub_namespace))
        fake.put(ns, {"location": "westeurope", "sku": {"name": "Standard"}})
        for hub in eventhubs:
            fake.put(f"{ns}/eventhubs/{hub}", {"properties": {"partitionCount": 32}})
