"""A fit whose shipped model collapsed exits 3 with one line, its results kept (the accuracy guard, issue 35).

The collapse is made, not waited for: the demo fit's recovery step is wrapped so that the pruned model's
classifier is zeroed (every image then gets the same class), as the 4-image calibration of issue 35 did to a
MobileNetV2. Before the guard such a fit printed "budget met" and "passed" and exited 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_in_process import run_cli_in_process
from torch import nn

from edgeprune.fit.recover import Recovery

FIT = ("fit", "--target", "cpu", "--budget", "75%", "--precision", "fp32", "--allocation", "uniform",
       "--max-rounds", "3", "--eval-images", "64", "--calib-images", "32", "--finetune-epochs", "0")


def _collapsing(recover: Any) -> Any:
    def wrapper(self: Recovery, *args: Any, **kwargs: Any) -> nn.Module:
        model = recover(self, *args, **kwargs)
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():
            last.weight.zero_()
        return model
    return wrapper


def test_a_collapsed_model_exits_3_with_its_results_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Recovery, "recover", _collapsing(Recovery.recover))
    out = tmp_path / "out"
    done = run_cli_in_process(*FIT, "--out", str(out))
    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("edgeprune: error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "the shipped model collapsed: its top-1 agreement with the original is" in errors[0], errors[0]
    assert "under the 80% floor" in errors[0] and "--min-agreement" in errors[0], errors[0]
    assert "budget met" not in done.stdout
    report = json.loads((out / "report.json").read_text())  # kept for inspection
    assert report["status"] == "accuracy collapsed"
    guard = report["accuracy_guard"]
    assert guard["passed"] is False and guard["agreement"] < 0.5 and guard["floor"] == 0.8
    assert (out / "model.onnx").is_file()


@pytest.mark.full  # a variant of the test above (30 s); the quick demo fit checks the terminal's agreement line
def test_the_guard_is_on_the_terminal_and_can_be_lowered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--min-agreement 0`` turns the guard off: the same collapsed fit exits 0 and shows the agreement."""
    monkeypatch.setattr(Recovery, "recover", _collapsing(Recovery.recover))
    done = run_cli_in_process(*FIT, "--min-agreement", "0", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith("agreement"))
    assert "of the original's answers kept (64 images; the floor, 0%, is --min-agreement)" in line, line
    assert any(line.strip().startswith("calibration       32 images") for line in done.stdout.splitlines()), \
        done.stdout
