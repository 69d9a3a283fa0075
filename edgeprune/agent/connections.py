"""Admission of connections to the agent: a cap in all and per source, and eviction of the slowest strangers.

Each connection is served on a thread of its own, so open connections are what a client can exhaust. A
connection is *unproven* until its request has presented the right token and *proven* after. The rules:

* at most ``max_connections`` open connections in all (one thread each): a newcomer past it evicts the
  **oldest unproven** connection that has been open at least :data:`EVICTABLE_AFTER_S` (its socket is shut
  down, which ends the thread blocked reading it); when there is none, the newcomer is answered 503 with
  ``Retry-After: 1`` (edgeprune's client waits and retries);
* at most ``per_source`` unproven connections from one address: a newcomer past it evicts that address's
  oldest unproven connection of that age (a soft cap: younger ones are left alone, the cap in all still
  holds).

A client that sends its request at once proves its connection within milliseconds; the grace period keeps a
burst of such clients, whose headers a busy device has not read yet, from pushing each other out. A client that
opens many connections and trickles its headers (each also bounded by the header deadline,
:mod:`edgeprune.agent.deadline`) has old unproven connections, which are the ones to go. Behind an SSH tunnel
every client is 127.0.0.1, so a per-address cap alone would let a stranger on the same tunnel starve the right
client; eviction by age does not.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: how long a connection must have been open without showing the token before it may be evicted
EVICTABLE_AFTER_S = 1.0


@dataclass(eq=False)
class Ticket:
    """One admitted connection: its socket, source address, when it was admitted, whether it is proven."""

    sock: socket.socket
    source: str
    admitted: float = field(default_factory=time.monotonic)
    proven: bool = False
    serial: int = 0


class ConnectionTracker:
    """Admits, proves and releases connections under the caps in the module docstring (thread-safe)."""

    def __init__(self, max_connections: int, per_source: int, evictable_after_s: float = EVICTABLE_AFTER_S) -> None:
        self.max_connections, self.per_source = max_connections, per_source
        self.evictable_after_s = evictable_after_s
        self._open: dict[int, Ticket] = {}
        self._serials = itertools.count()
        self._lock = threading.Lock()
        self.evicted = 0

    def admit(self, sock: socket.socket, source: str) -> Ticket | None:
        """A ticket for a new connection (evicting the oldest unproven one where a cap is reached), or None
        when the cap in all is reached and no connection may be evicted (answer 503)."""
        victims: list[Ticket] = []
        with self._lock:
            old_enough = time.monotonic() - self.evictable_after_s
            strangers = [t for t in self._open.values() if not t.proven]
            if sum(t.source == source for t in strangers) >= self.per_source:
                victims += [min((t for t in strangers if t.source == source), key=lambda t: t.serial)]
                if victims[0].admitted > old_enough:
                    victims = []
            if len(self._open) - len(victims) >= self.max_connections:
                evictable = [t for t in strangers if t.admitted <= old_enough and t not in victims]
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
            ticket.proven = True

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
