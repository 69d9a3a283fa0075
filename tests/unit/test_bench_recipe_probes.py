"""tools/bench/recipe_probes.py: the docs section (fake records, no benchmark numbers); the loss it uses is
edgeprune.train.feature_hints, tested in tests/unit/test_feature_hints.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import recipe_probes  # noqa: E402


def test_probe_section_lists_every_probe_with_its_epochs() -> None:
    record = {"probe": "blocks-featkd4", "blocks_removed": ["a", "b"], "epochs": 2, "feature_weight": 1.0,
              "top1_before": {"lossless": 0.5, "jpeg": 0.4}, "top1_after": {"lossless": 0.91, "jpeg": 0.84},
              "per_epoch": [{"top1_lossless": 0.9}, {"top1_lossless": 0.91}], "finetune_seconds": 600}
    text = recipe_probes.render([record])
    assert text.startswith(recipe_probes.BEGIN) and text.endswith(recipe_probes.END)
    assert "| blocks-featkd4 (weight 1) | 2 | 2 | 50.00% | 91.00% | 40.00% | 84.00% | 90.00 / 91.00 | 10 min |" in text
