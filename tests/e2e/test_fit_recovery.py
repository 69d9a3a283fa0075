"""End to end: iterative pruning (--steps), the shipped-profile (predicted) path, and fit --resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from budget_check import assert_meets_budget_share
from process_helpers import interruptible_popen
from safetensors.torch import load_file

import edgeprune
from edgeprune.fit.resume import STATE_DIR
from edgeprune.train.default_weights import load_model


@pytest.mark.full
def test_predicted_target_without_agent_runs_and_says_predicted(tmp_path: Path) -> None:
    result = edgeprune.fit("demo", target="rpi4", budget="50%", out=tmp_path / "out", eval_images=64)
    report = result.report
    for side in ("baseline", "final"):
        latency = report[side]["latency"]
        assert latency["measured"] is False and latency["source"] == "predicted-profile"
        assert latency["runs"] == 0  # nothing was timed
    assert "predicted" in report["status"]
    assert all(r["measured"] is False for r in report["search"]["rounds"])
    assert (tmp_path / "out" / "model.tflite").is_file()
    assert result.accuracy_after is not None  # accuracy is real: the artifact ran in LiteRT here


@pytest.mark.full
def test_iterative_pruning_reaches_the_budget_in_steps(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = edgeprune.fit("demo", target="cpu", budget="60%", steps=2, out=out, eval_images=64,
                           precision="fp32")
    rounds = result.report["search"]["rounds"]
    assert {r["step"] for r in rounds} == {1, 2}
    assert_meets_budget_share(load_model("demo").model, result.report, out, tmp_path)
    assert result.report["method"]["steps"] == 2
    model = edgeprune.load_slim_model(out).eval()
    session = ort.InferenceSession(str(out / "model.onnx"))
    x = torch.rand(1, 1, 32, 32)
    produced = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(produced - model(x).detach().numpy()).max() < 1e-4
    plan = json.loads((out / "plan.json").read_text())
    for group in plan["groups"]:  # indices refer to the original channels
        assert len(group["kept"]) == group["width_after"] and max(group["kept"]) < group["width_before"]


def _fit_cmd(out: Path, *extra: str) -> list[str]:
    # A wide headroom: the confirmation before fine-tuning is journaled, but the one after it is live in both
    # resumed runs (it was not journaled before the interrupt), so a near-budget candidate could pass in one
    # and need a third confirmation (a "recheck" round) in the other on a noisy machine.
    return [sys.executable, "-m", "edgeprune", "fit", "--target", "cpu", "--budget", "60%", "--finetune-epochs", "2",
            "--search-headroom", "0.25", "--eval-images", "64", "--precision", "fp32", "--out", str(out), *extra]


def _interrupt_at_the_first_fine_tune_checkpoint(out: Path, *extra: str) -> None:
    """Start the fit into ``out`` and interrupt it (SIGINT, as Ctrl-C) once its first fine-tune epoch is saved."""
    proc = interruptible_popen(_fit_cmd(out, *extra))
    state = out / STATE_DIR
    deadline = time.monotonic() + 600
    while not list(state.glob("finetune-*.pt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # wait until the first fine-tune epoch is checkpointed
    assert proc.poll() is None, "fit ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    assert not (out / "model.onnx").exists() and (state / "journal.json").is_file()


@pytest.mark.full  # 68 s with the uniform-cut guard; test_fit_faults resumes interrupted fits in the quick tier
def test_an_interrupted_fit_resumes_and_ships(tmp_path: Path) -> None:
    """The quick tier's resume: interrupted during its fine-tune, resumed from the journal and the checkpoint
    (data-free L1 scores: the criterion is not what resumes; the full-tier test below keeps LASSO)."""
    out = tmp_path / "a"
    quick = ("--calib-images", "64", "--importance", "l1")
    _interrupt_at_the_first_fine_tune_checkpoint(out, *quick)
    done = subprocess.run(_fit_cmd(out, *quick, "--resume"), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["resume"]["measurements_replayed"] >= 2 and report["finetune"]["epochs"] >= 2
    assert not (out / STATE_DIR).exists() and (out / "model.onnx").is_file()


@pytest.mark.full
def test_interrupted_fit_resumes_to_the_same_model(tmp_path: Path) -> None:
    out = tmp_path / "a"
    _interrupt_at_the_first_fine_tune_checkpoint(out)

    refused = subprocess.run(_fit_cmd(out), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    # The same journal without fine-tune checkpoints: the search replays, fine-tuning runs uninterrupted.
    replay = tmp_path / "b"
    shutil.copytree(out, replay)
    for checkpoint in (replay / STATE_DIR).glob("finetune-*.pt"):
        checkpoint.unlink()

    rounds = []
    for directory in (out, replay):
        done = subprocess.run(_fit_cmd(directory, "--resume"), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        report = json.loads((directory / "report.json").read_text())
        assert report["resume"]["measurements_replayed"] >= 2
        assert not (directory / STATE_DIR).exists()
        search_rounds = report["search"]["rounds"]
        rounds.append([(r["kind"], r["channels_kept"]) for r in search_rounds if r["kind"] != "recheck"])
    assert rounds[0] == rounds[1], "the live confirming measurements led the two runs to different candidates"
    assert json.loads((out / "plan.json").read_text()) == json.loads((replay / "plan.json").read_text())
    a, b = load_file(str(out / "model.safetensors")), load_file(str(replay / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
