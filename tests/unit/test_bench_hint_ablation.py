"""tools/bench/hint_ablation.py: the arms' command lines and the rendered section, from made-up results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import hint_ablation  # noqa: E402


def _arm(lossless: float, jpeg: float, hints: dict[str, Any] | None) -> dict[str, Any]:
    return {"top1_lossless": lossless, "lossless_images": 1017, "top1_jpeg": jpeg, "jpeg_images": 10000,
            "macs": 44_900_000, "finetune": {"seconds": 2100.0, "feature_hints": hints}}


def test_the_arms_differ_only_in_their_distillation_option(tmp_path: Path) -> None:
    plain = hint_ablation.fit_command("distill", tmp_path / "a", tmp_path / "train.npz")
    hinted = hint_ablation.fit_command("distill-features", tmp_path / "a", tmp_path / "train.npz")
    assert [a for a in plain if a not in hinted] == ["--distill"]
    assert [a for a in hinted if a not in plain] == ["--distill-features"]
    assert plain[plain.index("--target") + 1] == "rpi4"  # a predicted target: a deterministic search, one plan


def test_the_section_states_the_difference_and_its_sampling_error() -> None:
    hints = {"weight": 1.0, "stages": ["layer1", "layer2"], "matched_by_kept_channels": ["layer2"]}
    results = {"target": "rpi4", "budget": "45%", "epochs": 4, "seed": 0,
               "arms": {"distill": _arm(0.90, 0.80, None), "distill-features": _arm(0.89, 0.81, hints)}}
    text = hint_ablation.render(results)
    assert text.startswith(hint_ablation.BEGIN) and text.endswith(hint_ablation.END)
    assert "| `--distill` | 90.00% | 80.00% | 44.9 M | 35.0 min |" in text
    assert "-1.00 points lossless (one sampling error ±0.94)" in text and "+1.00 points on the JPEG" in text
    assert "of which layer2 matched through the kept channels" in text
