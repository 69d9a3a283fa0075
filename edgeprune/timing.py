"""Wall-clock timing of one inference: the only code in edgeprune that reads clocks.

A measurement warms up, then repeats the call until both a minimum count and a minimum time are
reached, and summarises with the median (the figure compared against budgets), p90 and the coefficient
of variation. A pass whose CV exceeds ``TimingSpec.max_cv`` gets another pass (up to ``retries``), and the
summary is over all the passes' samples, never the calmest pass alone; a summary that stays noisy is kept
but flagged (``LatencyStats.noisy``), never silently used as if it were clean.

Every timed run is bracketed by a reading of how long the process's threads waited for a CPU
(:mod:`edgeprune.preemption`); a run during which they waited is left out of the median, because under
time-slicing a longer run is preempted more often than a shorter one and raw medians then favour the shorter
model. A pass runs until it has ``min_runs`` undisturbed runs (within ``max_runs`` in all); when too few are
undisturbed, more passes are timed, and a summary that still has too few is flagged ``oversubscribed``, with
the share of runs left out, and a warning says so instead of passing the biased figure off as a measurement.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from edgeprune.preemption import WaitProbe

log = logging.getLogger(__name__)

#: passes timed beyond ``TimingSpec.retries`` while too few runs are undisturbed
OVERSUBSCRIBED_EXTRA_PASSES = 2
#: the least number of undisturbed runs a summary (or one side of a paired round) is taken from
MIN_UNDISTURBED_RUNS = 3
#: a paired round stops looking for undisturbed runs after this many times its minimum time and runs
ROUND_STRETCH = 4


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
    #: the share of timed runs left out because a thread of the process waited for a CPU during them
    disturbed_share: float = 0.0
    #: too few runs were undisturbed: the figure is biased toward shorter models (see the module's docstring)
    oversubscribed: bool = False

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


@dataclass
class TimedRuns:
    """Single-run durations in seconds, the undisturbed ones apart from those left out."""

    undisturbed_s: list[float]
    disturbed_s: list[float]

    @property
    def runs(self) -> int:
        """Every timed run, left out or not."""
        return len(self.undisturbed_s) + len(self.disturbed_s)

    @property
    def disturbed_share(self) -> float:
        """The share of runs left out."""
        return len(self.disturbed_s) / self.runs if self.runs else 0.0

    def extend(self, other: "TimedRuns") -> None:
        """Add another series' runs."""
        self.undisturbed_s += other.undisturbed_s
        self.disturbed_s += other.disturbed_s


def _timed_run(call: Callable[[], object], probe: WaitProbe, into: TimedRuns) -> None:
    waited = probe.read()
    t0 = time.perf_counter()
    call()
    elapsed = time.perf_counter() - t0
    waited = probe.read() - waited
    (into.disturbed_s if probe.disturbed(waited, elapsed) else into.undisturbed_s).append(elapsed)


def _one_pass(call: Callable[[], object], spec: TimingSpec, probe: WaitProbe) -> TimedRuns:
    for _ in range(spec.warmup_runs):
        call()
    probe.refresh()  # the warm-up may have started the runtime's threads
    runs = TimedRuns([], [])
    started = time.perf_counter()
    while runs.runs < spec.max_runs:
        _timed_run(call, probe, runs)
        if _enough(runs, time.perf_counter() - started, spec.min_runs, spec.min_seconds):
            break
    return runs


def _enough(runs: TimedRuns, elapsed_s: float, min_runs: int, min_seconds: float) -> bool:
    """Whether a series may stop: ``min_runs`` undisturbed runs and ``min_seconds``, or :data:`ROUND_STRETCH` times
    both when runs keep being disturbed (a summary or round with too few then says so)."""
    if elapsed_s >= min_seconds and len(runs.undisturbed_s) >= min_runs:
        return True
    return elapsed_s >= ROUND_STRETCH * min_seconds and runs.runs >= ROUND_STRETCH * min_runs


def _summarise_runs(runs: TimedRuns, spec: TimingSpec) -> LatencyStats:
    """The undisturbed runs' summary; flagged oversubscribed (and noisy) when they are too few."""
    needed = max(MIN_UNDISTURBED_RUNS, min(spec.min_runs, spec.max_runs) // 2)
    share = round(runs.disturbed_share, 4)
    if len(runs.undisturbed_s) >= needed:
        stats = summarise_samples(runs.undisturbed_s, spec.max_cv)
        return dataclasses.replace(stats, disturbed_share=share)
    pool = runs.undisturbed_s if len(runs.undisturbed_s) >= MIN_UNDISTURBED_RUNS else runs.undisturbed_s + runs.disturbed_s
    stats = summarise_samples(pool, spec.max_cv)
    return dataclasses.replace(stats, noisy=True, disturbed_share=share, oversubscribed=True)


def oversubscription_note(share: float) -> str:
    """One clause for a user: how many timed runs waited for a CPU, and the machine's load against its cores."""
    load = ""
    if hasattr(os, "getloadavg"):
        try:
            load = f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count() or 1} cores"
        except OSError:
            load = ""
    return f"{share:.0%} of the timed runs waited for a CPU{load}"


def measure_latency(call: Callable[[], object], spec: TimingSpec | None = None,
                    probe: WaitProbe | None = None) -> LatencyStats:
    """Time ``call`` (one inference) and return its statistics; re-measure when the spread is too high.

    >>> stats = measure_latency(lambda: sum(range(1000)), TimingSpec(min_runs=5, min_seconds=0.0))
    >>> stats.runs >= 5
    True
    """
    spec = spec or TimingSpec()
    probe = probe or WaitProbe()
    try:
        runs = _one_pass(call, spec, probe)
        last = _summarise_runs(runs, spec)  # of the last pass alone: whether to time another
        attempt = 0
        while True:
            short = _summarise_runs(runs, spec).oversubscribed
            if not (last.noisy or short) or attempt >= spec.retries + (OVERSUBSCRIBED_EXTRA_PASSES if short else 0):
                break
            attempt += 1
            log.debug("timing was noisy (CV %.1f%%, %.0f%% of runs disturbed); measuring again (%d)", last.cv * 100,
                      last.disturbed_share * 100, attempt)
            more = _one_pass(call, spec, probe)
            last = _summarise_runs(more, spec)
            runs.extend(more)
    finally:
        probe.close()
    # every pass counts: keeping the calmest pass would bias the figure low (load adds time and spread alike)
    best = _summarise_runs(runs, spec)
    if best.oversubscribed and spec.warn_noisy:
        log.warning("the CPU is oversubscribed: %s; this latency is biased toward shorter runs",
                    oversubscription_note(best.disturbed_share))
    elif best.noisy and spec.warn_noisy:
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
    """One round of an interleaved timing: both calls' undisturbed samples (seconds), the runs left out as
    disturbed, and when the round started."""

    first_s: list[float]
    second_s: list[float]
    started_s: float  # time.monotonic() at the round's start
    first_disturbed_s: list[float] = dataclasses.field(default_factory=list)
    second_disturbed_s: list[float] = dataclasses.field(default_factory=list)

    def counts(self) -> bool:
        """Whether both sides have enough undisturbed runs for the round's ratio to count."""
        return min(len(self.first_s), len(self.second_s)) >= MIN_UNDISTURBED_RUNS


def interleaved_rounds(first: Callable[[], object], second: Callable[[], object], rounds: int,
                       min_round_seconds: float, min_runs: int, warmup_runs: int = 0,
                       start_index: int = 0, probe: WaitProbe | None = None) -> list[RoundReading]:
    """Time two calls in alternating rounds, so that a change of machine speed affects both alike.

    Each round times ``first`` then ``second`` (round ``start_index`` + 0, 2, 4 ...) or ``second`` then
    ``first`` (odd rounds: an A B B A order cancels a linear drift within a pair of rounds), each until it has
    ``min_runs`` undisturbed calls and ``min_round_seconds`` (or :data:`ROUND_STRETCH` times both, when runs keep
    being disturbed). ``warmup_runs`` calls of each precede the first round.
    """
    for _ in range(warmup_runs):
        first()
        second()
    probe = probe or WaitProbe()
    readings = []
    try:
        for index in range(start_index, start_index + rounds):
            started = time.monotonic()
            order = (first, second) if index % 2 == 0 else (second, first)
            timed = [_timed_runs(call, min_runs, min_round_seconds, probe) for call in order]
            a, b = timed if index % 2 == 0 else timed[::-1]
            readings.append(RoundReading(a.undisturbed_s, b.undisturbed_s, started, a.disturbed_s, b.disturbed_s))
    finally:
        probe.close()
    return readings


def _timed_runs(call: Callable[[], object], min_runs: int, min_seconds: float, probe: WaitProbe) -> TimedRuns:
    probe.refresh()
    runs = TimedRuns([], [])
    started = time.perf_counter()
    while True:
        _timed_run(call, probe, runs)
        if _enough(runs, time.perf_counter() - started, min_runs, min_seconds):
            return runs  # a round short of undisturbed runs does not count (RoundReading.counts)


def monotonic_s() -> float:
    """The monotonic clock in seconds (timestamps of readings, not durations of inferences)."""
    return time.monotonic()
