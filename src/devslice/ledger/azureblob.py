"""The team ledger: one JSON document in Azure Blob Storage, updated optimistically.

Every change reads the document with its ETag, applies a pure operation, and writes it back
with ``If-Match``; a 412 means someone wrote in between, so it reads again and retries. A
document devslice did not write (bad JSON, other apiVersion/kind/team) is reported and never
overwritten.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from devslice.errors import LedgerBusy, LedgerCorrupt, LedgerUnreachable
from devslice.ledger.base import API_VERSION, KIND, Ledger
from devslice.ledger.records import (
    Problem,
    overlaps,
    parse_history,
    parse_slices,
    state_extra,
)
from devslice.slices.model import Change, LedgerState
from devslice.slices.names import HandleRule
from devslice.slices.operations import Transition

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from devslice.config.model import AzureBlobLedger as Settings

T = TypeVar("T")

BACKOFF_BASE = 0.005  # seconds: the shortest pause after losing a race
BACKOFF_CAP = 0.25  # seconds: the longest
HISTORY_KEPT = 500  # the document stays small; older lines fall off
IDENTITY = ("apiVersion", "kind", "team")


def backoff(previous: float, rand: Callable[[float, float], float] = random.uniform) -> float:
    """The pause before the next attempt after a lost race ("decorrelated jitter": random
    between the base and three times the previous pause, capped). Pauses grow while the
    writer keeps losing, yet each is drawn afresh, so writers that lost together spread out,
    and one that lost often is not held at the cap (full jitter on a doubling cap kept the
    unluckiest writers sleeping up to 0.5 s: claim p95 at 16 writers, issue 17)."""
    return min(BACKOFF_CAP, rand(BACKOFF_BASE, max(BACKOFF_BASE, previous * 3)))


class AzureBlobLedger(Ledger):
    shared = True  # the team's blob: every machine sees every claim
    history_kept = HISTORY_KEPT

    def __init__(
        self,
        container: ContainerClient,
        blob: str,
        team: str,
        max_attempts: int = 200,
        handles: HandleRule | None = None,
    ) -> None:
        self.container = container
        self.blob = blob
        self.team = team
        self.handles = handles or HandleRule()
        self.max_attempts = max_attempts
        # Never a secret here: a SAS token rides in the URL's query, so drop the query.

        self.location = f"{urlsplit(container.url)._replace(query='').geturl()}/{blob}"
        # One blob client for every read and write: the container's would build a new one
        # (and its pipeline) per call.
        self._blob = container.get_blob_client(blob)

    @classmethod
    def from_settings(cls, settings: Settings, team: str, base_dir: Path,
                      handles: HandleRule | None = None) -> AzureBlobLedger:
        # lazy: the Azure Storage SDK (~300 ms), only when this ledger is opened
        from azure.storage.blob import ContainerClient, LinearRetry

        # lazy: secrets reach Key Vault, only for a connection string reference
        from devslice.secrets import resolve

        # The SDK's default retry waits 15 s, then 18 s; an unreachable ledger should say so
        # in a few seconds, not a minute.
        options: dict[str, Any] = {
            "retry_policy": LinearRetry(backoff=1, random_jitter_range=0, retry_total=2),
            "connection_timeout": 5,
        }
        if settings.connection_string is not None:
            secret = resolve(settings.connection_string, base_dir)
            try:
                client = ContainerClient.from_connection_string(
                    secret.reveal(), settings.container, **options
                )
            except ValueError:  # the SDK's message may quote the string: drop it
                raise LedgerUnreachable(
                    f"the ledger's connection string ({secret.source}) is malformed",
                    hint="expected DefaultEndpointsProtocol=...;AccountName=...;AccountKey=..."
                    " or a BlobEndpoint with a SAS",
                ) from None
        else:
            # lazy: azure-identity, only for a sign-in without a connection string
            from azure.identity import DefaultAzureCredential

            client = ContainerClient(
                str(settings.account_url), settings.container,
                credential=DefaultAzureCredential(), **options,
            )
        return cls(client, settings.blob, team, handles=handles)

    def close(self) -> None:
        self.container.close()

    # -- the document ---------------------------------------------------------------------
    def _download(self) -> tuple[dict[str, Any] | None, str | None]:
        # lazy: azure.core with the Storage SDK, only when this ledger is used
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self._call(self._blob.download_blob)
        except ResourceNotFoundError:
            return None, None
        raw = self._call(downloader.readall)
        etag = downloader.properties.etag
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise self._corrupt(f"is not JSON ({exc.__class__.__name__})") from exc
        if not isinstance(doc, dict):
            raise self._corrupt("is not a JSON object")
        for key, value in (("apiVersion", API_VERSION), ("kind", KIND), ("team", self.team)):
            if doc.get(key) != value:
                raise self._corrupt(f"has {key} {str(doc.get(key))[:60]!r}, expected {value!r}")
        return doc, etag

    def _corrupt(self, what: str) -> LedgerCorrupt:
        return LedgerCorrupt(
            f"the ledger document {self.location} {what}",
            hint="devslice never overwrites a document it did not write; fix or move the blob, "
            "or set ledger.blob to another name",
        )

    def _parse(self, doc: dict[str, Any] | None) -> tuple[LedgerState, list[Change],
                                                          list[Problem]]:
        """The whole document, checked on every read: slices, the state's other fields and
        history (issue 12: a string history was split into characters and written back)."""
        if doc is None:
            return LedgerState(), [], []
        slices = doc.get("slices", {})
        if not isinstance(slices, dict):
            return LedgerState(), [], [Problem("slices", f"is {type(slices).__name__}, not "
                                               "an object of slices by handle")]
        extra = {k: v for k, v in doc.items() if k not in (*IDENTITY, "slices", "history")}
        state, problems = parse_slices(slices, self.handles, extra)
        history, found = parse_history(doc.get("history", []))
        return state, history, problems + found

    def _state(self, doc: dict[str, Any] | None) -> tuple[LedgerState, list[Change]]:
        state, history, problems = self._parse(doc)
        if problems:
            raise self.invalid(problems)
        return state, history

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Translate transport and auth failures into LedgerUnreachable."""
        # lazy: azure.core with the Storage SDK, only when this ledger is used
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceModifiedError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        try:
            return fn()
        except (ResourceNotFoundError, ResourceModifiedError):
            raise
        except ServiceRequestError as exc:
            raise LedgerUnreachable(
                f"cannot reach the ledger at {self.location}",
                hint="check the network and ledger.accountUrl; `devslice doctor` tests it",
            ) from exc
        except (ClientAuthenticationError, HttpResponseError) as exc:
            if exc.status_code in (409, 412):
                raise
            if isinstance(exc, ClientAuthenticationError) or exc.status_code in (401, 403):
                raise LedgerUnreachable(
                    f"the ledger at {self.location} refused our credentials",
                    hint="check the connection string or `az login`; the identity needs "
                    "Storage Blob Data Contributor on the container",
                ) from exc
            raise LedgerUnreachable(
                f"the ledger at {self.location} answered {exc.status_code}: {exc.reason}",
            ) from exc

    # -- the Ledger interface -----------------------------------------------------------------
    def read(self) -> LedgerState:
        doc, _ = self._download()
        return self._state(doc)[0]

    def history(self, handle: str | None = None, limit: int | None = 50) -> list[Change]:
        doc, _ = self._download()
        rows = self._state(doc)[1]
        if handle is not None:
            rows = [c for c in rows if c.handle == handle]
        return rows[-limit:] if limit is not None else rows

    def check(self) -> list[Problem]:
        try:
            doc, _ = self._download()
        except LedgerCorrupt as exc:
            return [Problem("the document", exc.message)]
        state, _, problems = self._parse(doc)
        return problems + overlaps(state.slices.values())

    def transact(self, operation: Callable[[LedgerState], Transition[T]]) -> Transition[T]:
        # lazy: azure.core with the Storage SDK, only when this ledger is used
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )

        pause = 0.0
        for _attempt in range(self.max_attempts):
            doc, etag = self._download()
            before, history = self._state(doc)
            result = operation(before)
            if not result.changes and result.state == before:
                return result  # nothing to write (an idempotent claim, an empty gc)
            body = json.dumps({
                "apiVersion": API_VERSION,
                "kind": KIND,
                "team": self.team,
                **state_extra(result.state),
                "slices": {h: s.model_dump(mode="json") for h, s in result.state.slices.items()},
                "history": [c.model_dump(mode="json")
                            for c in [*history, *result.changes][-HISTORY_KEPT:]],
            })  # no indent: json's C encoder (with indent it is pure Python)
            try:
                self._write(body, etag)
                return result
            except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError):
                # Someone wrote between our read and write: read again and retry, after a
                # pause that keeps a crowd of writers from colliding in lockstep.
                pause = backoff(pause)
                time.sleep(pause)
        raise LedgerBusy(
            f"gave up after {self.max_attempts} attempts: other writers kept changing "
            f"{self.location}",
            hint="try again in a moment",
        )

    def _write(self, body: str, etag: str | None) -> None:
        """Create the document if it is missing, else replace it if nobody changed it."""
        # lazy: azure.core with the Storage SDK, only when this ledger is used
        from azure.core import MatchConditions

        # lazy: azure.core with the Storage SDK, only when this ledger is used
        from azure.core.exceptions import ResourceExistsError

        if etag is None:
            with contextlib.suppress(ResourceExistsError):
                self._call(self.container.create_container)
            self._call(lambda: self._blob.upload_blob(
                body, overwrite=False, match_condition=MatchConditions.IfMissing))
        else:
            self._call(lambda: self._blob.upload_blob(
                body, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified))
