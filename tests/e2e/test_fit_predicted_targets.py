"""Every shipped-profile target runs without its device: predicted latencies, said so, evaluated here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_in_process import run_cli_in_process

import edgeprune
from edgeprune.target import all_targets

PREDICTED = [t.name for t in all_targets() if t.latency_source == "predicted-profile"]


def test_the_shipped_profile_targets_are_the_devices_we_cannot_reach() -> None:
    assert {"rpi4", "rpi5", "intel-npu"} <= set(PREDICTED)


@pytest.mark.full
@pytest.mark.parametrize("name", PREDICTED)
def test_a_shipped_profile_target_fits_without_its_device(name: str, tmp_path: Path) -> None:
    result = edgeprune.fit("demo", target=name, budget="85%", out=tmp_path / "out")
    report = result.report
    assert report["status"] == "budget met (predicted, not measured)"
    assert "speedup_predicted" in report and "speedup_measured" not in report
    assert report["final"]["latency"]["source"] == "predicted-profile"
    assert result.accuracy_after is not None  # evaluated in the target's runtime on this machine
    assert all(v["passed"] for v in report["artifacts"])
    if report["target"]["device"].lower() != "cpu":  # the NPU is not here: OpenVINO's CPU stands in, and says so
        assert "this machine's CPU" in report["evaluation"]["note"]
        assert "this machine's CPU" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.full
def test_weight_pruning_on_a_predicted_pi_says_the_prediction_has_no_sparse_speed_up(tmp_path: Path) -> None:
    """On a Pi, XNNPACK's sparse kernels are real, but a shipped profile has no timings of them: the size-only fit
    predicts the dense architecture's latency, writes no sparse LiteRT file, and says both."""
    result = edgeprune.fit("demo", target="rpi4", budget=None, sparsity=0.5, eval_images=32, out=tmp_path / "out")
    report = result.report
    assert report["status"] == "no latency budget (size-only fit) (predicted, not measured)"
    note = report["sparsity"]["latency_note"]
    assert "NEON sparse kernels are on" in note and "no sparse speed-up is predicted" in note, note
    assert "sparse_tflite" not in report["sparsity"]
    assert report["artifacts"][0]["weight_zeros"]["sparsity"] >= 0.49


def test_on_a_predicted_target_the_runtime_check_comes_before_the_channel_analysis(tmp_path: Path) -> None:
    """A prediction needs the channel groups, the check that the target's runtime runs the original does not: it
    comes first (issue 37 saw it after 12 minutes of scoring on rpi4). A model with no channel group to prune is
    refused by the analysis, so the runtime's line must already be on the terminal when that refusal comes."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 255, (16, 8, 8, 3), dtype=np.uint8), y=np.arange(16) % 4)
    done = run_cli_in_process("fit", "--model", "model_helpers:linear_only", "--input-shape", "3,8,8", "--data",
                              str(tmp_path / "d.npz"), "--target", "rpi4", "--budget", "60%", "--out",
                              str(tmp_path / "o"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "has no channel group edgeprune can prune" in done.stderr
    assert "the original model runs in litert like in PyTorch" in done.stderr
