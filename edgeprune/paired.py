"""Paired measurement: a candidate timed against a reference in alternating rounds, judged by their ratio.

A machine's speed drifts (another job on the other core, a Pi that throttles when it warms up, a laptop on
battery): 8% within a minute on a quiet VM here, and up to 40% for a 1-thread timing when a second job runs.
Two readings taken minutes apart are therefore not comparable, but two taken side by side are: the
candidate and the reference (the original's artifact, same runtime and settings) are timed in alternating
rounds (:func:`edgeprune.timing.interleaved_rounds`), each round gives one ratio of medians, and the verdict
uses the **median of the per-round ratios** with a bootstrap interval over rounds. A ratio whose interval
straddles the decision threshold gets more rounds, up to ``max_rounds``, before it is accepted.

Pairing cancels drift, not time-slicing: with more runnable threads than cores the longer side is preempted
more often. Runs during which a thread of the process waited for a CPU are therefore left out of each round's
medians (:mod:`edgeprune.preemption`), a round counts only when both sides kept
:data:`~edgeprune.timing.MIN_UNDISTURBED_RUNS`, and rounds that do not count are replaced by more rounds (up to
``max_rounds`` plus as many again). A measurement left with fewer than half its planned rounds counting is
flagged ``oversubscribed``: its ratio is biased toward the shorter side, and callers that decide on it say so
rather than decide (:class:`~edgeprune.errors.OversubscribedError`).

:func:`ratio_summary` is the arithmetic (pure, on readings); :func:`measure_paired` times two calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune.preemption import WaitProbe
from edgeprune.timing import LatencyStats, RoundReading, interleaved_rounds, oversubscription_note, summarise_samples

#: the share of the bootstrap distribution the interval covers
CONFIDENCE = 0.90
#: bootstrap resamples of the rounds (seeded, so a verdict is reproducible from its readings)
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class PairingSpec:
    """How to time a candidate against the reference.

    ``rounds`` alternating rounds, each timing both for at least ``min_runs`` calls and ``min_round_seconds``;
    a ratio whose interval holds the threshold, or is wider than ``max_interval_share`` of the ratio (when
    that is set: the figures a run reports), gets ``extra_rounds`` more at a time, up to ``max_rounds``.
    """

    rounds: int = 10
    max_rounds: int = 30
    extra_rounds: int = 10
    min_round_seconds: float = 0.05
    min_runs: int = 5
    warmup_runs: int = 10
    max_interval_share: float = 0.0


def schedule(seconds: float, warmup_runs: int = 10, max_interval_share: float = 0.0) -> PairingSpec:
    """The paired schedule that spends about ``seconds`` on a pair (half on each side) before any extension."""
    rounds = max(6, round(10 * seconds))
    return PairingSpec(rounds=rounds, max_rounds=3 * rounds, extra_rounds=rounds, min_round_seconds=0.05,
                       min_runs=5, warmup_runs=warmup_runs, max_interval_share=max_interval_share)


@dataclass(frozen=True)
class RatioSummary:
    """The median of per-round ratios (candidate / reference) and its bootstrap interval."""

    ratio: float
    low: float
    high: float
    rounds: int

    def holds(self, threshold: float) -> bool:
        """Whether ``threshold`` lies inside the interval (the verdict is not settled yet)."""
        return self.low <= threshold <= self.high

    @property
    def width_share(self) -> float:
        """The interval's width as a share of the ratio."""
        return (self.high - self.low) / max(self.ratio, 1e-12)


@dataclass(frozen=True)
class PairedStats:
    """A paired measurement: per-round medians of both, the ratio with its interval, pooled summaries."""

    summary: RatioSummary
    reference_round_ms: list[float]
    candidate_round_ms: list[float]
    round_started_s: list[float]
    reference: LatencyStats
    candidate: LatencyStats
    threshold_ratio: float | None = None
    extended: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: the share of timed runs (both sides) left out because a thread waited for a CPU during them
    disturbed_share: float = 0.0
    #: rounds timed but left out (a side kept too few undisturbed runs)
    rounds_left_out: int = 0
    #: too few rounds counted: the ratio is biased toward the shorter side
    oversubscribed: bool = False

    def oversubscription(self) -> str:
        """One line for a user: how many runs and rounds were left out."""
        return (f"{oversubscription_note(self.disturbed_share)}, and {self.rounds_left_out} of "
                f"{self.rounds_left_out + self.summary.rounds} paired rounds were left out")

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios candidate / reference."""
        return self.summary.ratio

    @property
    def reference_median_ms(self) -> float:
        """The reference's median over this measurement's rounds."""
        return float(np.median(self.reference_round_ms))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for report.json: enough to recompute the ratio and its interval."""
        return {
            "ratio": self.summary.ratio, "ratio_low": self.summary.low, "ratio_high": self.summary.high,
            "confidence": CONFIDENCE, "rounds": self.summary.rounds, "extended": self.extended,
            "threshold_ratio": self.threshold_ratio,
            "reference_round_ms": [round(x, 6) for x in self.reference_round_ms],
            "candidate_round_ms": [round(x, 6) for x in self.candidate_round_ms],
            "round_started_s": [round(x, 3) for x in self.round_started_s],
            # seconds spent timing each side (the reference's share is what pairing costs)
            "reference_s": round(self.reference.runs * self.reference.mean_ms / 1000.0, 4),
            "candidate_s": round(self.candidate.runs * self.candidate.mean_ms / 1000.0, 4),
            "disturbed_share": round(self.disturbed_share, 4), "rounds_left_out": self.rounds_left_out,
            "oversubscribed": self.oversubscribed,
        }


def ratio_summary(reference_round_ms: Sequence[float], candidate_round_ms: Sequence[float], seed: int = 0,
                  confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES) -> RatioSummary:
    """Median of the per-round ratios and a percentile-bootstrap interval over rounds.

    >>> s = ratio_summary([2.0, 2.2, 2.4, 2.0], [1.0, 1.1, 1.2, 1.0])
    >>> round(s.ratio, 3), round(s.low, 3), round(s.high, 3)
    (0.5, 0.5, 0.5)
    """
    ref = np.asarray(reference_round_ms, dtype=float)
    cand = np.asarray(candidate_round_ms, dtype=float)
    if ref.shape != cand.shape or ref.size == 0:
        raise ValueError("paired readings need the same, non-zero number of rounds on both sides")
    if np.any(ref <= 0):
        raise ValueError("reference readings must be positive")
    ratios = cand / ref
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, ratios.size, size=(resamples, ratios.size))
    medians = np.median(ratios[picks], axis=1)
    tail = (1 - confidence) / 2
    return RatioSummary(float(np.median(ratios)), float(np.quantile(medians, tail)),
                        float(np.quantile(medians, 1 - tail)), int(ratios.size))


def measure_paired(reference: Callable[[], object], candidate: Callable[[], object], spec: PairingSpec,
                   threshold_ratio: float | None = None, seed: int = 0, probe: WaitProbe | None = None) -> PairedStats:
    """Time ``candidate`` against ``reference`` in alternating rounds; extend while the interval holds
    ``threshold_ratio`` (the ratio the verdict compares with) or is wider than ``spec.max_interval_share``,
    up to ``spec.max_rounds`` rounds, and while too few rounds count (runs disturbed by time-slicing), up to
    twice that."""
    readings: list[RoundReading] = interleaved_rounds(reference, candidate, spec.rounds, spec.min_round_seconds,
                                                      spec.min_runs, spec.warmup_runs, probe=probe)
    needed = max(3, spec.rounds // 2)
    extended = False

    def counted() -> list[RoundReading]:
        return [r for r in readings if r.counts()]

    def unsettled() -> bool:
        rounds = counted()
        if len(rounds) < needed:
            return True
        s = _summary(rounds, seed)
        straddles = threshold_ratio is not None and s.holds(threshold_ratio)
        return straddles or (spec.max_interval_share > 0 and s.width_share > spec.max_interval_share)

    while unsettled():
        cap = spec.max_rounds if len(counted()) >= needed else 2 * spec.max_rounds
        if len(readings) >= cap:
            break
        more = min(spec.extra_rounds, cap - len(readings))
        readings += interleaved_rounds(reference, candidate, more, spec.min_round_seconds, spec.min_runs,
                                       start_index=len(readings), probe=probe)
        extended = True
    rounds = counted()
    oversubscribed = len(rounds) < needed
    if len(rounds) < 3:  # too few to summarise undisturbed: every run, flagged
        rounds = [RoundReading(r.first_s + r.first_disturbed_s, r.second_s + r.second_disturbed_s, r.started_s)
                  for r in readings]
    runs = sum(len(r.first_s) + len(r.second_s) + len(r.first_disturbed_s) + len(r.second_disturbed_s)
               for r in readings)
    disturbed = sum(len(r.first_disturbed_s) + len(r.second_disturbed_s) for r in readings)
    share = round(disturbed / runs, 4) if runs else 0.0
    reference_stats = summarise_samples([s for r in rounds for s in r.first_s])
    candidate_stats = summarise_samples([s for r in rounds for s in r.second_s])
    return PairedStats(
        summary=_summary(rounds, seed),
        reference_round_ms=[1000.0 * float(np.median(r.first_s)) for r in rounds],
        candidate_round_ms=[1000.0 * float(np.median(r.second_s)) for r in rounds],
        round_started_s=[r.started_s for r in rounds],
        reference=dataclasses.replace(reference_stats, disturbed_share=share, oversubscribed=oversubscribed),
        candidate=dataclasses.replace(candidate_stats, disturbed_share=share, oversubscribed=oversubscribed),
        threshold_ratio=threshold_ratio,
        extended=extended,
        disturbed_share=share,
        rounds_left_out=len(readings) - len(counted()),
        oversubscribed=oversubscribed,
    )


def _summary(readings: list[RoundReading], seed: int) -> RatioSummary:
    return ratio_summary([float(np.median(r.first_s)) for r in readings],
                         [float(np.median(r.second_s)) for r in readings], seed)
