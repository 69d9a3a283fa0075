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


class _SteppedCost:
    """10 ms, plus 10 ms for group ``a`` wider than 4 channels (2 ms at 4 or fewer: a runtime's width step),
    plus 1 ms per channel of group ``b``."""

    def predict(self, widths: Mapping[str, int]) -> float:
        return 10.0 + (10.0 if widths["a"] > 4 else 2.0) + widths["b"]

    def breakdown(self, widths: Mapping[str, int]) -> dict[str, float]:
        return {"all": self.predict(widths)}


def test_the_upward_search_adds_to_the_measured_candidate_where_a_fresh_descent_ends_narrower() -> None:
    """From the full widths, the descent to 25 ms only cuts ``b`` (``a``'s first steps save nothing), ending on
    8 + 5 channels; the measured candidate, 4 + 10 channels at 22 ms, has room for 2 more of ``b``."""
    groups = [ChannelGroup("a", 8, (GroupMember("a", "Conv2d", "out", tuple(range(8))),)),
              ChannelGroup("b", 12, (GroupMember("b", "Conv2d", "out", tuple(range(12))),))]
    scores = {"a": np.arange(8, dtype=float), "b": np.arange(12, dtype=float)}
    search = LatencySearch(groups, scores, _SteppedCost(), alignment=1, globally_comparable=True,
                           measure_floor=lambda keep: 12.0, floor_hint="", latency_source="stepped")
    fresh = search.first(32.0, 26.0, 25.0)
    assert {k: len(v) for k, v in fresh.keep.items()} == {"a": 8, "b": 5}
    measured = Candidate({"a": [4, 5, 6, 7], "b": list(range(2, 12))}, {}, 22.0)
    upward = search.after_undershoot(measured, 22.0)
    assert upward is not None
    assert upward.keep["a"] == measured.keep["a"] and upward.keep["b"] == list(range(12))
    assert upward.info["predicted_ms"] == pytest.approx(24.0)


def _undershot_candidate(search: LatencySearch, budget_ms: float, measured_ms: float) -> Candidate:
    """The first candidate for ``budget_ms``, "measured" far under it (the model was pessimistic)."""
    first = search.first(FULL_MS, budget_ms, 0.95 * budget_ms)
    assert first.keep, "the unpruned model misses the search target: the search prunes"
    first.measured_ms = measured_ms
    assert undershoots(measured_ms, 0.95 * budget_ms)
    return first


def test_an_upward_search_that_reaches_the_unpruned_model_ships_it_unmeasured_when_it_met_the_budget() -> None:
    """Issue 35: the upward search re-measured the unpruned model, which the run had measured at its start."""
    search = _search()
    thin = _undershot_candidate(search, FULL_MS + 1.0, 20.0)
    measured: list[str] = []
    chosen = search_upward(search, thin, FULL_MS + 1.0, lambda keep, kind, info: measured.append(kind) or 0.0)
    assert chosen.keep == {} and chosen.measured_ms == FULL_MS and measured == []


def test_an_upward_search_that_reaches_an_unpruned_model_over_the_budget_proposes_one_between() -> None:
    search = _search()
    budget_ms = FULL_MS - 1.0  # the unpruned model, measured at the start, misses it
    thin = _undershot_candidate(search, budget_ms, 18.0)
    upward = search.after_undershoot(thin, 18.0)
    assert upward is not None and upward.measured_ms is None and upward.info.get("halfway")
    assert _kept(thin.keep) < _kept(upward.keep) < _kept({})
