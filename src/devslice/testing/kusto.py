"""A Kusto engine's management endpoint on 127.0.0.1, on the wire, for tests of code that
drives Data Explorer (the real ``azure-kusto-data`` client talks to it).

It speaks the documented protocol (kusto/api/rest/request and response) and keeps a catalogue
of databases and tables, so commands fail for the reasons a real engine's would.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NAME = r"(?:\[(?P<q>['\"])(?P<quoted>[^'\"\]]*)(?P=q)\]|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
CREATE_DB = re.compile(rf"\.create\s+database\s+{NAME}\s*(?P<storage>volatile|persist\s*\(.*\))?"
                       r"\s*(?P<ifnotexists>ifnotexists)?\s*", re.S)
DROP_DB = re.compile(rf"\.(?:drop|detach)\s+database\s+{NAME}\s*(?P<ifexists>ifexists)?\s*")
TABLE = re.compile(rf"\.(?P<verb>create|create-merge)\s+table\s+{NAME}\s*\(", re.S)
MAPPING = re.compile(rf"\.(?:create|create-or-alter)\s+table\s+{NAME}\s+ingestion\s", re.S)
DROP_TABLE = re.compile(rf"\.drop\s+table\s+{NAME}\s*(?P<ifexists>ifexists)?", re.S)


def _name(m: re.Match[str]) -> str:
    return m.group("quoted") if m.group("quoted") is not None else m.group("plain")


@dataclass
class Seen:
    """One request as the engine received it."""

    path: str
    db: str | None
    csl: str
    properties: dict[str, Any]
    authorization: str | None
    app: str | None
    request_id: str | None


@dataclass
class FakeKusto:
    """A Kusto engine's management endpoint, as far as these tests need one.

    It speaks the documented protocol (kusto/api/rest/request and response): ``POST
    /v1/rest/mgmt`` with a JSON body ``{"db", "csl", "properties"}`` (azure-kusto-data sends
    ``properties`` as a JSON string); answers are v1 ``{"Tables": [...]}``; failures are HTTP
    400 with Kusto's error object (``code``, ``message``, ``@type``, ``@message``,
    ``@context``, ``@permanent``, as the engine reports them). It keeps a catalogue of databases
    and tables, so commands fail for the reasons a real engine's would: a table created twice, a
    database that does not exist, a database created over one that does.
    """

    token: str | None = None  # when set, requests need "Authorization: Bearer <token>"
    databases: dict[str, set[str]] = field(default_factory=lambda: {"NetDefaultDB": set()})
    storage: dict[str, str] = field(default_factory=dict)  # persist (...) of each database
    seen: list[Seen] = field(default_factory=list)
    canned: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # answered first
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> FakeKusto:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                props = body.get("properties") or {}
                seen = Seen(self.path, body.get("db"), body.get("csl", ""),
                            json.loads(props) if isinstance(props, str) else props,
                            self.headers.get("Authorization"), self.headers.get("x-ms-app"),
                            self.headers.get("x-ms-client-request-id"))
                with fake.lock:
                    fake.seen.append(seen)
                    status, answer = fake.answer(seen)
                out = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("x-ms-activity-id", str(uuid.uuid4()))
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,),
                                       daemon=True)  # poll often: shutdown() waits for a poll
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def commands(self) -> list[tuple[str | None, str]]:
        return [(s.db, s.csl) for s in self.seen]

    # -- the engine ---------------------------------------------------------------------------
    def answer(self, r: Seen) -> tuple[int, dict[str, Any]]:
        if self.canned:
            return self.canned.pop(0)
        if r.path != "/v1/rest/mgmt":
            return 404, {}
        if self.token is not None and r.authorization != f"Bearer {self.token}":
            return 401, self.error(r, "Unauthorized", "The caller is not authenticated.")
        csl = r.csl.strip()
        if m := CREATE_DB.fullmatch(csl):
            name = _name(m)
            if name in self.databases:
                if m.group("ifnotexists"):
                    return 200, self.table(["DatabaseName"], [[name]])
                return 400, self.error(r, "BadRequest_EntityAlreadyExists",
                                       f"Entity '{name}' of kind 'Database' already exists.")
            self.databases[name] = set()
            persisted = (m.group("storage") or "").startswith("persist")
            if persisted:
                self.storage[name] = m.group("storage")
            return 200, self.table(
                ["DatabaseName", "PersistentPath", "Created", "StoresMetadata", "StoresData"],
                [[name, "", datetime.now(UTC).isoformat(), persisted, persisted]])
        if m := DROP_DB.fullmatch(csl):
            name = _name(m)
            if name not in self.databases and not m.group("ifexists"):
                return 400, self.error(r, "BadRequest_EntityNotFound",
                                       f"Entity ID '{name}' of kind 'Database' was not found.")
            self.databases.pop(name, None)
            return 200, self.table(["DatabaseName"], [[name]])
        if re.fullmatch(r"\.show\s+databases", csl):
            # the documented columns of `.show databases` (management/show-databases)
            return 200, self.table(
                ["DatabaseName", "PersistentStorage", "Version", "IsCurrent",
                 "DatabaseAccessMode", "PrettyName", "CurrentUserIsUnrestrictedViewer",
                 "DatabaseId"],
                [[name, self.storage.get(name, ""), "v1.0", name == (r.db or "NetDefaultDB"),
                  "ReadWrite", "", False, str(uuid.uuid5(uuid.NAMESPACE_DNS, name))]
                 for name in sorted(self.databases)])
        if not csl.startswith("."):
            return 400, self.error(r, "BadRequest_SyntaxError",
                                   f"Syntax error: Query could not be parsed: {csl[:20]!r}")
        tables = self.databases.get(r.db or "NetDefaultDB")
        if tables is None:
            return 400, self.error(r, "BadRequest_DatabaseNotExist",
                                   f"Database '{r.db}' was not found.")
        if m := TABLE.match(csl):
            name = _name(m)
            if name in tables and m.group("verb") == "create":
                return 400, self.error(r, "BadRequest_EntityAlreadyExists",
                                       f"Entity '{name}' of kind 'Table' already exists.")
            tables.add(name)
            return 200, self.table(["TableName", "DatabaseName"], [[name, r.db]])
        if (m := MAPPING.match(csl)) and _name(m) not in tables:
            return 400, self.error(r, "BadRequest_EntityNotFound",
                                   f"Entity ID '{_name(m)}' of kind 'Table' was not found.")
        if m := DROP_TABLE.match(csl):
            tables.discard(_name(m))
        if csl.startswith(".show tables"):
            return 200, self.table(["TableName", "DatabaseName"],
                                   [[t, r.db] for t in sorted(tables)])
        return 200, self.table(["Result"], [["Completed"]])

    @staticmethod
    def table(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
        types = {bool: ("Boolean", "bool")}
        cols = [{"ColumnName": c, "DataType": types.get(type(rows[0][i]), ("String",))[0]
                 if rows else "String",
                 "ColumnType": types.get(type(rows[0][i]), ("", "string"))[1] if rows else "string"}
                for i, c in enumerate(columns)]
        return {"Tables": [{"TableName": "Table_0", "Columns": cols, "Rows": rows}]}

    @staticmethod
    def error(r: Seen, code: str, message: str) -> dict[str, Any]:
        return {"error": {
            "code": code,
            "message": "Request is invalid and cannot be executed.",
            "@type": "Kusto.Data.Exceptions.KustoBadRequestException",
            "@message": message,
            "@context": {"timestamp": datetime.now(UTC).isoformat(), "serviceAlias": "FAKE",
                         "clientRequestId": r.request_id, "activityId": str(uuid.uuid4())},
            "@permanent": True,
        }}
