"""Feature hints (edgeprune.train.feature_hints): which stages get a hint, what the hint adds, and cleanup."""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.prune.blocks import remove_blocks
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy
from edgeprune.train.distill import DistillationLoss
from edgeprune.train.feature_hints import FeatureHintLoss, hinted_stages


def _teacher() -> nn.Module:
    torch.manual_seed(0)
    return CifarResNet(20).eval()


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_depth_pruning_keeps_every_stage_hinted_and_the_hint_is_positive() -> None:
    teacher = _teacher()
    x = torch.rand(4, 3, 32, 32)
    student = remove_blocks(teacher, ["layer2.1"]).train()
    loss = FeatureHintLoss(student, teacher, x[:1], temperature=4.0, alpha=0.9)
    assert loss.stages == ["layer1", "layer2", "layer3"]
    assert student.training  # choosing the stages does not change the student's mode
    logits = student(x)
    with_hints = float(loss(logits, x, None).detach())
    plain = float(DistillationLoss(teacher)(logits, x, None).detach())
    assert with_hints > plain + 1e-4  # layer2 and layer3 differ once a block is gone; layer1 does not
    loss.close()
    assert _hooks(student) == 0 and _hooks(teacher) == 0


def test_an_identical_student_gets_no_hint() -> None:
    teacher = _teacher()
    x = torch.rand(4, 3, 32, 32)
    student = copy.deepcopy(teacher)
    loss = FeatureHintLoss(student, teacher, x[:1], temperature=4.0, alpha=0.9)
    logits = student(x)
    assert abs(float(loss(logits, x, None).detach()) - float(DistillationLoss(teacher)(logits, x, None).detach())) \
        < 1e-6
    loss.close()


def test_a_stage_whose_output_channels_were_pruned_is_skipped() -> None:
    teacher = _teacher()
    example = torch.rand(1, 3, 32, 32)
    groups = {g.name: g for g in ModelGraph(teacher, example).prunable_groups()}
    stream = groups["layer3.0.conv2"]  # the channels layer3 adds to its residual stream (the rest come padded)
    keep = {stream.name: list(range(stream.width // 2))}
    student = slim_copy(teacher, example, keep)
    stages = hinted_stages(student, teacher, example)
    assert "layer3" not in stages and stages == ["layer1", "layer2"]
