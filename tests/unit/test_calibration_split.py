"""Accuracy is never measured on the images that calibrated the pruning (issue: calibration vs evaluation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeprune.config import FitConfig
from edgeprune.fit.inputs import HELD_OUT_SHARE, resolve_inputs
from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.target import load_target


def _npz(path: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), y=rng.integers(0, 10, count))
    return path


@pytest.fixture()
def weights(tmp_path: Path) -> Path:
    torch.save(CifarResNet(8, 10).state_dict(), tmp_path / "r8.pt")
    return tmp_path / "r8.pt"


def _rows(t: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in t}


def test_with_only_data_a_held_out_part_calibrates_and_the_rest_measures_accuracy(tmp_path: Path,
                                                                                 weights: Path) -> None:
    data = _npz(tmp_path / "d.npz", 50, 0)
    inputs = resolve_inputs(FitConfig(model="cifar-resnet8", weights=weights, data=data, calib_images=256),
                            load_target("cpu"))
    assert len(inputs.calibration) == int(50 * HELD_OUT_SHARE)
    assert len(inputs.eval_inputs) == 50 - len(inputs.calibration)
    assert not _rows(inputs.calibration) & _rows(inputs.eval_inputs)  # disjoint
    assert "held out from the accuracy" in inputs.calibration_source


def test_calib_data_and_train_data_calibrate_instead_and_all_of_data_is_evaluated(tmp_path: Path,
                                                                                 weights: Path) -> None:
    data, calib, train = (_npz(tmp_path / f"{n}.npz", 30, s) for n, s in (("d", 0), ("c", 1), ("t", 2)))
    target = load_target("cpu")
    with_calib = resolve_inputs(FitConfig(model="cifar-resnet8", weights=weights, data=data, train_data=train,
                                          calib_data=calib, calib_images=8), target)
    assert len(with_calib.eval_inputs) == 30 and len(with_calib.calibration) == 8
    assert "--calib-data" in with_calib.calibration_source
    with_train = resolve_inputs(FitConfig(model="cifar-resnet8", weights=weights, data=data, train_data=train,
                                          calib_images=8), target)
    assert len(with_train.eval_inputs) == 30 and "the training data" in with_train.calibration_source
