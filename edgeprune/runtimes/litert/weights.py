"""Each compute op's stored weight in a TFLite file, with its zero points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.runtimes.weights import broadcast_zero_point

_TFLITE_COMPUTE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"})


def tflite_weights(path: Path) -> list[tuple[np.ndarray, Any]]:
    """Each compute op's weight tensor (input 1; input 1 of TRANSPOSE_CONV is its output shape, so input 1 is
    skipped there for the constant among its inputs), with its zero points."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    out: list[tuple[np.ndarray, Any]] = []
    seen: set[int] = set()
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the interpreter's only op listing
        if op["op_name"] not in _TFLITE_COMPUTE:
            continue
        for index in op["inputs"][1:]:
            detail = details.get(int(index))
            if detail is None or int(index) in seen or len(detail["shape"]) < 2:
                continue
            try:
                values = interpreter.get_tensor(int(index))
            except ValueError:  # not a constant
                continue
            seen.add(int(index))
            q = detail.get("quantization_parameters") or {}
            zp = np.asarray(q.get("zero_points", []))
            axis = int(q.get("quantized_dimension", 0))
            zero_point = broadcast_zero_point(values, zp, axis) if zp.size else 0
            out.append((values, zero_point))
            break
    return out
