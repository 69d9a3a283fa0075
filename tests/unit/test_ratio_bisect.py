"""edgeprune.prune.ratio_bisect: bisection of the keep ratio against a latency budget."""

from __future__ import annotations

import pytest

from edgeprune.prune.ratio_bisect import bisect_largest_feasible


@pytest.mark.parametrize("threshold", [0.137, 0.5, 0.73, 0.99])
@pytest.mark.parametrize("resolution", [0.01, 0.001])
def test_finds_threshold_of_monotone_function(threshold: float, resolution: float) -> None:
    # latency 10 * ratio against a budget of 10 * threshold
    result = bisect_largest_feasible(lambda r: 10 * r, 10 * threshold, 0.05, 1.0, 100, resolution)
    assert threshold - resolution <= result <= threshold
    assert 10 * result <= 10 * threshold  # the answer itself is feasible


def test_step_function() -> None:
    calls: list[float] = []

    def latency(r: float) -> float:
        calls.append(r)
        return 1.0 if r <= 0.42 else 9.0

    result = bisect_largest_feasible(latency, 5.0, 0.1, 1.0, 50, 0.005)
    assert 0.42 - 0.005 <= result <= 0.42
    assert all(0.1 < c < 1.0 for c in calls)  # the known end points are never re-measured
    assert len(calls) == 8  # ceil(log2(0.9 / 0.005))


def test_respects_max_evaluations() -> None:
    calls: list[float] = []

    def latency(r: float) -> float:
        calls.append(r)
        return 10 * r

    result = bisect_largest_feasible(latency, 4.0, 0.0, 1.0, 3, 1e-9)
    assert calls == [0.5, 0.25, 0.375]
    assert result == 0.375


def test_zero_evaluations_returns_the_feasible_end() -> None:
    assert bisect_largest_feasible(lambda r: pytest.fail("must not be called"), 1.0, 0.2, 0.8, 0, 0.01) == 0.2


def test_interval_already_within_resolution() -> None:
    assert bisect_largest_feasible(lambda r: pytest.fail("must not be called"), 1.0, 0.5, 0.505, 10, 0.01) == 0.5


def test_always_infeasible_returns_floor_and_always_feasible_approaches_top() -> None:
    assert bisect_largest_feasible(lambda r: 100.0, 1.0, 0.1, 1.0, 20, 0.01) == 0.1
    top = bisect_largest_feasible(lambda r: 0.0, 1.0, 0.1, 1.0, 20, 0.01)
    assert 0.99 <= top < 1.0


@pytest.mark.parametrize(("feasible", "infeasible"), [(0.5, 0.5), (0.8, 0.2)])
def test_rejects_inverted_interval(feasible: float, infeasible: float) -> None:
    with pytest.raises(ValueError, match="feasible ratio must be below"):
        bisect_largest_feasible(lambda r: 0.0, 1.0, feasible, infeasible, 10, 0.01)
