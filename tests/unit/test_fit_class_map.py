"""``fit --class-map`` and the check of labels at chance, on fit's own input path with a tiny CIFAR ResNet.

The refusals (a bad class map, a folder it misses, an integer folder beyond the model's classes, a map with no
class folders to apply to) are rows of tests/safety/test_bad_inputs.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeprune.config import FitConfig
from edgeprune.data.tensors import to_model_input
from edgeprune.fit.inputs import resolve_inputs
from edgeprune.fit.labels import check_labels_early, final_label_check
from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.models.zoo import CIFAR_PREPROCESSING
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm
from edgeprune.target import load_target

IMAGES = 24


@pytest.fixture
def pixels() -> np.ndarray:
    """Images of one colour each: a random ResNet tells them apart better than noise."""
    rng = np.random.default_rng(3)
    return (rng.integers(0, 256, size=(IMAGES, 1, 1, 3)) * np.ones((1, 32, 32, 1))).astype(np.uint8)


@pytest.fixture
def weights(tmp_path: Path, pixels: np.ndarray) -> Path:
    """A random CIFAR ResNet-8 whose batch norms saw the images, so that its answers differ between them."""
    torch.manual_seed(0)
    model = CifarResNet(8, 10)
    recalibrate_batchnorm(model, to_model_input(pixels, CIFAR_PREPROCESSING))
    path = tmp_path / "r8.pt"
    torch.save(model.state_dict(), path)
    return path


def _predictions(weights: Path, pixels: np.ndarray) -> np.ndarray:
    model = CifarResNet(8, 10)
    model.load_state_dict(torch.load(weights))
    with torch.no_grad():
        return model.eval()(to_model_input(pixels, CIFAR_PREPROCESSING)).argmax(1).numpy()


def _folders(root: Path, pixels: np.ndarray, labels: np.ndarray, name: str = "class {}") -> Path:
    for i, label in enumerate(labels):
        (root / name.format(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(root / name.format(label) / f"{i:02d}.png")
    return root


def _config(tmp_path: Path, weights: Path, data: Path, **options: object) -> FitConfig:
    calib = tmp_path / "calib"  # unlabelled: every labelled image is evaluated
    calib.mkdir(exist_ok=True)
    Image.new("RGB", (32, 32)).save(calib / "a.png")
    return FitConfig(model="cifar-resnet8", weights=weights, data=data, calib_data=calib, **options)  # type: ignore[arg-type]


def test_fit_reads_class_folders_through_the_class_map(tmp_path: Path, weights: Path, pixels: np.ndarray,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The model's own answers as labels, in folders named 'class N' that a class map maps to N: top-1 1.0, no
    warning; a class map off by one makes every label wrong, and both checks say so."""
    truth = _predictions(weights, pixels)
    data = _folders(tmp_path / "data", pixels, truth)
    class_map = tmp_path / "map.json"
    class_map.write_text("{" + ", ".join(f'"class {k}": {k}' for k in range(10)) + "}")
    target = load_target("cpu")
    with caplog.at_level(logging.INFO, logger="edgeprune"):
        inputs = resolve_inputs(_config(tmp_path, weights, data, class_map=class_map), target)
        early = check_labels_early(inputs.bundle.model, inputs)
    assert inputs.eval_set.labels is not None and sorted(inputs.eval_set.labels) == sorted(truth)
    assert early is not None and early["top1"] == 1.0 and not early["suspect"]
    assert "mapped by the class map" in caplog.text and "no better than chance" not in caplog.text
    # a class map that is off by one: every label wrong, and both checks say so
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("".join(f"class {k} {(k + 1) % 10}\n" for k in range(10)))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edgeprune"):
        inputs = resolve_inputs(_config(tmp_path, weights, data, class_map=wrong), target)
        early = check_labels_early(inputs.bundle.model, inputs)
        final = final_label_check(inputs, 0.0, IMAGES)
    assert early is not None and early["top1"] == 0.0 and early["suspect"]
    assert final is not None and final["suspect"] and final["labels_from"].endswith(f"by the class map {wrong}")
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING and "no better than chance" in
                r.message]
    assert len(warnings) == 2 and "the first 24 evaluation images, before pruning" in warnings[0]
