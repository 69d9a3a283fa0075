"""End to end: ``fit --precision int8`` closes the loop on the INT8 artifact's measured latency (issue 20).

Every candidate is quantized by ONNX Runtime's static quantizer and timed, in alternating rounds, against the
float original; the budget is a share of that original, measured in the same run. The unpruned model is measured
quantized first: on this project's machines (x86 with AVX-512 VNNI) INT8 alone runs the demo about 3.4x faster,
so a 40% budget ships it unpruned and a 20% budget needs INT8 and pruning together.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_in_process import run_cli_in_process

from edgeprune.runtimes.onnxruntime.int8 import onnx_is_quantized


def _fit(out: Path, budget: str, precision: str | None = "int8", *extra: str) -> dict:  # type: ignore[type-arg]
    """``fit`` on the demo; ``precision`` None: the default (``auto`` here, where latency is measured)."""
    flag = [] if precision is None else ["--precision", precision]
    proc = run_cli_in_process("fit", "--target", "cpu", "--budget", budget, *flag, "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize(("budget", "precision", "extra"), [
    # the default precision (``auto``: INT8 alone, chosen by measurement); the quick tier's agent fit takes it too
    pytest.param("40%", None, (), marks=pytest.mark.full),
    # INT8 and pruning together, each candidate measured quantized: the search on the INT8 latency table, and in the
    # quick tier one keep ratio bisected on measurements (no INT8 kernel profile to build)
    pytest.param("20%", "int8", (), marks=pytest.mark.full),
    ("20%", "int8", ("--allocation", "uniform", "--max-rounds", "4", "--eval-images", "150", "--calib-images", "64")),
])
def test_int8_alone_and_int8_with_pruning_meet_budgets_measured_against_the_float_original(
        budget: str, precision: str | None, extra: tuple[str, ...], tmp_path: Path) -> None:
    out = tmp_path / budget.rstrip("%")
    report = _fit(out, budget, precision, *extra)
    if precision is None:
        choice = report["method"]["precision_choice"]
        assert choice["precision"] == "int8", f"auto declined INT8 on this CPU: {choice['reason']}"
        assert "Precision chosen by `--precision auto`: INT8" in (out / "report.md").read_text()
    assert report["status"] == "budget met"
    assert report["baseline"]["latency"]["precision"] == "fp32"
    assert report["final"]["latency"]["precision"] == "int8"
    assert report["final"]["latency"]["median_ms"] <= report["budget_ms"]
    assert onnx_is_quantized(out / "model.onnx")
    assert not onnx_is_quantized(out / "original.onnx"), "the original beside it is the float one measured"
    assert json.loads((out / "model.onnx.json").read_text())["target"]["precision"] == "int8"
    assert report["method"]["quantization"]["format"] == "QDQ"
    convs = [l for l in report["per_layer_latency"]["layers"] if l["op_type"] == "Conv"]
    assert convs and all(l["after_ms"] is not None for l in convs), "INT8 convolutions not paired with the float ones"
    rounds = report["search"]["rounds"]
    quantized = next(r for r in rounds if r["kind"] == "quantized")  # the unpruned model, quantized
    confirmed = [r for r in rounds if r["kind"] == "confirm"][-1]
    if quantized["meets_budget"]:  # INT8 alone is enough: nothing is pruned
        assert confirmed["channels_kept"] == 1.0
    else:
        assert confirmed["channels_kept"] < 1.0
    assert all(a["passed"] for a in report["artifacts"]), report["artifacts"]
    assert report["final"]["top1"] >= report["baseline"]["top1"] - (0.02 if quantized["meets_budget"] else 0.2)
    assert "INT8" in (out / "report.md").read_text()
    if budget == "40%":
        assert quantized["meets_budget"], "INT8 alone did not reach 2.5x: is this CPU without VNNI?"


def test_int8_on_a_target_that_does_not_offer_it_is_one_line_and_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "fp32-only.toml"
    target.write_text('name = "fp32-only"\nruntime = "onnxruntime"\nprecision = "fp32"\n')
    proc = run_cli_in_process("fit", "--target", str(target), "--budget", "40%", "--precision", "int8", "--out",
                              str(tmp_path / "out"))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "offers precision fp32, not int8" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "report.json").exists()


@pytest.mark.full
def test_auto_precision_searches_float_where_no_int8_candidate_reaches_the_budget(tmp_path: Path) -> None:
    """At 8% of the demo, INT8's per-layer quantize/dequantize cost puts its fastest pruned model (about 9% here)
    over the budget while float candidates reach it: the run falls back to float instead of refusing."""
    out = tmp_path / "auto8"
    proc = subprocess.run([sys.executable, "-m", "edgeprune", "fit", "--target", "cpu", "--budget", "8%",
                           "--precision", "auto", "--out", str(out)], capture_output=True, text=True, timeout=900)
    if proc.returncode == 2:
        # The float floor sits within a few percent of 8% too (CI measured it at 0.084 ms against 0.075 ms): a
        # refusal is right there, but only after the float candidates were searched, and in one line.
        if "no INT8 candidate met the budget" in proc.stderr:  # INT8 was tried first (a CPU where it is faster)
            assert "searching float candidates" in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("edgeprune: error:")]
        assert len(errors) == 1 and "cannot be met" in errors[0] and "Traceback" not in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    choice, rounds = report["method"]["precision_choice"], report["search"]["rounds"]
    int8_rounds = [r for r in rounds if r["precision"] == "int8"]
    if choice["precision"] == "int8":  # INT8 reached it on this machine: shipped quantized, nothing to fall back
        assert onnx_is_quantized(out / "model.onnx") and int8_rounds[-1]["meets_budget"]
        return
    assert not onnx_is_quantized(out / "model.onnx") and report["final"]["latency"]["precision"] == "fp32"
    if choice["int8_speedup"] >= choice["min_int8_speedup"]:  # INT8 was tried first, and none of it met the budget
        assert "no INT8 candidate met the budget" in choice["reason"]
        # a noisy INT8 search reading may fit, but no INT8 confirmation did
        assert int8_rounds and not any(r["meets_budget"] for r in int8_rounds if r["kind"] == "confirm")
        first_float = next(i for i, r in enumerate(rounds) if r["precision"] == "fp32" and r["kind"] != "baseline")
        assert all(r["precision"] == "fp32" for r in rounds[first_float:])
    assert report["final"]["latency"]["median_ms"] <= report["budget_ms"]


@pytest.mark.full
def test_int8_on_a_predicted_target_uses_the_profiles_int8_estimate_and_says_so(tmp_path: Path) -> None:
    from edgeprune.runtimes.litert.int8 import tflite_is_quantized

    out = tmp_path / "rpi4"
    proc = subprocess.run([sys.executable, "-m", "edgeprune", "fit", "--target", "rpi4", "--budget", "50%",
                           "--precision", "int8", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    rounds = {r["kind"]: r for r in report["search"]["rounds"]}
    assert rounds["baseline"]["precision"] == "fp32" and rounds["quantized"]["precision"] == "int8"
    assert rounds["quantized"]["median_ms"] < rounds["baseline"]["median_ms"]  # the estimate: 1.6x compute
    assert not any(r["measured"] for r in report["search"]["rounds"])
    assert report["final"]["latency"]["source"] == "predicted-profile"
    assert "a guess" in report["final"]["latency"]["expected_error"]
    assert tflite_is_quantized(out / "model.tflite")
    assert "PREDICTED, not measured" in (out / "report.md").read_text()


@pytest.mark.full
def test_auto_leaves_the_layer_that_breaks_int8_in_float_and_ships_mixed_int8(tmp_path: Path) -> None:
    """A model whose classifier INT8 cannot represent (see ``model_helpers.OutlierNet``): INT8 alone changes
    many predictions, the search measures that the classifier is the layer to blame, and the run ships INT8
    with that one layer in float."""
    import os

    rng = np.random.default_rng(0)
    colours, noise = rng.uniform(0, 200, (300, 1, 1, 3)), rng.uniform(0, 55, (300, 32, 32, 3))
    np.savez(tmp_path / "images.npz", x=(colours + noise).astype(np.uint8))
    tests = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "edgeprune", "fit", "--model", "model_helpers:outlier_net_wide",
                           "--data", str(tmp_path / "images.npz"), "--input-shape", "3,32,32", "--target", "cpu",
                           "--budget", "90%", "--precision", "auto", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    choice = report["method"]["precision_choice"]
    assert choice["precision"] == "int8" and choice["float_layers"] == ["8"], choice["reason"]
    assert choice["mixed"]["int8_agreement"] < 0.9 <= choice["mixed"]["agreement"]
    assert choice["agreement"] >= 0.97  # judged again on the evaluation images, on the mixed artifact
    assert [r["kind"] for r in report["search"]["rounds"]][:3] == ["baseline", "quantized", "quantized-mixed"]
    assert report["method"]["quantization"]["float_layers"] == ["8"]
    precisions = {layer["name"]: layer["precision"] for layer in report["layer_precision"]["layers"]}
    assert precisions == {"0": "int8", "2": "int8", "4": "int8", "8": "fp32"}, precisions  # named by module
    assert report["status"] == "budget met" and all(a["passed"] for a in report["artifacts"])
    assert "1 layer(s) in float (8)" in (out / "report.md").read_text()
