"""The uniform-cut guard: the latency search's candidate against the uniform cut at the same measured latency.

Latencies come from an analytic cost here (10 ms plus 1 ms per kept channel) and distortions from functions of the
kept widths: these tests check the guard's logic (which candidate ships, how many rounds it spends, what follows a
miss), not a latency. A real fit through the guard is in tests/integration (the report's ``uniform_guard``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from edgeprune.fit.loop.base import Candidate
from edgeprune.fit.loop.guard import GUARD_KINDS, GUARD_ROUNDS, GUARD_ROUNDS_TOTAL, UniformGuard
from edgeprune.prune.groups import ChannelGroup, GroupMember

GROUPS = [ChannelGroup(n, 16, (GroupMember(n, "Conv2d", "out", tuple(range(16))),)) for n in ("a", "b")]
SCORES = {g.name: np.arange(16, dtype=float) for g in GROUPS}
FULL_MS = 10.0 + 32


def _kept_ms(keep: Mapping[str, list[int]]) -> float:
    return 10.0 + sum(len(k) for k in keep.values())


class _Search:
    """A stand-in search that proposed one lopsided candidate: group ``a`` cut to 2 channels, ``b`` whole."""

    name = "stand-in"

    def __init__(self) -> None:
        self.misses: list[float] = []

    def first(self, baseline_ms: float, budget_ms: float, target_ms: float) -> Candidate:
        keep = {"a": list(range(14, 16)), "b": list(range(16))}
        return Candidate(keep, {}, _kept_ms(keep))

    def after_miss(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        self.misses.append(measured_ms)
        return None

    def after_undershoot(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        return None

    def settle(self, candidate: Candidate, budget_ms: float) -> Candidate:
        return candidate

    def method(self) -> dict[str, object]:
        return {"allocation": self.name}


class _Measured:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def __call__(self, keep: dict[str, list[int]], kind: str, info: dict[str, object]) -> float:
        self.kinds.append(kind)
        return _kept_ms(keep)


def _guard(distortion_favours: str) -> tuple[UniformGuard, _Measured, _Search]:
    def distortion(keep: dict[str, list[int]]) -> float:
        widths = [len(keep.get(g.name, range(g.width))) for g in GROUPS]
        lopsided = max(widths) - min(widths)
        return float(lopsided if distortion_favours == "uniform" else 32 - lopsided)

    measure, search = _Measured(), _Search()
    return UniformGuard(search, GROUPS, SCORES, 1, measure, distortion), measure, search


def test_the_uniform_cut_ships_when_it_distorts_less_and_meets_the_same_latency() -> None:
    guard, measure, _ = _guard("uniform")
    searched = guard.first(FULL_MS, 29.0, 28.0)
    assert searched.measured_ms == 28.0
    shipped = guard.settle(searched, 29.0)
    assert shipped is not searched and shipped.measured_ms is not None and shipped.measured_ms <= 28.0
    assert {len(v) for v in shipped.keep.values()} == {9}  # the widest uniform cut within 28 ms: 9 + 9 channels
    assert set(measure.kinds) <= set(GUARD_KINDS) and len(measure.kinds) <= GUARD_ROUNDS_TOTAL
    outcome = guard.method()["uniform_guard"]
    assert outcome["chosen"] == "uniform" and outcome["ceiling_ms"] == 28.0
    assert outcome["uniform"]["distortion"] < outcome["latency_search"]["distortion"]


def test_the_search_candidate_ships_when_it_distorts_less() -> None:
    guard, _, _ = _guard("latency_search")
    searched = guard.first(FULL_MS, 29.0, 28.0)
    assert guard.settle(searched, 29.0) is searched
    assert guard.method()["uniform_guard"]["chosen"] == "latency_search"


def test_every_search_candidate_is_compared_reusing_the_uniform_cuts_measured_and_never_the_unpruned_model(
        ) -> None:
    guard, measure, _ = _guard("uniform")
    assert guard.settle(Candidate({}, {}, 20.0), 29.0).keep == {}  # the starting model: nothing to compare
    assert measure.kinds == [] and guard.method()["uniform_guard"] is None
    searched = guard.first(FULL_MS, 29.0, 28.0)
    guard.settle(searched, 29.0)
    rounds = len(measure.kinds)
    later = Candidate({"a": list(range(14, 16)), "b": list(range(1, 16))}, {}, 27.0)  # the search's next proposal
    assert guard.settle(later, 29.0).info.get("guard")  # compared again: the uniform cut still distorts less
    assert guard.method()["uniform_guard"]["comparisons"] == 2
    assert len(measure.kinds) - rounds <= GUARD_ROUNDS and len(measure.kinds) <= GUARD_ROUNDS_TOTAL


def test_a_confirmation_miss_of_the_uniform_cut_goes_narrower_then_back_to_the_search() -> None:
    guard, measure, search = _guard("uniform")
    searched = guard.first(FULL_MS, 29.0, 28.0)
    shipped = guard.settle(searched, 29.0)
    assert shipped.measured_ms is not None
    narrower = []
    candidate: Candidate | None = shipped
    while candidate is not None and candidate.info.get("guard"):
        candidate = guard.after_miss(candidate, 30.0)  # every uniform cut misses its confirmation
        if candidate is not None and candidate.info.get("guard"):
            narrower.append(candidate.measured_ms)
    assert narrower and narrower == sorted(narrower, reverse=True) and all(ms < shipped.measured_ms for ms in narrower)
    assert candidate is searched  # no uniform cut left: the search's own candidate, measured within the budget
    assert guard.method()["uniform_guard"]["chosen"] == "latency_search"
    assert len(measure.kinds) <= GUARD_ROUNDS_TOTAL
    assert guard.after_miss(searched, 30.0) is None and search.misses == [30.0]  # then the search recalibrates


def test_after_a_miss_the_narrower_uniform_cut_must_still_beat_the_search_candidate() -> None:
    """Distortion that grows fast as the uniform cut narrows: after the widest uniform cut misses, the next one
    distorts more than the search's candidate, which then goes on."""
    guard, _, _ = _guard("uniform")
    widest = 18

    def distortion(keep: dict[str, list[int]]) -> float:
        kept = sum(len(keep.get(g.name, range(g.width))) for g in GROUPS)
        lopsided = max(len(v) for v in keep.values()) - min(len(v) for v in keep.values()) if keep else 0
        return 1.0 if lopsided else 0.5 + 10.0 * (widest - kept)

    guard.distortion = distortion
    searched = guard.first(FULL_MS, 29.0, 28.0)
    shipped = guard.settle(searched, 29.0)
    assert shipped.info.get("guard") and sum(len(v) for v in shipped.keep.values()) == widest
    assert guard.after_miss(shipped, 30.0) is searched
    assert guard.method()["uniform_guard"]["chosen"] == "latency_search"


@pytest.mark.parametrize("ceiling_ms", [11.0, 12.0])
def test_no_uniform_cut_within_the_rounds_keeps_the_search_candidate(ceiling_ms: float) -> None:
    """11 ms is under the uniform floor (one channel per group, 12 ms): nothing fits and the search's candidate
    stays; at 12 ms only the floor fits, reached by stepping down within the rounds."""
    guard, measure, _ = _guard("uniform")
    guard.first(FULL_MS, ceiling_ms, ceiling_ms)
    searched = Candidate({"a": [15], "b": [15]}, {}, 11.0)
    searched.measured_ms = ceiling_ms
    shipped = guard.settle(searched, ceiling_ms)
    assert len(measure.kinds) <= GUARD_ROUNDS
    if ceiling_ms == 11.0:
        assert shipped is searched and "no uniform cut" in guard.method()["uniform_guard"]["reason"]
        assert guard.method()["uniform_guard"]["chosen"] == "latency_search"


def test_a_near_miss_is_measured_again_and_the_mean_decides() -> None:
    """One high reading of the widest uniform cut within the ceiling (28 ms: 9 + 9 channels) must not send the guard
    narrower: it is 7% over, so it is measured again and the mean of the two (within) decides."""
    readings = {18: [30.0, 25.0]}  # the first reading of 9 + 9 channels is high, the second low

    def measure(keep: dict[str, list[int]], kind: str, info: dict[str, object]) -> float:
        kept = sum(len(k) for k in keep.values())
        return readings[kept].pop(0) if readings.get(kept) else _kept_ms(keep)

    guard = UniformGuard(_Search(), GROUPS, SCORES, 1, measure, lambda keep: 0.0 if len(set(
        len(v) for v in keep.values())) == 1 else 1.0)
    searched = guard.first(FULL_MS, 29.0, 28.0)
    shipped = guard.settle(searched, 29.0)
    assert sum(len(v) for v in shipped.keep.values()) == 18 and shipped.measured_ms == 27.5
    assert shipped.info["rechecked"]
