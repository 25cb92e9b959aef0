"""A slice's Data Explorer database: apply the team's KQL schema script to it, or start over.

    from devslice.sdk import SliceContext
    from devslice.sdk.dataexplorer import DataExplorer, split_kql

    ctx = SliceContext.from_env()
    with DataExplorer.from_context(ctx) as adx:
        adx.reset(ctx.data_explorer_database)
        adx.apply(ctx.data_explorer_database, split_kql(Path("schema.kql").read_text()))

Each developer gets one logical database in the team's cluster (``db4ab``); dropping it,
re-creating it and applying the schema is how a developer starts over ("a script can re-create
the database in a matter of a few minutes", the seed article). Shared environments have no
slice database, and everything here refuses to run without one.

Kusto behaviour this module relies on, and where it is written down:

- Scripts: Kusto.Cli in block mode delimits "queries and commands ... by an empty input line
  only", and "interprets a ``//`` string that begins new line as a comment line"
  (learn.microsoft.com, kusto/tools/kusto-cli). Kusto.Explorer runs the block under the cursor
  the same way.
- Multi-line string literals are fenced by ```` ``` ```` (or ``~~~``) and may hold blank lines;
  every other string literal ends at a line break (Kusto-Query-Language,
  ``src/Kusto.Language/Parser/TokenParser.cs``, ``ScanStringLiteral``). Verbatim strings
  (``@"..."``) escape a quote by doubling it and take backslashes literally.
- Names that are not plain identifiers are written ``['name']``
  (``KustoFacts.GetBracketedName`` in the same repository).
- ``.create database NAME persist (PATH, ...) | volatile`` is an engine command: the Kusto
  emulator accepts it (learn.microsoft.com, data-explorer/kusto-emulator-install), Azure Data
  Explorer clusters do not: there a database is an Azure resource (``az kusto database
  create``).
- ``.drop database NAME`` is the engine's hidden alias of ``.detach database NAME``
  (``EngineCommandInfos.cs``: ``(detach|#drop) database DatabaseName [ifexists]``), and the
  emulator will not create a database over folders that already exist ("This command requires
  that the folders don't already exist"). A persisted database therefore gets fresh folders
  each time it is re-created; the default, ``volatile``, has no folders at all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING

from devslice.errors import DevsliceError
from devslice.sdk.context import DEFAULT_PREFIX
from devslice.slices.names import RULES

if TYPE_CHECKING:
    from azure.kusto.data import ClientRequestProperties, KustoClient
    from azure.kusto.data.response import KustoResponseDataSet

    from devslice.sdk.context import SliceContext

# The database cluster-level commands run in when a request names none (Kusto.Cli docs: "the
# default 'NetDefaultDB' database will be assumed"; azure-kusto-data uses the same default).
ADMIN_DATABASE = "NetDefaultDB"
APPLICATION = "devslice"  # x-ms-app on every request, so `.show commands` says who ran what


# -- errors -----------------------------------------------------------------------------------


class DataExplorerError(DevsliceError):
    """Something about the slice's Data Explorer database went wrong.

    DataExplorerError
    ├── NoSliceDatabase            no slice database: a shared environment, never touched
    ├── DataExplorerNotConfigured  no cluster URL, or not an http(s) URL
    ├── InvalidDatabaseName        a name that breaks Data Explorer's rules (or tries to inject)
    ├── KqlScriptError             the script cannot be split into commands (file:line)
    ├── DataExplorerUnreachable    the cluster cannot be reached
    ├── DataExplorerAccessDenied   sign-in failed, or the identity lacks the role
    └── CommandRejected            the cluster refused a command (which one, and why)
    """


class NoSliceDatabase(DataExplorerError):
    pass


class DataExplorerNotConfigured(DataExplorerError):
    pass


class InvalidDatabaseName(DataExplorerError):
    exit_code = 2


class KqlScriptError(DataExplorerError):
    exit_code = 2


class DataExplorerUnreachable(DataExplorerError):
    pass


class DataExplorerAccessDenied(DataExplorerError):
    pass


class CommandRejected(DataExplorerError):
    """The cluster answered a command with an error; ``code`` is Kusto's (``BadRequest_...``)."""

    def __init__(self, message: str, hint: str | None = None, code: str | None = None,
                 server_message: str = "") -> None:
        super().__init__(message, hint)
        self.code = code
        self.server_message = server_message


# -- scripts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KqlCommand:
    """One command of a script, with the line it starts on so errors can point at it."""

    text: str
    line: int = 0  # 1-based line in ``source``; 0 when the command did not come from a file
    source: str = "<script>"

    @property
    def first_line(self) -> str:
        return self.text.strip().split("\n", 1)[0].strip()

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else ""


FENCES = ("```", "~~~")
_CLOSING = {")": "(", "]": "[", "}": "{"}


@dataclass
class _Lexer:
    """What carries over from one line to the next: an open fenced literal, open brackets.

    Only as much of KQL is lexed as splitting needs: comments, the three kinds of string
    literal, and brackets, so that a bracket inside a string or comment is not counted.
    """

    fence: str | None = None
    fence_line: int = 0
    open: list[tuple[str, int]] = field(default_factory=list)

    def scan(self, text: str, line: int) -> None:
        i, n = 0, len(text)
        while i < n:
            if self.fence is not None:
                end = text.find(self.fence, i)
                if end < 0:
                    return
                i, self.fence = end + len(self.fence), None
                continue
            if text.startswith("//", i):
                return  # a comment runs to the end of the line
            fence = next((f for f in FENCES if text.startswith(f, i)), None)
            if fence is not None:
                self.fence, self.fence_line = fence, line
                i += len(fence)
                continue
            ch = text[i]
            if ch in "'\"":
                i = _string_end(text, i, verbatim=i > 0 and text[i - 1] == "@")
                continue
            if ch in "([{":
                self.open.append((ch, line))
            elif ch in _CLOSING and self.open and self.open[-1][0] == _CLOSING[ch]:
                self.open.pop()
            i += 1


def _string_end(text: str, start: int, verbatim: bool) -> int:
    """Index just past the string literal starting at ``start`` (or the line's end)."""
    quote, i, n = text[start], start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            if verbatim and text.startswith(quote * 2, i):
                i += 2  # @"a""b": a doubled quote stays inside a verbatim string
                continue
            return i + 1
        i += 2 if ch == "\\" and not verbatim else 1
    return n


def parse_kql(script: str, source: str = "<script>") -> list[KqlCommand]:
    """Split a Kusto script into its commands, each with the line it starts on.

    Lines end at CR LF, CR, LF, U+2028 or U+2029, as in Kusto.Language (a file saved with
    classic Mac line endings is many lines, not one command). Blank lines separate commands;
    ``//`` lines are dropped; a command may span many lines; a
    ```` ``` ```` or ``~~~`` literal is kept whole, blank lines and ``//`` lines included. A blank
    line inside an open ``(``, ``[`` or ``{`` is an error rather than a split: Kusto.Explorer
    would cut the command there and send both halves, which fail with a confusing message.
    """
    commands: list[KqlCommand] = []
    lexer = _Lexer()
    lines: list[str] = []
    start = 0

    def flush() -> None:
        if lines:
            commands.append(KqlCommand("\n".join(lines), start, source))
        lines.clear()
        lexer.open.clear()

    for number, line in enumerate(_LINE_BREAK.split(script.removeprefix("\ufeff")), start=1):
        if lexer.fence is None:
            stripped = line.strip()
            if not stripped:
                if lines and lexer.open:
                    bracket, opened = lexer.open[-1]
                    raise KqlScriptError(
                        f"{source}:{number}: a blank line inside the command that starts at line "
                        f"{start}, whose {bracket!r} from line {opened} is still open",
                        hint="in a Kusto script a blank line ends a command; remove it (or put "
                        "the text in a ``` multi-line string)",
                    )
                flush()
                continue
            if stripped.startswith("//"):
                continue
        if not lines:
            start = number
        lines.append(line)
        lexer.scan(line, number)
    if lexer.fence is not None:
        raise KqlScriptError(
            f"{source}:{lexer.fence_line}: the multi-line string opened with {lexer.fence} "
            f"is never closed",
            hint=f"close it with {lexer.fence}; everything after it was read as part of it",
        )
    flush()
    return commands


# Where Kusto.Language ends a line (TextFacts.IsLineBreakStart): CR LF, CR, LF, U+2028, U+2029.
_LINE_BREAK = re.compile("\r\n|\r|\n|\u2028|\u2029")


def split_kql(script: str, source: str = "<script>") -> list[str]:
    """The commands of a Kusto script, in order (see :func:`parse_kql` for the rules)."""
    return [c.text for c in parse_kql(script, source)]


# -- names ------------------------------------------------------------------------------------


def quote_database(name: str | None) -> str:
    """``name`` as a KQL entity name (``['db4ab']``), after checking it is a database name.

    Validation comes first and is what makes this safe: a valid name holds only letters,
    digits, ``_ . -`` and spaces, so it can neither close the brackets nor start a command.
    """
    if not name:
        raise NoSliceDatabase(
            f"no slice database ({DEFAULT_PREFIX}DATAEXPLORER_DATABASE is not set): this looks "
            "like a shared environment",
            hint="devslice only changes a slice's own database; claim a slice (`devslice slice "
            "claim`) and export its contract (`eval \"$(devslice env)\"`)",
        )
    problem = RULES["dataExplorerDatabase"].problem(name)
    if problem:
        raise InvalidDatabaseName(problem, hint="check dataExplorer.databaseTemplate in "
                                  "devslice.yaml, or your override in devslice.local.yaml")
    return f"['{name}']"


def _slice_database(database: str | None) -> str:
    quote_database(database)
    assert database is not None  # quote_database refuses None
    return database


def _verbatim(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise DataExplorerNotConfigured(f"{text!r}: a storage path cannot hold a line break")
    return '@"' + text.replace('"', '""') + '"'


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- the client -------------------------------------------------------------------------------


def plan_apply(database: str | None, commands: Iterable[str | KqlCommand]) -> list[KqlCommand]:
    """The commands :meth:`DataExplorer.apply` would run, checked; nothing is sent.

    Refuses a missing database (a shared environment), an invalid name, and any command that
    is not a management command, so that a bad script fails before its first command runs.
    """
    _slice_database(database)
    todo = [c if isinstance(c, KqlCommand) else KqlCommand(c) for c in commands]
    for i, c in enumerate(todo, start=1):
        if not c.text.lstrip().startswith("."):
            where = f"{c.where}: " if c.where else ""
            raise KqlScriptError(
                f"{where}command {i} is not a management command: {_short(c.first_line)}",
                hint="a schema script holds management commands, which start with a dot "
                "(.create-merge table ...); nothing was run",
            )
    return todo


@dataclass(frozen=True)
class AppliedCommand:
    """A command the cluster accepted: its place in the script (1-based) and the command."""

    index: int
    command: KqlCommand


def connect(cluster_url: str) -> KustoClient:
    """The KustoClient devslice builds when none is given.

    ``http://`` is the Kusto emulator, which "doesn't support HTTPS or Microsoft Entra
    authentication" (kusto-emulator-install): no sign-in. ``https://`` is a cluster: a token
    from DefaultAzureCredential (az login, environment, managed identity), as the ledger does.
    """
    # lazy: azure-kusto-data, ~220 ms, only when used
    from azure.kusto.data import KustoClient, KustoConnectionStringBuilder

    if cluster_url.startswith("http://"):
        kcsb = KustoConnectionStringBuilder.with_no_authentication(cluster_url)
    else:
        from azure.identity import DefaultAzureCredential  # lazy: azure-identity, ~180 ms

        kcsb = KustoConnectionStringBuilder.with_azure_token_credential(
            cluster_url, DefaultAzureCredential())
    return KustoClient(kcsb)


def _check_url(url: str) -> str:
    if not re.match(r"https?://[^/\s]+", url):
        raise DataExplorerNotConfigured(
            f"{url!r} is not a Data Explorer cluster URL",
            hint="check dataExplorer.clusterUrl in devslice.yaml: expected "
            "https://<cluster>.<region>.kusto.windows.net, or http://localhost:8080 for the "
            "Kusto emulator",
        )
    return url.rstrip("/")


class DataExplorer:
    """Management commands against one cluster, only ever aimed at a slice's database.

    ``client`` is any azure-kusto-data ``KustoClient``; without one, :func:`connect` builds
    it on first use and :meth:`close` closes it (a client passed in is the caller's to close).
    ``persist_root`` makes :meth:`reset` persist the database under that folder of the engine
    (``/kustodata/dbs`` in the emulator's docs) instead of creating it ``volatile``.
    """

    def __init__(
        self,
        cluster_url: str,
        client: KustoClient | None = None,
        *,
        persist_root: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.cluster_url = _check_url(cluster_url)
        self._client = client
        self._owns_client = client is None
        self.persist_root = persist_root.rstrip("/") if persist_root else None
        self.clock = clock

    @classmethod
    def from_context(cls, ctx: SliceContext, client: KustoClient | None = None, *,
                     persist_root: str | None = None) -> DataExplorer:
        """The cluster a service's contract names (``LOCAL_DEV_DATAEXPLORER_CLUSTERURL``)."""
        if not ctx.data_explorer_cluster_url:
            raise DataExplorerNotConfigured(
                f"no Data Explorer cluster: {DEFAULT_PREFIX}DATAEXPLORER_CLUSTERURL is not set",
                hint="set dataExplorer.clusterUrl in devslice.yaml and export the contract "
                "again (`eval \"$(devslice env)\"`)",
            )
        return cls(ctx.data_explorer_cluster_url, client, persist_root=persist_root)

    @property
    def client(self) -> KustoClient:
        if self._client is None:
            self._client = connect(self.cluster_url)
        return self._client

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> DataExplorer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------------
    def apply(
        self,
        database: str | None,
        commands: Iterable[str | KqlCommand],
        on_applied: Callable[[AppliedCommand], None] | None = None,
    ) -> list[AppliedCommand]:
        """Run management commands in the slice's database, in order; stop at the first failure.

        Kusto runs each command on its own and rolls nothing back (see ``.execute database
        script``: "sequential, but non-transactional"), so the error says which command failed
        and how many ran before it; scripts written with ``.create-merge`` and
        ``.create-or-alter`` can simply be applied again.
        """
        todo = plan_apply(database, commands)  # before any call: no shared env, no bad name
        assert database is not None
        done: list[AppliedCommand] = []
        for i, c in enumerate(todo, start=1):
            where = f"{c.where}: " if c.where else ""
            what = f"command {i} of {len(todo)} ({where}{_short(c.first_line)})"
            self._execute(database, c.text, "apply", what, applied=i - 1)
            step = AppliedCommand(i, c)
            done.append(step)
            if on_applied is not None:
                on_applied(step)
        return done

    def databases(self) -> list[str]:
        """The names of the cluster's databases (``.show databases``)."""
        response = self._execute(ADMIN_DATABASE, ".show databases", "show", "listing databases",
                                 applied=None)
        return sorted(str(row["DatabaseName"]) for row in response.primary_results[0])

    def create_command(self, database: str | None) -> str:
        """``.create database`` for the slice's database: ``volatile``, or ``persist`` under
        ``persist_root`` in fresh folders (the emulator refuses folders that exist)."""
        return self.reset_commands(database)[1]

    def reset_commands(self, database: str | None) -> list[str]:
        """What :meth:`reset` would run for ``database``; nothing is sent."""
        database = _slice_database(database)
        name = quote_database(database)
        if self.persist_root is None:
            storage = "volatile"
        else:
            # Fresh folders each time: `.drop database` only detaches, leaving the old ones.
            folder = f"{self.persist_root}/{database}/{self.clock():%Y%m%dT%H%M%S%fZ}"
            storage = f"persist ({_verbatim(folder + '/md')}, {_verbatim(folder + '/data')})"
        return [f".drop database {name} ifexists", f".create database {name} {storage}"]

    def reset(self, database: str | None) -> list[str]:
        """Drop the slice's database and create it again, empty; returns the commands run.

        Both are cluster-level commands: they run in ``NetDefaultDB`` (what a request that
        names no database gets), never in the database being dropped.
        """
        commands = self.reset_commands(database)
        for i, csl in enumerate(commands, start=1):
            try:
                self._execute(ADMIN_DATABASE, csl, "reset",
                              f"step {i} of {len(commands)} of re-creating database "
                              f"{database!r} ({csl.split(' (', 1)[0]})", applied=None)
            except DataExplorerError as exc:
                if self.cluster_url.startswith("https://") and isinstance(
                        exc, CommandRejected | DataExplorerAccessDenied):
                    exc.hint = _ARM_HINT  # whatever the cluster said, this is the way out
                if i > 1:
                    exc.hint = _join(exc.hint, "the database was dropped and is not there now")
                raise
        return commands

    # -- one request ----------------------------------------------------------------------------
    def _execute(self, database: str, csl: str, verb: str, what: str,
                 applied: int | None) -> KustoResponseDataSet:
        from azure.kusto.data.exceptions import KustoError  # lazy: azure-kusto-data, ~220 ms

        try:
            return self.client.execute_mgmt(database, csl, _properties(verb))
        except KustoError as exc:
            raise _translate(exc, self.cluster_url, what, applied) from exc
        except OSError as exc:  # requests' errors are OSErrors, e.g. fetching the sign-in info
            raise DataExplorerUnreachable(
                f"cannot reach Data Explorer at {self.cluster_url} ({what}): {exc}",
                hint=_UNREACHABLE_HINT) from exc


def _properties(verb: str) -> ClientRequestProperties:
    from azure.kusto.data import ClientRequestProperties  # lazy: azure-kusto-data, ~220 ms

    props = ClientRequestProperties()
    props.application = APPLICATION
    props.client_request_id = f"{APPLICATION}.adx.{verb};{uuid.uuid4()}"
    return props


def _short(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


_UNREACHABLE_HINT = ("check dataExplorer.clusterUrl in devslice.yaml and your network; for the "
                     "Kusto emulator, check that its container runs (docker ps)")
_ARM_HINT = ("`.create database` and `.drop database` work on the Kusto emulator; on an Azure "
             "Data Explorer cluster a database is an Azure resource: re-create it with `az kusto "
             "database create` (or drop its tables and apply the schema again)")
_HINTS = {
    "BadRequest_EntityAlreadyExists": "write the script with idempotent commands "
    "(.create-merge table, .create-or-alter function, .create-or-alter ... mapping) so that it "
    "can be applied again",
    "BadRequest_DatabaseNotExist": "the slice's database does not exist yet; "
    "`devslice adx reset` creates it (on the Kusto emulator)",
    "BadRequest_SyntaxError": "check the command's syntax; remember that in a script a blank "
    "line ends a command",
}


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "http_response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return status if isinstance(status, int) else None


def _join(*parts: str | None) -> str | None:
    text = "; ".join(p for p in parts if p)
    return text or None


def _applied_note(applied: int | None) -> str | None:
    if not applied:
        return None
    many = applied != 1
    return (f"the {applied} command{'s' * many} before it {'were' if many else 'was'} applied "
            "(Kusto rolls nothing back)")


def _translate(exc: Exception, url: str, what: str, applied: int | None) -> DataExplorerError:
    """A devslice error for an azure-kusto-data one, saying what was being done and what next."""
    from azure.kusto.data.exceptions import (  # lazy: azure-kusto-data, ~220 ms, only when used
        KustoApiError,
        KustoAuthenticationError,
        KustoClientInvalidConnectionStringException,
        KustoNetworkError,
        KustoServiceError,
        KustoThrottlingError,
    )

    note = _applied_note(applied)
    if isinstance(exc, KustoNetworkError):
        cause = exc.__cause__ or exc.__context__
        reason = f": {cause}" if cause else ""
        return DataExplorerUnreachable(f"cannot reach Data Explorer at {url} ({what}){reason}",
                                       hint=_join(_UNREACHABLE_HINT, note))
    if isinstance(exc, KustoAuthenticationError):
        return DataExplorerAccessDenied(
            f"could not sign in to Data Explorer at {url} ({what}): {exc.exception}",
            hint="sign in with `az login` (devslice uses DefaultAzureCredential: az login, "
            "environment variables or a managed identity)")
    if isinstance(exc, KustoClientInvalidConnectionStringException):
        return DataExplorerNotConfigured(
            f"azure-kusto-data refuses {url}: {exc}",
            hint="dataExplorer.clusterUrl must be a Data Explorer endpoint that Microsoft "
            "trusts, or http:// for the Kusto emulator")
    if isinstance(exc, KustoThrottlingError):
        return DataExplorerError(f"Data Explorer at {url} is throttling requests ({what})",
                                 hint=_join("wait a minute and run the command again", note))
    if _status(exc) in (401, 403):
        return DataExplorerAccessDenied(
            f"Data Explorer at {url} refused {what}: {_server_message(exc)}",
            hint=_join("sign in with `az login`; applying a schema needs the Database Admin "
                       "role on the slice's database, re-creating it needs All Databases Admin "
                       "on the cluster", note))
    if isinstance(exc, KustoServiceError):
        code = exc.get_api_error().code if isinstance(exc, KustoApiError) else None
        message = _server_message(exc)
        hint = _HINTS.get(code or "")
        tag = f" [{code}]" if code else ""
        return CommandRejected(f"Data Explorer rejected {what}: {message}{tag}",
                               _join(hint, note), code, message)
    return DataExplorerError(f"Data Explorer at {url} failed {what}: {exc}", hint=note)


def _server_message(exc: Exception) -> str:
    from azure.kusto.data.exceptions import KustoServiceError  # lazy: azure-kusto-data, ~220 ms

    if isinstance(exc, KustoServiceError):
        return exc.message_text.strip() or "no message"
    return str(exc)


__all__ = [
    "ADMIN_DATABASE", "AppliedCommand", "CommandRejected", "DataExplorer",
    "DataExplorerAccessDenied", "DataExplorerError", "DataExplorerNotConfigured",
    "DataExplorerUnreachable", "InvalidDatabaseName", "KqlCommand", "KqlScriptError",
    "NoSliceDatabase", "connect", "parse_kql", "plan_apply", "quote_database", "split_kql",
]
