"""Wall-clock timing of one inference: the only code in edgeprune that reads clocks.

A measurement warms up, then repeats the call until both a minimum count and a minimum time are
reached, and summarises with the median (the figure compared against budgets), p90 and the coefficient
of variation. A pass whose CV exceeds ``TimingSpec.max_cv`` gets another pass (up to ``retries``), and the
summary is over all the passes' samples, never the calmest pass alone; a summary that stays noisy is kept
but flagged (``LatencyStats.noisy``), never silently used as if it were clean.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimingSpec:
    """How to time a model: warm-up runs, then at least ``min_runs`` and ``min_seconds`` of runs."""

    warmup_runs: int = 10
    min_runs: int = 50
    max_runs: int = 2000
    min_seconds: float = 1.0
    max_cv: float = 0.15
    retries: int = 2
    #: warn about a measurement that stays noisy; the profiler turns this off and warns once per profile
    warn_noisy: bool = True
    #: a paired measurement gets more rounds while its interval is wider than this share of the ratio (0: none)
    max_interval_share: float = 0.0


@dataclass(frozen=True)
class LatencyStats:
    """Summary of repeated single-inference timings, in milliseconds."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    cv: float
    runs: int
    noisy: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        """Plain-data form for reports."""
        return asdict(self)


def summarise_samples(samples_s: list[float], max_cv: float = float("inf")) -> LatencyStats:
    """Median, p90, mean, min and CV (in ms) of single-inference samples in seconds; noisy above ``max_cv``."""
    ms = np.asarray(samples_s) * 1000.0
    mean = float(ms.mean())
    cv = float(ms.std() / mean) if mean > 0 else 0.0
    return LatencyStats(
        median_ms=float(np.median(ms)),
        p90_ms=float(np.percentile(ms, 90)),
        mean_ms=mean,
        min_ms=float(ms.min()),
        cv=cv,
        runs=len(samples_s),
        noisy=cv > max_cv,
    )


_summarise = summarise_samples


def _one_pass(call: Callable[[], object], spec: TimingSpec) -> list[float]:
    for _ in range(spec.warmup_runs):
        call()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < spec.max_runs:
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
        if len(samples) >= spec.min_runs and time.perf_counter() - started >= spec.min_seconds:
            break
    return samples


def measure_latency(call: Callable[[], object], spec: TimingSpec | None = None) -> LatencyStats:
    """Time ``call`` (one inference) and return its statistics; re-measure when the spread is too high.

    >>> stats = measure_latency(lambda: sum(range(1000)), TimingSpec(min_runs=5, min_seconds=0.0))
    >>> stats.runs >= 5
    True
    """
    spec = spec or TimingSpec()
    samples = _one_pass(call, spec)
    last = _summarise(samples, spec.max_cv)
    attempt = 0
    while last.noisy and attempt < spec.retries:
        attempt += 1
        log.debug("timing was noisy (CV %.1f%%); measuring again (%d/%d)", last.cv * 100, attempt, spec.retries)
        more = _one_pass(call, spec)
        last = _summarise(more, spec.max_cv)
        samples += more
    # every pass counts: keeping the calmest pass would bias the figure low (load adds time and spread alike)
    best = _summarise(samples, spec.max_cv)
    if best.noisy and spec.warn_noisy:
        log.warning(
            "latency measurement stayed noisy (CV %.1f%% > %.0f%%): is another process using the CPU?",
            best.cv * 100,
            spec.max_cv * 100,
        )
    return best


def median_of(values: list[float]) -> float:
    """Median of a non-empty list."""
    return float(statistics.median(values))


@dataclass(frozen=True)
class RoundReading:
    """One round of an interleaved timing: both calls' samples (seconds) and when the round started."""

    first_s: list[float]
    second_s: list[float]
    started_s: float  # time.monotonic() at the round's start


def interleaved_rounds(first: Callable[[], object], second: Callable[[], object], rounds: int,
                       min_round_seconds: float, min_runs: int, warmup_runs: int = 0,
                       start_index: int = 0) -> list[RoundReading]:
    """Time two calls in alternating rounds, so that a change of machine speed affects both alike.

    Each round times ``first`` then ``second`` (round ``start_index`` + 0, 2, 4 ...) or ``second`` then
    ``first`` (odd rounds: an A B B A order cancels a linear drift within a pair of rounds), each for at least
    ``min_runs`` calls and ``min_round_seconds``. ``warmup_runs`` calls of each precede the first round.
    """
    for _ in range(warmup_runs):
        first()
        second()
    readings = []
    for index in range(start_index, start_index + rounds):
        started = time.monotonic()
        order = (first, second) if index % 2 == 0 else (second, first)
        samples = [_timed_runs(call, min_runs, min_round_seconds) for call in order]
        a, b = samples if index % 2 == 0 else samples[::-1]
        readings.append(RoundReading(a, b, started))
    return readings


def _timed_runs(call: Callable[[], object], min_runs: int, min_seconds: float) -> list[float]:
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < min_runs or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return samples


def monotonic_s() -> float:
    """The monotonic clock in seconds (timestamps of readings, not durations of inferences)."""
    return time.monotonic()
