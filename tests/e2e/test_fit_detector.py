"""End to end: a YOLO detector (``ultralytics:yolov8n.yaml``) pruned to a measured budget, judged by mAP (issue 21).

The detector is trained here for about 30 seconds on a small generated shapes set (96 px), so its mAP is well
above zero and pruning has something to lose; the full-size shapes detector of ``tools/make_shapes_detector.py``
(and the benchmark) makes the accuracy claims.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_in_process import run_cli_in_process
from log_gaps import assert_never_silent

pytest.importorskip("ultralytics", reason="the [yolo] extra (ultralytics) is not installed")

from edgeprune.data.detection import load_detection_dataset  # noqa: E402
from edgeprune.data.shapes_detection import ShapesSpec, write_shapes_dataset  # noqa: E402
from edgeprune.train.default_detector import build_shapes_detector  # noqa: E402
from edgeprune.train.detector_loop import DetectorTrainSpec, train_detector  # noqa: E402

SIZE = 96


QUICK_SIZE = 64  # the quick tier's detector: the smallest input yolov8n's stride-32 head still sees as a grid


def _trained_detector(root: Path, size_px: int, spec: ShapesSpec, epochs: int) -> tuple[Path, Path]:
    """(weights, data.yaml): yolov8n (4 classes) trained on a generated shapes set of ``size_px`` pixels."""
    data_yaml = write_shapes_dataset(root / "shapes", spec)
    torch.manual_seed(0)
    model = build_shapes_detector(4)
    train_detector(model, load_detection_dataset(data_yaml, (size_px, size_px), split="train"),
                   DetectorTrainSpec(epochs=epochs, batch_size=16, lr=0.004, seed=0))
    from safetensors.torch import save_file

    weights = root / "yolov8n-shapes.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return weights, data_yaml


@pytest.fixture(scope="module")
def shapes_detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(weights, data.yaml): yolov8n trained for 20 epochs on 256 generated images of 96 px (about 30 s on one
    core; val mAP50 0.37, mAP50-95 0.24)."""
    return _trained_detector(tmp_path_factory.mktemp("shapes"), SIZE, ShapesSpec(
        size_px=SIZE, train_images=256, val_images=48, min_side_px=14, max_side_px=40, seed=1), epochs=20)


@pytest.fixture(scope="module")
def quick_detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(weights, data.yaml): yolov8n trained for 6 epochs on 96 generated images of 64 px (a few seconds): enough
    for boxes to score, not for accuracy claims."""
    return _trained_detector(tmp_path_factory.mktemp("quick-shapes"), QUICK_SIZE, ShapesSpec(
        size_px=QUICK_SIZE, train_images=96, val_images=24, min_side_px=12, max_side_px=28, seed=1), epochs=6)


def _fit(out: Path, *args: str, size_px: int = SIZE) -> subprocess.CompletedProcess[str]:
    return run_cli_in_process("fit", "--model", "ultralytics:yolov8n.yaml", "--num-classes", "4", "--input-shape",
                              f"3,{size_px},{size_px}", "--target", "cpu", "--out", str(out), *args)


def test_a_detector_fit_ships_a_smaller_validated_artifact_with_map_before_and_after(
        quick_detector: tuple[Path, Path], tmp_path: Path) -> None:
    """The quick tier's detector fit: channel pruning by one measured keep ratio on data-free L1 scores (the
    classifiers' quick fits run LASSO), judged by mAP, on ONNX Runtime."""
    weights, data_yaml = quick_detector
    out = tmp_path / "det"
    proc = _fit(out, "--weights", str(weights), "--data", str(data_yaml), "--budget", "70%", "--precision", "fp32",
                "--allocation", "uniform", "--max-rounds", "3", "--importance", "l1", size_px=QUICK_SIZE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["evaluation"]["task"] == "detection" and report["evaluation"]["metric"] == "mAP50-95"
    before, after = report["baseline"]["metrics"], report["final"]["metrics"]
    assert 0 <= before["map50_95"] <= before["map50"] <= 1 and 0 <= after["map50_95"] <= after["map50"] <= 1
    assert report["final"]["latency"]["measured"] and report["final"]["latency"]["median_ms"] <= report["budget_ms"]
    assert report["final"]["macs"] < report["baseline"]["macs"]
    assert [a["format"] for a in report["artifacts"]] == ["onnx"] and report["artifacts"][0]["passed"]
    frozen = " ".join(g["reason"] for g in report["frozen_groups"])
    assert "output of the Detect head" in frozen
    assert "mAP50-95" in proc.stdout and "| mAP50-95 |" in (out / "report.md").read_text()
    guard = report["accuracy_guard"]  # the terminal names a detector's agreement by its measure, not "answers kept"
    assert guard["passed"] and guard["floor"] == 0.5
    assert (f"agreement         {100 * guard['agreement']:.1f}% box agreement (mAP50-95 against the other model's "
            "boxes) with the original") in proc.stdout, proc.stdout


@pytest.mark.full
def test_a_detector_ships_validated_artifacts_for_three_runtimes_with_map_before_and_after_blocks_removed(
        shapes_detector: tuple[Path, Path], tmp_path: Path) -> None:
    weights, data_yaml = shapes_detector
    out = tmp_path / "det"
    proc = _fit(out, "--weights", str(weights), "--data", str(data_yaml), "--budget", "60%", "--precision", "fp32",
                "--allocation", "uniform", "--export", "onnx,openvino,tflite", "--prune-blocks",
                # no fine-tuning of a detector trained for seconds: about 5% box agreement, under the guard's 50% floor
                "--min-agreement", "0", "--log-file", str(tmp_path / "fit.log"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_never_silent(tmp_path / "fit.log")  # depth pruning, three runtimes' exports: no silent stage (issue 37)
    report = json.loads((out / "report.json").read_text())
    # depth pruning: the backbone's residual bottlenecks, ordered by the detection output's distortion
    blocks = report["method"]["blocks"]
    assert blocks["removable"] == 6 and blocks["removed"], blocks
    assert all(name.startswith(("model.2.m.", "model.4.m.", "model.6.m.", "model.8.m.")) for name in blocks["removed"])
    # every candidate carries its mAP for the plot and the search table
    scored = [r for r in report["search"]["rounds"] if r["kind"] in ("depth", "search") and "map50_95" in r]
    assert scored and all(0 <= r["map50_95"] <= 1 for r in scored), report["search"]["rounds"]
    assert report["evaluation"]["task"] == "detection" and report["evaluation"]["metric"] == "mAP50-95"
    before, after = report["baseline"]["metrics"], report["final"]["metrics"]
    assert before["map50"] > 0.2, before  # the detector learned the shapes: pruning has accuracy to lose
    assert 0 <= after["map50_95"] <= after["map50"] <= 1
    assert report["baseline"]["top1"] is None and report["final"]["top1"] is None
    assert report["final"]["latency"]["median_ms"] <= report["budget_ms"]
    assert report["final"]["macs"] < report["baseline"]["macs"]
    assert {a["format"] for a in report["artifacts"]} == {"onnx", "openvino", "tflite"}
    assert all(a["passed"] for a in report["artifacts"]), report["artifacts"]
    assert all(a["agreement"] >= 0.95 and a["map50"] is not None for a in report["artifacts"]), report["artifacts"]
    frozen = " ".join(g["reason"] for g in report["frozen_groups"])
    assert "output of the Detect head" in frozen and "spatial pyramid pooling" not in frozen  # SPPF is pruned
    md = (out / "report.md").read_text()
    assert "| mAP50-95 |" in md and "| mAP50 |" in md and "top-1 accuracy" not in md
    assert "mAP50-95" in proc.stdout
    # `edgeprune validate` knows a detector from the reference folder's plan, and reads the YOLO-layout data
    check = subprocess.run([sys.executable, "-m", "edgeprune", "validate", str(out / "model.tflite"), "--reference",
                            str(out), "--data", str(data_yaml)], capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr[-2000:]
    assert "mAP50-95 against the reference's boxes" in check.stdout and "map50_95" in check.stdout


@pytest.mark.full
def test_without_labels_a_detector_is_judged_by_its_agreement_and_fine_tunes_by_distillation(
        shapes_detector: tuple[Path, Path], tmp_path: Path) -> None:
    weights, data_yaml = shapes_detector
    images = tmp_path / "images-only"
    shutil.copytree(data_yaml.parent / "val" / "images", images)
    refused = _fit(tmp_path / "refused", "--weights", str(weights), "--data", str(images), "--budget", "60%",
                   "--train-data", str(images), "--finetune-epochs", "1")
    assert refused.returncode == 2 and "--finetune-epochs needs training data for a detector" in refused.stderr
    assert "Traceback" not in refused.stderr
    out = tmp_path / "unlabelled"
    proc = _fit(out, "--weights", str(weights), "--data", str(images), "--budget", "60%", "--precision", "fp32",
                "--allocation", "uniform", "--train-data", str(images), "--finetune-epochs", "1", "--distill",
                "--min-agreement", "0")  # one epoch of distillation on 39 images: the guard's floor is not the point
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert "metrics" not in report["final"]  # no boxes: no mAP
    assert 0.0 < report["evaluation"]["agreement_with_original"] <= 1.0
    finetune = report["finetune"]
    assert finetune["epochs"] == 1 and finetune["distill"] and "distillation" in finetune["loss"]
    assert "Agreement of pruned with original" in (out / "report.md").read_text()


@pytest.mark.full
def test_a_detector_is_weight_pruned_gradually_during_its_fine_tune(shapes_detector: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    """--sparsity on a detector (size-only: no channel search): pruned gradually during its fine-tune, the
    masks surviving the fine-tune's moving average of the weights; the shipped file holds the zeros."""
    weights, data_yaml = shapes_detector
    out = tmp_path / "sparse"
    proc = _fit(out, "--weights", str(weights), "--data", str(data_yaml), "--train-data", str(data_yaml),
                "--precision", "fp32", "--sparsity", "0.5", "--finetune-epochs", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    sparsity = report["sparsity"]
    assert sparsity["method"]["kind"] == "gradual" and sparsity["method"]["updates"] >= 2, sparsity["method"]
    assert sparsity["sparsity"] == pytest.approx(0.5, abs=1e-3)
    shipped = {a["format"]: a for a in report["artifacts"]}["onnx"]
    assert shipped["weight_zeros"]["sparsity"] >= 0.49 and shipped["passed"], shipped
    assert 0 <= report["final"]["metrics"]["map50_95"] <= 1 and report["budget_ms"] is None
