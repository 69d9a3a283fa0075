"""Quantization-aware fine-tuning (``--qat-epochs``): NNCF's PyTorch QAT, trained and exported to artifacts that run as
INT8 in the real runtimes (ONNX Runtime, OpenVINO), on a tiny model and a few dozen images."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import randomise_bn
from torch import nn

from edgeprune.errors import InputError
from edgeprune.quantize.layers import layer_precisions, summarise
from edgeprune.quantize.qat import export_qat, float_form, fold_batchnorm, prepare_qat
from edgeprune.runtimes import backend_of, get_backend
from edgeprune.target import load_target
from edgeprune.train.loop import TrainSpec, train_classifier
from edgeprune.validate.artifact_check import ModelInputs, validate_artifact
from edgeprune.validate.tolerances import tolerance_for

pytest.importorskip("nncf", reason="NNCF is part of the openvino extra")


class _Tiny(nn.Module):
    """conv-BN-ReLU stem, one residual block of conv-BN pairs, pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.conv1, self.bn1 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)  # a conv with its own bias
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return self.head(torch.relu(x + y).mean((2, 3)))


def _model_and_images() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = randomise_bn(_Tiny()).eval()
    images = torch.rand(72, 3, 16, 16)
    with torch.no_grad():
        labels = model(images).argmax(1)  # the float model's classes: something to keep while quantized
    return model, images, labels


def test_qat_model_trains_resumes_and_exports_int8_onnx_and_ir_that_agree_with_it(tmp_path: Path) -> None:
    model, images, labels = _model_and_images()
    train_x, train_y, held_out = images[:48], labels[:48], images[48:]
    example = images[:1]
    qat, pairs = prepare_qat(model, example, train_x)
    assert sorted(pairs) == [("conv1", "bn1"), ("conv2", "bn2"), ("stem.0", "stem.1")]
    spec = TrainSpec(epochs=1, lr=1e-4, schedule="constant", batch_size=16)
    checkpoint = tmp_path / "qat.pt"
    train_classifier(qat, train_x, train_y, spec, checkpoint=checkpoint)
    assert checkpoint.is_file()
    resumed, _ = prepare_qat(model, example, train_x)  # --resume: a fresh QAT model continues from the checkpoint
    train_classifier(resumed, train_x, train_y, spec, checkpoint=checkpoint)
    for (name, a), b in zip(qat.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with torch.no_grad():
        expected = qat.eval()(held_out).numpy()
    reference = float_form(qat, model, pairs)  # what model.safetensors holds: the plan's architecture
    assert set(reference.state_dict()) == set(model.state_dict())
    limit = tolerance_for("int8")
    for runtime, target_name in (("onnxruntime", "cpu"), ("openvino", "cpu-openvino")):
        target = load_target(target_name).with_precision("int8")
        artifact = export_qat(qat, example, tmp_path / f"qat-{runtime}", backend_of(runtime))
        layers = summarise(layer_precisions(artifact.path, artifact.format))
        assert layers.get("int8", 0) >= 3, (runtime, layers)  # every convolution runs on int8 inputs and weights
        session = get_backend(target).load(artifact, target)
        got = np.concatenate([session.run({artifact.input_name: held_out[i:i + 1].numpy()})[0]
                              for i in range(len(held_out))])
        relative = np.abs(got - expected).max() / max(1.0, np.abs(expected).max())
        agreement = (got.argmax(1) == expected.argmax(1)).mean()
        assert relative <= limit.max_abs_diff_relative and agreement >= limit.min_top1_agreement, (runtime, relative)
        result = validate_artifact(artifact.path, target, data=ModelInputs(held_out.numpy(), None, "held out"),
                                   reference=reference, measure=False, raise_on_failure=False)
        assert result.passed, (runtime, result.failure_message())
        assert result.runtime["precision"] == "int8"
    assert _ort_kernels(tmp_path / "qat-onnxruntime.onnx", tmp_path / "optimized.onnx").get("QLinearConv") == 3
    mixed, _ = prepare_qat(model, example, train_x, float_layers=("conv2",))  # mixed precision: as PTQ left it
    for runtime in ("onnxruntime", "openvino"):
        artifact = export_qat(mixed, example, tmp_path / f"mixed-{runtime}", backend_of(runtime))
        kept = [layer for layer in layer_precisions(artifact.path, artifact.format) if layer.precision != "int8"]
        assert [layer.weights for layer in kept] == ["fp32"] and "conv2" in kept[0].name, (runtime, kept)


def _ort_kernels(path: Path, optimized: Path) -> dict[str, int]:
    """The op types of the graph ONNX Runtime runs (after its QDQ fusions): integer kernels or float ones."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    kinds: dict[str, int] = {}
    for node in onnx.load(str(optimized)).graph.node:
        kinds[node.op_type] = kinds.get(node.op_type, 0) + 1
    return kinds


def test_a_convolution_read_elsewhere_is_not_folded_silently() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return (self.bn(y) + y).mean((2, 3))  # the conv's output also bypasses its batch norm

    model = randomise_bn(Shared()).eval()
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(InputError, match="folding batch norms"):
        fold_batchnorm(model, x[:1], x)
    folded, pairs = fold_batchnorm(_model_and_images()[0], x[:1].expand(1, 3, 8, 8).contiguous(), x)
    assert len(pairs) == 3 and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_qat_epochs_on_a_litert_target_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edgeprune", "fit", "--target", "cpu-tflite", "--budget", "40%",
                           "--precision", "int8", "--qat-epochs", "1", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "no quantization-aware training path" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out" / "report.json").exists()


def test_a_sequential_model_is_quantized_and_exported(tmp_path: Path) -> None:
    """NNCF adds a child to the module it wraps, which an ``nn.Sequential`` root would call: it is wrapped first."""
    from model_helpers import conv_stack

    torch.manual_seed(0)
    model, images = conv_stack(2, 8, classes=4), torch.rand(24, 3, 8, 8)
    qat, pairs = prepare_qat(model, images[:1], images)
    artifact = export_qat(qat, images[:1], tmp_path / "seq", backend_of("onnxruntime"))
    assert pairs == [] and summarise(layer_precisions(artifact.path, artifact.format)).get("int8", 0) == 3
    assert set(float_form(qat, model, pairs).state_dict()) == set(model.state_dict())
