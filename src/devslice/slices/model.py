"""What the ledger records: slices and the history of changes to them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Stored and printed in camelCase like devslice.yaml; read back by either spelling.
RECORD = ConfigDict(
    frozen=True, alias_generator=to_camel, validate_by_name=True, validate_by_alias=True,
    serialize_by_alias=True,
)


class SliceKind(StrEnum):
    developer = "developer"
    ci = "ci"
    shared = "shared"


class PartitionLease(BaseModel):
    """Partitions of every event hub in one namespace, held by one slice."""

    model_config = RECORD

    namespace: str
    partitions: tuple[int, ...]


class StartFence(BaseModel):
    """Where a new holder's view of one partition of one event hub begins (issue 11).

    ``sequence_number`` is the partition's last enqueued sequence number when the slice got
    it (-1: the partition was empty); the slice's consumers deliver only events after it.
    When it could not be read, ``enqueued_time`` is the claim time and they deliver only
    events enqueued from then on.
    """

    model_config = RECORD

    event_hub: str
    partition: int
    sequence_number: int | None = None
    enqueued_time: datetime | None = None


class Slice(BaseModel):
    """One developer's (or pipeline's) share of the team's services."""

    model_config = RECORD

    handle: str
    kind: SliceKind
    owner: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    expires_at: datetime | None = None
    ttl_seconds: int | None = None
    event_hubs: PartitionLease
    # Set on every claim since issue 11 (None: claimed before, with no fences): the claim's
    # id, which keeps checkpoints per claim, and the start fences of its partitions.
    claim: str | None = None
    start_fences: tuple[StartFence, ...] = ()

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class Change(BaseModel):
    """One line of the ledger's history: who did what, and when."""

    model_config = RECORD

    at: datetime
    actor: str
    action: str  # claim | release | renew | gc
    handle: str
    detail: str = ""


class LedgerState(BaseModel):
    """Everything a ledger holds. Backends store it; operations turn one state into the next."""

    model_config = RECORD

    slices: dict[str, Slice] = Field(default_factory=dict)
    history: tuple[Change, ...] = ()
    # namespace -> partition -> when a slice last gave it back (release or gc): allocation
    # prefers partitions never used, then the ones released longest ago (issue 11).
    released: dict[str, dict[int, datetime]] = Field(default_factory=dict)
