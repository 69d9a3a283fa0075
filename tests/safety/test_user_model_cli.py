"""A user's model that fails inside edgeprune, through the real command line (issue 19).

The factory's model runs at batch size 1 (export, tracing, the runtime check) but one of its modules assumes
it: edgeprune's calibration batches fail inside it. The command must end with one line that names the module
and its class, exit code 2, no traceback, and nothing left in ``--out``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

FACTORY = '''
import torch
from torch import nn


class BatchOfOne(nn.Module):
    """Flattens assuming a batch of one image (a pattern seen in exported-then-reimported models)."""

    def forward(self, x):
        return x.reshape(1, 32)


def build():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), BatchOfOne(),
                         nn.Linear(32, 4))
'''


def test_a_module_that_fails_on_calibration_batches_is_named_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "batch_one_model.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8), y=rng.integers(0, 4, 24))
    out = tmp_path / "out"
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "EDGEPRUNE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "edgeprune", "fit", "--model", "batch_one_model:build", "--input-shape", "3,16,16",
         "--data", str(tmp_path / "data.npz"), "--target", "cpu", "--budget", "70%", "--precision", "fp32",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr
    assert "module '6' (BatchOfOne)" in errors[0] and "RuntimeError" in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert not (out / "report.json").exists() and not (out / "model.onnx").exists()
