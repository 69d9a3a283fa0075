"""tools/bench/sparsity.py: the rendered section from made-up results (the real ones are in docs/benchmarks.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import sparsity  # noqa: E402


def _artifact(zip_bytes: int, top1: float, zeros: float, raw: int = 2_000_000) -> dict[str, Any]:
    return {"raw_bytes": raw, "zip_bytes": zip_bytes, "top1": top1, "images": 450,
            "zeros": {"params": 100_000, "zeros": int(zeros * 100_000), "sparsity": zeros, "dtypes": ["float32"]}}


def test_the_recipe_section_compares_with_the_tutorial_claim_and_resnet_is_pending_until_run() -> None:
    recipe = {"train_images": 1347, "test_images": 450, "dense": _artifact(1_000_000, 0.98, 0.0),
              "dense_finetuned": None, "one_shot": _artifact(300_000, 0.2, 0.8),
              "schedule": {"steps": 88, "begin_step": 0, "end_step": 66, "frequency": 6},
              "pruned": _artifact(300_000, 0.97, 0.8), "dense_int8": _artifact(270_000, 0.98, 0.0, 500_000),
              "pruned_int8": _artifact(90_000, 0.97, 0.8, 500_000)}
    lines = sparsity.render({"recipe": recipe})
    assert lines[0] == sparsity.HEADING  # docs_section.write_section finds it again
    text = "\n".join(lines)
    assert "| 50% → 80% during the fine-tune | 80.00% | 2,000,000 | 300,000 | 30.0% | 97.00% |" in text
    assert "zips 70% smaller than the dense one at 98.00% → 97.00% (-1.00 points" in text
    assert "91% smaller zipped than the dense fp32 model" in text
    assert "Not run yet: `taskset -c 1 env OMP_NUM_THREADS=1 python tools/bench/sparsity.py --part resnet56`" in text


def test_the_resnet_cells_put_sparse_and_channel_pruned_side_by_side() -> None:
    cell = {"sparsity": 0.9, "sparse": _artifact(650_000, 0.85, 0.9),
            "channels": {**_artifact(645_000, 0.80, 0.0), "keep_ratio": 0.453}}
    results = {"resnet56": {"train_images": 5085, "test_images": 1017, "dense": _artifact(3_200_000, 0.93, 0.0),
                            "cells": [cell]},
               "settings": {"resnet56": {**sparsity.RESNET, "epochs": 2}}}
    text = "\n".join(sparsity.render(results))
    assert "| 90% | 650.0 kB | 85.00% | 0.453 | 645.0 kB | 80.00% |" in text
    assert "2 epochs on 5,085 lossless training images" in text and "Not run yet" not in text
    assert "at the same zipped size: +5.00 points (one sampling error of a top-1 figure here is at most ±1.57)" in text
