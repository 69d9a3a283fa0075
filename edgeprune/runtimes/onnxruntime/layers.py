"""The precision of each compute layer of an ONNX file: a weight or activation that reaches the layer through
``DequantizeLinear`` is integer (QDQ); ``QLinear*`` and ``*Integer`` ops are integer throughout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeprune.runtimes.base import LayerPrecision
from edgeprune.runtimes.onnx_labels import COMPUTE_OPS, onnx_module_labels

#: ONNX ops that compute (what a layer list names); QLinear/Integer ops are integer by construction
ONNX_COMPUTE = COMPUTE_OPS
ONNX_INTEGER = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})
#: how far up the graph an input is followed to find its quantization (Transpose, Reshape ... between)
_SEARCH_DEPTH = 4


def onnx_layers(path: Path) -> list[LayerPrecision]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    initializers = {init.name for init in graph.initializer}
    labels = onnx_module_labels(path)  # module paths where the exporter recorded them

    def name(node: Any) -> str:
        own = node.name or node.output[0]
        return labels.get(own, own)

    def quantized(tensor: str, depth: int = _SEARCH_DEPTH) -> bool:
        node = producer.get(tensor)
        if node is None or depth == 0:
            return False
        if node.op_type == "DequantizeLinear":
            return True
        return node.op_type in ("Transpose", "Reshape", "Identity", "Cast") and quantized(node.input[0], depth - 1)

    layers = []
    for node in graph.node:
        if node.op_type in ONNX_INTEGER:
            layers.append(LayerPrecision(name(node), node.op_type, "int8", "int8"))
        elif node.op_type in ONNX_COMPUTE and len(node.input) > 1:
            weight = "int8" if quantized(node.input[1]) else "fp32"
            activation = "int8" if quantized(node.input[0]) else "fp32"
            if node.input[1] not in initializers and weight == "fp32" and node.input[0] in initializers:
                weight, activation = activation, weight  # MatMul(W, x): the constant comes first
            layers.append(LayerPrecision(name(node), node.op_type, weight, activation))
    return layers
