"""What devslice accepts from a ledger: every record is checked before anything acts on it.

A ledger is written by whoever can write the blob or the file, so a record in it is input,
not truth. A handle becomes a file name (``.devslice/HANDLE.env``) and part of every derived
name; a namespace and partitions pick where events go; owners and actors reach the terminal.
Each is checked with the rules a claim applies (issue 12: a planted ``../../pwn`` slice made
``devslice env -o dotenv`` write outside ``.devslice``). A ledger holding an invalid
record is reported (which record, what is wrong) and never acted on.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from devslice.slices.model import Change, LedgerState, Slice
from devslice.slices.names import HandleRule

# The rules devslice.yaml applies to eventHubs.namespaces (config/model.py), which is where
# a claim's namespace and partitions come from.
NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]")
MAX_TEXT = 512  # owners, actors and details: e-mail addresses and one-line notes


def max_partitions() -> int:
    # lazy: config.model builds pydantic models; records are checked without them
    from devslice.config.model import MAX_PARTITIONS

    return MAX_PARTITIONS


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a ledger: which part, and what."""

    subject: str  # "slice '../../pwn'", "history line 3", "the file"
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


def text_problem(value: str, what: str) -> str | None:
    """Why a free-text field (owner, actor) cannot be shown or stored, or None.

    Control and format characters would let a record rewrite the terminal (escape sequences)
    or hide text (bidirectional overrides) when `slice list` prints it.
    """
    if len(value) > MAX_TEXT:
        return f"{what} has {len(value)} characters; at most {MAX_TEXT} are allowed"
    if value.isprintable():  # no Cc or Cf in it (C speed: every read checks every line)
        return None
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf")), None)
    if bad is not None:
        return f"{what} {value[:60]!r} holds the control character U+{ord(bad):04X}"
    return None


def _when_problems(model: BaseModel) -> list[str]:
    """Times without a zone cannot be compared with the clock (a TypeError at gc)."""
    return [f"{to_camel(name)} {value.isoformat()} has no time zone"
            for name, value in model if isinstance(value, datetime) and value.tzinfo is None]


def slice_problems(key: str, s: Slice, handles: HandleRule) -> list[str]:
    """Everything wrong with one slice record, by the rules a claim applies."""
    out: list[str] = []
    problem = handles.problem(key)
    if problem:
        out.append(problem)
    if s.handle != key:
        out.append(f"is stored under {key!r} but names itself {s.handle!r}")
    lease = s.event_hubs
    if not NAMESPACE.fullmatch(lease.namespace):
        out.append(f"namespace {lease.namespace[:60]!r} is not an Event Hubs namespace name")
    top = max_partitions()
    if not lease.partitions:
        out.append("holds no partitions")
    bad = [p for p in lease.partitions if not 0 <= p < top]
    if bad:
        out.append(f"partition {bad[0]} does not exist (partitions are 0 to {top - 1})")
    if len(set(lease.partitions)) != len(lease.partitions):
        out.append(f"lists a partition twice ({', '.join(map(str, lease.partitions))})")
    if s.ttl_seconds is not None and s.ttl_seconds <= 0:
        out.append(f"ttlSeconds {s.ttl_seconds} is not positive")
    for what, value in (("owner", s.owner), ("createdBy", s.created_by),
                        ("updatedBy", s.updated_by)):
        problem = text_problem(value, what)
        if problem:
            out.append(problem)
    return out + _when_problems(s)


def change_problems(c: Change) -> list[str]:
    """A history line is only shown, never acted on: it must be printable and dated."""
    out = [p for p in (text_problem(c.actor, "actor"), text_problem(c.action, "action"),
                       text_problem(c.handle, "handle"), text_problem(c.detail, "detail")) if p]
    return out + _when_problems(c)


def _invalid(exc: ValidationError) -> str:
    """Pydantic's first complaint, without echoing the (attacker's) value at length."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the record"
    more = exc.error_count() - 1
    return f"{where}: {first['msg']}" + (f" (and {more} more)" if more else "")


def parse_slices(raw: Mapping[str, Any], handles: HandleRule,
                 extra: Mapping[str, Any] | None = None) -> tuple[LedgerState, list[Problem]]:
    """The state a ledger holds, and every problem with it.

    ``raw`` maps each stored key to its slice: a dict, or JSON text (SQLite). ``extra`` holds
    the state's other fields (whatever :class:`LedgerState` has besides slices and history),
    so that a field added to the model is stored and read without changing the backends.
    """
    problems: list[Problem] = []
    slices: dict[str, Slice] = {}
    for key, doc in raw.items():
        subject = f"slice {str(key)[:60]!r}"
        if not isinstance(key, str):
            problems.append(Problem(subject, "its key is not text"))
            continue
        try:
            s = (Slice.model_validate_json(doc) if isinstance(doc, str | bytes)
                 else Slice.model_validate(doc))
        except ValidationError as exc:
            problems.append(Problem(subject, f"is unreadable: {_invalid(exc)}"))
            continue
        found = slice_problems(key, s, handles)
        problems += [Problem(subject, p) for p in found]
        if not found:
            slices[key] = s
    try:
        state = LedgerState.model_validate({**(extra or {}), "slices": slices, "history": ()})
    except ValidationError as exc:
        problems.append(Problem("the ledger's state", f"is unreadable: {_invalid(exc)}"))
        state = LedgerState(slices=slices)
    return state, problems


def overlaps(slices: Iterable[Slice]) -> list[Problem]:
    """Two slices holding one partition: the SQLite table's key prevents it; a hand-edited
    record does not. Reported by `ledger check` (and `verify`), not refused on read: no
    claim hands out a partition any slice holds."""
    seen: dict[tuple[str, int], str] = {}
    out: list[Problem] = []
    for s in slices:
        for p in s.event_hubs.partitions:
            other = seen.setdefault((s.event_hubs.namespace, p), s.handle)
            if other != s.handle:
                out.append(Problem(f"slice {s.handle!r}", f"holds {s.event_hubs.namespace} "
                                   f"partition {p}, which slice {other!r} holds too"))
    return out


def parse_history(raw: object) -> tuple[list[Change], list[Problem]]:
    """History lines, checked whole: a list of valid changes (never a string split into
    characters, as issue 12 found)."""
    if not isinstance(raw, list):
        return [], [Problem("history", f"is {type(raw).__name__}, not a list of changes")]
    out: list[Change] = []
    problems: list[Problem] = []
    for i, doc in enumerate(raw, 1):
        subject = f"history line {i}"
        try:
            c = Change.model_validate(doc)
        except ValidationError as exc:
            problems.append(Problem(subject, f"is unreadable: {_invalid(exc)}"))
            continue
        found = change_problems(c)
        problems += [Problem(subject, p) for p in found]
        if not found:
            out.append(c)
    return out, problems


def state_extra(state: LedgerState) -> dict[str, Any]:
    """The state's fields besides slices and history, as JSON, for the backends to store."""
    return state.model_dump(mode="json", exclude={"slices", "history"})


def summary(problems: list[Problem], limit: int = 5) -> str:
    shown = "; ".join(str(p) for p in problems[:limit])
    more = len(problems) - limit
    return shown + (f"; and {more} more" if more > 0 else "")
