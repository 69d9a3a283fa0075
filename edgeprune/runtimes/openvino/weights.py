"""Each compute op's stored weight constant in an OpenVINO IR, with the zero point a Subtract removes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.runtimes.openvino.layers import OPENVINO_COMPUTE

_OPENVINO_PASS = frozenset({"Convert", "Reshape", "Multiply", "Subtract", "Transpose", "Unsqueeze"})


def openvino_weights(path: Path) -> list[tuple[np.ndarray, Any]]:
    """Each compute op's weight constant (followed up through Convert, Subtract of a zero point, Multiply by a
    scale, Reshape), with the zero point a Subtract on that path removes."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    out: list[tuple[np.ndarray, Any]] = []
    seen: set[str] = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() not in OPENVINO_COMPUTE:
            continue
        node = op.input_value(1).get_node()
        zero_point: Any = 0
        for _ in range(6):
            kind = node.get_type_name()
            if kind == "Constant" or kind not in _OPENVINO_PASS:
                break
            if kind == "Subtract":
                other = node.input_value(1).get_node()
                if other.get_type_name() == "Convert":
                    other = other.input_value(0).get_node()
                if other.get_type_name() == "Constant":
                    zero_point = other.get_data()
            node = node.input_value(0).get_node()
        if node.get_type_name() != "Constant" or node.get_friendly_name() in seen:
            continue
        values = node.get_data()
        if values.ndim < 2:
            continue
        seen.add(node.get_friendly_name())
        if isinstance(zero_point, np.ndarray) and zero_point.size > 1 and zero_point.ndim != values.ndim:
            zero_point = zero_point.reshape(zero_point.shape + (1,) * (values.ndim - zero_point.ndim))
        out.append((values, zero_point))
    return out
