"""End to end: `fit --train-nproc 2` fine-tunes on two processes (torch.distributed.run, gloo) and ships as one
process does; `--train-device` refuses what is not there in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeprune", *args], capture_output=True, text=True, timeout=900)


@pytest.mark.full
def test_fit_fine_tunes_on_two_processes_and_ships(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("fit", "--target", "cpu", "--budget", "60%", "--finetune-epochs", "1", "--precision", "fp32",
                   "--train-nproc", "2", "--train-device", "cpu", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    finetune = report["finetune"]
    assert finetune["processes"] == 2 and finetune["device"] == "cpu" and finetune["epochs"] >= 1
    assert report["final"]["latency"]["measured"] and report["final"]["latency"]["median_ms"] <= report["budget_ms"]
    assert report["final"]["top1"] > 0.5
    assert "data-parallel on 2 processes" in (out / "report.md").read_text()
    assert (out / "model.onnx").is_file()


@pytest.mark.parametrize("device, says", [
    ("tpu", "--train-device must be one of auto, cpu, cuda, cuda:N, got 'tpu'"),
    ("cuda:7", "--train-device cuda:7"),
])
def test_a_train_device_that_is_not_there_is_one_line(tmp_path: Path, device: str, says: str) -> None:
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    proc = run_cli("fit", "--budget", "50%", "--train-device", device, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
