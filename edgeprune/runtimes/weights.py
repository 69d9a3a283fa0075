"""What the runtimes' weight readers share: a zero point shaped to broadcast against its weight tensor."""

from __future__ import annotations

import numpy as np


def broadcast_zero_point(values: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    if zero_point.size <= 1:
        return zero_point.reshape(())
    shape = [1] * values.ndim
    shape[axis] = zero_point.size
    return zero_point.reshape(shape)
