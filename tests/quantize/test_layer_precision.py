"""The precision of every compute layer, read back from ONNX, OpenVINO IR and TFLite files (issue 20)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import conv_stack, randomise_bn

from edgeprune.quantize.backend import Int8Backend
from edgeprune.quantize.layers import LayerPrecision, layer_precisions, summarise
from edgeprune.report.markdown_sections import layer_precision
from edgeprune.runtimes import get_backend
from edgeprune.target import load_target


@pytest.mark.parametrize("target_name", ["cpu", "cpu-openvino", "cpu-tflite"])
def test_every_compute_layer_is_listed_float_before_and_int8_after_quantization(tmp_path: Path,
                                                                               target_name: str) -> None:
    torch.manual_seed(0)
    model = randomise_bn(conv_stack(2, 16, classes=5)).eval()
    images = torch.rand(32, 3, 16, 16)
    target = load_target(target_name)
    backend = get_backend(target)
    fp32 = backend.export(model, images[:1], tmp_path / "fp32", target)
    int8 = Int8Backend(backend, images.numpy()).export(model, images[:1], tmp_path / "int8",
                                                       target.with_precision("int8"))
    before, after = layer_precisions(fp32.path, fp32.format), layer_precisions(int8.path, int8.format)
    assert len(before) == len(after) == 4  # three convolutions and the classifier
    assert summarise(before) == {"fp32": 4}
    assert summarise(after) == {"int8": 4}


def test_a_layer_is_int8_only_when_weights_and_activations_are() -> None:
    assert LayerPrecision("a", "Conv", "int8", "int8").precision == "int8"
    assert LayerPrecision("b", "Conv", "int8", "fp32").precision == "int8 weights"
    assert LayerPrecision("c", "Conv", "fp32", "fp32").precision == "fp32"
    lines = layer_precision({"layer_precision": {"summary": {"int8": 1, "fp32": 1}, "source": "read from m.onnx",
                                                 "layers": [LayerPrecision("a", "Conv", "int8", "int8").to_dict(),
                                                            LayerPrecision("c", "Gemm", "fp32", "fp32").to_dict()]}})
    text = "\n".join(lines)
    assert "2 compute layers: 1 int8, 1 fp32" in text and "| `c` | Gemm | fp32 | fp32 | fp32 |" in text
