"""Parity limits by precision, and the pass/fail arithmetic of a check."""

from __future__ import annotations

import math

from edgeprune.validate.artifact_check import Check
from edgeprune.validate.tolerances import TOLERANCES, tolerance_for


def test_half_precisions_are_looser_than_fp32() -> None:
    fp32 = TOLERANCES["fp32"]
    assert (fp32.max_abs_diff_relative, fp32.min_top1_agreement) == (1e-3, 0.99)
    for name in ("fp16", "bf16"):
        assert TOLERANCES[name].max_abs_diff_relative > fp32.max_abs_diff_relative
        assert TOLERANCES[name].min_top1_agreement == 0.95
    mixed = tolerance_for("fp32", "bf16")
    assert mixed == TOLERANCES["bf16"]
    assert tolerance_for("fp32") == fp32


def test_checks_compare_in_the_right_direction_and_nan_fails() -> None:
    assert Check("max_abs_diff_relative", 1e-4, 1e-3, True).passed
    assert not Check("max_abs_diff_relative", 2e-3, 1e-3, True).passed
    assert Check("top1_agreement_fraction", 1.0, 0.99, False).passed
    failed = Check("top1_agreement_fraction", 0.5, 0.99, False)
    assert not failed.passed and failed.describe() == "top1_agreement_fraction 0.5 < limit 0.99"
    assert not Check("max_abs_diff_relative", math.nan, 1e-3, True).passed
    assert failed.to_dict()["comparison"] == "at_least" and failed.to_dict()["passed"] is False
