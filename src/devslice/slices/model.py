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
