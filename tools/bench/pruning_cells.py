"""Cells of the pruning benchmark: what a cell is (method × budget × fine-tune recipe), its settings, and
which cells a command line selects. Split from pruning.py, which runs them."""

from __future__ import annotations

import argparse
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.config import FitConfig
from edgeprune.train.augment import parse_augmentation

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
DATA = SHARED / "cifar10"
#: the validation split of recipe kd45k: lossless training images, held out of its fine-tune and calibration
VALIDATION = DATA / "cifar10_train_lossless_subset5085.npz"
WEIGHTS = SHARED / "models" / "cifar10" / "akamaster_resnet"
BUDGETS = {"1.5x": 1 / 1.5, "2x": 1 / 2, "3x": 1 / 3}
EDGEPRUNE_METHODS = ("blocks", "lasso", "nisp", "l1")
IMPORTANCE = {"blocks": "lasso"}  # method -> fit's --importance where the names differ
DEFAULT_RESULTS = REPO / "docs" / "figures" / "pruning-results"


@dataclass
class Settings:
    """Everything a cell depends on (from the command line)."""

    model: str
    weights: Path
    target: str
    lossless: Path
    jpeg: Path
    train_npz: Path
    train_images: int
    finetune_epochs: int
    finetune_lr: float
    jpeg_images: int | None
    tp_steps: int
    tp_max_ratio: float
    tp_bn_recalibrate: bool
    seed: int
    results: Path
    table_dir: Path | None
    extra_fit: dict[str, Any]
    recipe: str = ""
    augment: str = "none"
    validation: Path | None = None


@dataclass(frozen=True)
class Cell:
    """One method at one budget with or without fine-tuning."""

    method: str
    budget_name: str
    epochs: int
    recipe: str = ""

    @property
    def name(self) -> str:
        """Cell id, e.g. ``lasso-2x-ft2`` (``lasso-2x-ft4kd`` for the distillation recipe)."""
        return f"{self.method}-{self.budget_name}-ft{self.epochs}{self.recipe if self.epochs else ''}"

    def path(self, results: Path) -> Path:
        """Its result file."""
        return results / f"cell-{self.name}.json"


def cell_recipe(recipe: str, augment: str, lr: float = FitConfig.finetune_lr, hints: bool = False,
                seed: int = 0) -> str:
    """The recipe part of cell ids: ``kd50k``; ``-cropflip`` when batches are augmented, ``-lr0.03`` for a
    peak learning rate other than fit's default, ``-hints`` with fit's feature hints, ``-seed1`` for a seed
    other than 0 (a repeat of the seed-0 cell)."""
    spec = parse_augmentation(augment).spec
    name = recipe if spec == "none" else f"{recipe}-{spec.replace(',', '')}"
    name = name if lr == FitConfig.finetune_lr else f"{name}-lr{lr:g}"
    name = f"{name}-hints" if hints else name
    return f"{name}-seed{seed}" if seed else name


def extra_fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options only newer edgeprune versions have (``distill``, ``steps``, ``distill_features``): passed only when
    FitConfig has them."""
    fields = FitConfig.__dataclass_fields__
    extra: dict[str, Any] = {}
    if "distill" in fields and getattr(args, "distill", False):
        extra["distill"] = True
    if "steps" in fields and getattr(args, "steps", None) is not None:
        extra["steps"] = args.steps
    if "distill_features" in fields and getattr(args, "feature_hints", False):
        extra["distill_features"] = True
    return extra


def all_cells(methods: list[str], budgets: list[str], epochs: int, recipe: str = "") -> list[Cell]:
    """Every cell, interleaved so that round-robin parts get a similar mix of slow (fine-tuned) cells."""
    return [Cell(m, b, e, recipe) for b in budgets for e in sorted({0, epochs}) for m in methods]


def select(cells: list[Cell], patterns: list[str] | None, part: str | None) -> list[Cell]:
    """Filter by ``--cells`` glob patterns, then take part K of N (round-robin)."""
    if patterns:
        cells = [c for c in cells if any(fnmatch.fnmatch(c.name, p) for p in patterns)]
    if part:
        k, n = (int(v) for v in part.split("/"))
        if not 1 <= k <= n:
            raise SystemExit(f"--part must be K/N with 1 <= K <= N, got {part}")
        cells = cells[k - 1 :: n]
    return cells
