"""The precision of each compute op of a TFLite file: the dtypes of its input and weight tensors."""

from __future__ import annotations

from pathlib import Path

from edgeprune.runtimes.base import LayerPrecision

TFLITE_COMPUTE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"})


def tflite_layers(path: Path) -> list[LayerPrecision]:
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
