"""Facts about TCP ports on this machine: does something answer, could we bind."""

from __future__ import annotations

import socket


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports that were free a moment ago (all bound at once, then released):
    for ``port: auto``, Azurite's ports in tests, and the benchmarks."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts connections on ``host:port`` (readiness, a taken port)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def port_serves(port: int, host: str = "127.0.0.1", settle: float = 0.25) -> bool:
    """Whether a *service* answers on ``host:port``, not only a proxy in front of it.

    Docker's userland proxy (docker-proxy) accepts on a published port as soon as the
    container starts, then dials the container and, when nothing listens there yet, closes
    the connection it accepted. So a connection must also survive ``settle`` seconds: a peer
    that closes (or resets) it at once is not ready; one that sends something (an SSH
    banner) or waits for the client to speak (HTTP, MongoDB, AMQP) is.
    """
    try:
        sock = socket.create_connection((host, port), timeout=0.5)
    except OSError:
        return False
    try:
        sock.settimeout(settle)
        return sock.recv(1) != b""
    except TimeoutError:
        return True  # it holds the connection and waits for us to speak
    except OSError:
        return False  # reset
    finally:
        sock.close()


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
