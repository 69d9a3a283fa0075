"""Admission of connections to the agent: a cap in all and per source, and eviction of strangers kept waiting.

Each connection is served on a thread of its own, so open connections are what a client can exhaust. A
connection is *unproven* until its request has presented the right token and *proven* after; an unproven one
is *stalled* while its thread is blocked waiting for more of the client's request line or headers (the handler's
reader, :mod:`edgeprune.agent.deadline`, says so around each read that has to wait). The rules:

* at most ``max_connections`` open connections in all (one thread each): a newcomer past it evicts the
  **oldest stalled** connection (its socket is shut down, which ends the thread blocked reading it); when
  there is none, the newcomer is answered 503 with ``Retry-After: 1`` (edgeprune's client waits and retries);
* at most ``per_source`` unproven connections from one address: a newcomer past it evicts that address's oldest
  stalled connection (a soft cap: connections being read are left alone, the cap in all still holds).

A client that sends its request at once is never stalled: its headers are in the socket when its thread reads
them, and its connection is proven within milliseconds, so no flood of newcomers can push it out. A client that
opens many connections and trickles its headers, or sends nothing, is stalled nearly all the time, and each
connection is also cut off at the header deadline. Behind an SSH tunnel every client is 127.0.0.1, so a
per-address cap alone would let a stranger on the same tunnel starve the right client; eviction of the stalled
does not, however fast the stranger reconnects.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Ticket:
    """One admitted connection: its socket, source address, when it was admitted, whether it is proven, and
    whether its thread is waiting for the client (``stalled``, set by the reader)."""

    sock: socket.socket
    source: str
    admitted: float = field(default_factory=time.monotonic)
    proven: bool = False
    stalled: bool = False
    serial: int = 0


class ConnectionTracker:
    """Admits, proves and releases connections under the caps in the module docstring (thread-safe)."""

    def __init__(self, max_connections: int, per_source: int) -> None:
        self.max_connections, self.per_source = max_connections, per_source
        self._open: dict[int, Ticket] = {}
        self._serials = itertools.count()
        self._lock = threading.Lock()
        self.evicted = 0

    def admit(self, sock: socket.socket, source: str) -> Ticket | None:
        """A ticket for a new connection (evicting the oldest stalled one where a cap is reached), or None
        when the cap in all is reached and no connection is stalled (answer 503)."""
        victims: list[Ticket] = []
        with self._lock:
            strangers = [t for t in self._open.values() if not t.proven]
            stalled = [t for t in strangers if t.stalled]
            if sum(t.source == source for t in strangers) >= self.per_source:
                victims += [min((t for t in stalled if t.source == source), key=lambda t: t.serial, default=None)]
                victims = [v for v in victims if v is not None]
            if len(self._open) - len(victims) >= self.max_connections:
                evictable = [t for t in stalled if t not in victims]
                if not evictable:
                    return None
                victims.append(min(evictable, key=lambda t: t.serial))
            for victim in victims:
                del self._open[victim.serial]
            self.evicted += len(victims)
            ticket = Ticket(sock, source, serial=next(self._serials))
            self._open[ticket.serial] = ticket
        for victim in victims:
            log.debug("agent: %s evicted an unproven connection from %s (open %.1f s)", source, victim.source,
                      time.monotonic() - victim.admitted)
            _cut(victim.sock)
        return ticket

    def prove(self, ticket: Ticket) -> None:
        """The connection's request carried the right token: it can no longer be evicted."""
        with self._lock:
            ticket.proven, ticket.stalled = True, False

    def release(self, ticket: Ticket) -> None:
        """The connection is closed (a ticket already evicted is ignored)."""
        with self._lock:
            self._open.pop(ticket.serial, None)

    def counts(self) -> tuple[int, int]:
        """(open connections, of which proven)."""
        with self._lock:
            return len(self._open), sum(t.proven for t in self._open.values())


def _cut(sock: socket.socket) -> None:
    """Shut a connection down from another thread: a blocked read in its thread returns at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
