"""Depth pruning: which residual blocks are removable, what removing each costs, and plans that remove them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from edgeprune.errors import InputError
from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.models.demo import DemoNet
from edgeprune.prune.blocks import (
    find_removable_blocks,
    greedy_removal_order,
    removal_distortion,
    removal_order,
    remove_blocks,
)
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm
from edgeprune.prune.plan import SlimPlan, load_slim_model, module_shapes


class _ProjectedResidual(nn.Module):
    """A residual add whose shortcut is a convolution: not removable (the shortcut is not the identity)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.proj = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.proj(x)


class _Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class _InvertedResidual(nn.Module):
    """MobileNetV2's form: ``x + f(x)`` with the input on the left."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(4, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


def test_cifar_resnet_blocks_with_identity_shortcuts_are_found_and_downsampling_ones_are_not() -> None:
    model = CifarResNet(20).eval()
    blocks = find_removable_blocks(model, torch.randn(1, 3, 32, 32))
    # stage 1: all three; stages 2 and 3: not block 0 (stride 2, zero-padded shortcut changes the shape)
    assert blocks == ["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]


def test_torchvision_models_and_plain_layers() -> None:
    resnet = find_removable_blocks(torchvision.models.resnet18().eval(), torch.randn(1, 3, 64, 64))
    assert resnet == ["layer1.0", "layer1.1", "layer2.1", "layer3.1", "layer4.1"]
    mobilenet = find_removable_blocks(torchvision.models.mobilenet_v2().eval(), torch.randn(1, 3, 64, 64))
    assert mobilenet == ["features.3", "features.5", "features.6", "features.8", "features.9", "features.10",
                         "features.12", "features.13", "features.15", "features.16"]
    model = nn.Sequential(_Plain(), _ProjectedResidual(), _InvertedResidual()).eval()
    assert find_removable_blocks(model, torch.randn(1, 4, 8, 8)) == ["2"]
    assert find_removable_blocks(DemoNet().eval(), torch.randn(1, 1, 32, 32)) == ["stage1"]


def test_frozen_modules_keep_their_blocks() -> None:
    model = CifarResNet(20).eval()
    blocks = find_removable_blocks(model, torch.randn(1, 3, 32, 32), frozen_modules=["layer2.1.conv1", "layer3"])
    assert blocks == ["layer1.0", "layer1.1", "layer1.2", "layer2.2"]


def test_distortion_ranks_a_block_with_a_silenced_branch_first_and_leaves_the_model_unchanged() -> None:
    torch.manual_seed(0)
    model = CifarResNet(20).eval()
    with torch.no_grad():
        model.layer2.get_submodule("2").bn2.weight.zero_()  # this block's residual branch outputs zeros ...
        model.layer2.get_submodule("2").bn2.bias.zero_()  # ... so removing it changes nothing
    x = torch.randn(32, 3, 32, 32)
    before = model(x)
    blocks = find_removable_blocks(model, x[:1])
    distortion = removal_distortion(model, blocks, x)
    assert distortion["layer2.2"] == pytest.approx(0.0, abs=1e-6)
    assert all(distortion[b] > 1e-4 for b in blocks if b != "layer2.2")
    assert removal_order(distortion)[0] == "layer2.2"
    assert torch.equal(model(x), before)
    assert isinstance(model.layer2.get_submodule("2"), nn.Module) and not isinstance(model.layer2[2], nn.Identity)


def test_remove_blocks_copies() -> None:
    model = CifarResNet(20).eval()
    slim = remove_blocks(model, ["layer1.1", "layer3.2"])
    assert isinstance(slim.layer1[1], nn.Identity) and isinstance(slim.layer3[2], nn.Identity)
    assert not isinstance(model.layer1[1], nn.Identity)
    assert slim(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def _write_plan(out: Path, slim: nn.Module, removed: list[str]) -> None:
    plan = SlimPlan("cifar-resnet20", {}, [1, 3, 32, 32], None, [], module_shapes(slim), {}, removed)
    out.mkdir()
    (out / "plan.json").write_text(json.dumps(plan.to_dict()))
    save_file({k: v.contiguous() for k, v in slim.state_dict().items()}, str(out / "model.safetensors"))


def test_a_plan_with_removed_blocks_rebuilds_the_same_model(tmp_path: Path) -> None:
    torch.manual_seed(1)
    slim = remove_blocks(CifarResNet(20).eval(), ["layer1.0", "layer2.2"])
    _write_plan(tmp_path / "out", slim, ["layer1.0", "layer2.2"])
    rebuilt = load_slim_model(tmp_path / "out")
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(rebuilt(x), slim(x))
    assert isinstance(rebuilt.layer1[0], nn.Identity)


def test_a_plan_naming_an_unknown_block_is_refused(tmp_path: Path) -> None:
    slim = remove_blocks(CifarResNet(20).eval(), ["layer1.0"])
    _write_plan(tmp_path / "out", slim, ["layer9.0"])
    with pytest.raises(InputError, match="removed block 'layer9.0' not found"):
        load_slim_model(tmp_path / "out")


def test_channel_only_plans_keep_their_form() -> None:
    plan = SlimPlan("cifar-resnet20", {}, [1, 3, 32, 32], None, [], {}, {})
    assert "removed_blocks" not in plan.to_dict()
    assert SlimPlan.from_dict(plan.to_dict()).removed_blocks == []


def test_greedy_order_accounts_for_blocks_already_removed() -> None:
    torch.manual_seed(0)
    model = CifarResNet(20).eval()
    with torch.no_grad():
        for name in ("layer1.1", "layer3.2"):  # two blocks whose residual branches output zeros
            model.get_submodule(name).bn2.weight.zero_()
            model.get_submodule(name).bn2.bias.zero_()
    x = torch.randn(32, 3, 32, 32)
    before = model(x)
    blocks = find_removable_blocks(model, x[:1])
    order, distortion = greedy_removal_order(model, blocks, x, 3)
    assert sorted(order[:2]) == ["layer1.1", "layer3.2"] and len(order) == 3
    assert distortion[order[0]] == pytest.approx(0.0, abs=1e-6) and distortion[order[1]] == pytest.approx(0.0, abs=1e-6)
    assert distortion[order[2]] > 1e-4
    assert torch.equal(model(x), before)  # scored on a copy


def test_greedy_order_scores_candidates_after_batch_norm_reestimation() -> None:
    torch.manual_seed(0)
    model = CifarResNet(20).eval()
    x, recal = torch.randn(16, 3, 32, 32), torch.randn(48, 3, 32, 32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    blocks = find_removable_blocks(model, x[:1])
    order, distortion = greedy_removal_order(model, blocks, x, 1, recalibration=recal)

    with torch.no_grad():
        reference = torch.softmax(model(x), 1)
    expected = {}
    for name in blocks:  # each candidate built and re-estimated by hand
        candidate = remove_blocks(model, [name])
        recalibrate_batchnorm(candidate, recal)
        with torch.no_grad():
            log_p = torch.log_softmax(candidate(x), 1)
        expected[name] = float(torch.nn.functional.kl_div(log_p, reference, reduction="batchmean"))
    assert order == [min(expected, key=expected.__getitem__)]
    assert distortion[order[0]] == pytest.approx(expected[order[0]], rel=1e-4)
    stale_kl = removal_distortion(model, [order[0]], x)[order[0]]
    assert abs(stale_kl - expected[order[0]]) > 1e-3  # re-estimation changed the score: the option is not a no-op
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # the caller's model is untouched
