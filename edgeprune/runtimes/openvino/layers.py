"""The precision of each compute layer of an OpenVINO IR: an input that passes through ``FakeQuantize``, or a
weight stored as an 8-bit constant, is integer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeprune.runtimes.base import LayerPrecision

OPENVINO_COMPUTE = frozenset({"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"})
#: how far up the graph an input is followed to find its quantization (Convert, Reshape, Subtract ... between)
_SEARCH_DEPTH = 4


def openvino_layers(path: Path) -> list[LayerPrecision]:
    import openvino as ov

    model = ov.Core().read_model(str(path))

    def source(op: Any, index: int) -> Any:
        return op.input(index).get_source_output().get_node()

    def integer(op: Any, depth: int = _SEARCH_DEPTH) -> bool:
        kind = op.get_type_name()
        if kind == "FakeQuantize" or (kind == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8",
                                                                                                       "i4", "u4")):
            return True
        if depth == 0 or op.get_input_size() == 0 or kind == "Parameter":
            return False
        return any(integer(source(op, i), depth - 1) for i in range(op.get_input_size()))

    def float_type(op: Any) -> str:
        name = op.get_output_element_type(0).get_type_name()
        return {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}.get(name, name)

    layers = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in OPENVINO_COMPUTE:
            weight = "int8" if integer(source(op, 1)) else float_type(source(op, 1))
            activation = "int8" if integer(source(op, 0), 1) else float_type(op)
            layers.append(LayerPrecision(op.get_friendly_name(), op.get_type_name(), weight, activation))
    return layers
