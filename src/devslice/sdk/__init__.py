"""The runtime SDK services import to stay inside their slice.

    from devslice.sdk import SliceContext
    ctx = SliceContext.from_env()          # reads the environment contract (docs/contract.md)

Without the contract's variables (shared test and production environments) everything
behaves like the plain Azure SDKs, on all partitions, hubs and names.
"""

from devslice.sdk.context import SliceContext, SliceViolation

__all__ = ["SliceContext", "SliceViolation"]
