"""edgeprune.prune.importance: the bn (network slimming), taylor and nisp criteria."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.errors import InputError, UnknownNameError
from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.groups import ChannelGroup, GroupMember
from edgeprune.prune.importance import ScoringContext, get_importance, importance_names
from edgeprune.prune.importance.taylor import TaylorImportance

NEW = ("bn", "nisp", "taylor")


def group_with(graph: ModelGraph, module: str) -> ChannelGroup:
    """The group whose output members include ``module``."""
    (group,) = [g for g in graph.groups if any(m.module == module and m.dim == "out" for m in g.members)]
    return group


# -- registry ---------------------------------------------------------------------------------------
def test_new_criteria_are_registered() -> None:
    assert set(NEW) | {"l1"} <= set(importance_names())
    for name in NEW:
        criterion = get_importance(name.upper())
        assert criterion.name == name
    with pytest.raises(UnknownNameError) as info:
        get_importance("slimming")
    assert set(NEW) <= set(info.value.known)
    assert all(name in str(info.value) for name in NEW)


def test_data_driven_criteria_need_calibration(tiny_resnet: nn.Module) -> None:
    for name in ("taylor", "nisp"):
        with pytest.raises(InputError, match="calibration"):
            get_importance(name).prepare(ScoringContext(tiny_resnet))


# -- bn ---------------------------------------------------------------------------------------------
def test_bn_is_abs_gamma_summed_over_batchnorm_members() -> None:
    model = nn.ModuleDict({"conv": nn.Conv2d(1, 3, 1), "bn": nn.BatchNorm2d(3), "bn2": nn.BatchNorm2d(3)})
    with torch.no_grad():
        model["bn"].weight.copy_(torch.tensor([0.5, -2.0, 0.0]))
        model["bn2"].weight.copy_(torch.tensor([1.0, 0.25, 4.0]))
        model["conv"].weight.fill_(100.0)  # conv weights do not count when there is a batch norm
    one = ChannelGroup("conv", 3, (GroupMember("conv", "Conv2d", "out", (0, 1, 2)),
                                   GroupMember("bn", "BatchNorm2d", "out", (0, 1, 2))))
    ctx = ScoringContext(model)
    assert get_importance("bn").score(one, ctx).tolist() == [0.5, 2.0, 0.0]
    two = ChannelGroup("conv", 2, (GroupMember("bn", "BatchNorm2d", "out", (1, 2)),
                                   GroupMember("bn2", "BatchNorm2d", "out", (0, 2))))
    scores = get_importance("bn").score(two, ctx)
    assert scores.dtype == np.float64 and scores.tolist() == [2.0 + 1.0, 0.0 + 4.0]


def test_bn_without_batchnorm_falls_back_to_l1() -> None:
    model = nn.ModuleDict({"fc": nn.Linear(2, 2)})
    with torch.no_grad():
        model["fc"].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
    group = ChannelGroup("fc", 2, (GroupMember("fc", "Linear", "out", (0, 1)),))
    ctx = ScoringContext(model)
    assert get_importance("bn").score(group, ctx).tolist() == get_importance("l1").score(group, ctx).tolist()
    assert get_importance("bn").score(group, ctx).tolist() == [3.0, 0.5]


# -- taylor -----------------------------------------------------------------------------------------
def test_taylor_dead_channel_scores_zero_and_model_is_untouched(tiny_resnet: nn.Module,
                                                                tiny_input: torch.Tensor) -> None:
    graph = ModelGraph(tiny_resnet, tiny_input)
    with torch.no_grad():
        tiny_resnet.block.bn1.weight[3] = 0.0
        tiny_resnet.block.bn1.bias[3] = 0.0
    tiny_resnet.train()
    tiny_resnet.stem[1].eval()  # mixed modes must come back as found
    tiny_resnet.stem[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in tiny_resnet.state_dict().items()}
    flags = {n: p.requires_grad for n, p in tiny_resnet.named_parameters()}
    modes = {n: m.training for n, m in tiny_resnet.named_modules()}

    torch.manual_seed(3)
    ctx = ScoringContext(tiny_resnet, torch.randn(6, 3, 16, 16))
    taylor = get_importance("taylor")
    taylor.prepare(ctx)
    scores = taylor.score(group_with(graph, "block.conv1"), ctx)

    assert scores.shape == (16,) and scores.dtype == np.float64
    assert scores[3] == 0.0
    assert np.all(np.delete(scores, 3) > 0.0)
    after = tiny_resnet.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats included
    assert {n: p.requires_grad for n, p in tiny_resnet.named_parameters()} == flags
    assert all(p.grad is None for p in tiny_resnet.parameters())
    assert {n: m.training for n, m in tiny_resnet.named_modules()} == modes


def test_taylor_is_independent_of_chunking_and_uses_given_labels(tiny_resnet: nn.Module,
                                                                 tiny_input: torch.Tensor,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    graph = ModelGraph(tiny_resnet, tiny_input)
    torch.manual_seed(4)
    calib = torch.randn(5, 3, 16, 16)
    group = group_with(graph, "block.bn2")  # the residual stream: bn2 and the projection's batch norm
    whole = get_importance("taylor").score(group, ScoringContext(tiny_resnet, calib))
    monkeypatch.setattr(TaylorImportance, "chunk_size", 2)
    chunked = get_importance("taylor").score(group, ScoringContext(tiny_resnet, calib))
    assert np.allclose(whole, chunked, rtol=1e-5, atol=1e-9)
    with torch.no_grad():
        predicted = tiny_resnet(calib).argmax(dim=1)
    labelled = get_importance("taylor").score(group, ScoringContext(tiny_resnet, calib, labels=predicted))
    assert np.allclose(whole, labelled, rtol=1e-5, atol=1e-9)
    other = get_importance("taylor").score(group, ScoringContext(tiny_resnet, calib, labels=(predicted + 1) % 4))
    assert not np.allclose(whole, other)


# -- nisp -------------------------------------------------------------------------------------------
def three_layer_mlp() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0], [0.0, -1.0, 1.0], [1.0, 1.0, 1.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 1.0, 0.0, -1.0]))  # biases do not propagate importance
        model[2].weight.copy_(torch.tensor([[1.0, -2.0, 0.0, 1.0], [0.0, 1.0, 3.0, -1.0]]))
        model[2].bias.zero_()
        model[4].weight.copy_(torch.tensor([[2.0, -1.0], [1.0, 3.0]]))
        model[4].bias.zero_()
    return model.eval()


def test_nisp_matches_hand_computed_propagation() -> None:
    model = three_layer_mlp()
    calib = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # Forward by hand. x=(1,1,1): layer0 -> relu(0,4,0,2); layer2 -> relu(-6,2) = (0,2); logits (-2, 6).
    #                  x=(1,0,0): layer0 -> relu(1,3,0,0); layer2 -> relu(-5,3) = (0,3); logits (-3, 9).
    logits = model(calib).detach()
    assert logits.tolist() == [[-2.0, 6.0], [-3.0, 9.0]]
    # s_F = mean |logit| = (2.5, 7.5), normalised to sum 1.
    s_f = [0.25, 0.75]
    # s_2 = |W3|^T s_F:  (2*0.25 + 1*0.75, 1*0.25 + 3*0.75)
    s_2 = [1.25, 2.5]
    # s_1 = |W2|^T s_2:  (1*1.25 + 0*2.5, 2*1.25 + 1*2.5, 0*1.25 + 3*2.5, 1*1.25 + 1*2.5)
    s_1 = [1.25, 5.0, 7.5, 3.75]
    assert np.allclose(np.abs(model[4].weight.detach().numpy()).T @ s_f, s_2)

    graph = ModelGraph(model, calib[:1])
    ctx = ScoringContext(model, calib)
    nisp = get_importance("nisp")
    nisp.prepare(ctx)
    assert nisp.score(group_with(graph, "0"), ctx) == pytest.approx(s_1)
    assert nisp.score(group_with(graph, "2"), ctx) == pytest.approx(s_2)
    assert model(calib).tolist() == logits.tolist()  # the original model is unchanged


class ResidualTiny(nn.Module):
    """stem (1x1 conv) -> relu -> maxpool -> two 1x1 branches a, b added -> relu -> pool -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.a = nn.Conv2d(2, 2, 1, bias=False)
        self.b = nn.Conv2d(2, 2, 1, bias=False)
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.stem.weight.copy_(torch.tensor([1.0, -2.0]).view(2, 1, 1, 1))
            self.a.weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 2.0]]).view(2, 2, 1, 1))
            self.b.weight.copy_(torch.tensor([[3.0, 0.0], [-1.0, 2.0]]).view(2, 2, 1, 1))
            self.head.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(F.relu(self.stem(x)))  # functional relu: linearised too
        out = torch.relu(self.a(h) + self.b(h))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))


def test_nisp_sums_residual_branches() -> None:
    model = ResidualTiny().eval()
    calib = torch.ones(1, 1, 4, 4)
    # Forward by hand: stem -> relu(1, -2) = (1, 0); a(h) = (1, 0), b(h) = (3, -1); relu(4, -1) = (4, 0);
    # logits = (4, -4), so s_F = (0.5, 0.5).
    assert model(calib).tolist() == [[4.0, -4.0]]
    # The stream (outputs of a and b): s = |W_head|^T s_F = (1*0.5 + 1*0.5, 2*0.5 + 1*0.5) = (1, 1.5);
    # the group has two producers, a and b, each seeing s.
    s_stream = [1.0, 1.5]
    # Stem channel c feeds both branches: s_stem[c] = sum_j (|Wa[j,c]| + |Wb[j,c]|) s[j]
    # c=0: (1 + 3)*1 + (0 + 1)*1.5 = 5.5;  c=1: (1 + 0)*1 + (2 + 2)*1.5 = 7.
    # (Spatial sums: the global average pool's 1/4 and the 2x2 pool's 1/4 are undone by summing positions.)
    s_stem = [5.5, 7.0]
    graph = ModelGraph(model, calib)
    ctx = ScoringContext(model, calib)
    nisp = get_importance("nisp")
    stem_scores = nisp.score(group_with(graph, "stem"), ctx)
    assert stem_scores == pytest.approx(s_stem)
    branch_a = 1.0 * 1.0 + 0.0 * 1.5  # channel 0 through a alone
    branch_b = 3.0 * 1.0 + 1.0 * 1.5  # channel 0 through b alone
    assert stem_scores[0] == pytest.approx(branch_a + branch_b)
    assert nisp.score(group_with(graph, "a"), ctx) == pytest.approx([2 * s for s in s_stream])
    # the functional patches are gone again
    assert F.relu(torch.tensor([-1.0])).item() == 0.0 and torch.tensor([-1.0]).relu().item() == 0.0
    assert F.max_pool2d(torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]]), 2).item() == 3.0


class Saturating(nn.Module):
    """fc1 (1 -> 2) -> saturating activation -> fc2 (2 -> 1): channel 0 (=10) saturates unless linearised."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.fc1 = nn.Linear(1, 2, bias=False)
        self.act = nn.Hardtanh(0.0, 5.0)
        self.fc2 = nn.Linear(2, 1, bias=False)
        self.functional = functional
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[10.0], [1.0]]))
            self.fc2.weight.copy_(torch.tensor([[2.0, -3.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(F.relu6(h) if self.functional else self.act(h))


@pytest.mark.parametrize("functional", [True, False], ids=["F.relu6", "nn.Hardtanh"])
def test_nisp_linearises_saturating_activations(functional: bool) -> None:
    model = Saturating(functional).eval()
    ctx = ScoringContext(model, torch.ones(1, 1))
    group = ChannelGroup("fc1", 2, (GroupMember("fc1", "Linear", "out", (0, 1)),))
    # one output: s_F = (1); s_fc1 = |W_fc2|^T s_F = (2, 3), although channel 0 saturates in the real model
    assert get_importance("nisp").score(group, ctx) == pytest.approx([2.0, 3.0])
    assert isinstance(model.act, nn.Hardtanh)  # the copy was linearised, not the model


def test_nisp_uses_batchnorm_factor() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.Conv2d(2, 2, 1, bias=False), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[3].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 2.0]]).view(2, 2, 1, 1))
        model[4].weight.copy_(torch.tensor([-2.0, 0.5]))
        model[4].bias.copy_(torch.tensor([5.0, 5.0]))
        model[4].running_mean.copy_(torch.tensor([7.0, -7.0]))
        model[4].running_var.copy_(torch.tensor([4.0 - 1e-5, 1.0 - 1e-5]))  # sqrt(var + eps) = (2, 1)
        model[8].weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))  # |logits| equal: s_F = (0.5, 0.5)
    model.eval()
    graph = ModelGraph(model, torch.ones(1, 1, 2, 2))
    ctx = ScoringContext(model, torch.ones(1, 1, 2, 2))
    # at the second BN's output: |W_head|^T s_F = (1, 1); at the first BN's output, through the BN factor
    # |gamma|/sigma = (2/2, 0.5/1) = (1, 0.5) and |W| of conv 3: c=0: 1*1 + 3*0.5 = 2.5; c=1: 2*1 + 2*0.5 = 3
    nisp = get_importance("nisp")
    assert nisp.score(group_with(graph, "3"), ctx) == pytest.approx([1.0, 1.0])
    assert nisp.score(group_with(graph, "0"), ctx) == pytest.approx([2.5, 3.0])


# -- every criterion on a real graph ------------------------------------------------------------------
def test_all_criteria_on_cifar_resnet8() -> None:
    torch.manual_seed(0)
    model = CifarResNet(8).eval()
    graph = ModelGraph(model, torch.randn(1, 3, 32, 32), warn_frozen=False)
    ctx = ScoringContext(model, torch.randn(4, 3, 32, 32))
    groups = graph.prunable_groups()
    assert groups
    for name in ("l1", *NEW):
        criterion = get_importance(name)
        criterion.prepare(ctx)
        for group in groups:
            scores = np.asarray(criterion.score(group, ctx))
            assert scores.shape == (group.width,), (name, group.name)
            assert np.all(np.isfinite(scores)) and np.all(scores >= 0.0), (name, group.name)
            if name == "nisp":
                assert np.all(scores > 0.0), group.name
