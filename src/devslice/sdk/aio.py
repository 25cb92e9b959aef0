"""asyncio variant of the slice-scoped producer, over ``azure.eventhub.aio``.

Routing (which partition, which properties) is the same :class:`Router` as the sync
producer's, so both send a key to the same partition.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from devslice.sdk.context import SliceContext
from devslice.sdk.eventhubs import (
    Router,
    _embedded,
    _events,
    _no_connection,
    add,
    too_large,
)


class AsyncProducerClient(Protocol):
    async def get_partition_ids(self) -> list[str]: ...
    async def create_batch(self, *, partition_id: str | None = ...,
                           partition_key: str | None = ...) -> Any: ...
    async def send_batch(self, event_data_batch: Any, **kwargs: Any) -> None: ...
    async def close(self) -> None: ...


class AsyncSliceProducer:
    def __init__(self, client: AsyncProducerClient, ctx: SliceContext | None = None) -> None:
        self.client = client
        self.ctx = ctx or SliceContext.from_env()
        self.router = Router(self.ctx)
        self._checked = False

    @classmethod
    def from_context(cls, eventhub_name: str, ctx: SliceContext | None = None,
                     credential: Any = None) -> AsyncSliceProducer:
        ctx = ctx or SliceContext.from_env()
        if ctx.embedded_path:
            from devslice.embedded import EmbeddedProducerClient  # lazy: embedded broker, ~90 ms

            return cls(ThreadedProducer(EmbeddedProducerClient(_embedded(ctx), eventhub_name)),
                       ctx)
        from azure.eventhub.aio import EventHubProducerClient  # lazy: azure-eventhub, ~100 ms

        if ctx.eventhubs_connection_string:
            return cls(EventHubProducerClient.from_connection_string(
                ctx.eventhubs_connection_string, eventhub_name=eventhub_name), ctx)
        if ctx.fully_qualified_namespace:
            if credential is None:
                # lazy: azure-identity, ~200 ms, only for Entra ID
                from azure.identity.aio import DefaultAzureCredential

                credential = DefaultAzureCredential()
            return cls(EventHubProducerClient(ctx.fully_qualified_namespace, eventhub_name,
                                              credential), ctx)
        raise _no_connection()

    async def send(self, events: Any, *, partition_key: str | None = None,
                   partition_id: str | None = None) -> int:
        """As :meth:`devslice.sdk.eventhubs.SliceProducer.send`, awaited."""
        if not self._checked and self.ctx.partition_ids is not None:
            self.ctx.own_partitions(await self.client.get_partition_ids())
        self._checked = True
        pid, key = self.router.target(partition_key, partition_id)
        batch = await self.client.create_batch(partition_id=pid, partition_key=key)
        sent = 0
        for event in _events(events):
            self.router.stamp(event)
            if not add(batch, event):
                await self.client.send_batch(batch)
                sent += 1
                batch = await self.client.create_batch(partition_id=pid, partition_key=key)
                if not add(batch, event):
                    raise too_large(batch)
        if len(batch):
            await self.client.send_batch(batch)
            sent += 1
        return sent

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> AsyncSliceProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ThreadedProducer:
    """A sync producer client (the embedded hub's) behind the async surface; SQLite calls run
    in a worker thread so they never block the event loop."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def get_partition_ids(self) -> list[str]:
        return await asyncio.to_thread(self.client.get_partition_ids)

    async def create_batch(self, **kwargs: Any) -> Any:
        return self.client.create_batch(**kwargs)

    async def send_batch(self, event_data_batch: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(self.client.send_batch, event_data_batch, **kwargs)

    async def close(self) -> None:
        self.client.close()
