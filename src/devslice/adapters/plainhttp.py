"""The TLS setting of httpx2 clients that speak plain HTTP only (a local registry, the Docker
engine's socket or ``tcp://`` port).

httpx2 builds an SSL context for every client it makes, whatever the URL, and loading the CA
bundle into it costs ~20 ms of a command (issue 17). Such a client is given a context that
trusts no certificate instead: plain HTTP never uses it, and were a URL ever to turn to
https, the connection would fail verification rather than go unchecked.
"""

from __future__ import annotations

import ssl


def trusting_nothing() -> ssl.SSLContext:
    """A client context that verifies certificates and hostnames and trusts no CA."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
