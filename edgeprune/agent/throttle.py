"""Rate limiting of wrong tokens: a client that keeps guessing is refused before its token is even compared.

After :data:`MAX_FAILURES` wrong or missing tokens from one address within :data:`WINDOW_S` seconds, every
request from that address is answered 429 until the window has passed since its last failure. A right token
does not reset a locked address early (a guesser that finds the token must still wait), and successes are
not counted.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

#: wrong tokens from one address tolerated within the window
MAX_FAILURES = 5
#: seconds a failure is remembered (and an address stays locked after its last one)
WINDOW_S = 60.0


class TokenThrottle:
    """Counts wrong tokens per client address; thread-safe (the agent serves requests on threads)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures, self.window_s, self._clock = max_failures, window_s, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def locked(self, address: str) -> bool:
        """Whether ``address`` has used up its wrong tokens for now."""
        with self._lock:
            return len(self._recent(address, self._clock())) >= self.max_failures

    def failed(self, address: str) -> None:
        """Note a wrong or missing token from ``address``."""
        with self._lock:
            now = self._clock()
            self._recent(address, now).append(now)
            if len(self._failures) > 10_000:  # many addresses: forget the ones with nothing recent
                for key in [k for k, v in self._failures.items() if not v or now - v[-1] > self.window_s]:
                    del self._failures[key]
