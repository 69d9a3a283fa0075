"""The foundation's baseline allocation: one keep ratio for every group, bisected on measured latency.

Every candidate the bisection considers is exported and measured (never estimated). The search aims at
``target_ms`` (the budget minus headroom); after a confirmation miss the next smaller ratio that met it
is tried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeprune.errors import BudgetUnreachableError
from edgeprune.fit.loop.base import Candidate, RoundsExhausted, floor_within_budget
from edgeprune.prune.groups import ChannelGroup
from edgeprune.prune.ratio_bisect import bisect_largest_feasible
from edgeprune.prune.uniform import uniform_keep

FLOOR_RATIO = 1e-6
MeasureFn = Callable[[dict[str, list[int]], str, dict[str, Any]], float]


class UniformBisection:
    """Bisect one keep ratio for all groups against measured latency."""

    name = "uniform-ratio-bisection"

    def __init__(self, groups: Sequence[ChannelGroup], scores: Mapping[str, np.ndarray], alignment: int,
                 measure: MeasureFn, max_rounds: int, floor_hint: str) -> None:
        self.groups, self.scores, self.alignment = list(groups), scores, alignment
        self.measure, self.max_rounds, self.floor_hint = measure, max_rounds, floor_hint
        self._by_widths: dict[tuple[int, ...], tuple[float, float]] = {}
        self._feasible: list[float] = []

    def _keep(self, ratio: float) -> dict[str, list[int]]:
        return uniform_keep(self.groups, self.scores, ratio, self.alignment)

    def _latency(self, ratio: float, kind: str) -> tuple[float, float]:
        """(median ms, first ratio measured with the same widths)."""
        keep = self._keep(ratio)
        widths = tuple(len(keep[g.name]) for g in self.groups)
        if widths not in self._by_widths:
            self._by_widths[widths] = (ratio, self.measure(keep, kind, {"keep_ratio": ratio}))
        first_ratio, ms = self._by_widths[widths]
        return ms, first_ratio

    def _candidate(self, ratio: float) -> Candidate:
        ms, _ = self._latency(ratio, "search")
        return Candidate(self._keep(ratio), {"keep_ratio": ratio}, ms)

    def first(self, baseline_ms: float, budget_ms: float, target_ms: float) -> Candidate:
        if baseline_ms <= target_ms:
            return Candidate({}, {"keep_ratio": 1.0}, baseline_ms)
        floor_ms, _ = self._latency(FLOOR_RATIO, "floor")
        if floor_ms > budget_ms:
            raise BudgetUnreachableError(budget_ms, floor_ms, self.floor_hint)
        if floor_ms > target_ms:
            target_ms = floor_within_budget(floor_ms, target_ms, budget_ms)
        feasible = [FLOOR_RATIO]

        def latency_at(ratio: float) -> float:
            ms, first_ratio = self._latency(ratio, "search")
            if ms <= target_ms:
                feasible.append(first_ratio)
            return ms

        try:
            bisect_largest_feasible(latency_at, target_ms, FLOOR_RATIO, 1.0, self.max_rounds,
                                    0.5 / max(g.width for g in self.groups))
        except RoundsExhausted:
            pass  # continue with the best candidate measured so far
        self._feasible = sorted(set(feasible))
        return self._candidate(self._feasible.pop())

    def after_miss(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        return self._candidate(self._feasible.pop()) if self._feasible else None

    def after_undershoot(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        """None: the bisection already measured the ratios around its pick against the target, so a wider
        candidate would be one it measured over the target."""
        return None

    def settle(self, candidate: Candidate, budget_ms: float) -> Candidate:
        return candidate

    def method(self) -> dict[str, Any]:
        return {"allocation": self.name}
