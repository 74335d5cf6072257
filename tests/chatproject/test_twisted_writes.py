"""daphne's connections send a write at once, and buffer only what the socket refuses."""

import socket

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol

from chatproject.twisted_writes import send_writes_at_once


class _Reactor:
    """Records what the connection asks of the reactor; the loop itself never runs here."""

    def __init__(self) -> None:
        self.writers: set = set()

    def addReader(self, reader) -> None:  # Twisted's interface names
        pass

    def removeReader(self, reader) -> None:
        pass

    def addWriter(self, writer) -> None:
        self.writers.add(writer)

    def removeWriter(self, writer) -> None:
        self.writers.discard(writer)


@pytest.fixture
def connection_and_peer():
    send_writes_at_once()
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.setblocking(False)
    reactor = _Reactor()
    connection = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), None, 1, reactor)
    yield connection, peer, reactor
    ours.close()
    peer.close()


def _received(peer: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def test_a_write_reaches_the_socket_before_the_loop_runs_again(connection_and_peer):
    connection, peer, reactor = connection_and_peer
    connection.write(b"id: 1\nevent: delta\n\n")
    connection.writeSequence([b"15\r\n", b'data: {"text": "\xe4\xbd\xa0"}', b"\r\n"])
    # Plain Twisted buffers both and asks the reactor to call it back when writable.
    assert _received(peer) == b'id: 1\nevent: delta\n\n15\r\ndata: {"text": "\xe4\xbd\xa0"}\r\n'
    assert not reactor.writers


def test_what_the_socket_refuses_is_buffered_and_sent_in_order(connection_and_peer):
    connection, peer, reactor = connection_and_peer
    connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 4096  # 1 MB: more than the socket takes at once
    connection.write(big)
    assert reactor.writers == {connection}  # the rest waits for the reactor, as in Twisted
    connection.write(b"after")  # behind the rest, not before it
    received = _received(peer)
    while connection in reactor.writers:  # what the reactor does when the socket drains
        connection.doWrite()
        received += _received(peer)
    assert received == big + b"after"


class _RecordingProtocol(Protocol):
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


def test_a_connection_upgraded_to_tls_keeps_twisteds_path(connection_and_peer):
    # After startTLS, Twisted hands writes to its TLS layer (the protocol): nothing may
    # reach the socket unencrypted.
    connection, peer, _ = connection_and_peer
    tls_layer = _RecordingProtocol()
    connection.protocol, connection.TLS = tls_layer, True
    connection.write(b"secret")
    assert tls_layer.written == b"secret"
    assert _received(peer) == b""
