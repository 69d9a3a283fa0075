"""Rate limiting of wrong tokens, which never turns away the right one.

Every request's token is compared (in constant time; it costs one SHA-256). The right token is always served.
A wrong or missing one is counted three ways within :data:`WINDOW_S` seconds:

* per **token** (keyed by the SHA-256 of what was presented): a client that keeps sending the same stale
  token gets 429 after :data:`MAX_SAME_TOKEN` tries: a misconfigured client is told to stop;
* per **source address**: 429 after :data:`MAX_PER_SOURCE`;
* **in all**: 429 after :data:`MAX_GLOBAL`, however many addresses the guesses come from.

Over a limit the answer is 429 instead of 401, and the agent logs one summary line per window instead of a
line per guess. Locking by address (the earlier design) locked the right client out as soon as anyone behind
the same SSH tunnel (everyone is 127.0.0.1 there) guessed five times, and let guesses spread over many
addresses through. What the throttle does not do is slow a guesser: a rule that serves the right token during
a flood answers every guess right-or-wrong at once. Guessing is defeated by the token's length instead (at
least 16 characters; the recommended ``secrets.token_urlsafe(24)`` is 192 bits): see docs/security.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

#: tries of one wrong token within the window before it is answered 429
MAX_SAME_TOKEN = 5
#: wrong tokens from one address within the window before its wrong tokens are answered 429
MAX_PER_SOURCE = 20
#: wrong tokens from all addresses together within the window before every wrong token is answered 429
MAX_GLOBAL = 60
#: seconds a failure is remembered
WINDOW_S = 60.0
_MAX_KEYS = 10_000


class TokenThrottle:
    """Counts wrong tokens per token hash, per address and in all; thread-safe."""

    def __init__(self, max_same_token: int = MAX_SAME_TOKEN, max_per_source: int = MAX_PER_SOURCE,
                 max_global: int = MAX_GLOBAL, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_same_token, self.max_per_source, self.max_global = max_same_token, max_per_source, max_global
        self.window_s, self._clock = window_s, clock
        self._by_token: dict[bytes, deque[float]] = {}
        self._by_source: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()
        self._summary_at = -float("inf")
        self._since_summary = 0

    def _recent(self, times: deque[float], now: float) -> deque[float]:
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def failed(self, token_key: bytes, source: str) -> str | None:
        """Note a wrong or missing token (``token_key``: the SHA-256 of what was presented) from ``source``.

        Returns None to answer 401, or the reason to answer 429 instead.
        """
        with self._lock:
            now = self._clock()
            for table in (self._by_token, self._by_source):
                if len(table) > _MAX_KEYS:  # many keys: forget the ones with nothing recent
                    for key in [k for k, v in table.items() if not self._recent(v, now)]:
                        del table[key]
            same = self._recent(self._by_token.setdefault(token_key, deque()), now)
            mine = self._recent(self._by_source.setdefault(source, deque()), now)
            every = self._recent(self._all, now)
            for times in (same, mine, every):
                times.append(now)
            self._since_summary += 1
            if now - self._summary_at >= self.window_s:
                log.warning("agent: %d wrong or missing tokens in the last %.0f s (%d from %s)",
                            self._since_summary, min(self.window_s, now - self._summary_at), len(mine), source)
                self._summary_at, self._since_summary = now, 0
            if len(same) > self.max_same_token:
                return "this token was refused too often; check the client's token"
            if len(mine) > self.max_per_source:
                return "too many wrong tokens from this address"
            if len(every) > self.max_global:
                return "too many wrong tokens"
            return None
