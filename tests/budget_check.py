"""An end-to-end test's own check of a ``fit`` verdict: the shipped ``model.onnx`` timed against the original.

``fit`` only ships a model whose confirmation met the budget, so asserting ``final <= budget`` on its report
cannot fail. This helper times the shipped file against the original's export itself, with ONNX Runtime called
directly and an interleaved loop written apart from edgeprune's (:mod:`paired_timing`), so a verdict that a
wrong measurement produced fails the test.
"""

from __future__ import annotations

from pathlib import Path

import torch
from paired_timing import independent_ratio
from torch import nn

from edgeprune.runtimes.onnx_export import export_onnx

#: how far over the budget share the independent timing may read: the two timings' own noise on 2 shared cores
TOLERANCE = 0.06


def independent_share(original: nn.Module, input_shape: list[int], out_dir: Path, work: Path) -> float:
    """The shipped model's latency as a share of the original's, by the independent paired timing."""
    reference = export_onnx(original.eval(), torch.zeros(*input_shape), work / "original-for-check.onnx")
    return independent_ratio(reference, out_dir / "model.onnx")


def assert_meets_budget_share(original: nn.Module, report: dict, out_dir: Path, work: Path) -> float:
    """Fail unless the shipped model runs within the run's budget share of the original (up to :data:`TOLERANCE`)."""
    share = report["budget_ms"] / report["baseline"]["latency"]["median_ms"]
    measured = independent_share(original, report["model"]["input_shape"], out_dir, work)
    assert measured <= share * (1 + TOLERANCE), (
        f"the shipped model runs at {measured:.3f} of the original by an independent paired timing; the budget "
        f"was {share:.3f} of it and fit said met")
    return measured
