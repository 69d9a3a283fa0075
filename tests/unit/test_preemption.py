"""Timed runs during which a thread waited for a CPU are left out (edgeprune.preemption, issue 35).

The scheduler is simulated: each call busy-waits its own length and, with a probability that grows with that
length (as time-slicing does), is "preempted": it busy-waits a time slice more and the fake wait probe reports
that slice as time spent waiting for a CPU. Raw medians then favour the shorter call; the undisturbed runs
give the true ratio. One test reads the real ``/proc`` statistics of a thread that competes with others.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from edgeprune.paired import PairingSpec, measure_paired
from edgeprune.preemption import MIN_WAIT_S, WaitProbe
from edgeprune.timing import TimingSpec, measure_latency

SLICE_S = 0.003  # what a preemption costs the run: one time slice of another process


class SimulatedScheduler:
    """Calls of a given length, preempted with probability ``length * rate``; a probe that sees the waits
    (the simulated ones, and the real ones this machine's other work causes, so that they are left out too)."""

    kind = "simulated"

    def __init__(self, rate_per_s: float, seed: int = 0) -> None:
        self.rate_per_s, self.rng, self.waited_s = rate_per_s, random.Random(seed), 0.0
        self.real = WaitProbe()

    def call(self, length_s: float):  # noqa: ANN201 (a zero-argument callable)
        def run() -> None:
            total = length_s
            if self.rng.random() < min(1.0, length_s * self.rate_per_s):
                total += SLICE_S
                self.waited_s += SLICE_S
            end = time.perf_counter() + total
            while time.perf_counter() < end:
                pass
        return run

    # the WaitProbe interface
    def refresh(self) -> None:
        self.real.refresh()

    def read(self) -> float:
        return self.waited_s + (self.real.read() if self.real.kind == "schedstat" else 0.0)

    def disturbed(self, waited: float, run_s: float) -> bool:
        return waited > max(MIN_WAIT_S, 0.05 * run_s)

    def close(self) -> None:
        pass


def test_disturbed_runs_are_left_out_of_a_single_measurement() -> None:
    sched = SimulatedScheduler(rate_per_s=300.0)  # a 1 ms run is preempted 30% of the time
    spec = TimingSpec(warmup_runs=2, min_runs=40, max_runs=400, min_seconds=0.0, retries=0)
    stats = measure_latency(sched.call(0.001), spec, probe=sched)  # type: ignore[arg-type]
    assert 0.1 < stats.disturbed_share < 0.5
    assert stats.runs >= 40 and not stats.oversubscribed
    assert stats.p90_ms < 1.0 + 1000 * SLICE_S / 2  # no preempted run in the summary
    assert 0.95 < stats.median_ms < 1.3


def test_a_measurement_with_too_few_undisturbed_runs_is_flagged_oversubscribed() -> None:
    sched = SimulatedScheduler(rate_per_s=10_000.0)  # every run preempted
    spec = TimingSpec(warmup_runs=0, min_runs=10, max_runs=20, min_seconds=0.0, retries=1)
    stats = measure_latency(sched.call(0.0005), spec, probe=sched)  # type: ignore[arg-type]
    assert stats.oversubscribed and stats.noisy
    assert stats.disturbed_share == 1.0
    assert stats.runs == 20 * 4  # the first pass, one retry and two passes more while too few were undisturbed


def test_a_paired_ratio_under_time_slicing_is_the_undisturbed_one() -> None:
    """A 2 ms reference is preempted 60% of the time, its 0.5 ms candidate 15%: the raw rounds' ratio reads
    far below 0.25; leaving the disturbed runs out gives 0.25."""
    sched = SimulatedScheduler(rate_per_s=300.0, seed=1)
    reference, candidate = sched.call(0.002), sched.call(0.0005)
    spec = PairingSpec(rounds=8, max_rounds=16, extra_rounds=4, min_round_seconds=0.01, min_runs=5, warmup_runs=2)
    paired = measure_paired(reference, candidate, spec, probe=sched)  # type: ignore[arg-type]
    assert not paired.oversubscribed
    assert paired.disturbed_share > 0.2
    assert paired.ratio == pytest.approx(0.25, rel=0.1)


def test_a_paired_measurement_that_stays_disturbed_is_flagged_not_decided() -> None:
    sched = SimulatedScheduler(rate_per_s=10_000.0)
    spec = PairingSpec(rounds=4, max_rounds=6, extra_rounds=2, min_round_seconds=0.002, min_runs=3, warmup_runs=0)
    paired = measure_paired(sched.call(0.001), sched.call(0.0005), spec, threshold_ratio=0.5,
                            probe=sched)  # type: ignore[arg-type]
    assert paired.oversubscribed and paired.candidate.oversubscribed
    assert paired.rounds_left_out == 12  # extended to twice max_rounds, none counted
    assert paired.to_dict()["oversubscribed"] is True
    assert "100% of the timed runs waited for a CPU" in paired.oversubscription()


@pytest.mark.skipif(WaitProbe().kind != "schedstat", reason="per-thread scheduler statistics are Linux-only")
def test_the_real_probe_sees_a_thread_wait_when_more_threads_than_cores_spin() -> None:
    """Spinning threads beside this one, more than there are cores: the process's threads wait for a CPU."""
    probe = WaitProbe()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinners = [threading.Thread(target=spin, daemon=True) for _ in range(2 * (os.cpu_count() or 1) + 1)]
    for thread in spinners:
        thread.start()
    try:
        probe.refresh()
        before = probe.read()
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
        waited = probe.read() - before
    finally:
        stop.set()
        for thread in spinners:
            thread.join()
        probe.close()
    assert probe.disturbed(waited, 0.3), waited
