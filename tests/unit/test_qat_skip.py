"""``--qat-epochs`` on a run that ships float: skipped with a warning, and the report says so."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from edgeprune.config import FitConfig
from edgeprune.fit.qat import quantization_aware
from edgeprune.target import load_target


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_a_float_run_skips_qat_with_a_warning(precision: str, caplog: pytest.LogCaptureFixture) -> None:
    outcome = object()
    run = SimpleNamespace(config=FitConfig(budget="1ms", qat_epochs=2, precision=precision),
                          target=load_target("cpu").with_precision("fp32"), qat_report=None)
    with caplog.at_level(logging.WARNING):
        assert quantization_aware(run, outcome) is outcome  # type: ignore[arg-type]
    assert "--qat-epochs 2 skipped" in caplog.text
    assert run.qat_report["ran"] is False and "INT8 only" in run.qat_report["reason"]
    assert ("auto chose float" in run.qat_report["reason"]) == (precision == "auto")


def test_no_qat_epochs_leaves_the_run_alone() -> None:
    outcome = object()
    run = SimpleNamespace(config=FitConfig(budget="1ms"), qat_report=None)
    assert quantization_aware(run, outcome) is outcome and run.qat_report is None  # type: ignore[arg-type]
