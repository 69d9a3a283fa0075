"""Fixtures for the report tests: a real demo fit report, and a synthetic one with every optional section."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def demo_report() -> dict[str, Any]:
    """report.json of a real ``edgeprune fit --target cpu --budget 60%`` demo run (no per-layer key)."""
    return json.loads((DATA / "demo_report.json").read_text(encoding="utf-8"))


@pytest.fixture
def full_report(demo_report: dict[str, Any]) -> dict[str, Any]:
    """The demo report plus every optional section: per-round top-1, per-layer latency, artifact table."""
    report = copy.deepcopy(demo_report)
    for i, r in enumerate(report["search"]["rounds"]):
        if r["kind"] != "baseline":
            r["top1"] = 0.9 - 0.05 * i
    report["per_layer_latency"] = {
        "source": "measured (onnxruntime profiler)",
        "unit": "ms",
        "layers": [{"name": f"node_{i}_nchwc", "op_type": "Conv", "module": f"stage{i % 3}.conv{i}",
                    "before_ms": 0.05 * (30 - i), "after_ms": None if i == 4 else 0.03 * (30 - i)}
                   for i in range(30)],
        "total_before_ms": 23.25, "total_after_ms": 12.0, "unmatched_after": [],
        "note": "per-node medians from the runtime's profiler",
    }
    report["artifacts"] = [
        {"format": "onnx", "file": "model.onnx", "max_abs_diff": 9.5e-7, "top1_agreement": 0.997, "top1": 0.71,
         "median_ms": 0.84, "p90_ms": 0.9, "passed": True},
        {"format": "tflite", "file": "model.tflite", "max_abs_diff": 3.1e-3, "top1_agreement": 0.95, "top1": None,
         "median_ms": 1.1, "passed": False, "reason": "parity above tolerance | 1e-3"},
    ]
    return report


@pytest.fixture
def predicted_report(demo_report: dict[str, Any]) -> dict[str, Any]:
    """The demo report as a predicted-profile run (rpi4, no agent) would label it."""
    report = copy.deepcopy(demo_report)
    report["target"].update(name="rpi4", runtime="litert", threads=4, latency_source="predicted-profile",
                            profile="rpi4-litert")
    for side in ("baseline", "final"):
        report[side]["latency"].update(source="predicted-profile", measured=False, runs=0,
                                       machine="Raspberry Pi 4 (Cortex-A72)", runtime_version="n/a (predicted)")
    report["status"] = "budget met (predicted, not measured)"
    return report
