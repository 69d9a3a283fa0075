"""No silent minute (issue 37): a torchvision fit's long stages (LASSO scoring, INT8 quantization and its agreement
check, kernel profiling, the search's measurements, reconstruction, fine-tuning, confirmations, evaluation: those
this machine's measurements lead it to) log a line at least every 30 s into ``--log-file``, read back by its
timestamps.

The quick tier's demo fit (tests/e2e/test_fit_demo.py) and the detector fit with depth pruning and three runtimes
(tests/e2e/test_fit_detector.py) check their logs the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_in_process import run_cli_in_process
from log_gaps import assert_never_silent

SIZE = 64


def _images(path: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8), y=np.arange(count) % 10)
    return path


@pytest.mark.full  # 3-10 minutes on 2 busy cores
def test_a_torchvision_fit_is_never_silent_for_30_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(tmp_path / "cache"))  # the kernels are profiled in this run
    log_file = tmp_path / "fit.log"
    done = run_cli_in_process(
        "fit", "--model", "torchvision:mobilenet_v3_small", "--num-classes", "10", "--input-shape", f"3,{SIZE},{SIZE}",
        "--data", str(_images(tmp_path / "eval.npz", 24, 0)), "--calib-data", str(_images(tmp_path / "calib.npz", 16, 1)),
        "--train-data", str(_images(tmp_path / "train.npz", 32, 2)), "--finetune-epochs", "1",
        "--precision", "auto", "--budget", "80%", "--search-headroom", "0.15", "--min-agreement", "0",
        "--out", str(tmp_path / "out"), "--log-file", str(log_file))
    silence = assert_never_silent(log_file)  # whatever the outcome: the log is what this test is about
    # a busy machine's confirmations can disagree (0.253 ms before the fine-tune, 0.277 ms after, against a 0.265 ms
    # budget: exit 2 once with the search aiming 5% under): it aims 15% under here, with the default rounds
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["method"]["importance"] == "lasso", report["method"]
    text = log_file.read_text()
    # the stages the log speaks of, each line with its date and time (whether INT8 is kept, and so whether channels
    # are pruned, reconstructed and fine-tuned, depends on this machine's runtime)
    for said in ("INFO edgeprune.fit.run: original model:", "quantized:", "--precision auto chose", "confirm:",
                 "validated model.onnx"):
        assert said in text, (said, str(silence))
