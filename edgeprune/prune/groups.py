"""edgeprune's own records of channel groups: sets of channels that must be removed together.

These records are independent of Torch-Pruning so that importance criteria, the search and the plan
files never touch its objects (only :mod:`edgeprune.prune.graph` imports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    """

    name: str
    width: int
    members: tuple[GroupMember, ...]
    prunable: bool = True
    frozen_reason: str = ""
    module_names: tuple[str, ...] = field(default=())

    def producers(self) -> tuple[GroupMember, ...]:
        """Members whose *output* channels are the group's channels (convs, linears, norms)."""
        return tuple(m for m in self.members if m.dim == "out")
