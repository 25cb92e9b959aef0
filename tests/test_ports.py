"""Port facts against real sockets: what a readiness probe may call a service."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from devslice.facts.ports import port_open, port_serves

Serve = Callable[[Callable[[socket.socket], None]], int]


@pytest.fixture
def server() -> Iterator[Serve]:
    """A listener on 127.0.0.1 that handles each connection with the given function."""
    listeners: list[socket.socket] = []
    held: list[socket.socket] = []

    def start(handle: Callable[[socket.socket], None]) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        listeners.append(sock)

        def loop() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                held.append(conn)
                handle(conn)

        threading.Thread(target=loop, daemon=True).start()
        return int(sock.getsockname()[1])

    yield start
    for s in (*listeners, *held):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()


def test_a_proxy_that_closes_at_once_is_not_a_service(server: Serve) -> None:
    port = server(lambda conn: conn.close())  # docker-proxy when the container is not listening
    assert port_open(port)
    assert not port_serves(port)


def test_a_peer_that_resets_is_not_a_service(server: Serve) -> None:
    def reset(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    assert not port_serves(server(reset))


def test_a_service_that_waits_for_the_client_is_ready(server: Serve) -> None:
    assert port_serves(server(lambda conn: None))  # HTTP, MongoDB, AMQP: the client speaks


def test_a_service_that_greets_is_ready(server: Serve) -> None:
    assert port_serves(server(lambda conn: conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")))


def test_nothing_listening_is_not_ready() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    assert not port_open(port) and not port_serves(port)
