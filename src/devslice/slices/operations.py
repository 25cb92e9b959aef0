"""The ledger's operations as pure functions from one state to the next.

Backends run them inside a transaction (SQLite) or an optimistic read-modify-write (Azure
Blob), so every backend enforces the same rules and the property tests exercise them directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from devslice.errors import InvalidHandle, SliceConflict, SliceNotFound
from devslice.slices.model import Change, LedgerState, Slice, SliceKind, StartFence
from devslice.slices.names import HandleRule
from devslice.slices.partitions import PartitionPool
from devslice.text import plural

T = TypeVar("T")


@dataclass(frozen=True)
class Transition(Generic[T]):
    """A new state, the history lines that explain it, and what the caller asked for."""

    state: LedgerState
    changes: list[Change] = field(default_factory=list)
    value: T | None = None


@dataclass(frozen=True)
class ClaimRequest:
    owner: str
    handle: str | None = None
    kind: SliceKind = SliceKind.developer
    partitions: int = 1
    ttl: timedelta | None = None


_PARENTHESISED = re.compile(r"\([^()]*\)")
_ANGLED = re.compile(r"<[^<>]*>")


def initials(owner: str, rule: HandleRule) -> str:
    """A short handle from an owner: 'Anna Berg <anna@x>', 'Anna Berg (a colleague)' and
    'anna.berg@x' give 'ab'. Parenthesised parts and e-mail addresses in angle brackets are
    not part of the name."""
    name, found = owner, 1
    while found:  # innermost parentheses first: 'A B (x (y))'
        name, found = _PARENTHESISED.subn(" ", name)
    name = _ANGLED.sub(" ", name).strip()
    if not name:  # only an address, as in '<anna.berg@x>'
        name = owner.strip().strip("<>()").strip()
    name = name.split("@")[0]
    words = [w for w in re.split(r"[^a-z]+", name.lower()) if w]
    if len(words) >= 2:
        base = "".join(w[0] for w in words)[: rule.max_length - 1]
    elif words:
        base = words[0][:2]
    else:
        base = "dev"
    return base.ljust(rule.min_length, "x")


def suggest_handle(owner: str, kind: SliceKind, state: LedgerState, rule: HandleRule) -> str:
    """The first free handle for this owner: their initials, then initials with 2, 3, ..."""
    base = "ci" if kind is SliceKind.ci else initials(owner, rule)
    # ci1, ci2, ...; people get their initials bare, then ab2, ab3, ...
    numbers = range(1, 10_000) if kind is SliceKind.ci else (0, *range(2, 10_000))
    for n in numbers:
        suffix = str(n) if n else ""
        candidate = base[: rule.max_length - len(suffix)] + suffix
        held = state.slices.get(candidate)
        if held is None or (held.owner == owner and held.kind is kind is not SliceKind.ci):
            return candidate
    raise SliceConflict(f"no free handle starting with {base!r}", hint="pass a handle")


def claim_id(handle: str, created_at: datetime) -> str:
    """One claim of a handle, unique across releases and claims again: ``ab-20261207020749123456``.
    Lower-case letters, digits and one hyphen, so it fits a blob container name or path."""
    return f"{handle}-{created_at:%Y%m%d%H%M%S%f}"


def _given_back(state: LedgerState, gone: list[Slice], now: datetime
                ) -> dict[str, dict[int, datetime]]:
    """``state.released`` with the partitions of ``gone`` given back at ``now``."""
    released = {ns: dict(parts) for ns, parts in state.released.items()}
    for s in gone:
        for p in s.event_hubs.partitions:
            released.setdefault(s.event_hubs.namespace, {})[p] = now
    return released


def collect(state: LedgerState, now: datetime, actor: str) -> Transition[list[Slice]]:
    """Remove slices whose lease expired, freeing their partitions and names."""
    expired = [s for s in state.slices.values() if s.expired(now)]
    if not expired:
        return Transition(state, [], [])
    kept = {h: s for h, s in state.slices.items() if not s.expired(now)}
    changes = [
        Change(at=now, actor=actor, action="gc", handle=s.handle,
               detail=f"lease expired at {s.expires_at:%Y-%m-%d %H:%M:%S}Z")
        for s in expired
    ]
    after = state.model_copy(update={"slices": kept,
                                     "released": _given_back(state, expired, now)})
    return Transition(after, changes, expired)


def _check_settings(held: Slice, request: ClaimRequest) -> None:
    """Refuse to hand back a held slice with another kind or partition count than asked."""
    if held.kind is not request.kind or len(held.event_hubs.partitions) != request.partitions:
        raise SliceConflict(
            f"you already hold slice {held.handle!r} as {held.kind.value} with "
            f"{plural(len(held.event_hubs.partitions), 'partition')}, not "
            f"{request.kind.value} with {request.partitions}",
            hint=f"release it first (`devslice slice release {held.handle}`) to claim it "
            f"with other settings",
        )


def claim(
    state: LedgerState,
    request: ClaimRequest,
    pool: PartitionPool,
    rule: HandleRule,
    now: datetime,
    actor: str,
) -> Transition[tuple[Slice, bool]]:
    """Give ``request.owner`` a slice; returns it and whether it is new.

    Claiming a handle one already holds returns the held slice unchanged (idempotent).
    Expired slices are collected first, so their partitions can be reused.
    """
    gc = collect(state, now, actor)
    state = gc.state
    if request.handle is None:
        mine = [s for s in state.slices.values()
                if s.owner == request.owner and s.kind is request.kind]
        if len(mine) == 1 and request.kind is not SliceKind.ci:
            # The same answer as naming the handle: the held slice only if it is what was
            # asked for, never a slice with other settings passed off as the one claimed.
            _check_settings(mine[0], request)
            return Transition(state, gc.changes, (mine[0], False))
    handle = request.handle or suggest_handle(request.owner, request.kind, state, rule)
    problem = rule.problem(handle)
    if problem:
        raise InvalidHandle(problem)
    held = state.slices.get(handle)
    if held is not None:
        if held.owner != request.owner:
            other = suggest_handle(request.owner, request.kind, state, rule)
            yours = state.slices.get(other)
            raise SliceConflict(
                f"slice {handle!r} is held by {held.owner} (since "
                f"{held.created_at:%Y-%m-%d %H:%M}Z)",
                hint=f"you already hold {other!r}" if yours else
                f"pick another handle, for example `devslice slice claim {other}`",
            )
        _check_settings(held, request)
        return Transition(state, gc.changes, (held, False))
    lease = pool.allocate(request.partitions, state.slices.values(), state.released)
    ttl = request.ttl
    created = Slice(
        handle=handle,
        kind=request.kind,
        owner=request.owner,
        created_at=now,
        created_by=actor,
        updated_at=now,
        updated_by=actor,
        expires_at=now + ttl if ttl else None,
        ttl_seconds=int(ttl.total_seconds()) if ttl else None,
        event_hubs=lease,
        claim=claim_id(handle, now),
    )
    partitions = ",".join(map(str, lease.partitions))
    change = Change(at=now, actor=actor, action="claim", handle=handle,
                    detail=f"{request.kind.value} for {request.owner}; {lease.namespace} "
                    f"partitions {partitions}")
    slices = {**state.slices, handle: created}
    return Transition(state.model_copy(update={"slices": slices}), [*gc.changes, change],
                      (created, True))


def release(
    state: LedgerState, handle: str, owner: str, now: datetime, actor: str, force: bool = False
) -> Transition[Slice]:
    held = get_slice(state, handle)
    if held.owner != owner and not force:
        raise SliceConflict(
            f"slice {handle!r} belongs to {held.owner}, not {owner}",
            hint="pass --force to release someone else's slice (the ledger records who did)",
        )
    slices = {h: s for h, s in state.slices.items() if h != handle}
    change = Change(at=now, actor=actor, action="release", handle=handle,
                    detail=f"owner {held.owner}" + (" (forced)" if held.owner != owner else ""))
    after = state.model_copy(update={"slices": slices,
                                     "released": _given_back(state, [held], now)})
    return Transition(after, [change], held)


def record_fences(state: LedgerState, handle: str, claim: str,
                  fences: tuple[StartFence, ...]) -> Transition[Slice | None]:
    """Store the start fences read for claim ``claim`` of ``handle``.

    Fences are read after the claim (reading them is I/O, operations are pure), so the slice
    may be gone or claimed again by then: only the same claim, still without fences, gets
    them; otherwise nothing changes and the value is None.
    """
    held = state.slices.get(handle)
    if held is None or held.claim != claim or held.start_fences:
        return Transition(state, [], None)
    fenced = held.model_copy(update={"start_fences": fences})
    return Transition(state.model_copy(update={"slices": {**state.slices, handle: fenced}}),
                      [], fenced)


def renew(
    state: LedgerState, handle: str, now: datetime, actor: str, ttl: timedelta | None = None,
    *, owner: str | None = None, force: bool = False,
) -> Transition[Slice]:
    """Push a slice's expiry to now + its TTL (or the given one).

    Like :func:`release`, only the slice's owner may renew it unless ``force`` is given (the
    history records who did). ``owner=None`` skips the check, for callers that do not know
    who is asking yet.

    A slice that expired but was not collected yet can still be renewed: nobody else holds
    its partitions until a claim or gc removes it.
    """
    held = get_slice(state, handle)
    if owner is not None and held.owner != owner and not force:
        raise SliceConflict(
            f"slice {handle!r} belongs to {held.owner}, not {owner}",
            hint="pass --force to renew someone else's slice (the ledger records who did)",
        )
    seconds = int(ttl.total_seconds()) if ttl else held.ttl_seconds
    expires = now + timedelta(seconds=seconds) if seconds else None
    renewed = held.model_copy(update={
        "updated_at": now, "updated_by": actor, "expires_at": expires, "ttl_seconds": seconds,
    })
    until = f"until {expires:%Y-%m-%d %H:%M}Z" if expires else "without expiry"
    if owner is not None and held.owner != owner:
        until += f" (forced; owner {held.owner})"
    change = Change(at=now, actor=actor, action="renew", handle=handle, detail=until)
    return Transition(state.model_copy(update={"slices": {**state.slices, handle: renewed}}),
                      [change], renewed)


def get_slice(state: LedgerState, handle: str) -> Slice:
    try:
        return state.slices[handle]
    except KeyError:
        known = ", ".join(sorted(state.slices)) or "none"
        raise SliceNotFound(
            f"no slice {handle!r} in the ledger (live slices: {known})",
            hint="`devslice slice list` shows who holds what",
        ) from None
