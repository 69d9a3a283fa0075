"""Bisection of the uniform keep ratio against a measured latency (the foundation's search).

Latency is close to monotone in the keep ratio but measured with noise, so the search keeps the interval
[feasible, infeasible] and narrows it until widths stop changing or the round budget is spent.
"""

from __future__ import annotations

from collections.abc import Callable


def bisect_largest_feasible(
    latency_ms_at: Callable[[float], float],
    budget_ms: float,
    feasible_ratio: float,
    infeasible_ratio: float,
    max_evaluations: int,
    resolution: float,
) -> float:
    """Largest keep ratio found whose measured latency is within ``budget_ms``.

    ``feasible_ratio`` must already be known to meet the budget and ``infeasible_ratio`` to miss it.

    >>> bisect_largest_feasible(lambda r: 10 * r, 5.0, 0.1, 1.0, 20, 0.01)  # doctest: +ELLIPSIS
    0.49...
    """
    if not feasible_ratio < infeasible_ratio:
        raise ValueError("feasible ratio must be below the infeasible one")
    lo, hi = feasible_ratio, infeasible_ratio
    evaluations = 0
    while hi - lo > resolution and evaluations < max_evaluations:
        mid = (lo + hi) / 2
        evaluations += 1
        if latency_ms_at(mid) <= budget_ms:
            lo = mid
        else:
            hi = mid
    return lo
