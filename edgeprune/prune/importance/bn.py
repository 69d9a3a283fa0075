"""Batch-norm scaling-factor importance (Liu et al. 2017, "Learning Efficient Convolutional Networks
through Network Slimming", ICCV).

Network slimming trains with an L1 penalty on the batch-norm scaling factors gamma and then removes the
channels whose |gamma| is small. This criterion implements the ranking half only: a channel's score is
|gamma| of the batch-norm layers that normalise it. In a coupled group (several convolutions feeding one
residual add, each followed by its own batch norm) the |gamma| of all the group's batch-norm members are
summed, like the group-L1 criterion sums filter norms (the "Group-BN" variant of Torch-Pruning).

Deviations from the paper: no sparsity-inducing training is done here (scores are read from the weights
as they are); groups without a batch norm (e.g. a plain linear layer) fall back to the L1 criterion of
their producers, which the paper does not define.

This module also holds the helpers that the activation-based criteria (``taylor``, ``nisp``) use to
decide where a group's channels are read: at the batch-norm outputs if the group has any, else at the
outputs of its convolutions and linear layers.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
from torch import nn

from edgeprune.prune.groups import ChannelGroup, GroupMember
from edgeprune.prune.importance.base import ScoringContext, register_importance
from edgeprune.prune.importance.l1 import L1Importance

log = logging.getLogger(__name__)

_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


def is_batchnorm(module: nn.Module) -> bool:
    """True for BatchNorm1d/2d/3d and SyncBatchNorm."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def batchnorm_members(group: ChannelGroup, modules: dict[str, nn.Module]) -> list[GroupMember]:
    """The group's output members that are batch-norm layers."""
    return [m for m in group.producers() if m.module in modules and is_batchnorm(modules[m.module])]


def scoring_members(group: ChannelGroup, modules: dict[str, nn.Module]) -> list[GroupMember]:
    """Output members whose activations represent the group's channels.

    The batch-norm outputs if the group has any (they are what the next layers consume), otherwise the
    outputs of its convolution and linear producers.
    """
    bns = batchnorm_members(group, modules)
    if bns:
        return bns
    return [m for m in group.producers() if m.module in modules and isinstance(modules[m.module], _WEIGHTED)]


def sum_member_scores(
    group: ChannelGroup, modules: dict[str, nn.Module], per_module: dict[str, np.ndarray], criterion: str
) -> np.ndarray:
    """Sum per-module channel scores over the group's :func:`scoring_members` (at each member's indices)."""
    scores = np.zeros(group.width, dtype=np.float64)
    members = scoring_members(group, modules)
    if not members:
        log.debug("group %s has no batch-norm, convolution or linear output; %s scores are 0", group.name, criterion)
    for member in members:
        module_scores = per_module.get(member.module)
        if module_scores is None:
            log.debug("%s: no recorded output for %s (not called in the forward pass); it adds 0",
                      criterion, member.module)
            continue
        scores += module_scores[list(member.indices)]
    return scores


def scored_module_types() -> tuple[type, ...]:
    """Module types whose outputs the activation-based criteria record."""
    return (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)


@register_importance
class BatchNormImportance:
    """|gamma| of the group's batch-norm members, summed over them; L1 of producers when there is none."""

    name: ClassVar[str] = "bn"

    def prepare(self, ctx: ScoringContext) -> None:
        """The batch-norm criterion needs no data."""

    def score(self, group: ChannelGroup, ctx: ScoringContext) -> np.ndarray:
        """Per-channel sum of |gamma| over the group's batch norms (affine ones)."""
        modules = dict(ctx.model.named_modules())
        members = [m for m in batchnorm_members(group, modules) if modules[m.module].weight is not None]
        if not members:
            log.debug("group %s has no affine batch norm; bn importance falls back to l1", group.name)
            return L1Importance().score(group, ctx)
        scores = np.zeros(group.width, dtype=np.float64)
        for member in members:
            gamma = modules[member.module].weight.detach().abs().double().cpu().numpy()
            scores += gamma[list(member.indices)]
        return scores
