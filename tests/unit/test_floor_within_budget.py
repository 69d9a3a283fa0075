"""A floor that meets the budget but not the search target (budget less headroom) is searched, not refused.

The allocations are driven by an analytic cost here (10 ms plus 1 ms per kept channel): these tests check the
search logic, not a latency."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest
from analytic_latency import AnalyticCost

from edgeprune.errors import BudgetUnreachableError
from edgeprune.fit.loop.base import Allocation
from edgeprune.fit.loop.latency_search import LatencySearch
from edgeprune.fit.loop.uniform import UniformBisection
from edgeprune.prune.groups import ChannelGroup, GroupMember

GROUPS = [ChannelGroup(n, 8, (GroupMember(n, "Conv2d", "out", tuple(range(8))),)) for n in ("a", "b")]
SCORES = {g.name: np.arange(8, dtype=float) for g in GROUPS}
FULL_MS = 10.0 + 16  # the cost of the unpruned widths
FLOOR_MS = 10.0 + 2  # one channel per group


def _kept_ms(keep: Mapping[str, list[int]]) -> float:
    return 10.0 + sum(len(k) for k in keep.values())


def _latency_search() -> LatencySearch:
    return LatencySearch(GROUPS, SCORES, AnalyticCost(), alignment=1, globally_comparable=True,
                         measure_floor=_kept_ms, floor_hint="", latency_source="analytic")


def _uniform() -> UniformBisection:
    return UniformBisection(GROUPS, SCORES, alignment=1, measure=lambda keep, _kind, _info: _kept_ms(keep),
                            max_rounds=20, floor_hint="")


@pytest.mark.parametrize("allocation", [_latency_search, _uniform])
def test_a_floor_within_the_budget_is_searched_with_the_headroom_dropped(allocation: Callable[[], Allocation],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    budget_ms = FLOOR_MS + 0.3  # the floor fits the budget but not the 5% headroom below it
    target_ms = 0.95 * budget_ms
    assert target_ms < FLOOR_MS < budget_ms
    candidate = allocation().first(FULL_MS, budget_ms, target_ms)
    assert _kept_ms(candidate.keep) <= budget_ms
    assert "searching to the budget itself" in caplog.text


@pytest.mark.parametrize("allocation", [_latency_search, _uniform])
def test_a_floor_over_the_budget_cannot_be_met(allocation: Callable[[], Allocation]) -> None:
    with pytest.raises(BudgetUnreachableError, match="cannot be met: the fastest pruned model measured 12.000 ms"):
        allocation().first(FULL_MS, FLOOR_MS - 0.5, 0.95 * (FLOOR_MS - 0.5))


def test_a_search_reading_within_the_budget_is_not_called_a_floor() -> None:
    message = str(BudgetUnreachableError(1.0, 0.9, "No candidate met it within 8 measured rounds."))
    assert "cannot be met" not in message and "0.900 ms (median) while searching" in message


def test_a_floor_measured_within_the_budget_is_offered_when_the_wider_candidates_keep_missing(
        caplog: pytest.LogCaptureFixture) -> None:
    """Issue 35: the smallest model measured within the budget four times while every wider proposal missed
    (the correction swung), and the rounds ran out. The second time the search finds nothing wider that it
    predicts within the target, it offers the measured floor itself."""
    caplog.set_level("INFO")
    floors: list[float] = []

    def measure_floor(keep: Mapping[str, list[int]]) -> float:
        floors.append(_kept_ms(keep))
        return floors[-1]

    search = LatencySearch(GROUPS, SCORES, AnalyticCost(), alignment=1, globally_comparable=True,
                           measure_floor=measure_floor, floor_hint="", latency_source="analytic")
    budget_ms = FLOOR_MS + 0.3
    candidate = search.first(FULL_MS, budget_ms, 0.95 * budget_ms)
    assert floors == [FLOOR_MS]
    missed = search.after_miss(candidate, 3 * budget_ms)  # a wider candidate measured far over: the model is off
    assert missed is not None and missed.measured_ms == FLOOR_MS and floors == [FLOOR_MS]  # not measured again
    assert all(len(k) == 1 for k in missed.keep.values())
    assert "going on with the smallest model, measured within the budget" in caplog.text

    with pytest.raises(BudgetUnreachableError, match="missed it when confirmed"):  # offered once, not twice
        search.after_miss(missed, 3 * budget_ms)
