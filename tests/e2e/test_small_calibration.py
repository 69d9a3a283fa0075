"""A fit on a small folder says how many calibration images it used and what they were too few for (issue 35).

Twenty images and no training data: a fifth of them (4) calibrates, the rest measure accuracy. Before, LASSO
scoring, least-squares reconstruction and batch-norm re-estimation all ran on those 4 images without a word
(a MobileNetV2 fit shipped a model that agreed with its original on none of them). Now each step that needs more
is switched off in one line naming its minimum and ``--calib-data``, and the terminal shows the count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_in_process import run_cli_in_process

from edgeprune.fit.calibration_floor import MIN_BN_IMAGES, MIN_SCORING_IMAGES, batchnorm_for, criterion_for
from edgeprune.models.cifar_resnet import CifarResNet


def test_the_floors_switch_data_driven_steps_off_below_them(caplog: pytest.LogCaptureFixture) -> None:
    assert criterion_for("lasso", MIN_SCORING_IMAGES) == "lasso" and criterion_for("l1", 1) == "l1"
    assert criterion_for("taylor", MIN_SCORING_IMAGES - 1) == "l1"
    assert batchnorm_for(True, MIN_BN_IMAGES) and not batchnorm_for(True, MIN_BN_IMAGES - 1)
    assert not batchnorm_for(False, 1000)
    assert caplog.text.count("--calib-data") == 2


@pytest.mark.full  # 20-35 s of measuring; the quick demo fit checks the terminal's calibration line
def test_a_twenty_image_folder_says_what_its_four_calibration_images_were_too_few_for(tmp_path: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch
                                                                                      ) -> None:
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    torch.save(CifarResNet(20, 10).state_dict(), tmp_path / "r20.pt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", x=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), y=np.arange(20) % 10)
    done = run_cli_in_process("fit", "--model", "cifar-resnet20", "--weights", str(tmp_path / "r20.pt"), "--data",
                              str(tmp_path / "images.npz"), "--budget", "1000ms", "--precision", "fp32",
                              "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    err = " ".join(done.stderr.split())  # the log wraps long lines
    assert "calibrating on 4 images, fewer than --calib-images 256" in err, err
    assert f"importance: 'lasso' is scored on calibration images and this run has 4, fewer than {MIN_SCORING_IMAGES}" \
        in err, err
    assert "scoring by L1 instead; pass --calib-data DIR" in err, err
    assert "calibration       4 images of" in done.stdout, done.stdout
