"""edgeprune.timing: repeated timing and its summary."""

from __future__ import annotations

import itertools
import time

import pytest

from edgeprune.timing import LatencyStats, TimingSpec, _summarise, measure_latency, median_of


class Counter:
    def __init__(self, work: int = 2000) -> None:
        self.calls = 0
        self.work = work

    def __call__(self) -> int:
        self.calls += 1
        return sum(range(self.work))


class QuietProbe:
    """A wait probe that never sees a wait: every run counts, as on an idle machine."""

    def refresh(self) -> None:
        pass

    def read(self) -> float:
        return 0.0

    def disturbed(self, waited: float, run_s: float) -> bool:
        return False

    def close(self) -> None:
        pass


def test_stable_call() -> None:
    call = Counter()
    spec = TimingSpec(warmup_runs=3, min_runs=20, max_runs=500, min_seconds=0.0, max_cv=1e9, retries=2)
    stats = measure_latency(call, spec, probe=QuietProbe())  # type: ignore[arg-type]
    assert stats.runs == 20  # min_seconds=0: stops as soon as min_runs is reached
    assert call.calls == 3 + 20  # warm-up, then one pass, no retry
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
    assert stats.min_ms <= stats.mean_ms
    assert stats.cv >= 0
    assert stats.noisy is False


def test_min_seconds_extends_the_run() -> None:
    spec = TimingSpec(warmup_runs=0, min_runs=1, max_runs=10_000, min_seconds=0.05, max_cv=1e9)
    started = time.perf_counter()
    stats = measure_latency(lambda: time.sleep(0.002), spec, probe=QuietProbe())  # type: ignore[arg-type]
    assert time.perf_counter() - started >= 0.05
    assert 2 <= stats.runs < 10_000
    assert stats.median_ms >= 2.0


def test_max_runs_caps_the_run() -> None:
    call = Counter(10)
    spec = TimingSpec(warmup_runs=0, min_runs=5, max_runs=7, min_seconds=60.0, max_cv=1e9)
    stats = measure_latency(call, spec, probe=QuietProbe())  # type: ignore[arg-type]
    assert stats.runs == 7
    assert call.calls == 7


def test_noisy_measurement_is_retried_and_flagged() -> None:
    state = {"n": 0}

    def bimodal() -> None:
        state["n"] += 1
        if state["n"] % 2:
            time.sleep(0.003)

    spec = TimingSpec(warmup_runs=1, min_runs=6, max_runs=6, min_seconds=0.0, max_cv=0.01, retries=2)
    stats = measure_latency(bimodal, spec, probe=QuietProbe())  # type: ignore[arg-type]
    assert stats.noisy is True
    assert stats.cv > 0.01
    assert state["n"] == 3 * (1 + 6)  # first pass plus two retries


def test_summarise_known_samples() -> None:
    stats = _summarise([0.001, 0.002, 0.003, 0.004], max_cv=0.5)
    assert stats.median_ms == pytest.approx(2.5)
    assert stats.mean_ms == pytest.approx(2.5)
    assert stats.min_ms == pytest.approx(1.0)
    assert stats.p90_ms == pytest.approx(3.7)
    assert stats.cv == pytest.approx(1.118034 / 2.5, rel=1e-5)
    assert stats.runs == 4
    assert stats.noisy is False
    assert _summarise([0.001, 0.002, 0.003, 0.004], max_cv=0.4).noisy is True


def test_to_dict_keys() -> None:
    stats = LatencyStats(1.0, 2.0, 1.5, 0.5, 0.1, 10, False)
    assert stats.to_dict() == {
        "median_ms": 1.0,
        "p90_ms": 2.0,
        "mean_ms": 1.5,
        "min_ms": 0.5,
        "cv": 0.1,
        "runs": 10,
        "noisy": False,
        "disturbed_share": 0.0,
        "oversubscribed": False,
    }


def test_median_of() -> None:
    assert median_of([3.0, 1.0, 2.0]) == 2.0
    assert median_of([4.0, 1.0]) == 2.5


def test_a_retried_measurement_summarises_every_pass() -> None:
    """A slow noisy pass followed by calm fast ones: the figure is over all samples, not the calmest pass."""
    first_pass = [0.0] + [0.004, 0.0001] * 5  # warm-up, then a slow and noisy pass
    durations = itertools.chain(first_pass, itertools.repeat(0.0005))  # then calm and fast
    spec = TimingSpec(warmup_runs=1, min_runs=10, max_runs=10, min_seconds=0.0, max_cv=0.5, retries=2)

    def call() -> None:
        end = time.perf_counter() + next(durations)
        while time.perf_counter() < end:
            pass

    stats = measure_latency(call, spec, probe=QuietProbe())  # type: ignore[arg-type]
    assert stats.runs in (20, 30)  # the noisy pass and a calm retry (a second one if a burst hit the first)
    assert stats.p90_ms > 3.0  # the slow samples of the first pass are in the summary
    assert stats.noisy is True  # and the summary says the machine was noisy while it was measured
