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
from safetensors.torch import save_file

from edgeprune.data.segmentation import load_segmentation_dataset
from edgeprune.data.shapes_segmentation import write_shapes_segmentation
from edgeprune.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from edgeprune.models.zoo import build_architecture
from edgeprune.train.default_segmenter import SegmenterRecipe, train_segmenter

SIZE_PX = 96
CLASSES = 4


@pytest.mark.slow
def test_fit_lraspp_ships_validated_artifacts_with_miou_before_and_after(tmp_path: Path) -> None:
    data = write_shapes_segmentation(tmp_path / "shapes", 24, seed=5, size=SIZE_PX)
    model = build_architecture("torchvision:lraspp_mobilenet_v3_large", CLASSES).model
    train_segmenter(model, load_segmentation_dataset(data, (SIZE_PX, SIZE_PX)), SegmenterRecipe(epochs=2, batch_size=8), CLASSES,
                    Preprocessing(SIZE_PX, SIZE_PX, 3, IMAGENET_MEAN, IMAGENET_STD))
    weights = tmp_path / "lraspp.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "edgeprune", "fit", "--model", "torchvision:lraspp_mobilenet_v3_large",
         "--weights", str(weights), "--input-shape", f"3,{SIZE_PX},{SIZE_PX}", "--num-classes", str(CLASSES),
         "--data", str(data), "--target", "cpu", "--budget", "70%", "--precision", "fp32",
         # the uniform allocation spares the latency table's kernel profile (a minute on one core); the latency
         # search itself is the classifiers' and detectors' path, and tools/make_shapes_segmenter.py's command's
         "--allocation", "uniform", "--export", "onnx,openvino,tflite", "--out", str(out),
         # one epoch of recovery: cross-entropy on the masks plus per-pixel distillation from the original
         "--train-data", str(data), "--finetune-epochs", "1", "--distill"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["evaluation"]["task"] == "segmentation" and report["evaluation"]["metric"] == "mIoU"
    for side in ("baseline", "final"):
        metrics = report[side]["metrics"]
        assert 0.0 <= metrics["miou"] <= 1.0 and 0.0 <= metrics["pixel_accuracy"] <= 1.0, metrics
    assert report["final"]["macs"] < report["baseline"]["macs"]
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
    assert finetune["epochs"] == 1 and finetune["images"] == 24 and finetune["distill"]
    assert finetune["loss"] == "per-pixel cross-entropy + per-pixel distillation from the original"
    # `edgeprune validate` knows a segmenter from the reference folder's plan, and reads images/ + masks/ (the
    # plan names a torchvision factory, which a received folder may only run with the explicit opt-in)
    check = subprocess.run([sys.executable, "-m", "edgeprune", "validate", str(out / "model.onnx"), "--reference",
                            str(out), "--data", str(data), "--allow-factory", "torchvision:lraspp_mobilenet_v3_large"],
                           capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr[-2000:]
    assert "pixel agreement" in check.stdout and "miou" in check.stdout, check.stdout
