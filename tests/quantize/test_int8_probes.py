"""INT8 latency probes (issue 20): an INT8 target's table is built from quantized kernels, in its own table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edgeprune.latency.layers import LayerSignature
from edgeprune.latency.probes import EMPTY_PROBE_KEY
from edgeprune.latency.profile_model import table_context
from edgeprune.latency.profiler import _probe_artifact
from edgeprune.latency.timers import LocalTimer
from edgeprune.quantize.layers import layer_precisions, summarise
from edgeprune.runtimes import get_backend
from edgeprune.target import load_target
from edgeprune.timing import TimingSpec

CONV = LayerSignature("conv", (3, 3), (1, 1), (1, 1), (1, 1), 16, 16, False)
DW = LayerSignature("dwconv", (3, 3), (1, 1), (1, 1), (1, 1), 16, 16, False, groups=16)
QUICK = TimingSpec(warmup_runs=2, min_runs=5, min_seconds=0.01, warn_noisy=False)


@pytest.mark.parametrize("target_name", ["cpu", "cpu-openvino", "cpu-tflite"])
def test_int8_probes_are_quantized_kernels_that_run_in_the_runtime(tmp_path: Path, target_name: str) -> None:
    target = load_target(target_name)
    int8 = target.with_precision("int8")
    backend = get_backend(target)
    for sig, cin, cout in ((CONV, 8, 24), (DW, 16, 16)):
        (tmp_path / "fp32").mkdir(exist_ok=True)
        (tmp_path / "int8").mkdir(exist_ok=True)
        fp32 = _probe_artifact(backend, target, sig.key(), cin, cout, tmp_path / "fp32")
        quantized = _probe_artifact(backend, int8, sig.key(), cin, cout, tmp_path / "int8")
        assert summarise(layer_precisions(fp32.path, fp32.format)) == {"fp32": 1}
        assert summarise(layer_precisions(quantized.path, quantized.format)) == {"int8": 1}
        assert LocalTimer(backend, int8).time(quantized, QUICK).median_ms > 0
    empty = _probe_artifact(backend, int8, EMPTY_PROBE_KEY, 0, 0, tmp_path)  # the call's own cost: nothing to quantize
    assert LocalTimer(backend, int8).time(empty, QUICK).median_ms > 0


def test_an_int8_target_keeps_its_own_latency_table() -> None:
    target = load_target("cpu")
    backend = get_backend(target)
    fp32, int8 = table_context(backend, target), table_context(backend, target.with_precision("int8"))
    assert fp32.precision == "fp32" and int8.precision == "int8"
    assert dataclasses.replace(int8, precision="fp32") == fp32


def test_profile_at_int8_on_a_target_without_it_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    target = tmp_path / "fp32-only.toml"
    target.write_text('name = "fp32-only"\nruntime = "onnxruntime"\nprecision = "fp32"\n')
    tables = tmp_path / "tables"
    proc = subprocess.run([sys.executable, "-m", "edgeprune", "profile", "--target", str(target), "--precision",
                           "int8", "--table-dir", str(tables)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "offers precision fp32, not int8" in proc.stderr and not tables.exists()


@pytest.mark.parametrize("target_name", ["cpu-tflite", "cpu-executorch"])
def test_the_empty_probe_of_an_int8_fit_is_exported_in_float_by_a_runtime_that_converts_from_pytorch(
        tmp_path: Path, target_name: str) -> None:
    """During an INT8 fit the profiler gets the run's INT8 backend, calibrated on the model's images; the empty
    probe, which times the call itself, takes a (1, 1) input they do not fit. It once reached ExecuTorch's quantizer
    and stopped every ExecuTorch INT8 fit that needed pruning ("calibration images of shape (3, 32, 32) do not fit
    the model input (1,)")."""
    import numpy as np

    from edgeprune.quantize.backend import Int8Backend

    target = load_target(target_name)
    inner = get_backend(target)
    if not inner.available():
        pytest.skip(f"{inner.facts.title} is not installed (extra '{inner.facts.extra}')")
    run_backend = Int8Backend(inner, np.zeros((4, 3, 32, 32), dtype=np.float32))
    int8 = target.with_precision("int8")
    empty = _probe_artifact(run_backend, int8, EMPTY_PROBE_KEY, 0, 0, tmp_path)
    assert LocalTimer(inner, int8).time(empty, QUICK).median_ms > 0
