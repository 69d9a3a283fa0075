"""An analytic latency model for tests of the search logic: 10 ms plus 1 ms per kept channel.

It stands in for a profiled table where a test checks how an allocation searches, never a latency."""

from __future__ import annotations

from collections.abc import Mapping

FIXED_MS = 10.0


class AnalyticCost:
    """Predicts ``FIXED_MS`` plus 1 ms per channel of the given widths."""

    def predict(self, widths: Mapping[str, int]) -> float:
        return FIXED_MS + sum(widths.values())

    def breakdown(self, widths: Mapping[str, int]) -> dict[str, float]:
        return {"fixed": FIXED_MS, **{k: float(v) for k, v in widths.items()}}
