"""A user's model that breaks in edgeprune's hands (issue 19): frozen where it can be, one named line where not.

* the trial cut finds the group whose channels a custom module cannot lose, freezes it with the module's name,
  and leaves the others prunable;
* an exception inside a user's module becomes one :class:`ModelConstructError` line naming the module, its
  class and the ``--freeze`` hint;
* the original model is checked in the target's runtime before any scoring: a file the runtime cannot load is
  refused with one line naming the runtime.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from edgeprune.errors import ModelConstructError, ModelLoadError
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.module_errors import naming_the_module
from edgeprune.prune.trial import freeze_untrimmable
from edgeprune.runtimes import get_backend
from edgeprune.target import load_target
from edgeprune.validate.original import check_original_runs


class FixedWidthGate(nn.Module):
    """A custom module that only works at the width it was written for (a hard-coded learned gate)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("gate", torch.linspace(0.5, 1.5, channels).view(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.gate.shape[1]:
            raise RuntimeError(f"expected {self.gate.shape[1]} channels, got {x.shape[1]}")
        return x * self.gate


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = FixedWidthGate(8)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.conv3 = nn.Conv2d(12, 6, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3(torch.relu(self.conv2(self.gate(torch.relu(self.conv1(x))))))
        return self.fc(self.pool(x).flatten(1))


def test_the_trial_cut_freezes_only_the_group_a_custom_module_cannot_shrink() -> None:
    torch.manual_seed(0)
    model = GatedNet().eval()
    example = torch.randn(1, 3, 12, 12)
    graph = ModelGraph(model, example, warn_frozen=False)
    assert {g.name for g in graph.prunable_groups()} >= {"conv1", "conv2", "conv3"}
    frozen = freeze_untrimmable(model, example, graph)
    assert [g.name for g in frozen] == ["conv1"]
    assert "gate" in frozen[0].frozen_reason and "FixedWidthGate" in frozen[0].frozen_reason
    assert {g.name for g in graph.prunable_groups()} == {"conv2", "conv3"}


def test_a_model_the_trial_cut_finds_nothing_wrong_with_is_left_alone() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.LazyLinear(3))
    example = torch.randn(1, 3, 8, 8)
    model(example)
    graph = ModelGraph(model.eval(), example, warn_frozen=False)
    before = [g.name for g in graph.prunable_groups()]
    assert freeze_untrimmable(model, example, graph) == []
    assert [g.name for g in graph.prunable_groups()] == before


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], 7, -1, 3)  # fails for this input


@pytest.mark.parametrize("freezing_helps", [True, False])
def test_an_exception_inside_a_user_module_is_one_line_naming_it(freezing_helps: bool) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), Broken()))
    with pytest.raises(ModelConstructError) as info:
        with naming_the_module(model, "preparing channel importance (lasso)", freezing_helps):
            model(torch.randn(1, 3, 8, 8))
    message = str(info.value)
    assert "\n" not in message
    assert "module '1.1' (Broken)" in message and "preparing channel importance" in message
    if freezing_helps:
        assert "--freeze 1.1" in message and info.value.module == "1.1"
    else:
        assert "--freeze does not avoid it" in message and info.value.module is None
    assert isinstance(info.value.__cause__, RuntimeError)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules()), "hooks left behind"


def test_the_original_is_checked_in_the_runtime_before_anything_else(tmp_path: Path) -> None:
    target = load_target("cpu")
    backend = get_backend(target)
    model = GatedNet().eval()
    x = torch.randn(4, 3, 12, 12)
    artifact = backend.export(model, x[:1], tmp_path / "original.onnx", target)
    assert check_original_runs(backend, target, artifact, model, x) < 1e-4
    other = GatedNet().eval()  # other weights: the runtime computes a different function than this PyTorch model
    with pytest.raises(ModelLoadError, match="differ from PyTorch's"):
        check_original_runs(backend, target, artifact, other, x)
    artifact.path.write_bytes(b"not an onnx file")
    with pytest.raises(ModelLoadError, match="does not run in onnxruntime"):
        check_original_runs(backend, target, artifact, model, x)
