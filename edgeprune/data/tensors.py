"""Turn uint8 images into the normalised float tensors a model expects, and draw calibration subsets."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgeprune.data.dataset import ImageDataset
from edgeprune.models.preprocessing import Preprocessing


def to_model_input(images: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """uint8 (N, H, W, C) → float32 (N, C, H', W'): scale to [0, 1], fix channels, resize, normalise."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[1] != prep.channels:
        if prep.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        else:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x * weights).sum(1, keepdim=True)
    if x.shape[2:] != (prep.height, prep.width):
        x = F.interpolate(x, size=(prep.height, prep.width), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(prep.mean).view(1, -1, 1, 1)
    std = torch.tensor(prep.std).view(1, -1, 1, 1)
    return _standard_strides((x - mean) / std)


def _standard_strides(x: torch.Tensor) -> torch.Tensor:
    """``x`` with plain NCHW strides.

    ``Tensor.contiguous()`` is not enough for one-channel images: a permuted (N, 1, H, W) tensor counts as
    contiguous yet keeps channels-last strides, which send every convolution of a model down oneDNN's
    channels-last path. There, on torch 2.14 CPU with two threads, the backward pass of a thin pruned model
    corrupted the heap (``double free or corruption``) on a three-image batch; plain strides avoid that path.
    """
    x = x.contiguous()
    expected = torch.empty(x.shape, device="meta").stride()
    return x if x.stride() == expected else x.clone(memory_format=torch.contiguous_format)


def calibration_indices(n_total: int, n_calib: int, seed: int) -> np.ndarray:
    """Seeded random subset of ``min(n_calib, n_total)`` indices, sorted."""
    rng = np.random.default_rng(seed)
    n = min(n_calib, n_total)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def calibration_batch(dataset: ImageDataset, prep: Preprocessing, n_calib: int, seed: int) -> torch.Tensor:
    """A seeded calibration batch of at most ``n_calib`` images as model input."""
    return to_model_input(dataset.images[calibration_indices(len(dataset), n_calib, seed)], prep)
