"""A slice for a team's own tests: the contract's variables for an embedded event hub."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from devslice.sdk.context import SliceContext


def embedded_slice_env(
    directory: str | Path,
    handle: str = "test",
    partitions: Iterable[int] = (0,),
    partition_count: int = 4,
    database: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The contract (docs/contract.md) of a slice whose event hub is an embedded one in
    ``directory``: set these in a service's environment and it runs with no cloud."""
    env = {
        "LOCAL_DEV_SLICE": handle,
        "LOCAL_DEV_SLICE_KIND": "ci",
        "LOCAL_DEV_EVENTHUBS_MODE": "embedded",
        "LOCAL_DEV_EVENTHUBS_NAMESPACE": "embedded",
        "LOCAL_DEV_EVENTHUBS_PARTITIONCOUNT": str(partition_count),
        "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": ",".join(str(p) for p in partitions),
        "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING":
            f"embedded:{Path(directory).resolve() / 'eventhubs.db'}",
        "LOCAL_DEV_DATAEXPLORER_DATABASE": database or f"db4{handle}",
    }
    env.update(extra or {})
    return env


def embedded_slice(directory: str | Path, **kwargs: object) -> SliceContext:
    return SliceContext.from_env(embedded_slice_env(directory, **kwargs))  # type: ignore[arg-type]
