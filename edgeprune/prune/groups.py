"""edgeprune's own records of channel groups: sets of channels that must be removed together.

These records are independent of Torch-Pruning so that importance criteria, the search and the plan
files never touch its objects (only :mod:`edgeprune.prune.graph` imports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class GroupMember:
    """One tensor dimension that a group's channels live in.

    Attributes:
        module: qualified module name (``"layer1.0.conv1"``).
        kind: module class name (``"Conv2d"``, ``"BatchNorm2d"``, ``"Linear"``).
        dim: ``"out"`` (output channels / features) or ``"in"`` (input channels / features).
        indices: for each channel of the group, its index in this module's dimension.
    """

    module: str
    kind: str
    dim: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class ChannelGroup:
    """Channels coupled across layers (a conv's outputs, its BN, its consumers' inputs, residual adds ...).

    Attributes:
        name: name of the group's root module (the first producer), used as the group's key.
        width: number of channels in the group.
        members: every module dimension the channels live in.
        prunable: False when the group is frozen; ``frozen_reason`` then says why.
        unit: channels go in whole runs of this many: channel ``c`` belongs to run ``c // unit`` (the
            groups of a grouped convolution, which are removed whole; 1 for every other group).
    """

    name: str
    width: int
    members: tuple[GroupMember, ...]
    prunable: bool = True
    frozen_reason: str = ""
    module_names: tuple[str, ...] = field(default=())
    unit: int = 1

    def step(self, alignment: int) -> int:
        """The granularity of this group's widths: a multiple of both ``alignment`` and :attr:`unit`."""
        return math.lcm(max(1, alignment), max(1, self.unit))

    def min_width(self, alignment: int) -> int:
        """The smallest width the group may be pruned to (one step, or the whole group when narrower)."""
        return min(self.width, self.step(alignment))

    def unit_scores(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` with every channel given its run's mean, so that ranking channels ranks whole runs (a
        stable sort keeps each run's channels together); unchanged when :attr:`unit` is 1."""
        if self.unit <= 1:
            return scores
        runs = np.asarray(scores, dtype=np.float64).reshape(-1, self.unit)
        return np.repeat(runs.mean(axis=1), self.unit)

    def producers(self) -> tuple[GroupMember, ...]:
        """Members whose *output* channels are the group's channels (convs, linears, norms)."""
        return tuple(m for m in self.members if m.dim == "out")
