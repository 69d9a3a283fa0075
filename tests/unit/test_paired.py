"""edgeprune.paired: the paired statistic on synthetic readings, and interleaved timing of two calls."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgeprune.paired import PairingSpec, measure_paired, ratio_summary


def test_a_drift_shared_by_both_sides_leaves_the_ratio_alone() -> None:
    speed = np.linspace(1.0, 1.6, 12)  # the machine slows down by 60% over the measurement
    ref = 2.0 * speed
    cand = 1.2 * speed
    s = ratio_summary(ref, cand)
    assert s.ratio == pytest.approx(0.6)
    assert s.low == pytest.approx(0.6) and s.high == pytest.approx(0.6)
    # the same readings compared as absolute medians, minutes apart, would be off by the drift
    assert np.median(cand[6:]) / np.median(ref[:6]) > 0.6 * 1.2


def test_the_interval_covers_the_truth_and_narrows_with_rounds() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for rounds in (8, 64):
        ref = 2.0 * (1 + 0.05 * rng.standard_normal(rounds))
        cand = 1.4 * (1 + 0.05 * rng.standard_normal(rounds))
        s = ratio_summary(ref, cand, seed=3)
        assert s.low <= 0.7 <= s.high
        widths.append(s.high - s.low)
    assert widths[1] < widths[0]


def test_one_disturbed_round_barely_moves_the_median() -> None:
    ref = [2.0] * 9 + [2.0]
    cand = [1.0] * 9 + [3.0]  # a burst hit the candidate's half of one round
    assert ratio_summary(ref, cand).ratio == pytest.approx(0.5)


def test_holds_says_whether_a_verdict_is_settled() -> None:
    s = ratio_summary([2.0, 2.0, 2.0, 2.0], [1.0, 1.1, 0.9, 1.0])
    assert s.holds(0.5) and not s.holds(0.7) and not s.holds(0.3)


def test_bad_readings_are_refused() -> None:
    with pytest.raises(ValueError):
        ratio_summary([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        ratio_summary([], [])
    with pytest.raises(ValueError):
        ratio_summary([0.0], [1.0])


def _busy(seconds: float):  # type: ignore[no-untyped-def]
    """A call that burns ``seconds`` of this process's CPU time: when other processes take the CPU, both sides
    of a pair stretch alike (a wall-clock deadline would stretch only the calls that happen to be preempted)."""
    def call() -> None:
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
    return call


def test_measure_paired_times_two_calls_side_by_side() -> None:
    spec = PairingSpec(rounds=6, max_rounds=6, min_round_seconds=0.01, min_runs=5, warmup_runs=2)
    paired = measure_paired(_busy(0.002), _busy(0.001), spec)
    assert paired.summary.rounds == 6 and len(paired.reference_round_ms) == 6
    assert paired.ratio == pytest.approx(0.5, rel=0.25)
    assert paired.reference_median_ms >= 2.0  # it spins for 2 ms; no upper bound: another process can slow it
    assert paired.candidate.runs >= 30 and not paired.extended


def test_an_unsettled_verdict_gets_more_rounds() -> None:
    spec = PairingSpec(rounds=4, max_rounds=12, extra_rounds=4, min_round_seconds=0.005, min_runs=3, warmup_runs=1)
    settled = measure_paired(_busy(0.002), _busy(0.001), spec, threshold_ratio=5.0)
    assert settled.summary.rounds == 4 and not settled.extended
    spec = PairingSpec(rounds=4, max_rounds=12, extra_rounds=4, min_round_seconds=0.0, min_runs=3, warmup_runs=0)
    calls = {"n": 0}

    def alternating() -> None:  # half its rounds at 0.5x the reference, half at 2x: the verdict on 1.0 stays open
        round_index, calls["n"] = calls["n"] // spec.min_runs, calls["n"] + 1
        _busy(0.0005 if round_index % 2 == 0 else 0.002)()

    paired = measure_paired(_busy(0.001), alternating, spec, threshold_ratio=1.0)
    assert paired.extended and paired.summary.rounds == 12
    assert paired.to_dict()["rounds"] == paired.summary.rounds


def test_a_reported_figure_gets_more_rounds_until_its_interval_is_narrow() -> None:
    calls = {"n": 0}

    def wobbly() -> None:  # every other round at 1.5x: the interval stays wide until the rounds run out
        round_index, calls["n"] = calls["n"] // 3, calls["n"] + 1
        _busy(0.001 if round_index % 2 == 0 else 0.0015)()

    loose = PairingSpec(rounds=4, max_rounds=12, extra_rounds=4, min_round_seconds=0.0, min_runs=3, warmup_runs=0)
    assert measure_paired(_busy(0.001), wobbly, loose).summary.rounds == 4  # no threshold, no precision asked
    calls["n"] = 0
    strict = PairingSpec(rounds=4, max_rounds=12, extra_rounds=4, min_round_seconds=0.0, min_runs=3, warmup_runs=0,
                         max_interval_share=0.05)
    paired = measure_paired(_busy(0.001), wobbly, strict)
    assert paired.extended and paired.summary.rounds == 12
    steady = measure_paired(_busy(0.002), _busy(0.001), strict)
    assert steady.summary.width_share <= 0.05 or steady.summary.rounds == 12
    d = paired.to_dict()
    assert d["reference_s"] > 0 and d["candidate_s"] > 0  # what each side cost is recorded
