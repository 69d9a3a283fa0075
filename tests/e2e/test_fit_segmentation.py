"""End to end: ``fit`` prunes a torchvision segmentation model (LR-ASPP) on a small generated labelled set and ships
artifacts for ONNX Runtime, OpenVINO and LiteRT, each validated in its runtime, with mIoU before and after.

The model is trained for two epochs on the same images first (seconds), so its logits are far from the near-ties of
an untrained model and the pixel agreement the validation checks means something; the accuracy it reaches is not
the point here (tools/make_shapes_segmenter.py trains the real one). About two minutes on one core.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_in_process import run_cli_in_process
from safetensors.torch import save_file

from edgeprune.data.segmentation import load_segmentation_dataset
from edgeprune.data.shapes_segmentation import write_shapes_segmentation
from edgeprune.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from edgeprune.models.zoo import build_architecture
from edgeprune.train.default_segmenter import SegmenterRecipe, train_segmenter

SIZE_PX = 96
CLASSES = 4


def _trained_lraspp(tmp_path: Path, images: int, size_px: int) -> tuple[Path, Path]:
    """(data folder, weights): a generated labelled set and LR-ASPP trained on it for two epochs."""
    data = write_shapes_segmentation(tmp_path / "shapes", images, seed=5, size=size_px)
    model = build_architecture("torchvision:lraspp_mobilenet_v3_large", CLASSES).model
    train_segmenter(model, load_segmentation_dataset(data, (size_px, size_px)), SegmenterRecipe(epochs=2, batch_size=8),
                    CLASSES, Preprocessing(size_px, size_px, 3, IMAGENET_MEAN, IMAGENET_STD))
    weights = tmp_path / "lraspp.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return data, weights


def _fit_lraspp(data: Path, weights: Path, out: Path, size_px: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli_in_process(
        "fit", "--model", "torchvision:lraspp_mobilenet_v3_large",
         "--weights", str(weights), "--input-shape", f"3,{size_px},{size_px}", "--num-classes", str(CLASSES),
         "--data", str(data), "--target", "cpu", "--budget", "70%", "--precision", "fp32",
         # the uniform allocation spares the latency table's kernel profile (a minute on one core); the latency
         # search itself is the classifiers' and detectors' path, and tools/make_shapes_segmenter.py's command's
         "--allocation", "uniform", "--out", str(out),
         # one epoch of recovery: cross-entropy on the masks plus per-pixel distillation from the original
         "--train-data", str(data), "--finetune-epochs", "1", "--distill",
         # these fits test the segmentation path, not a quality: one epoch on 16-24 toy images keeps about 40% of
         # the original's pixel labels (37% in one quick run), under the guard's 80% floor, which would end the
         # fit with exit 3 (the guard itself: tests/e2e/test_accuracy_guard.py)
         "--min-agreement", "0", *extra)


def _shipped_segmenter_report(proc: subprocess.CompletedProcess[str], out: Path) -> dict:  # type: ignore[type-arg]
    """The run's report.json, after checking that it shipped a smaller model scored by mIoU before and after."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["evaluation"]["task"] == "segmentation" and report["evaluation"]["metric"] == "mIoU"
    for side in ("baseline", "final"):
        metrics = report[side]["metrics"]
        assert 0.0 <= metrics["miou"] <= 1.0 and 0.0 <= metrics["pixel_accuracy"] <= 1.0, metrics
    assert report["final"]["macs"] < report["baseline"]["macs"]
    return report


@pytest.mark.full  # 59 s with the uniform-cut guard (the quick tier ran 16 min 22 s with it)
def test_a_segmenter_fit_ships_a_validated_artifact_with_miou_before_and_after(tmp_path: Path) -> None:
    """The quick tier's segmentation fit: 16 images of 64 px, data-free L1 scores (LASSO scoring of LR-ASPP's 30
    groups is half a minute; the classifiers' quick fits run it), three measured rounds, ONNX Runtime only."""
    data, weights = _trained_lraspp(tmp_path, 16, 64)
    out = tmp_path / "out"
    proc = _fit_lraspp(data, weights, out, 64, "--max-rounds", "3", "--importance", "l1")
    report = _shipped_segmenter_report(proc, out)
    assert [a["format"] for a in report["artifacts"]] == ["onnx"] and report["artifacts"][0]["passed"]
    assert any("class logits" in g["reason"] for g in report["frozen_groups"])
    assert report["finetune"]["epochs"] >= 1 and report["finetune"]["distill"]
    assert "mIoU" in proc.stdout and "| mIoU |" in (out / "report.md").read_text()


@pytest.mark.full
def test_fit_lraspp_ships_validated_artifacts_with_miou_before_and_after(tmp_path: Path) -> None:
    data, weights = _trained_lraspp(tmp_path, 24, SIZE_PX)
    out = tmp_path / "out"
    proc = _fit_lraspp(data, weights, out, SIZE_PX, "--export", "onnx,openvino,tflite")
    report = _shipped_segmenter_report(proc, out)
    assert 0.0 <= report["evaluation"]["agreement_with_original"] <= 1.0
    assert {a["format"] for a in report["artifacts"]} == {"onnx", "openvino", "tflite"}
    for artifact in report["artifacts"]:
        assert artifact["passed"], artifact
        assert artifact["agreement"] >= 0.99 and artifact["miou"] is not None, artifact
    frozen = {g["name"]: g["reason"] for g in report["frozen_groups"]}
    assert any("class logits" in reason for reason in frozen.values()), frozen
    markdown = (out / "report.md").read_text()
    assert "| mIoU |" in markdown and "| pixel accuracy |" in markdown
    assert "Pixel agreement of pruned with original" in markdown
    assert "mIoU" in proc.stdout
    finetune = report["finetune"]
    # a candidate whose confirmation misses after its fine-tune is followed by another, fine-tuned too: the report
    # counts both (CI under coverage saw 2)
    assert finetune["epochs"] >= 1 and finetune["images"] == 24 and finetune["distill"]
    assert finetune["loss"] == "per-pixel cross-entropy + per-pixel distillation from the original"
    # `edgeprune validate` knows a segmenter from the reference folder's plan, and reads images/ + masks/ (the
    # plan names torchvision's model, which edgeprune builds itself: no --allow-factory needed)
    check = subprocess.run([sys.executable, "-m", "edgeprune", "validate", str(out / "model.onnx"), "--reference",
                            str(out), "--data", str(data)],
                           capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr[-2000:]
    assert "pixel agreement" in check.stdout and "miou" in check.stdout, check.stdout
