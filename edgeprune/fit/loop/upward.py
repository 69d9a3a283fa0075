"""One upward search when a candidate measures far under the search target.

The closed loop accepts the first candidate measured within the budget. A candidate can land far under it:
a single noisy reading that recalibrated the search by x1.22 once sent it to a model measured 39% under the
budget (the pruning benchmark's seed-1 cell, 34 M MACs left instead of 60 M), and a latency model that is
pessimistic for thin widths does the same. Latency left unused is accuracy given away, so such a candidate
(measured more than :data:`UNDERSHOOT_FRACTION` under the search target) gets one more search, recalibrated
on its own measurement. The wider candidate replaces it only if it is *measured* within the budget; otherwise
the measured candidate stands. This happens at most once per closed loop, so the round count stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from edgeprune.fit.loop.base import Allocation, Candidate, RoundsExhausted

log = logging.getLogger(__name__)

#: a candidate measured this fraction or more under the search target gets one upward search; larger than
#: the drift between two measurements on a shared 2-core machine (up to ~8%), so noise alone rarely triggers it
UNDERSHOOT_FRACTION = 0.10

MeasureFn = Callable[[dict[str, list[int]], str, dict[str, Any]], float]


def undershoots(measured_ms: float, target_ms: float) -> bool:
    """Whether a measurement is far enough under the search target to search upward."""
    return measured_ms < target_ms * (1 - UNDERSHOOT_FRACTION)


def search_upward(allocation: Allocation, candidate: Candidate, budget_ms: float, measure: MeasureFn) -> Candidate:
    """The candidate to go on with: ``allocation``'s wider proposal if it measures within ``budget_ms``
    (measured as a ``search-upward`` round), else ``candidate`` (which must already be measured)."""
    assert candidate.measured_ms is not None
    upward = allocation.after_undershoot(candidate, candidate.measured_ms)
    if upward is None:
        return candidate
    if upward.measured_ms is None:
        try:
            upward.measured_ms = measure(upward.keep, "search-upward", upward.info)
        except RoundsExhausted:
            return candidate
    if upward.measured_ms <= budget_ms:
        log.info("upward search: %.3f ms (was %.3f ms), within the %.3f ms budget: going on with it",
                 upward.measured_ms, candidate.measured_ms, budget_ms)
        return upward
    log.info("upward search: %.3f ms misses the %.3f ms budget: going on with the %.3f ms candidate",
             upward.measured_ms, budget_ms, candidate.measured_ms)
    return candidate
