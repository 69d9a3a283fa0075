"""The contract between the closed loop (pipeline) and an allocation strategy.

The pipeline asks a strategy for a candidate, builds and measures it on the target, recovers accuracy,
measures the shipped artifact again, and — whenever a measurement misses the budget — tells the strategy,
which proposes the next candidate (or gives up). Strategies never claim a latency they did not get from
the pipeline's measurements or from a latency model they name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgeprune.prune.groups import ChannelGroup

log = logging.getLogger(__name__)


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

    def first(self, baseline_ms: float, budget_ms: float, target_ms: float) -> Candidate:
        """The first candidate to ship, searched for ``target_ms`` (the budget less headroom); may measure
        candidates through the run while searching."""
        ...

    def after_miss(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        """A new candidate after ``candidate`` measured ``measured_ms`` (over budget), or None to give up."""
        ...

    def after_undershoot(self, candidate: Candidate, measured_ms: float) -> Candidate | None:
        """A candidate keeping more channels after ``candidate`` measured ``measured_ms``, far under the search
        target, or None when the strategy cannot propose one (see :mod:`edgeprune.fit.loop.upward`)."""
        ...

    def settle(self, candidate: Candidate, budget_ms: float) -> Candidate:
        """The candidate to recover once ``candidate`` measured within ``budget_ms``: itself, or one the strategy
        measured within the same latency and judges better (:mod:`edgeprune.fit.loop.guard`)."""
        ...

    def method(self) -> dict[str, Any]:
        """Facts for the report (strategy name, parameters)."""
        ...


class RoundsExhausted(Exception):
    """Raised by the run's measure function when the export-and-measure round limit is reached.

    Internal to the search: the run turns it into a budget message (never shown as it is)."""

    def __init__(self, message: str = "the search used all its measured rounds") -> None:
        super().__init__(message)


def floor_within_budget(floor_ms: float, target_ms: float, budget_ms: float) -> float:
    """The search target to use when the fastest model edgeprune may build measured ``floor_ms``, over the
    headroom-reduced ``target_ms`` but within ``budget_ms``: the budget itself (headroom dropped, and said).

    The budget is what the user asked for; the headroom only guards against timing noise, so a floor that meets
    the budget is searched for rather than reported as "cannot be met"."""
    log.warning("the fastest prunable model measured %.3f ms: within the %.3f ms budget but not the %.3f ms search "
                "target; searching to the budget itself (no headroom against timing noise)",
                floor_ms, budget_ms, target_ms)
    return budget_ms


def kept_widths(keep: dict[str, list[int]], widths: dict[str, int]) -> dict[str, int]:
    """Each group's width once a candidate keeps ``keep`` (groups not listed keep their ``widths``)."""
    return {name: len(keep[name]) if name in keep else w for name, w in widths.items()}


def kept_fraction(keep: dict[str, list[int]], widths: dict[str, int]) -> float:
    """Share of the prunable channels a candidate keeps (1.0 for the original)."""
    total = sum(widths.values())
    return sum(kept_widths(keep, widths).values()) / total if total else 1.0


def floor_hint(frozen: list[ChannelGroup]) -> str:
    """What to tell a user whose budget is below the smallest model: which frozen groups set the floor."""
    frozen = [g for g in frozen if not g.frozen_reason.startswith("output classes")]
    if not frozen:
        return "Every prunable channel group was already cut to its minimum width."
    return (f"{len(frozen)} channel group(s) are frozen (e.g. {frozen[0].name}) and set a floor; "
            "choose a larger budget or a smaller model.")
