"""Re-estimate batch-norm statistics after pruning.

Removing channels changes the distribution of every downstream activation, so the running mean and
variance stored in batch-norm layers go stale; re-estimating them from a few hundred unlabelled images
recovers much of the accuracy lost before any fine-tuning (the benchmark in docs/benchmarks.md runs every
method with it). Weights are not changed.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeprune.progress import progress_bar


def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> int:
    """Replace every BatchNorm's running statistics with the exact statistics over ``images``.

    Returns the number of batch-norm layers updated. The model is left in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(images) < 2:
        return 0
    saved_momentum = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    device = next((p.device for p in model.parameters()), images.device)  # runs where the model is
    model.train()
    with torch.no_grad(), progress_bar("re-estimating batch-norm statistics", len(images), "images") as advance:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            if len(batch) > 1:
                model(batch.to(device))
            advance(len(batch))
    for m, momentum in zip(norms, saved_momentum):
        m.momentum = momentum
    model.eval()
    return len(norms)
