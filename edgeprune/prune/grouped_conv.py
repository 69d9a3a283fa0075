"""Grouped convolutions (ResNeXt, RegNet) pruned in whole groups.

A convolution with ``groups=g`` over ``C`` channels (neither dense nor depthwise) computes each block of
``C/g`` output channels from the matching block of ``C/g`` input channels only. Removing single channels
would leave blocks of different sizes, which no runtime supports; Torch-Pruning's own pruner then writes an
invalid model (ONNX Runtime: "Input channels C is not equal to kernel channels * group"). edgeprune removes
whole blocks instead: block ``j``'s input channels, its output channels and the kernel rows that compute
them go together, and ``groups`` drops by one per block. The channel group feeding the convolution and the
one it produces are therefore one edgeprune group (merged in :mod:`edgeprune.prune.graph`) whose channels go
in runs of the block size (:attr:`~edgeprune.prune.groups.ChannelGroup.unit`).

Only grouped convolutions with as many output channels as input channels are pruned this way (every
ResNeXt and RegNet one is); others stay frozen, with a reason. With :mod:`edgeprune.prune.graph` and
:mod:`edgeprune.prune.tp_mappings`, the only modules that import ``torch_pruning``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch_pruning as tp
from torch import nn

from edgeprune.prune.groups import GroupMember


def channels_per_group(module: nn.Module) -> int:
    """Input channels per group of a grouped convolution (1 for depthwise, 0 for anything else)."""
    if isinstance(module, nn.Conv2d) and module.groups > 1:
        return module.in_channels // module.groups
    return 0


def whole_group_unit(module: nn.Module) -> int:
    """The block size a grouped convolution is pruned in (its channels per group), or 0 when it is not one
    edgeprune prunes in whole groups (dense, depthwise, or with fewer or more outputs than inputs)."""
    k = channels_per_group(module)
    if k > 1 and isinstance(module, nn.Conv2d) and module.out_channels == module.in_channels:
        return k
    return 0

def order_in_runs(convs: Sequence[tuple[str, GroupMember]], channel_sets: list[list[tuple[str, int]]],
                  modules: Mapping[str, nn.Module]) -> tuple[int, str]:
    """Sort a group's channels (``channel_sets``: per channel, its (Torch-Pruning root, position) pairs) so that
    each block of the grouped convolutions it passes through (``convs``: (root, member) pairs) is one run of
    consecutive channels; returns (run length, why the channels cannot be cut in whole runs, or "").

    Every such convolution must see all of the group's channels and split them into the same blocks
    (two convolutions with different group sizes on one stream cannot both lose whole groups).
    """
    if not convs:
        return 1, ""
    unit = whole_group_unit(modules[convs[0][1].module])
    positions = [{r: j for r, j in cs} for cs in channel_sets]

    def block(cs: int, root: str, member: GroupMember) -> int | None:
        j = positions[cs].get(root)
        return member.indices[j] // whole_group_unit(modules[member.module]) \
            if j is not None and j < len(member.indices) else None

    first_root, first = convs[0]
    order = sorted(range(len(channel_sets)), key=lambda cs: (block(cs, first_root, first) is None,
                                                              block(cs, first_root, first) or 0, cs))
    channel_sets[:] = [channel_sets[i] for i in order]
    positions = [positions[i] for i in order]
    for root, member in convs:
        labels = [block(cs, root, member) for cs in range(len(channel_sets))]
        runs = [labels[i:i + unit] for i in range(0, len(labels), unit)]
        if None in labels or len(labels) % unit or any(len(set(run)) != 1 for run in runs) \
                or len({run[0] for run in runs}) != len(runs):
            conv = modules[member.module]
            return 1, (f"grouped convolution {member.module} ({conv.groups} groups of {channels_per_group(conv)} "
                       "channels) shares these channels with layers that split them differently: edgeprune "
                       "removes a grouped convolution's channels only in whole groups")
    return unit, ""


class WholeGroupConvPruner(tp.pruner.function.ConvPruner):
    """Torch-Pruning's convolution pruner, except that a grouped convolution loses its input channels in
    whole groups: ``groups`` and ``in_channels`` shrink and the kernel keeps its per-group depth (the kernel
    rows of the removed groups go with their output channels, pruned as the other side of the same group)."""

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        unit = channels_per_group(layer)  # still the original block size, whichever side goes first
        if unit <= 1:
            return super().prune_in_channels(layer, idxs)
        removed = sorted(set(int(i) for i in idxs))
        blocks = {i // unit for i in removed}
        if len(removed) != unit * len(blocks):
            raise ValueError(f"a grouped convolution ({layer.groups} groups of {unit} channels) can only lose "
                             f"whole groups, not {len(removed)} channels of {len(blocks)} groups")
        layer.in_channels -= len(removed)
        layer.groups -= len(blocks)
        return layer


def install_whole_group_pruner(dg: tp.DependencyGraph) -> None:
    """Make ``dg`` (before it is built) prune convolutions with :class:`WholeGroupConvPruner`.

    Torch-Pruning keeps one pruner per op type in each graph (``REGISTERED_PRUNERS``) and caches their
    pruning functions, which classify each dependency as an input or output side; both are replaced.
    """
    pruner = WholeGroupConvPruner()
    dg.REGISTERED_PRUNERS[tp.ops.OPTYPE.CONV] = pruner
    pruners = [p for p in [*dg.REGISTERED_PRUNERS.values(), *dg.CUSTOMIZED_PRUNERS.values()] if p is not None]
    dg._in_channel_pruning_fn = {p.prune_in_channels for p in pruners}
    dg._out_channel_pruning_fn = {p.prune_out_channels for p in pruners}
