"""Feature hints: distillation that also matches the original's intermediate feature maps (FitNets, Romero et al.
2015), for the short fine-tunes of recovery.

The hints sit at the outputs of the model's *stages*: its top-level children that contain layers of their own
(``layer1..4`` of ResNets, ``features`` of MobileNets) and return a 4-D feature map with the same shape in the
pruned student as in the original, up to its channels. Depth pruning keeps every stage's output shape, so each
stage gets a hint as it is. Channel pruning of a stage's output (a residual stream) leaves the student a subset of
the original's channels: given the run's channel groups and kept indices, the hint compares the student's map with
the original's kept channels, in order (:func:`stage_channel_maps`). A stage whose kept channels cannot be traced
(no channel groups given, or no layer of the groups producing or consuming its output) is skipped and logged. The hint
of a stage is the mean squared error between the two feature maps divided by the mean square of the original's
(scale-free across stages); the loss adds ``weight`` times the mean over the stages to
:class:`~edgeprune.train.distill.DistillationLoss`.

Measured on cifar-resnet56 with 15 of 25 blocks removed (``tools/bench/recipe_probes.py``, results in
``docs/figures/recipe-probes/``): four distillation epochs over the 50,000 JPEG-decoded training images reach
84.37% top-1 on the 10,000 JPEG test images with these hints at weight 1 and 84.31% with logits alone, no
measurable gain (on the 1,017-image lossless subset 92.53% against 91.05%, a gap inside two of its standard
errors of ±0.8 points). On a channel-pruned resnet56 (one fixed ``lasso`` plan, ``tools/bench/hint_ablation.py``)
the same recipe ended at 88.99% with the hints and 89.77% without: within noise, no gain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.prune.graph import channel_dim_size
from edgeprune.prune.groups import ChannelGroup
from edgeprune.train.distill import DistillationLoss

log = logging.getLogger(__name__)

#: weight of the mean stage hint next to the distillation term (the value measured in the recipe probes)
FEATURE_HINT_WEIGHT = 1.0


def _stage_outputs(model: nn.Module, example: torch.Tensor) -> dict[str, torch.Size]:
    """Output shapes of the model's stages (top-level children with children of their own) on ``example``;
    the model is run in eval mode and left in the mode it was in."""
    shapes: dict[str, torch.Size] = {}
    handles = []
    was_training = model.training
    for name, child in model.named_children():
        if any(True for _ in child.children()):
            handles.append(child.register_forward_hook(
                lambda _m, _a, out, name=name: shapes.__setitem__(name, out.shape)
                if isinstance(out, torch.Tensor) and out.dim() == 4 else None))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return shapes


def _kept_output_channels(stage: str, width: int, teacher: nn.Module, keep: Mapping[str, Sequence[int]],
                          groups: Sequence[ChannelGroup]) -> list[int] | None:
    """The original's indices of the channels a channel-pruned ``stage`` still outputs, or None if untraceable.

    The stage's output channels are read off the layer that produces them: the stage's last layer that is
    ``width`` wide and whose channels leave the stage (one of its groups is consumed outside the stage), such as
    the residual stream's last batch norm in a ResNet stage or the last convolution of a MobileNet's
    ``features``. A stage with no such layer left (depth pruning emptied it) is read off the first layer after
    it that takes ``width`` channels in."""
    inside = f"{stage}."
    leaving = [g for g in groups if any(m.dim == "in" and not m.module.startswith(inside) for m in g.members)]
    leaving_outputs = {m.module for g in leaving for m in g.members if m.dim == "out"}
    inputs = {m.module for g in groups for m in g.members if m.dim == "in"}
    modules = dict(teacher.named_modules())
    order = list(modules)
    later = [n for n in order[order.index(stage) + 1:] if not n.startswith(inside)]
    producers = [n for n in order if n.startswith(inside) and n in leaving_outputs
                 and channel_dim_size(modules[n], "out") == width]
    consumers = [n for n in later if n in inputs and channel_dim_size(modules[n], "in") == width]
    if producers:
        layer, dim = producers[-1], "out"
    elif consumers:
        layer, dim = consumers[0], "in"
    else:
        return None
    removed: set[int] = set()
    for group in groups:
        if group.name not in keep:
            continue
        kept = {int(i) for i in keep[group.name]}
        for member in group.members:
            if member.module == layer and member.dim == dim:
                removed.update(idx for pos, idx in enumerate(member.indices) if pos not in kept)
    return [i for i in range(width) if i not in removed]


def stage_channel_maps(student: nn.Module, teacher: nn.Module, example: torch.Tensor,
                       keep: Mapping[str, Sequence[int]] | None = None,
                       groups: Sequence[ChannelGroup] | None = None) -> dict[str, list[int] | None]:
    """The hinted stages, in model order: None for a stage whose output shape is unchanged, else the original's
    indices of the channels the student kept (needs the ``keep`` and ``groups`` the student was sliced with)."""
    ours, theirs = _stage_outputs(student, example), _stage_outputs(teacher, example)
    maps: dict[str, list[int] | None] = {}
    skipped: list[str] = []
    for name, shape in ours.items():
        other = theirs.get(name)
        if other is None:
            continue
        if other == shape:
            maps[name] = None
            continue
        kept = None
        if keep and groups and other[0] == shape[0] and other[2:] == shape[2:] and shape[1] < other[1]:
            kept = _kept_output_channels(name, int(other[1]), teacher, keep, groups)
        if kept is not None and len(kept) == shape[1]:
            maps[name] = kept
        else:
            skipped.append(name)
    if skipped:
        log.info("feature hints: stage(s) %s skipped (their kept channels could not be traced)", ", ".join(skipped))
    return maps


def hinted_stages(student: nn.Module, teacher: nn.Module, example: torch.Tensor,
                  keep: Mapping[str, Sequence[int]] | None = None,
                  groups: Sequence[ChannelGroup] | None = None) -> list[str]:
    """Stages that get a hint (in model order): see :func:`stage_channel_maps`."""
    return list(stage_channel_maps(student, teacher, example, keep, groups))


class FeatureHintLoss:
    """Distillation plus normalised stage-output hints; call :meth:`close` to remove the forward hooks."""

    def __init__(self, student: nn.Module, teacher: nn.Module, example: torch.Tensor, temperature: float,
                 alpha: float, weight: float = FEATURE_HINT_WEIGHT, keep: Mapping[str, Sequence[int]] | None = None,
                 groups: Sequence[ChannelGroup] | None = None) -> None:
        self.distill = DistillationLoss(teacher, temperature, alpha)
        self.weight = weight
        maps = stage_channel_maps(student, teacher, example, keep, groups)
        self.stages = list(maps)
        #: stages matched through the kept channels (their output was channel-pruned)
        self.indexed_stages = [name for name, kept in maps.items() if kept is not None]
        self._channels = {name: torch.tensor(kept, dtype=torch.long) for name, kept in maps.items() if kept is not None}
        self._outputs: dict[tuple[str, str], torch.Tensor] = {}
        self._handles: list[Any] = []
        for side, model in (("student", student), ("teacher", teacher)):
            for name in self.stages:
                self._handles.append(model.get_submodule(name).register_forward_hook(
                    lambda _m, _a, out, key=(side, name): self._outputs.__setitem__(key, out)))

    def __call__(self, logits: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        loss = self.distill(logits, inputs, labels)  # runs the teacher: its hooks record its stage outputs
        if not self.stages:
            return loss
        hint = sum(self._stage_hint(n) for n in self.stages)
        return loss + self.weight * hint / len(self.stages)

    def _stage_hint(self, stage: str) -> torch.Tensor:
        ours, theirs = self._outputs[("student", stage)], self._outputs[("teacher", stage)]
        channels = self._channels.get(stage)
        if channels is not None:
            theirs = theirs.index_select(1, channels.to(theirs.device))
        return F.mse_loss(ours, theirs) / theirs.pow(2).mean().clamp_min(1e-12)

    def close(self) -> None:
        """Remove the hooks from both models (the student ships without them)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._outputs.clear()
