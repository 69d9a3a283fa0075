"""Two weight draws of one slim model as edgeprune output folders, with their ONNX exports (for the validate tests)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))  # the shared tiny-model helpers

from export_test_models import write_slim_output  # noqa: E402

from edgeprune.export import export_from_source  # noqa: E402
from edgeprune.target import load_target  # noqa: E402


@dataclass
class SlimOutputs:
    """``good``/``other``: output folders of the same slim architecture with different weights; ``good_onnx`` and
    ``other_onnx``: their exports (with sidecars)."""

    good: Path
    other: Path
    good_onnx: Path
    other_onnx: Path


def build_slim_outputs(root: Path) -> SlimOutputs:
    """Write both output folders under ``root`` and export each to ONNX."""
    good, other = write_slim_output(root / "good", seed=0), write_slim_output(root / "other", seed=7)
    cpu = load_target("cpu")
    good_onnx = export_from_source(good, "onnx", root / "good-export", target=cpu)[0].path
    other_onnx = export_from_source(other, "onnx", root / "other-export", target=cpu)[0].path
    return SlimOutputs(good, other, good_onnx, other_onnx)
