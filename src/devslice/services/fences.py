"""Start fences: a partition's new holder never sees its previous holder's events (issue 11).

When a slice gets its partitions, the ledger records for each event hub and partition where
the new holder's view begins: the partition's last enqueued sequence number, read with the
official SDK's ``get_partition_properties`` (the embedded hub's consumer client answers the
same call), or, when it cannot be read, the claim time. The fences travel in the contract
(``LOCAL_DEV_EVENTHUBS_STARTFENCE``) and the SDK's consumers never deliver an event below one.

Reading is behind an injected factory (event hub name -> a client with the SDK's
``get_partition_properties`` and ``close``), so one logic serves the embedded hub, the
emulator and shared Event Hubs, and tests drive it with objects of the SDK's client shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from devslice.errors import DevsliceError
from devslice.sdk.context import SliceContext, StartFences
from devslice.secrets import Secret
from devslice.slices import operations as ops
from devslice.slices.model import Slice, StartFence

if TYPE_CHECKING:
    from devslice.services.base import Project


class PartitionPropertiesClient(Protocol):
    """The part of ``azure.eventhub.EventHubConsumerClient`` that fences need."""

    def get_partition_properties(self, partition_id: str) -> dict[str, Any]: ...
    def close(self) -> None: ...


ClientFactory = Callable[[str], PartitionPropertiesClient]  # event hub name -> client


@dataclass(frozen=True)
class FenceReading:
    fences: tuple[StartFence, ...]
    fallbacks: tuple[str, ...]  # why some fences are the claim time, for the user


def read_start_fences(open_client: ClientFactory, event_hubs: Iterable[str],
                      partitions: Iterable[int], claimed_at: datetime) -> FenceReading:
    """One fence per event hub and partition: its last enqueued sequence number, or the claim
    time where the properties cannot be read (the event hub unreachable, no credentials, a
    malformed answer). Never raises for a partition: a time fence is still a fence."""
    fences: list[StartFence] = []
    fallbacks: list[str] = []
    wanted = tuple(partitions)
    for hub in event_hubs:
        client: PartitionPropertiesClient | None = None
        try:
            client = open_client(hub)
        except Exception as exc:  # any failure to build a client means: fence by time
            fallbacks.append(f"{hub}: {_reason(exc)}")
        for p in wanted:
            seq = None
            if client is not None:
                try:
                    seq = int(client.get_partition_properties(str(p))
                              ["last_enqueued_sequence_number"])
                except Exception as exc:  # the SDK raises EventHubError, auth, OSError, ...
                    fallbacks.append(f"{hub}/{p}: {_reason(exc)}")
            fences.append(StartFence(event_hub=hub, partition=p, sequence_number=seq)
                          if seq is not None else
                          StartFence(event_hub=hub, partition=p, enqueued_time=claimed_at))
        if client is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                client.close()
    return FenceReading(tuple(fences), tuple(fallbacks))


def _reason(exc: Exception) -> str:
    # devslice's own message, else the class only: an SDK message may quote a connection
    # string.
    if isinstance(exc, DevsliceError):
        return exc.message
    if isinstance(exc, KeyError | TypeError | ValueError):
        return f"unexpected partition properties ({exc.__class__.__name__})"
    return exc.__class__.__name__


def contract_fences(s: Slice) -> StartFences | None:
    """The fences of a slice as the contract carries them; None for a slice claimed before
    fences existed (it has no claim id: its own earlier events would be hidden)."""
    if s.claim is None:
        return None
    positions: dict[tuple[str, str], int | datetime] = {}
    for f in s.start_fences:
        value = f.sequence_number if f.sequence_number is not None else f.enqueued_time
        if value is not None:
            positions[(f.event_hub, str(f.partition))] = value
    return StartFences(positions, default=s.created_at)


def fence_new_slice(project: Project, s: Slice,
                    open_client: ClientFactory | None = None) -> tuple[Slice, FenceReading]:
    """Read and record the start fences of a slice just claimed (``Project.claim`` calls it).

    The client factory defaults to the one the slice's contract names (the team's values,
    without personal overrides, which must not move a fence).
    """
    assert s.claim is not None
    factory = open_client or contract_client_factory(project, s)
    reading = read_start_fences(factory, project.env.event_hubs.event_hubs,
                                s.event_hubs.partitions, s.created_at)
    if not reading.fences:  # no event hub listed: the claim time ("*") fences them all
        return s, reading
    result = project.ledger.transact(
        lambda state: ops.record_fences(state, s.handle, s.claim or "", reading.fences))
    return (result.value or s), reading


def contract_client_factory(project: Project, s: Slice) -> ClientFactory:
    """Consumer clients built from the slice's contract (the team's values, without personal
    overrides), as its services would build them: the embedded hub's, or the official SDK's
    for the emulator and shared Event Hubs."""
    # lazy: azure-eventhub loads only when a claim reads its fences
    from devslice.sdk.eventhubs import partition_properties_client

    contexts: list[SliceContext] = []

    def open_client(hub: str) -> PartitionPropertiesClient:
        if not contexts:  # once, and only when a client is asked for: it resolves secrets
            variables = project.variables(s.handle, overrides=False)
            environ = {v.name: v.value.reveal() if isinstance(v.value, Secret) else v.value
                       for v in variables}
            contexts.append(SliceContext.from_env(
                environ, prefix=project.env.contract.prefix,
                partition_ids_variable=project.env.contract.partition_ids_variable))
        return partition_properties_client(contexts[0], hub)

    return open_client
