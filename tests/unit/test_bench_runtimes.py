"""The runtimes benchmark's command lines and tables (tools/bench/runtimes.py), rendered from records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import runtimes  # noqa: E402


def _trial(runtime: str, precision: str, ratio: float | None, status: str = "measured") -> dict[str, Any]:
    timed = ratio is not None
    return {"runtime": runtime, "title": runtime.upper(), "precision": precision, "status": status, "ratio": ratio,
            "interval": [ratio - 0.01, ratio + 0.01] if timed else None, "median_ms": 2.0 * ratio if timed else None,
            "parity": 1e-7 if precision == "fp32" and timed else None,
            "agreement": 0.99 if precision == "int8" and timed else None, "faithful": timed, "export_s": 3.0,
            "fit_pairing": {"ratio": ratio, "interval": [ratio, ratio], "median_ms": 1.0} if timed else None,
            "long_pairing": {"rounds": 20} if timed else None}


def _saved() -> dict[str, Any]:
    part1 = {"model": "cifar-resnet56", "spec": "cifar-resnet56", "input_shape": [1, 3, 32, 32], "note": "weights",
             "calibration": "256 images", "agreement_images": 128, "task": "classification", "reference_ms": 2.5,
             "fit_pair_seconds": 1.0, "pair_seconds": 10.0, "wall_s": 400.0,
             "command": "python tools/bench/runtimes.py --models cifar-resnet56",
             "pick_fit_pairing": {"runtime": "litert", "precision": "int8", "tied": ["litert int8", "executorch int8"]},
             "pick_long_pairing": {"runtime": None},
             "trials": [_trial("onnxruntime", "fp32", 1.0), _trial("litert", "int8", 0.3),
                        _trial("ncnn", "int8", None, "no INT8 quantizer here"),
                        _trial("executorch", "fp32", None, "failed: RuntimeError: op | missing")]}
    fit = {"goal": "2x", "budget": "1.25ms", "runtime_asked": "auto", "exit_code": 0, "wall_s": 300.0, "message": "",
           "runtime": "litert", "precision": "int8", "final_ms": 1.2, "speedup_own": 1.1, "agreement": 0.95,
           "top1_before": 0.94, "top1_after": 0.9,
           "vs_ort": {"speedup": 2.1, "interval": [2.0, 2.2], "rounds": 10}}
    failed = {"goal": "3x", "budget": "0.833ms", "runtime_asked": "ncnn", "exit_code": 2, "wall_s": 100.0,
              "message": "edgeprune: error: budget cannot be met"}
    part2 = {"model": "cifar-resnet56", "real_weights": True, "original_ms": 2.5, "wall_s": 400.0,
             "fits": [fit, failed]}
    return {"provenance": {"commit": "abc", "machine": {"cpu": "CPU", "logical_cores": 2},
                           "versions": {"torch": "2"}, "runtime_versions": {"ncnn": "1.0", "executorch": None}},
            "part1": {"cifar-resnet56": part1, "yolov8n-320": {"error": "ValueError: no"}},
            "part2": {"cifar-resnet56": part2}}


def test_section_has_every_row_and_says_why_a_cell_is_empty() -> None:
    text = "\n".join(runtimes.render(_saved()))
    assert text.startswith(runtimes.HEADING)
    assert "| LITERT | int8 | ok | 0.300 [0.290, 0.310] |" in text
    assert "no INT8 quantizer here" in text and "op \\| missing" in text  # a pipe does not break the table
    assert "**litert int8** (tied with executorch int8)" in text and "nothing faithful" in text
    assert "ncnn 1.0" in text and "executorch" not in text.split("\n")[2]
    assert "failed: ValueError: no" in text
    assert "| 2x | 1.25ms | auto | 0 | litert | int8 | 1.200 | 2.10× [2.00, 2.20] | 1.10× | 95.0% | 94.0% → 90.0% |" \
        in text
    assert "| 3x | 0.833ms | ncnn | 2 | edgeprune: error: budget cannot be met |" in text
    assert "`python tools/bench/runtimes.py --models cifar-resnet56`" in text


def test_fit_options_become_the_cli_flags_and_commands_reproduce() -> None:
    args = runtimes._cli_args({"model": "ultralytics:yolov8n.yaml", "weights": None, "data": Path("d.yaml"),
                               "input_shape": (3, 320, 320), "num_classes": 80})
    assert args == ["--model", "ultralytics:yolov8n.yaml", "--data", "d.yaml", "--input-shape", "3,320,320",
                    "--num-classes", "80"]
    assert runtimes.reproducing_command("resnet18", False, runtimes.PAIR_SECONDS) == \
        "python tools/bench/runtimes.py --models resnet18"
    assert runtimes.reproducing_command("resnet18", True, 1.0, ["3x"], ["auto"]) == \
        "python tools/bench/runtimes.py --models resnet18 --fits --goals 3x --fit-runtimes auto --pair-seconds 1"


def test_fit_row_reads_report_json() -> None:
    report = {"status": "ok", "final": {"latency": {"median_ms": 1.0, "precision": "int8"}, "top1": 0.9},
              "baseline": {"latency": {"median_ms": 2.0}, "top1": 0.93}, "speedup_measured": 2.0,
              "evaluation": {"runtime": "openvino", "agreement_with_original": 0.96},
              "artifact": {"file": "/x/model.xml"}, "runtime_choice": {"runtime": "openvino", "reason": "r"}}
    row = runtimes._fit_row(report)
    assert (row["runtime"], row["precision"], row["final_ms"], row["speedup_own"], row["artifact"]) == \
        ("openvino", "int8", 1.0, 2.0, "/x/model.xml")
    assert row["runtime_choice"] == "openvino" and row["top1_before"] == 0.93
