"""Opt-in: send to the slice's hub on a real Azure SignalR Service.

Set DEVSLICE_LIVE_SIGNALR_CONNECTION (Endpoint=...;AccessKey=...;Version=1.0;) to run it.
"""

from __future__ import annotations

import os

import pytest

from devslice.sdk import SliceContext
from devslice.sdk.signalr import SliceSignalR

pytestmark = pytest.mark.live


@pytest.mark.skipif(not os.environ.get("DEVSLICE_LIVE_SIGNALR_CONNECTION"),
                    reason="DEVSLICE_LIVE_SIGNALR_CONNECTION is not set")
def test_real_signalr_accepts_a_send_to_the_slice_hub() -> None:
    ctx = SliceContext.from_env({
        "LOCAL_DEV_SLICE": "live",
        "LOCAL_DEV_SIGNALR_HUB_NOTIFICATIONS": "notifications_live",
        "LOCAL_DEV_SIGNALR_CONNECTIONSTRING": os.environ["DEVSLICE_LIVE_SIGNALR_CONNECTION"],
    })
    with SliceSignalR.from_context(ctx) as signalr:
        negotiated = signalr.negotiate("notifications", user_id="devslice-live")
        assert "hub=notifications_live" in negotiated["url"]
        signalr.send_to_all("notifications", "devsliceLiveTest", ["hello"])  # raises unless 2xx
