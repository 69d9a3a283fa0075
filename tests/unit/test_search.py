"""The latency-budgeted search: never returns a plan predicted over budget, prunes where it is cheap."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from edgeprune.fit.loop.width_search import latency_budgeted_widths, normalised_scores
from edgeprune.prune.groups import ChannelGroup


class StepLatency:
    """Synthetic latency: each group costs weight x ceil(width / 16) (a runtime with 16-channel steps)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = weights

    def predict(self, widths: Mapping[str, int]) -> float:
        return 0.05 + sum(w * -(-widths[g] // 16) for g, w in self.weights.items())

    def breakdown(self, widths: Mapping[str, int]) -> dict[str, float]:
        return {g: w * -(-widths[g] // 16) for g, w in self.weights.items()}


def _groups(widths: Mapping[str, int]) -> list[ChannelGroup]:
    return [ChannelGroup(name, w, ()) for name, w in widths.items()]


@pytest.mark.parametrize("fraction", [0.9, 0.6, 0.35])
def test_search_never_returns_a_plan_predicted_over_budget(fraction: float) -> None:
    rng = np.random.default_rng(0)
    widths = {"a": 64, "b": 128, "c": 32, "d": 96}
    groups = _groups(widths)
    latency = StepLatency({"a": 0.1, "b": 0.05, "c": 0.3, "d": 0.02})
    scores = {g.name: rng.random(g.width) for g in groups}
    budget = fraction * latency.predict(widths)
    result = latency_budgeted_widths(groups, scores, latency, budget, alignment=8)
    assert result.feasible
    assert result.predicted_ms <= budget
    assert latency.predict(result.widths) == pytest.approx(result.predicted_ms)
    for g in groups:
        assert result.widths[g.name] % 8 == 0 and 8 <= result.widths[g.name] <= g.width
        assert len(result.keep[g.name]) == result.widths[g.name]


def test_infeasible_budget_is_reported_not_silently_exceeded() -> None:
    groups = _groups({"a": 32, "b": 32})
    latency = StepLatency({"a": 1.0, "b": 1.0})
    result = latency_budgeted_widths(groups, {"a": np.ones(32), "b": np.ones(32)}, latency, 0.5, alignment=8)
    assert not result.feasible
    assert result.widths == {"a": 8, "b": 8}


def test_search_prunes_where_latency_is_cheap_to_save_and_keeps_important_channels() -> None:
    groups = _groups({"slow": 64, "fast": 64})
    latency = StepLatency({"slow": 1.0, "fast": 0.01})  # removing 'fast' channels saves almost nothing
    scores = {"slow": np.linspace(1, 2, 64), "fast": np.linspace(1, 2, 64)}
    budget = latency.predict({"slow": 32, "fast": 64}) + 1e-9
    result = latency_budgeted_widths(groups, scores, latency, budget, alignment=16)
    assert result.widths == {"slow": 32, "fast": 64}
    assert result.keep["slow"] == list(range(32, 64))  # the 32 highest-scoring channels


def test_scores_are_normalised_per_group_unless_globally_comparable() -> None:
    groups = _groups({"a": 4, "b": 4})
    scores = {"a": np.array([1.0, 2.0, 3.0, 2.0]), "b": np.array([100.0, 200.0, 300.0, 200.0])}
    norm = normalised_scores(groups, scores, globally_comparable=False)
    assert np.allclose(norm["a"], norm["b"]) and norm["a"].mean() == pytest.approx(1.0)
    assert normalised_scores(groups, scores, globally_comparable=True)["b"][0] == 100.0


def test_the_slack_the_last_step_leaves_is_given_back_to_other_groups() -> None:
    # the descent first takes the two cheap 'inner' steps (0.05 ms each), then one 'stream' step that saves
    # 1 ms where 0.2 more were needed: both inner steps fit in the slack and go back
    groups = _groups({"stream": 32, "inner": 64})
    latency = StepLatency({"stream": 1.0, "inner": 0.05})
    scores = {"stream": np.full(32, 0.5), "inner": np.r_[np.full(32, 2.0), np.full(32, 0.01)]}
    full = latency.predict({"stream": 32, "inner": 64})
    budget = full - 0.3
    result = latency_budgeted_widths(groups, scores, latency, budget, alignment=16, globally_comparable=True)
    assert result.feasible and result.predicted_ms <= budget
    assert result.widths == {"stream": 16, "inner": 64}  # the inner channels the descent took went back
    assert latency.predict(result.widths) == pytest.approx(result.predicted_ms)
