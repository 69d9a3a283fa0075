"""How well *any* calibration of the probe timings could do: a least-squares fit on the test variants themselves.

    python tools/bench/fidelity_bound.py            # after tools/bench/latency_fidelity.py, same table dir

For every (model, backend) row of docs/figures/latency_fidelity-*.json, the script rebuilds the row's random
variants (same seed and sampling as the benchmark), sums their kernels from the latency tables the benchmark
left, and fits measured ms = a · Σ kernels + b (and a scale per kernel kind + b, and the sum plus the
activation volumes read and written) **on the measured variants themselves**. The share within ±5% of that
in-sample fit is an upper bound for what a whole-model calibration of these probe timings can reach: when
it is far under the goal, the probes are what is missing, not the calibration.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edgeprune.latency.layers import extract_layers  # noqa: E402
from edgeprune.latency.predictor import LookupLatencyModel  # noqa: E402
from edgeprune.latency.probes import conv_output_hw  # noqa: E402
from edgeprune.latency.profile_model import table_context  # noqa: E402
from edgeprune.latency.profiler import layer_grids, sample_widths  # noqa: E402
from edgeprune.latency.table import LatencyTable  # noqa: E402
from edgeprune.models.zoo import build_architecture  # noqa: E402
from edgeprune.prune.graph import ModelGraph  # noqa: E402
from edgeprune.runtimes import get_backend  # noqa: E402
from edgeprune.target import load_target  # noqa: E402

SHAPES = {"cifar-resnet56": (3, 32, 32), "torchvision:mobilenet_v2": (3, 224, 224)}


def _fit(features: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    a = np.c_[features, np.ones(len(measured))]
    coef, *_ = np.linalg.lstsq(a / measured[:, None], np.ones(len(measured)), rcond=None)
    errors = np.abs(a @ coef / measured - 1)
    return {"within_10pct": float((errors <= 0.10).mean()), "within_5pct": float((errors <= 0.05).mean()),
            "median_abs_error_pct": float(100 * np.median(errors))}


def bound(row: dict, table_dir: Path, seed: int) -> dict[str, dict[str, float]]:
    """In-sample fits of one benchmark row."""
    target = load_target(row["target"])
    backend = get_backend(target)
    model = build_architecture(row["model"]).model.eval()
    example = torch.full((1, *SHAPES[row["model"]]), 0.5)
    graph = ModelGraph(model, example, warn_frozen=False)
    groups = graph.prunable_groups()
    layers = extract_layers(model, example, graph.groups)
    table = LatencyTable.open(table_context(backend, target), table_dir)
    max_points = 6 if backend.name in ("onnxruntime", "openvino") else 3
    lookup = LookupLatencyModel(layer_grids(layers, target.channel_alignment, max_points), table)
    variants = sample_widths(groups, target.channel_alignment, row["configs"] + 2, seed)[2:]
    measured = np.array([r["measured_ms"] for r in row["rows"]])
    kinds = sorted({k for w in variants for k in lookup.kind_sums(w)})
    per_kind = np.array([[lookup.kind_sums(w).get(k, 0.0) for k in kinds] for w in variants])
    convs = [layer for layer in layers if layer.signature.kind != "linear"]
    volumes = np.array([[sum(l.widths(w)[0] * l.signature.height * l.signature.width for l in convs) / 1e6,
                         sum(l.widths(w)[1] * int(np.prod(conv_output_hw(l.signature))) for l in convs) / 1e6]
                        for w in variants])
    total = per_kind.sum(axis=1, keepdims=True)
    predicted = np.array([r["predicted_ms"] for r in row["rows"]])
    shipped = np.abs(predicted / measured - 1)
    return {"as shipped": {"within_10pct": float((shipped <= 0.10).mean()),
                           "within_5pct": float((shipped <= 0.05).mean()),
                           "median_abs_error_pct": float(100 * np.median(shipped))},
            "in-sample: scale x sum + offset": _fit(total, measured),
            "in-sample: scale per kind + offset": _fit(per_kind, measured),
            "in-sample: sum + activation volumes + offset": _fit(np.c_[total, volumes], measured)}


def main() -> None:
    parser = argparse.ArgumentParser(description="in-sample bound of the latency-model calibration")
    parser.add_argument("--table-dir", type=Path, default=Path(tempfile.gettempdir()) / "edgeprune-fidelity-tables")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    figures = REPO / "docs" / "figures"
    for part in sorted(figures.glob("latency_fidelity-*.json")):
        for row in json.loads(part.read_text()):
            for name, fit in bound(row, args.table_dir, args.seed).items():
                print(f"{row['model']:26} {row['backend']:12} {name:46} within ±10% {100 * fit['within_10pct']:3.0f}%  "
                      f"±5% {100 * fit['within_5pct']:3.0f}%  median {fit['median_abs_error_pct']:.1f}%")


if __name__ == "__main__":
    main()
