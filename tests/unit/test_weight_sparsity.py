"""Magnitude masks for weight pruning: the same choice as torch.nn.utils.prune's, rising monotonically, permanent."""

from __future__ import annotations

import copy

import pytest
import torch
from model_helpers import ConcatNet, conv_stack
from torch import nn
from torch.nn.utils import prune

from edgeprune.prune.sparsity import (
    WeightMasks,
    layer_sparsity,
    magnitude_masks,
    prunable_layers,
    sparsify,
    total_sparsity,
)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return ConcatNet().eval()


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("amount", [0.3, 0.8, 0.95])
def test_global_masks_match_global_unstructured(seed: int, amount: float) -> None:
    ours, theirs = _model(seed), _model(seed)
    WeightMasks(ours, "global").apply(amount)
    prune.global_unstructured([(m, "weight") for _, m in prunable_layers(theirs)],
                              pruning_method=prune.L1Unstructured, amount=amount)
    layers = list(zip(prunable_layers(ours), prunable_layers(theirs), strict=True))
    assert len(layers) == 4  # three convolutions and the linear head
    for (name, a), (_, b) in layers:
        assert torch.equal(a.weight_mask, b.weight_mask), name
    sparsities = [layer.sparsity for layer in layer_sparsity(ours)]
    assert max(sparsities) - min(sparsities) > 0.05  # a global ranking prunes layers unevenly
    assert total_sparsity(layer_sparsity(ours)) == pytest.approx(amount, abs=1e-3)


def test_layer_masks_match_l1_unstructured() -> None:
    ours, theirs = _model(3), _model(3)
    WeightMasks(ours, "layer").apply(0.6)
    for _, m in prunable_layers(theirs):
        prune.l1_unstructured(m, "weight", amount=0.6)
    for (name, a), (_, b) in zip(prunable_layers(ours), prunable_layers(theirs), strict=True):
        assert torch.equal(a.weight_mask, b.weight_mask), name
        assert float((a.weight_mask == 0).float().mean()) == pytest.approx(0.6, abs=0.01)


def test_rising_sparsity_only_adds_zeros_and_counts_all_weights() -> None:
    """Unlike a second global_unstructured call (a share of what is left), 0.5 then 0.8 means 80% of all weights."""
    model = _model(0)
    masks = WeightMasks(model)
    masks.apply(0.5)
    first = {n: m.weight_mask.clone() for n, m in prunable_layers(model)}
    with torch.no_grad():  # training moves the surviving weights, and the pruned weight_orig entries too
        for _, m in prunable_layers(model):
            m.weight_orig.add_(0.01 * torch.randn_like(m.weight_orig))
    masks.apply(0.8)
    for name, m in prunable_layers(model):
        assert bool(((first[name] == 0) <= (m.weight_mask == 0)).all()), name  # pruned stays pruned
    assert total_sparsity(layer_sparsity(model)) == pytest.approx(0.8, abs=1e-3)


def test_masks_hold_during_training_and_survive_a_state_dict_round_trip() -> None:
    model = conv_stack(2, 8)
    masks = WeightMasks(model)
    masks.apply(0.7)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 3, 8, 8)
    for _ in range(3):
        optimiser.zero_grad()
        model(x).square().mean().backward()
        optimiser.step()
    assert total_sparsity(layer_sparsity(model)) == pytest.approx(0.7, abs=1e-3)
    state = copy.deepcopy(model.state_dict())
    assert any(k.endswith("weight_mask") for k in state) and any(k.endswith("weight_orig") for k in state)
    restored = conv_stack(2, 8)
    WeightMasks(restored).apply(0.0)  # masks on, all ones: as the fine-tune installs them before loading a checkpoint
    restored.load_state_dict(state)
    assert torch.equal(model(x), restored(x))
    masks.make_permanent()
    assert not any(k.endswith(("weight_mask", "weight_orig")) for k in model.state_dict())
    assert total_sparsity(layer_sparsity(model)) == pytest.approx(0.7, abs=1e-3)
    assert not prune.is_pruned(model)


def test_sparsify_is_one_shot_and_permanent() -> None:
    model = conv_stack(1, 16)
    before = {n: m.weight.detach().clone() for n, m in prunable_layers(model)}
    sparsify(model, 0.9)
    for name, m in prunable_layers(model):
        kept = m.weight != 0
        assert torch.equal(m.weight[kept], before[name][kept])  # survivors untouched
    assert total_sparsity(layer_sparsity(model)) == pytest.approx(0.9, abs=1e-3)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_a_sparsity_outside_0_1_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_masks([torch.ones(2, 2)], bad)
