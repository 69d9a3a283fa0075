"""INT8 ONNX artifacts by ONNX Runtime's own quantizer (issue 20), run in the real runtime on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from model_helpers import conv_stack, randomise_bn
from onnx import numpy_helper

from edgeprune.quantize.backend import Int8Backend, for_precision
from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend
from edgeprune.runtimes.onnxruntime.int8 import onnx_is_quantized, quantize_onnx_int8
from edgeprune.target import load_target
from edgeprune.validate.artifact_check import ModelInputs, validate_artifact


def _model_and_images() -> tuple[torch.nn.Module, np.ndarray]:
    torch.manual_seed(0)
    model = randomise_bn(conv_stack(3, 16, classes=5))
    images = torch.rand(96, 3, 16, 16).numpy()  # inputs in one range, as normalised images are
    return model, images


def test_the_int8_backend_writes_a_quantized_model_that_agrees_with_the_float_one(tmp_path: Path) -> None:
    model, images = _model_and_images()
    target = load_target("cpu")
    backend = OnnxRuntimeBackend()
    float_artifact = backend.export(model, torch.from_numpy(images[:1]), tmp_path / "fp32", target)
    artifact = Int8Backend(backend, images[:64]).export(model, torch.from_numpy(images[:1]), tmp_path / "m", target)
    assert artifact.path == tmp_path / "m.onnx" and onnx_is_quantized(artifact.path)
    assert not onnx_is_quantized(float_artifact.path)
    ops = {n.op_type for n in onnx.load(str(artifact.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    session = backend.load(artifact, target)
    held_out = images[64:]
    with torch.no_grad():
        expected = model(torch.from_numpy(held_out)).numpy()
    got = np.concatenate([session.run({artifact.input_name: held_out[i:i + 1]})[0] for i in range(len(held_out))])
    assert np.abs(got - expected).max() / np.abs(expected).max() < 0.1
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.9
    result = validate_artifact(artifact.path, target, data=ModelInputs(held_out, None, "held out"), reference=model,
                               measure=False, raise_on_failure=False)
    assert result.passed and result.runtime["precision"] == "int8"  # detected from the file itself
    assert result.runtime["layer_precision"] == {"int8": 5}  # four convolutions and the classifier, read back


def test_fp32_never_quantizes() -> None:
    backend = OnnxRuntimeBackend()
    images = np.zeros((2, 3, 8, 8), dtype=np.float32)
    assert for_precision(backend, load_target("cpu"), images) is backend
    assert isinstance(for_precision(backend, load_target("cpu").with_precision("int8"), images), Int8Backend)


def test_a_quantized_model_with_wrong_scales_fails_validation_with_exit_3(tmp_path: Path) -> None:
    """A model quantized elsewhere (here by the quantizer directly, not by a fit) whose weight scales are off."""
    model, images = _model_and_images()
    fp32 = OnnxRuntimeBackend().export(model, torch.from_numpy(images[:1]), tmp_path / "fp32", load_target("cpu"))
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    quantize_onnx_int8(fp32.path, good, images[:64], fp32.input_name)
    proto = onnx.load(str(good))
    scales = [t for t in proto.graph.initializer if t.name.endswith("_scale") and "weight" in t.name.lower()]
    assert scales, [t.name for t in proto.graph.initializer]
    for tensor in scales:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 8, tensor.name))
    onnx.save(proto, str(bad))
    np.savez(tmp_path / "data.npz", x=(images[64:] * 255).astype(np.uint8).transpose(0, 2, 3, 1),
             y=np.zeros(len(images) - 64, dtype=np.int64))
    args = [sys.executable, "-m", "edgeprune", "validate", "--target", "cpu", "--reference", str(fp32.path),
            "--data", str(tmp_path / "data.npz"), "--mean", "0,0,0", "--std", "1,1,1", "--timing-seconds", "0.05"]
    ok = subprocess.run([*args[:4], str(good), *args[4:]], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    proc = subprocess.run([*args[:4], str(bad), *args[4:]], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "(int8)" in proc.stderr and "Traceback" not in proc.stderr


def test_export_writes_an_int8_onnx_calibrated_on_data_and_refuses_without_data(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
    from export_test_models import write_slim_output

    source = write_slim_output(tmp_path / "slim")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8))
    base = [sys.executable, "-m", "edgeprune", "export", "--from", str(source), "--target", "cpu",
            "--export", "onnx,tflite", "--precision", "int8"]
    refused = subprocess.run([*base, "--out", str(tmp_path / "nodata")], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "needs calibration images" in refused.stderr
    proc = subprocess.run([*base, "--data", str(tmp_path / "calib.npz"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert onnx_is_quantized(tmp_path / "out" / "model.onnx")
    sidecars = {f: json.loads((tmp_path / "out" / f"model.{f}.json").read_text())
                for f in ("onnx", "tflite")}
    assert sidecars["onnx"]["target"]["precision"] == "int8"
    assert sidecars["tflite"]["target"]["precision"] == "fp32"  # other runtimes' formats stay float
    check = subprocess.run([sys.executable, "-m", "edgeprune", "validate", str(tmp_path / "out" / "model.onnx"),
                            "--reference", str(source), "--data", str(tmp_path / "calib.npz"),
                            "--timing-seconds", "0.05"], capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr[-2000:]


class _ChannelNorm(torch.nn.Module):
    """A conv and a LayerNorm over its channels (ConvNeXt's norm): the quantizer notes every norm weight."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norms = torch.nn.ModuleList(torch.nn.LayerNorm(8) for _ in range(3))
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).permute(0, 2, 3, 1)
        for norm in self.norms:
            y = norm(y)
        return self.head(y.mean((1, 2)))


def test_the_quantizers_notes_go_to_the_debug_log_not_the_terminal(tmp_path: Path, caplog, capfd) -> None:
    import logging

    from edgeprune.runtimes.onnx_export import export_onnx

    torch.manual_seed(0)
    source = export_onnx(_ChannelNorm().eval(), torch.rand(1, 3, 8, 8), tmp_path / "m.onnx")
    root = logging.getLogger()
    handlers = list(root.handlers)
    with caplog.at_level(logging.DEBUG, logger="edgeprune.runtimes"):
        quantize_onnx_int8(source, tmp_path / "q.onnx", torch.rand(4, 3, 8, 8).numpy(),
                           onnx.load(str(source)).graph.input[0].name)
    assert onnx_is_quantized(tmp_path / "q.onnx")
    notes = [r for r in caplog.records if r.name == "root"]
    assert not notes, [r.getMessage() for r in notes]  # none of the quantizer's own lines got through
    summary = [r.getMessage() for r in caplog.records if "ONNX Runtime's quantizer on m.onnx" in r.getMessage()]
    assert summary and "out-of-range" in summary[0], caplog.text  # one line per kind, at DEBUG
    raw = [line for line in capfd.readouterr().err.splitlines()
           if "out-of-range" in line and "ONNX Runtime's quantizer on" not in line]
    assert not raw, raw  # (the summary itself shows only where edgeprune logs DEBUG, as after -v)
    assert root.handlers == handlers  # and no basicConfig() left a handler behind
