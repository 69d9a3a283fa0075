"""tools/bench/recipe_probes.py: the stage-feature loss and the docs section (fake records, no benchmark numbers)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import recipe_probes  # noqa: E402
from edgeprune.models.cifar_resnet import CifarResNet  # noqa: E402
from edgeprune.prune.blocks import remove_blocks  # noqa: E402
from edgeprune.train.distill import DistillationLoss  # noqa: E402


def _losses(student: torch.nn.Module, teacher: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    feature = recipe_probes.StageFeatureLoss(student, teacher, weight=1.0)
    logits = student(x)
    with_hint = float(feature(logits, x, None).detach())
    plain = float(DistillationLoss(teacher)(logits, x, None).detach())
    return with_hint, plain


def test_stage_feature_loss_adds_nothing_for_an_identical_student_and_a_positive_hint_otherwise() -> None:
    torch.manual_seed(0)
    teacher = CifarResNet(20).eval()
    x = torch.rand(4, 3, 32, 32)
    with_hint, plain = _losses(copy.deepcopy(teacher).eval(), teacher, x)
    assert abs(with_hint - plain) < 1e-6
    with_hint, plain = _losses(remove_blocks(teacher, ["layer2.1"]).eval(), teacher, x)
    assert with_hint > plain + 1e-4  # layer2 and layer3 outputs differ once a block is gone


def test_probe_section_lists_every_probe_with_its_epochs() -> None:
    record = {"probe": "blocks-featkd4", "blocks_removed": ["a", "b"], "epochs": 2, "feature_weight": 1.0,
              "top1_before": {"lossless": 0.5, "jpeg": 0.4}, "top1_after": {"lossless": 0.91, "jpeg": 0.84},
              "per_epoch": [{"top1_lossless": 0.9}, {"top1_lossless": 0.91}], "finetune_seconds": 600}
    text = recipe_probes.render([record])
    assert text.startswith(recipe_probes.BEGIN) and text.endswith(recipe_probes.END)
    assert "| blocks-featkd4 (weight 1) | 2 | 2 | 50.00% | 91.00% | 40.00% | 84.00% | 90.00 / 91.00 | 10 min |" in text
