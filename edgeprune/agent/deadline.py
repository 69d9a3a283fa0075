"""Reading a socket against a deadline for a whole phase, not per read.

A socket timeout bounds each ``recv``: a client that sends one byte every few seconds never trips it and holds
its connection for as long as it likes. :class:`DeadlineReader` is the raw stream under the request handler's
buffered ``rfile``; before every ``recv`` it sets the socket's timeout to what is left of the current
phase's deadline (the request line and headers, then the body), and raises :class:`TimeoutError` once it
has passed. A read that finds nothing in the socket and has to wait marks the connection's admission ticket
``stalled`` for as long as it waits (:mod:`edgeprune.agent.connections` evicts stalled strangers first).
"""

from __future__ import annotations

import io
import select
import socket
import time

from edgeprune.agent.connections import Ticket


class DeadlineReader(io.RawIOBase):
    """A readable raw stream over ``sock`` whose reads all end by :attr:`deadline` (``time.monotonic()``)."""

    def __init__(self, sock: socket.socket, seconds: float, ticket: Ticket | None = None) -> None:
        super().__init__()
        self._sock = sock
        self.ticket = ticket
        #: the client closed its side (or was cut off) while a read was waiting: what came before is incomplete
        self.eof = False
        self.deadline = time.monotonic() + seconds
        self.phase = "the request"

    def start(self, seconds: float, phase: str) -> None:
        """Begin a new phase that must finish within ``seconds`` from now."""
        self.deadline = time.monotonic() + seconds
        self.phase = phase

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{self.phase} did not arrive in time")
        self._sock.settimeout(left)
        ticket = self.ticket
        waits = ticket is not None and not ticket.proven and not _ready(self._sock)
        if waits:
            ticket.stalled = True  # type: ignore[union-attr]
        try:
            received = self._sock.recv_into(buffer)
            self.eof = self.eof or received == 0
            return received
        except socket.timeout:
            raise TimeoutError(f"{self.phase} did not arrive in time") from None
        finally:
            if waits:
                ticket.stalled = False  # type: ignore[union-attr]


def _ready(sock: socket.socket) -> bool:
    """Whether a read of ``sock`` would return at once (data, or the client's close)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])
