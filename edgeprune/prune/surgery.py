"""Build a physically slimmer copy of a model by removing channels group by group."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from edgeprune.prune.graph import ModelGraph


def slim_copy(
    model: nn.Module,
    example_input: torch.Tensor,
    keep: Mapping[str, Sequence[int]],
    frozen_modules: Sequence[str] = (),
) -> nn.Module:
    """A deep copy of ``model`` in which each group in ``keep`` retains only the listed channels.

    The original is never modified; group names are those of a :class:`ModelGraph` of the original.
    """
    slim = copy.deepcopy(model).eval()
    ModelGraph(slim, example_input, frozen_modules, warn_frozen=False).remove_channels(keep)
    return slim.eval()
