"""The latency-table search is built only when the starting model does not already meet the search target."""

from __future__ import annotations

from edgeprune.fit.loop.base import Candidate
from edgeprune.fit.loop.deferred import DeferredAllocation


class _Search:
    name = "latency-budgeted-search"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def first(self, baseline_ms: float, budget_ms: float, target_ms: float) -> Candidate:
        self.calls.append(f"first {baseline_ms} {budget_ms} {target_ms}")
        return Candidate({"g": [0]}, {}, None)

    def after_miss(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        self.calls.append(f"miss {measured_ms}")
        return Candidate({"g": [0]}, {}, None)

    def after_undershoot(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        return None

    def method(self) -> dict[str, object]:
        return {"allocation": self.name}


def test_a_start_within_the_target_is_proposed_without_building_the_search() -> None:
    built: list[_Search] = []
    deferred = DeferredAllocation(lambda: built.append(_Search()) or built[-1])
    first = deferred.first(0.3, 0.4, 0.38)
    assert first.keep == {} and first.measured_ms == 0.3 and not built
    assert deferred.after_undershoot(first, 0.1) is None and not built  # nothing to add to the whole model
    assert deferred.method()["allocation"].startswith("none")
    # should the starting model miss after all, the search is built, told the run's budget, and asked
    assert deferred.after_miss(first, 0.45) is not None
    assert built[0].calls == ["first 0.3 0.4 0.38", "miss 0.45"] and deferred.method()["allocation"] == built[0].name


def test_a_start_over_the_target_builds_and_asks_the_search_at_once() -> None:
    built: list[_Search] = []
    deferred = DeferredAllocation(lambda: built.append(_Search()) or built[-1])
    assert deferred.first(0.5, 0.4, 0.38).keep == {"g": [0]}
    assert built[0].calls == ["first 0.5 0.4 0.38"]
