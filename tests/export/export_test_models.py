"""Tiny models and edgeprune output folders for the export and validate tests (imported by both packages)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from model_helpers import randomise_bn
from safetensors.torch import save_file
from torch import nn

from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.models.zoo import CIFAR_PREPROCESSING
from edgeprune.prune.plan import SlimPlan, module_shapes

#: NCHW input of the tiny models
INPUT_SHAPE = (1, 3, 24, 24)


class TinyResidualDepthwise(nn.Module):
    """stem conv -> (1x1 expand, 3x3 depthwise, 1x1 project) + residual -> pool -> linear: the layer kinds
    whose export most often goes wrong (grouped conv, residual add, BN folding)."""

    def __init__(self, width: int = 8, num_classes: int = 5) -> None:
        super().__init__()
        hidden = width * 3
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6())
        self.block = nn.Sequential(
            nn.Conv2d(width, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, width, 1, bias=False), nn.BatchNorm2d(width),
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.block(x)
        return self.head(x.mean((2, 3)))


def tiny_model(seed: int = 0) -> nn.Module:
    """A :class:`TinyResidualDepthwise` with seeded weights and non-trivial batch norms, in eval mode."""
    torch.manual_seed(seed)
    return randomise_bn(TinyResidualDepthwise(), seed + 1).eval()


def write_slim_output(out: Path, seed: int = 0, prune_to: int = 8) -> Path:
    """An edgeprune output folder (plan.json + model.safetensors) holding a CIFAR ResNet-8 whose residual
    stream is cut from 16 to ``prune_to`` channels, with weights drawn from ``seed``."""
    torch.manual_seed(seed)
    model = randomise_bn(CifarResNet(8, 10), seed + 1).eval()
    from edgeprune.prune.graph import ModelGraph
    from edgeprune.prune.surgery import slim_copy

    example = torch.zeros(1, 3, 32, 32)
    graph = ModelGraph(model, example, warn_frozen=False)
    keep = {g.name: list(range(min(prune_to, g.width))) for g in graph.prunable_groups()}
    slim = slim_copy(model, example, keep).eval()
    groups = [{"name": g.name, "width_before": g.width, "width_after": len(keep[g.name]), "kept": keep[g.name]}
              for g in graph.prunable_groups()]
    plan = SlimPlan("cifar-resnet8", {"num_classes": 10}, [1, 3, 32, 32], CIFAR_PREPROCESSING.to_dict(), groups,
                    module_shapes(slim), {"importance": "test"})
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(plan.to_dict()), encoding="utf-8")
    save_file({k: v.detach().contiguous() for k, v in slim.state_dict().items()}, str(out / "model.safetensors"))
    return out
