"""A candidate measured far under the search target gets one upward search (edgeprune.fit.loop.upward).

The allocations are driven by an analytic cost (10 ms plus 1 ms per kept channel), and "measurements" are that
cost times a chosen factor: these tests check the search logic, not a latency."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from analytic_latency import AnalyticCost

from edgeprune.fit.loop.base import Candidate
from edgeprune.fit.loop.latency_search import LatencySearch
from edgeprune.fit.loop.uniform import UniformBisection
from edgeprune.fit.loop.upward import UNDERSHOOT_FRACTION, search_upward, undershoots
from edgeprune.prune.groups import ChannelGroup, GroupMember

GROUPS = [ChannelGroup(n, 8, (GroupMember(n, "Conv2d", "out", tuple(range(8))),)) for n in ("a", "b")]
SCORES = {g.name: np.arange(8, dtype=float) for g in GROUPS}
FULL_MS = 10.0 + 16  # the cost of the unpruned widths
BUDGET_MS = 22.0
TARGET_MS = 0.95 * BUDGET_MS


def _true_ms(keep: Mapping[str, list[int]]) -> float:
    return 10.0 + sum(len(keep.get(g.name, range(g.width))) for g in GROUPS)


def _kept(keep: Mapping[str, list[int]]) -> int:
    return sum(len(keep.get(g.name, range(g.width))) for g in GROUPS)


def _search() -> LatencySearch:
    return LatencySearch(GROUPS, SCORES, AnalyticCost(), alignment=1, globally_comparable=True,
                         measure_floor=_true_ms, floor_hint="", latency_source="analytic")


def _overshot(search: LatencySearch) -> Candidate:
    """The candidate a search proposes after a noisy reading 1.5x over the truth recalibrated it."""
    first = search.first(FULL_MS, BUDGET_MS, TARGET_MS)
    first.measured_ms = _true_ms(first.keep)
    assert first.measured_ms <= TARGET_MS
    thin = search.after_miss(first, 1.5 * first.measured_ms)
    assert thin is not None
    thin.measured_ms = _true_ms(thin.keep)
    assert undershoots(thin.measured_ms, TARGET_MS), "the noisy recalibration sent the search far under the target"
    return thin


def test_an_overshot_candidate_is_replaced_by_the_wider_one_measured_within_the_budget() -> None:
    search = _search()
    thin = _overshot(search)
    measured: list[str] = []

    def measure(keep: dict[str, list[int]], kind: str, info: dict) -> float:
        measured.append(kind)
        return _true_ms(keep)

    chosen = search_upward(search, thin, BUDGET_MS, measure)
    assert measured == ["search-upward"]
    assert _kept(chosen.keep) > _kept(thin.keep)
    assert chosen.measured_ms is not None and chosen.measured_ms <= BUDGET_MS
    assert not undershoots(chosen.measured_ms, TARGET_MS)  # the truth is linear: it lands at the target
    assert search.correction == pytest.approx(1.0)  # recalibrated on the thin candidate's true reading


def test_a_wider_candidate_that_misses_the_budget_leaves_the_measured_one() -> None:
    search = _search()
    thin = _overshot(search)
    chosen = search_upward(search, thin, BUDGET_MS, lambda keep, kind, info: 2 * _true_ms(keep))
    assert chosen is thin


def test_an_allocation_without_a_wider_proposal_measures_nothing() -> None:
    uniform = UniformBisection(GROUPS, SCORES, alignment=1, measure=lambda keep, kind, info: _true_ms(keep),
                               max_rounds=20, floor_hint="")
    candidate = Candidate({"a": [0]}, {}, 11.0)

    def fail(*_: object) -> float:
        raise AssertionError("nothing to measure")

    assert search_upward(uniform, candidate, BUDGET_MS, fail) is candidate
    search = _search()
    search.first(FULL_MS, BUDGET_MS, TARGET_MS)
    unpruned = Candidate({}, {}, 5.0)
    assert search_upward(search, unpruned, BUDGET_MS, fail) is unpruned


def test_a_recalibration_after_an_upward_search_solves_from_the_candidate_widths() -> None:
    search = _search()
    first = search.first(FULL_MS, BUDGET_MS, TARGET_MS)
    search.after_undershoot(Candidate({"a": [0], "b": [0]}, {}, 6.0), 6.0)  # correction now 0.5
    search.after_miss(first, 1.2 * _true_ms(first.keep))
    assert search.correction == pytest.approx(1.2)  # measured / uncorrected prediction, whatever came between


def test_the_undershoot_threshold() -> None:
    assert not undershoots(TARGET_MS * (1 - UNDERSHOOT_FRACTION / 2), TARGET_MS)
    assert undershoots(TARGET_MS * (1 - 2 * UNDERSHOOT_FRACTION), TARGET_MS)
