"""End to end: the CLI `fit` on the built-in demo, with budgets relative to a baseline measured in the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from budget_check import assert_meets_budget_share
from cli_in_process import run_cli_in_process
from log_gaps import assert_never_silent

import edgeprune
from edgeprune.export.formats import format_of_path
from edgeprune.fit.loop.guard import GUARD_KINDS, GUARD_ROUNDS_TOTAL
from edgeprune.models.demo import DEMO_PREPROCESSING
from edgeprune.runtimes.onnx_export import export_onnx
from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeSession
from edgeprune.timing import TimingSpec, measure_latency
from edgeprune.train.default_weights import load_model


def run_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m edgeprune ARGS`` in a new process (for what is about the process: a crash, stderr's traceback)."""
    return subprocess.run([sys.executable, "-m", "edgeprune", *args], capture_output=True, text=True, timeout=900)


run_cli = run_cli_in_process  # the CLI's entry point in this process (tests/cli_in_process.py)


def median_ms(onnx_path: Path, example: np.ndarray) -> float:
    session = OnnxRuntimeSession(onnx_path, threads=1)
    return measure_latency(lambda: session.run({"input": example}), TimingSpec(min_seconds=1.0)).median_ms


@pytest.fixture(scope="module")
def demo_baseline_ms(tmp_path_factory: pytest.TempPathFactory) -> float:
    """The demo model's latency, measured in this test run with ONNX Runtime on 1 thread."""
    model = load_model("demo").model
    example = torch.zeros(1, *DEMO_PREPROCESSING.input_shape)
    path = export_onnx(model, example, tmp_path_factory.mktemp("baseline") / "demo.onnx")
    return median_ms(path, example.numpy())


def test_cli_fit_demo_meets_a_budget_of_60_percent_of_the_measured_baseline(
    tmp_path: Path, demo_baseline_ms: float
) -> None:
    budget_ms = 0.6 * demo_baseline_ms
    out = tmp_path / "out"
    proc = run_cli("fit", "--target", "cpu", "--budget", f"{budget_ms:.4f}ms", "--out", str(out),
                   "--finetune-epochs", "1", "--precision", "fp32", "--eval-images", "100", "--calib-images", "64",
                   "--log-file", str(tmp_path / "fit.log"))
    assert proc.returncode == 0, proc.stderr
    assert_never_silent(tmp_path / "fit.log")  # no stage is silent for more than 30 s (issue 37)
    report = json.loads((out / "report.json").read_text())
    assert report["budget_ms"] == pytest.approx(budget_ms, rel=1e-3)
    guard = report["accuracy_guard"]  # the terminal shows the agreement and the calibration count (issue 35)
    assert guard["passed"] and guard["agreement"] >= guard["floor"] == 0.8
    assert f"agreement         {100 * guard['agreement']:.1f}% of the original's answers kept" in proc.stdout
    assert f"calibration       {report['calibration']['images']} images" in proc.stdout
    assert report["final"]["latency"]["measured"] is True
    assert report["final"]["latency"]["median_ms"] <= budget_ms
    assert report["final"]["macs"] < report["baseline"]["macs"]
    assert 0.0 <= report["baseline"]["top1"] <= 1.0 and 0.0 <= report["final"]["top1"] <= 1.0
    assert report["baseline"]["top1"] > 0.9  # the demo model really learned the digits
    labels = report["label_check"]  # far above chance: no warning that the labels may not match the model
    assert labels["judged"] and not labels["suspect"] and labels["classes"] == 10 and labels["message"] is None
    assert "no better than chance" not in proc.stderr
    assert report["parity"]["max_abs_diff"] < 1e-4
    for name in ("model.onnx", "model.safetensors", "plan.json", "report.json", "report.md"):
        assert (out / name).is_file(), name
    assert report["method"]["allocation"] == "latency-budgeted-search"
    rounds = report["search"]["rounds"]
    # the shipped model's confirmation decides, or its recheck when a noisy confirmation missed
    assert rounds[-1]["kind"] in ("confirm", "recheck") and rounds[-1]["meets_budget"]
    assert rounds[-1]["median_ms"] == pytest.approx(report["final"]["latency"]["median_ms"])
    assert all("predicted_ms" in r for r in rounds if r["kind"] == "search")
    assert "budget met" in proc.stdout and "accuracy" in proc.stdout
    _assert_the_uniform_cut_was_compared(report, out, proc.stdout)
    # The shipped ONNX file loads and runs in ONNX Runtime, and re-timed independently it is within budget
    # up to timing noise.
    example = np.zeros((1, 1, 32, 32), dtype=np.float32)
    logits = ort.InferenceSession(str(out / "model.onnx")).run(None, {"input": example})[0]
    assert logits.shape == (1, 10)
    assert_meets_budget_share(load_model("demo").model, report, out, tmp_path)
    # The slim PyTorch model rebuilds from plan + weights and matches the ONNX file.
    slim = edgeprune.load_slim_model(out)
    with torch.no_grad():
        reference = slim(torch.from_numpy(example)).numpy()
    assert np.abs(reference - logits).max() < 1e-4


def _assert_the_uniform_cut_was_compared(report: dict, out: Path, stdout: str) -> None:
    """The default allocation put its widths against the uniform cut at the same measured latency (issue 39) and
    shipped the one whose output moved least on calibration images; report.md and the terminal say so."""
    compared = report["method"]["uniform_guard"]
    searched, uniform = compared["latency_search"], compared.get("uniform")
    assert searched["measured_ms"] <= report["budget_ms"] and compared["ceiling_ms"] <= report["budget_ms"]
    guard_rounds = [r for r in report["search"]["rounds"] if r["kind"] in GUARD_KINDS]
    assert 1 <= len(guard_rounds) <= GUARD_ROUNDS_TOTAL
    assert "Uniform-cut guard" in (out / "report.md").read_text()
    if uniform is None:  # no uniform cut met the latency within the guard's rounds: said, and the search shipped
        assert compared["chosen"] == "latency_search" and "no uniform cut" in compared["reason"]
        return
    assert uniform["measured_ms"] <= compared["ceiling_ms"]
    chosen, other = (uniform, searched) if compared["chosen"] == "uniform" else (searched, uniform)
    if compared["reason"] == "less output distortion":
        assert chosen["distortion"] <= other["distortion"]
    assert "widths            " in stdout
    if sum(r["kind"] == "confirm" for r in report["search"]["rounds"]) == 1:  # the compared winner shipped
        plan = json.loads((out / "plan.json").read_text())
        kept = sum(g["width_after"] for g in plan["groups"]) / sum(g["width_before"] for g in plan["groups"])
        assert kept == pytest.approx(chosen["kept_channels"], abs=1e-9)


@pytest.mark.full
def test_unreachable_budget_exits_2_with_the_floor_and_leaves_no_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("fit", "--budget", "1us", "--out", str(out), "--precision", "fp32")
    assert proc.returncode == 2
    assert "fastest pruned model measured" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists(), "a failed run leaves no --out folder it created (issue 37)"


@pytest.mark.full
def test_python_api_returns_the_facts_of_report_json(tmp_path: Path) -> None:
    result = edgeprune.fit("demo", target="cpu", budget="75%", out=tmp_path / "api")
    assert_meets_budget_share(load_model("demo").model, result.report, tmp_path / "api", tmp_path)
    on_disk = json.loads((tmp_path / "api" / "report.json").read_text())
    assert result.report == on_disk
    assert result.budget_ms == pytest.approx(0.75 * result.baseline_latency_ms)
    assert result.accuracy_before is not None and result.accuracy_after is not None
    assert result.files["model.onnx"].is_file()


def test_existing_results_are_not_overwritten_without_force(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("{}")
    proc = run_cli("fit", "--budget", "1ms", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "--force" in proc.stderr
    assert (tmp_path / "report.json").read_text() == "{}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "fast"], "cannot read budget"),
        (["--budget", "20"], "has no unit"),
        (["--budget=-3ms"], "positive"),
        (["--budget", "0ms"], "greater than zero"),
        (["--budget", "1ms", "--target", "cpuu"], "Did you mean 'cpu'"),
        (["--budget", "1ms", "--importance", "magic"], "unknown importance criterion 'magic'"),
        (["--budget", "1ms", "--model", "cifar-resnet56"], "--data is required"),
        (["--budget", "1ms", "--model", "cifar-resnet57", "--data", "x.npz"], "6n+2"),
    ],
)
@pytest.mark.full  # each a real process (4 s of imports); tests/safety/test_bad_inputs.py has every refusal in one
def test_bad_input_gives_one_line_and_exit_code_2(args: list[str], message: str, tmp_path: Path) -> None:
    proc = run_process("fit", *args, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_targets_lists_cpu_with_its_runtime_installed() -> None:
    proc = run_cli("targets")
    assert proc.returncode == 0
    assert "cpu" in proc.stdout and "onnxruntime" in proc.stdout and "yes" in proc.stdout


RUNTIME_TARGETS = [("cpu-openvino", "model.xml"), ("cpu-tflite", "model.tflite")]


def _fit_ships_the_target_runtimes_artifact(target: str, artifact: str, out: Path, *extra: str) -> None:
    proc = run_cli("fit", "--target", target, "--budget", "70%", "--out", str(out), "--precision", "fp32", *extra)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert (out / artifact).is_file() and not (out / "model.onnx").exists()
    assert report["artifact"]["format"] == format_of_path(out / artifact)
    assert report["final"]["latency"]["backend"] == report["target"]["runtime"]
    assert report["parity"]["max_abs_diff"] < 1e-3
    assert report["final"]["top1"] is not None


# the quick tier's fit per runtime is the runtime contract's whole fit (tests/runtimes/test_whole_fit.py)


@pytest.mark.full
@pytest.mark.parametrize(("target", "artifact"), RUNTIME_TARGETS)
def test_fit_ships_and_measures_the_target_runtimes_artifact(target: str, artifact: str, tmp_path: Path) -> None:
    """The latency-budgeted search on each runtime, with its kernel profile."""
    _fit_ships_the_target_runtimes_artifact(target, artifact, tmp_path / target, "--max-rounds", "8")


def test_predicted_only_targets_say_predicted_and_point_to_the_agent(tmp_path: Path) -> None:
    """Without an agent, fit on a shipped-profile target runs on predictions and says so on the terminal."""
    proc = run_cli("fit", "--target", "rpi4", "--budget", "60%", "--eval-images", "32", "--calib-images", "64",
                   "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "PREDICTED" in proc.stdout and "not measured" in proc.stdout
    assert "agent" in proc.stderr and "Traceback" not in proc.stderr


def test_profile_refuses_a_device_it_cannot_reach(tmp_path: Path) -> None:
    proc = run_cli("profile", "--target", "rpi4", "--model", "demo", "--table-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "agent" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.full
def test_cli_fit_fine_tunes_a_very_thin_demo_candidate_on_all_threads(tmp_path: Path) -> None:
    # at 15% the demo keeps about 12% of its channels (8-wide stages); fine-tuning that on one-channel inputs with
    # channels-last strides crashed torch's two-thread backward (exit 134/139) before inputs got plain strides
    out = tmp_path / "out"
    proc = run_process("fit", "--target", "cpu", "--budget", "15%", "--finetune-epochs", "1", "--out", str(out),
                       # one epoch at 6.7x keeps about 22% agreement: the guard's exit 3 is not what this test is about
                       "--precision", "fp32", "--min-agreement", "0")
    if proc.returncode == 2 and "cannot be met" in proc.stderr:
        pytest.skip(f"15% of the baseline is out of reach on this machine: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["finetune"]["epochs"] >= 1
