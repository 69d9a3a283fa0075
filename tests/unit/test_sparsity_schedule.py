"""The polynomial schedule is TF-MOT's PolynomialDecay (Zhu & Gupta 2017), checked at sample steps."""

from __future__ import annotations

import pytest

from edgeprune.train.sparsity_schedule import ConstantSparsity, PolynomialDecay, default_steps

# TF-MOT's tutorial schedule: 50% -> 80% over steps 0..1000, power 3, every 100 steps. Expected values worked out
# by hand from tfmot.sparsity.keras.PolynomialDecay's formula:
#   s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0)) ** 3
TUTORIAL = PolynomialDecay(initial_sparsity=0.5, final_sparsity=0.8, begin_step=0, end_step=1000, frequency=100)


@pytest.mark.parametrize(("step", "expected"), [
    (0, 0.5),                       # 0.8 - 0.3 * 1
    (100, 0.8 - 0.3 * 0.729),       # (1 - 0.1)^3 = 0.729 -> 0.5813
    (250, 0.8 - 0.3 * 0.421875),    # 0.75^3 -> 0.67344
    (500, 0.8 - 0.3 * 0.125),       # 0.7625
    (900, 0.8 - 0.3 * 0.001),       # 0.7997
    (1000, 0.8),
    (5000, 0.8),                    # clipped after the end step
])
def test_polynomial_matches_tfmot_formula(step: int, expected: float) -> None:
    assert TUTORIAL.sparsity(step) == pytest.approx(expected, abs=1e-12)


def test_before_the_begin_step_the_initial_sparsity_holds_and_power_is_used() -> None:
    late = PolynomialDecay(0.0, 0.9, begin_step=200, end_step=600, power=2, frequency=50)
    assert late.sparsity(0) == pytest.approx(0.0)  # p clipped at 0
    assert late.sparsity(400) == pytest.approx(0.9 - 0.9 * 0.25)  # (1 - 0.5)^2
    assert not late.should_prune(100) and late.should_prune(200) and late.should_prune(250)
    assert not late.should_prune(260) and not late.should_prune(650)


def test_update_steps_follow_tfmot_and_always_include_the_end_step() -> None:
    assert [t for t in range(0, 1200) if TUTORIAL.should_prune(t)] == list(range(0, 1001, 100))
    ragged = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=250, frequency=100)
    assert [t for t in range(0, 400) if ragged.should_prune(t)] == [0, 100, 200, 250]  # TF-MOT would stop at 200
    assert ragged.sparsity(250) == pytest.approx(0.8)


def test_constant_sparsity_until_the_end() -> None:
    constant = ConstantSparsity(0.75, begin_step=10, frequency=20)
    assert constant.sparsity(0) == constant.sparsity(10_000) == 0.75
    assert [t for t in range(0, 80) if constant.should_prune(t)] == [10, 30, 50, 70]


@pytest.mark.parametrize("kwargs", [dict(initial_sparsity=1.0), dict(final_sparsity=-0.1), dict(end_step=0),
                                    dict(begin_step=-1), dict(frequency=0)])
def test_invalid_schedules_are_refused(kwargs: dict) -> None:
    args = dict(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0, end_step=100, frequency=10) | kwargs
    with pytest.raises(ValueError):
        PolynomialDecay(**args)


def test_default_steps_end_at_three_quarters_with_ten_updates_on_a_short_fine_tune() -> None:
    assert default_steps(88) == (0, 66, 6)
    assert default_steps(20_000) == (0, 15_000, 100)  # TF-MOT's frequency where there are enough steps
    assert default_steps(88, begin_step=8, end_step=40, frequency=4) == (8, 40, 4)
