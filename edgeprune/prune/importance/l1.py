"""L1-magnitude importance (Li et al. 2017, "Pruning Filters for Efficient ConvNets").

A channel's score is the sum of absolute weights of the filters that produce it. In a coupled group
(several convolutions feeding one residual add) the producers' filter norms are summed, so one score
ranks the channel across the whole group.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import nn

from edgeprune.prune.groups import ChannelGroup
from edgeprune.prune.importance.base import ScoringContext, register_importance


@register_importance
class L1Importance:
    """Sum of |W| over each output filter of the group's convolution and linear producers."""

    name: ClassVar[str] = "l1"

    def prepare(self, ctx: ScoringContext) -> None:
        """L1 needs no data."""

    def score(self, group: ChannelGroup, ctx: ScoringContext) -> np.ndarray:
        """Per-channel L1 norm of producing filters, summed over producers."""
        modules = dict(ctx.model.named_modules())
        scores = np.zeros(group.width, dtype=np.float64)
        for member in group.producers():
            module = modules[member.module]
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                continue
            weight = module.weight.detach().abs()
            per_filter = weight.reshape(weight.shape[0], -1).sum(dim=1).double().cpu().numpy()
            scores += per_filter[list(member.indices)]
        return scores
