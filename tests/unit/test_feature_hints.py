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
from edgeprune.train.feature_hints import FeatureHintLoss, hinted_stages, stage_channel_maps


def _teacher() -> nn.Module:
    torch.manual_seed(0)
    return CifarResNet(20).eval()


def _stage_output(model: nn.Module, stage: str, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = model.get_submodule(stage).register_forward_hook(lambda _m, _a, out: seen.append(out))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


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


def _stream_pruned(teacher: nn.Module, example: torch.Tensor) -> tuple[nn.Module, dict[str, list[int]], list]:
    """A slim copy of ``teacher`` with every fourth channel of layer3's own residual-stream channels removed."""
    groups = ModelGraph(teacher, example).prunable_groups()
    stream = next(g for g in groups if g.name == "layer3.0.conv2")  # what layer3 adds to its stream (rest padded)
    keep = {stream.name: [c for c in range(stream.width) if c % 4 != 1]}
    return slim_copy(teacher, example, keep), keep, groups


def test_a_stage_whose_output_channels_were_pruned_is_matched_by_its_kept_channels() -> None:
    teacher = _teacher()
    example = torch.rand(1, 3, 32, 32)
    student, keep, groups = _stream_pruned(teacher, example)
    maps = stage_channel_maps(student, teacher, example, keep, groups)
    assert list(maps) == ["layer1", "layer2", "layer3"] and maps["layer1"] is None and maps["layer2"] is None
    kept = maps["layer3"]
    assert kept is not None and len(kept) == student.layer3[-1].bn2.num_features < 64 and kept == sorted(kept)
    # the map is right when each kept channel of the student's layer3 output is closest to the original's channel
    # it names (the pruned channels barely disturb the others before fine-tuning)
    x = torch.rand(16, 3, 32, 32)
    ours = _stage_output(student, "layer3", x).transpose(0, 1).flatten(1)
    theirs = _stage_output(teacher, "layer3", x).transpose(0, 1).flatten(1)
    nearest = torch.cdist(ours, theirs).argmin(dim=1).tolist()
    assert sum(n == k for n, k in zip(nearest, kept)) >= 0.9 * len(kept)


def test_a_channel_pruned_stage_is_hinted_through_its_kept_channels_or_skipped_without_them() -> None:
    teacher = _teacher()
    example = torch.rand(1, 3, 32, 32)
    student, keep, groups = _stream_pruned(teacher, example)
    assert hinted_stages(student, teacher, example) == ["layer1", "layer2"]  # no groups: layer3 cannot be traced
    loss = FeatureHintLoss(student, teacher, example, temperature=4.0, alpha=0.9, keep=keep, groups=groups)
    assert loss.stages == ["layer1", "layer2", "layer3"] and loss.indexed_stages == ["layer3"]
    x = torch.rand(4, 3, 32, 32)
    logits = student(x)
    assert float(loss(logits, x, None).detach()) > float(DistillationLoss(teacher)(logits, x, None).detach())
    loss.close()
    assert _hooks(student) == 0 and _hooks(teacher) == 0


def test_a_stage_emptied_by_depth_pruning_is_matched_through_the_layer_after_it() -> None:
    teacher = remove_blocks(_teacher(), ["layer1.0", "layer1.1", "layer1.2"])  # layer1 passes the stem through
    example = torch.rand(1, 3, 32, 32)
    groups = ModelGraph(teacher, example).prunable_groups()
    keep = {"conv1": [c for c in range(16) if c % 4 != 1]}  # the stem's channels: layer1's output
    student = slim_copy(teacher, example, keep)
    kept = stage_channel_maps(student, teacher, example, keep, groups)["layer1"]
    assert kept == keep["conv1"]
    x = torch.rand(4, 3, 32, 32)
    # nothing before layer1 lost an input channel: its kept outputs are exactly the original's
    assert torch.allclose(_stage_output(student, "layer1", x), _stage_output(teacher, "layer1", x)[:, kept], atol=1e-5)
