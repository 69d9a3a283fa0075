"""The contract between the closed loop (pipeline) and an allocation strategy.

The pipeline asks a strategy for a candidate, builds and measures it on the target, recovers accuracy,
measures the shipped artifact again, and — whenever a measurement misses the budget — tells the strategy,
which proposes the next candidate (or gives up). Strategies never claim a latency they did not get from
the pipeline's measurements or from a latency model they name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Candidate:
    """Widths to try.

    Attributes:
        keep: kept channel indices per group (groups not listed keep everything); empty = the original.
        info: what the strategy wants reported for this candidate (keep ratio, predicted ms ...).
        measured_ms: the candidate's median latency if the strategy already measured it.
    """

    keep: dict[str, list[int]]
    info: dict[str, Any] = field(default_factory=dict)
    measured_ms: float | None = None


class Allocation(Protocol):
    """Proposes candidates and learns from measurements that missed the budget."""

    name: str

    def first(self, baseline_ms: float, target_ms: float) -> Candidate:
        """The first candidate to ship (may measure candidates through the run while searching)."""
        ...

    def after_miss(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        """A new candidate after ``candidate`` measured ``measured_ms`` (over budget), or None to give up."""
        ...

    def method(self) -> dict[str, Any]:
        """Facts for the report (strategy name, parameters)."""
        ...


class RoundsExhausted(Exception):
    """Raised by the run's measure function when the export-and-measure round limit is reached."""


def kept_fraction(keep: dict[str, list[int]], widths: dict[str, int]) -> float:
    """Share of the prunable channels a candidate keeps (1.0 for the original)."""
    total = sum(widths.values())
    kept = sum(len(keep[name]) if name in keep else w for name, w in widths.items())
    return kept / total if total else 1.0
