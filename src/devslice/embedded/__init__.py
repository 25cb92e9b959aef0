"""Stand-ins that run on one machine with nothing installed: the embedded event hub.

They stand in for the team's shared services on a laptop or in CI; teams share the real ones.
"""

from devslice.embedded.eventhub import (
    EmbeddedConsumerClient,
    EmbeddedHub,
    EmbeddedProducerClient,
    ReceivedEvent,
)

__all__ = ["EmbeddedConsumerClient", "EmbeddedHub", "EmbeddedProducerClient", "ReceivedEvent"]
