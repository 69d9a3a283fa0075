"""Mixed precision (issue 20): the layers left in float are chosen by measured quantization error, and the
runtimes' quantizers really leave them in float (ONNX Runtime's and NNCF's, run for real on a tiny model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import OutlierNet

from edgeprune.fit.precision_stage import search_float_layers
from edgeprune.quantize.backend import Int8Backend
from edgeprune.quantize.layers import layer_precisions
from edgeprune.quantize.mixed import QuantizationError, choose_float_layers, max_float_layers
from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend
from edgeprune.target import load_target


def _errors(table: dict[tuple[str, ...], tuple[float, float]]):  # type: ignore[no-untyped-def]
    """An error function over float-layer sets from a table of (agreement, KL); unknown sets: the whole-INT8 error."""
    calls: list[tuple[str, ...]] = []

    def error_of(float_layers: tuple[str, ...]) -> QuantizationError:
        calls.append(float_layers)
        agreement, kl = table.get(tuple(sorted(float_layers)), table[()])
        return QuantizationError(agreement, kl, 100)

    return error_of, calls


def test_layers_are_kept_most_sensitive_first_only_while_the_measured_error_drops() -> None:
    layers = [f"l{i}" for i in range(20)]  # 20 layers: up to 2 may stay in float
    table = {(): (0.90, 0.50), ("l3",): (0.93, 0.20), ("l7",): (0.91, 0.30), ("l1",): (0.90, 0.45),
             ("l3", "l7"): (0.92, 0.25),  # l7 helps alone but not on top of l3: it is not kept
             ("l1", "l3"): (0.98, 0.15)}
    error_of, calls = _errors(table)
    mixed = choose_float_layers(layers, error_of, error_of, min_agreement=0.97)
    assert mixed.float_layers == ("l3", "l1") and mixed.meets(0.97)
    assert [name for name, _ in mixed.sensitivity[:3]] == ["l3", "l7", "l1"]
    assert [(s["layer"], s["kept_float"]) for s in mixed.steps] == [("l3", True), ("l7", False), ("l1", True)]
    assert mixed.int8_error.agreement == 0.90 and mixed.error.kl_nats == 0.15
    assert calls[-1] == ("l3", "l1")  # it stopped as soon as the target was reached


def test_at_most_a_tenth_of_the_layers_stay_float_and_a_miss_is_reported_as_such() -> None:
    layers = [f"l{i}" for i in range(10)]
    assert max_float_layers(10) == 1 and max_float_layers(3) == 1 and max_float_layers(45) == 4
    table = {(): (0.80, 0.50), ("l2",): (0.90, 0.30), ("l5",): (0.85, 0.40)}
    error_of, _ = _errors(table)
    mixed = choose_float_layers(layers, error_of, error_of, min_agreement=0.97)
    assert mixed.float_layers == ("l2",) and not mixed.meets(0.97)
    assert mixed.to_dict()["agreement"] == 0.90


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_layer_that_breaks_int8_is_found_and_left_in_float_by_the_runtimes_quantizer(tmp_path: Path,
                                                                                          runtime: str) -> None:
    model = OutlierNet()
    torch.manual_seed(1)
    images = torch.rand(96, 3, 1, 1) + 0.5 * torch.rand(96, 3, 12, 12)  # colours that differ between images
    if runtime == "openvino":
        pytest.importorskip("nncf", reason="NNCF is part of the openvino extra")
        from edgeprune.runtimes.openvino.backend import OpenVinoBackend

        float_backend, target = OpenVinoBackend(), load_target("cpu-openvino").with_precision("int8")
    else:
        float_backend, target = OnnxRuntimeBackend(), load_target("cpu").with_precision("int8")
    backend = Int8Backend(float_backend, images[:64].numpy())
    mixed = search_float_layers(backend, float_backend, model, images[:1], target, images)
    assert mixed.int8_error.agreement < 0.8, "the outlier should break the fully quantized model"
    assert mixed.float_layers == ("2",), mixed.to_dict()
    # the rest of the error is conv 2's input, still rounded to int8 (both quantizers quantize a tensor that a
    # quantized layer produces)
    assert mixed.error.agreement > mixed.int8_error.agreement + 0.5, mixed.to_dict()
    assert mixed.error.kl_nats < mixed.int8_error.kl_nats / 10, mixed.to_dict()
    assert backend.float_layers == () and backend.calibration_cache is None  # the search leaves no state behind
    backend.float_layers = mixed.float_layers
    artifact = backend.export(model, images[:1], tmp_path / "mixed", target)
    precisions = [layer.precision for layer in layer_precisions(artifact.path, artifact.format)]
    assert precisions.count("int8") == 2 and len(precisions) == 3, precisions  # conv 0 and the linear stay INT8
    assert backend.describe()["float_layers"] == ["2"]


@pytest.mark.full
def test_keep_float_names_a_layer_the_model_does_not_have_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "edgeprune", "fit", "--target", "cpu", "--budget", "50%",
                           "--precision", "int8", "--keep-float", "no.such.layer", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "no compute layer" in line]
    assert lines and "no.such.layer" in lines[0] and "Traceback" not in proc.stderr
