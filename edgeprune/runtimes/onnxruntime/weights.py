"""Each compute layer's stored weight in an ONNX file (QDQ weights with their zero points)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.runtimes.weights import broadcast_zero_point

#: ONNX compute ops and which input holds the weight
_ONNX_WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


def onnx_weights(path: Path) -> list[tuple[np.ndarray, Any]]:
    """Each compute node's weight initializer (through ``DequantizeLinear`` for QDQ), with its zero point."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    out: list[tuple[np.ndarray, Any]] = []
    seen: set[str] = set()
    for node in model.graph.node:
        index = _ONNX_WEIGHT_INPUT.get(node.op_type)
        if index is None or len(node.input) <= index:
            continue
        name = node.input[index]
        producer = producers.get(name)
        zero_point: Any = 0
        if producer is not None and producer.op_type == "DequantizeLinear" and producer.input[0] in inits:
            name = producer.input[0]
            values = numpy_helper.to_array(inits[name])
            axis = next((a.i for a in producer.attribute if a.name == "axis"), 1)
            if len(producer.input) > 2 and producer.input[2] in inits:
                zp = numpy_helper.to_array(inits[producer.input[2]])
                zero_point = broadcast_zero_point(values, zp, axis if axis >= 0 else values.ndim + axis)
        elif name in inits:
            values = numpy_helper.to_array(inits[name])
        else:
            continue
        if name in seen or values.ndim < 2:
            continue
        seen.add(name)
        out.append((values, zero_point))
    return out
