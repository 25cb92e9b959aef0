"""Facts about TCP ports on this machine: does something answer, could we bind."""

from __future__ import annotations

import socket


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts connections on ``host:port`` (readiness, a taken port)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def port_bindable(port: int, host: str = "0.0.0.0") -> bool:
    """Whether ``host:port`` could be bound now, tried as Go's net.Listen (Docker's proxy)
    binds it: with SO_REUSEADDR, so a port in TIME_WAIT counts as free."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True
