"""Channels-last (NHWC) input for deployment: a wrapper that takes NHWC and hands NCHW to the model.

Camera pipelines and TFLite deployments usually hold images as (N, H, W, C). Wrapping the model with a
permute before conversion gives an artifact that takes NHWC directly; for LiteRT the permute cancels the
transpose the converter inserts for an NCHW model, so the NHWC artifact is no slower.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class NhwcInput(nn.Module):
    """``model`` behind an NHWC → NCHW permute.

    >>> wrapped = NhwcInput(nn.Conv2d(3, 4, 1))
    >>> wrapped(torch.zeros(1, 8, 8, 3)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the wrapped model on ``x`` (N, H, W, C)."""
        return self.model(x.permute(0, 3, 1, 2))


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N, H, W, C), contiguous."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) → (N, C, H, W), contiguous."""
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
