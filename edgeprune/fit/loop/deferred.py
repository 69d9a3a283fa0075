"""An allocation built only when the closed loop needs one.

Building the latency-table search profiles the model's kernels (minutes for a large model, or for LiteRT,
whose probes are converted from PyTorch). When the starting model already meets the search target (an INT8
run whose unpruned model, quantized, is fast enough), there is nothing to search: the first candidate is the
starting model itself, and the table is only built should a later measurement of it miss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeprune.fit.loop.base import Allocation, Candidate


class DeferredAllocation:
    """Proposes the starting model when it meets the target; builds ``make()`` for anything else."""

    def __init__(self, make: Callable[[], Allocation]) -> None:
        self._make = make
        self._built: Allocation | None = None
        self._first: tuple[float, float, float] | None = None
        self.name = "deferred"

    def _allocation(self) -> Allocation:
        if self._built is None:
            self._built = self._make()
            self.name = self._built.name
            if self._first is not None:  # the built search learns the run's budget and target
                self._built.first(*self._first)
        return self._built

    def first(self, baseline_ms: float, budget_ms: float, target_ms: float) -> Candidate:
        if baseline_ms <= target_ms:
            self._first = (baseline_ms, budget_ms, target_ms)
            return Candidate({}, {"predicted_ms": baseline_ms}, baseline_ms)
        return self._allocation().first(baseline_ms, budget_ms, target_ms)

    def after_miss(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        return self._allocation().after_miss(candidate, measured_ms)

    def after_undershoot(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        return None if not candidate.keep else self._allocation().after_undershoot(candidate, measured_ms)

    def settle(self, candidate: Candidate, budget_ms: float) -> Candidate:
        return candidate

    def method(self) -> dict[str, Any]:
        if self._built is None:
            return {"allocation": "none (the starting model met the budget)", "latency_model": None}
        return self._built.method()
