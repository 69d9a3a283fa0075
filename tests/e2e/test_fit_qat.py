"""End to end: ``fit --precision int8 --qat-epochs 1`` on the demo (ONNX Runtime on this CPU).

At 40% of the float original, INT8 alone meets the budget, so the final model is the unpruned demo; one epoch of
quantization-aware fine-tuning follows, its QDQ artifact is measured paired with the original and evaluated in ONNX
Runtime beside the post-training-quantized one, and whichever ships is validated against ``model.safetensors``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.runtimes.onnxruntime.int8 import onnx_is_quantized


def _fit(out: Path, *options: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    proc = subprocess.run([sys.executable, "-m", "edgeprune", "fit", "--target", "cpu", "--qat-epochs", "1",
                           "--out", str(out), *options], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), proc.stderr


@pytest.mark.full
def test_int8_fit_with_one_qat_epoch_reports_both_artifacts_and_ships_a_validated_int8_one(tmp_path: Path) -> None:
    out = tmp_path / "qat"
    report, _ = _fit(out, "--budget", "40%", "--precision", "int8", "--importance", "l1")  # nothing is pruned
    qat = report["method"]["qat"]
    assert qat["ran"] and qat["epochs"] == 1 and qat["seconds"] > 0 and qat["batch_norms_folded"] == 9
    assert qat["export"].startswith("QDQ") and qat["shipped"] in ("qat", "ptq")
    assert 0 <= qat["ptq"]["top1"] <= 1 and 0 <= qat["qat"]["top1"] <= 1
    assert qat["qat"]["paired_ratio"] is not None  # measured against the original, not assumed
    assert qat["qat"]["max_abs_diff_vs_qat_model"] < 0.5
    rounds = [r for r in report["search"]["rounds"] if r["kind"] == "qat"]
    assert len(rounds) == 1 and rounds[0]["measured"] and rounds[0]["precision"] == "int8"
    if qat["shipped"] == "qat":
        assert qat["qat"]["meets_budget"] and qat["qat"]["top1"] >= qat["ptq"]["top1"]
        assert qat["reason"] == "measured within the budget, and its top-1 is at least the PTQ artifact's"
        assert report["final"]["latency"]["median_ms"] == pytest.approx(qat["qat"]["median_ms"])
        assert report["final"]["top1"] == pytest.approx(qat["qat"]["top1"])
        assert report["parity"]["reference"].startswith("quantization-aware PyTorch model")
        assert report["artifacts"][0]["max_abs_diff_relative"] < 0.1  # the export of the very model it is checked with
    else:
        assert qat["reason"].startswith("kept the PTQ artifact")
        assert report["final"]["top1"] == pytest.approx(qat["ptq"]["top1"])
    assert report["final"]["latency"]["median_ms"] <= report["budget_ms"]
    assert onnx_is_quantized(out / "model.onnx") and report["layer_precision"]["summary"].get("int8", 0) >= 9
    assert all(a["passed"] for a in report["artifacts"]), report["artifacts"]
    assert "Quantization-aware fine-tuning" in (out / "report.md").read_text()

