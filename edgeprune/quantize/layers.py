"""The precision each compute layer of an exported artifact runs at, read from the file itself.

Whoever quantized the file (edgeprune or another tool), its compute layers (convolutions, matrix products) are
listed with the precision of their weights and of their input activations:

* ONNX: a weight or activation that reaches the layer through ``DequantizeLinear`` is integer (QDQ); ``QLinear*``
  and ``*Integer`` ops are integer throughout;
* OpenVINO IR: an input that passes through ``FakeQuantize``, or a weight stored as an 8-bit constant, is integer;
* TFLite: the dtype of the layer's input and weight tensors.

A layer is ``int8`` when both are integer, ``int8 weights`` when only its weights are, else the float type (a
layer left in float by mixed precision may still read an input dequantized from int8: it computes in float).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeprune.backends.onnx_labels import COMPUTE_OPS, onnx_module_labels

#: ONNX ops that compute (what a layer list names); QLinear/Integer ops are integer by construction
ONNX_COMPUTE = COMPUTE_OPS
ONNX_INTEGER = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})
OPENVINO_COMPUTE = frozenset({"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"})
TFLITE_COMPUTE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"})
#: how far up the graph an input is followed to find its quantization (Convert, Reshape, Subtract ... between)
_SEARCH_DEPTH = 4


@dataclass(frozen=True)
class LayerPrecision:
    """One compute layer of an artifact and the precision it runs at."""

    name: str
    op_type: str
    weights: str
    activations: str

    @property
    def precision(self) -> str:
        """``int8``, ``int8 weights`` (float activations) or the float type."""
        if self.weights == "int8" and self.activations == "int8":
            return "int8"
        if self.weights == "int8":
            return "int8 weights"
        # float weights: the layer computes in float, even on an input dequantized from int8 (mixed precision)
        return self.activations if self.activations != "int8" else self.weights

    def to_dict(self) -> dict[str, Any]:
        """For report.json."""
        return {**asdict(self), "precision": self.precision}


def layer_precisions(path: Path, fmt: str) -> list[LayerPrecision]:
    """The compute layers of the artifact at ``path`` (format ``onnx``, ``openvino`` or ``tflite``), in graph order."""
    if fmt == "onnx":
        return _onnx_layers(Path(path))
    if fmt == "openvino":
        return _openvino_layers(Path(path))
    if fmt == "tflite":
        return _tflite_layers(Path(path))
    raise ValueError(f"no layer reader for format {fmt}")


def summarise(layers: list[LayerPrecision]) -> dict[str, int]:
    """How many layers run at each precision, e.g. ``{"int8": 55, "fp32": 2}``."""
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer.precision] = counts.get(layer.precision, 0) + 1
    return counts


def _onnx_layers(path: Path) -> list[LayerPrecision]:
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


def _openvino_layers(path: Path) -> list[LayerPrecision]:
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


def _tflite_layers(path: Path) -> list[LayerPrecision]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}

    def precision(index: int) -> str:
        name = getattr(dtypes.get(index), "__name__", str(dtypes.get(index)))
        return {"int8": "int8", "uint8": "int8", "float32": "fp32", "float16": "fp16"}.get(name, name)

    layers = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the interpreter's only op listing
        if op["op_name"] in TFLITE_COMPUTE and len(op["inputs"]) > 1:
            layers.append(LayerPrecision(f"{op['op_name'].lower()}_{op['index']}", op["op_name"],
                                         precision(op["inputs"][1]), precision(op["inputs"][0])))
    return layers
