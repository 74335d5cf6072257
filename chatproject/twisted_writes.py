"""daphne's socket writes, sent at once instead of on the next pass of the event loop.

Twisted buffers every write to a TCP connection and asks the reactor to tell it when the
socket is writable: on the asyncio reactor that is an `add_writer`, one more pass of the
loop, the send, and a `remove_writer`, for each event of each answer. asyncio's own
transports (uvicorn's) try the send first and buffer only what the socket did not take.
`send_writes_at_once` gives daphne's connections that behaviour: when nothing is waiting
in the buffer, a write goes to the socket straight away and only a remainder is buffered,
so the order of bytes, back-pressure (the producer is paused by the buffered path as
before) and the handling of a lost connection are Twisted's own.
"""

from collections.abc import Iterable

from twisted.internet import tcp

_installed = False


def send_writes_at_once() -> None:
    """Make every accepted TCP connection (daphne's) send a write at once when it can."""
    global _installed
    if _installed:
        return
    _installed = True
    buffered_write = tcp.Server.write

    def write(self: tcp.Server, data: bytes) -> None:
        buffered_write(self, _send_now(self, data))

    def write_sequence(self: tcp.Server, iovec: Iterable[bytes]) -> None:
        write(self, b"".join(iovec))  # the same bytes, in order, as one send

    tcp.Server.write = write
    tcp.Server.writeSequence = write_sequence


def _nothing_waits(connection: tcp.Server) -> bool:
    # A connection upgraded with startTLS encrypts in its protocol: Twisted's own path.
    return (
        not connection.TLS
        and connection.connected
        and not connection.disconnecting
        and not connection._writeDisconnected
        and not connection._tempDataLen
        and len(connection.dataBuffer) == connection.offset
    )


def _send_now(connection: tcp.Server, data: bytes) -> bytes:
    """What is left to buffer after sending what the socket takes now (all of `data` if
    something already waits, or the connection is lost: the buffered path reports it)."""
    if not data or not _nothing_waits(connection):
        return data
    sent = connection.writeSomeData(data)
    if not isinstance(sent, int):  # lost: Twisted's buffered path closes it
        return data
    return data[sent:]
