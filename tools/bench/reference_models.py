"""Reference models: what the smaller, fully trained members of the same family reach at their own latency.

    python tools/bench/reference_models.py          # about 3 min on one core; needs ../shared/data

A user who wants cifar-resnet56 at half its latency could instead take a shallower CIFAR ResNet trained from
scratch on the full training set, when one exists. ../shared/data has akamaster's resnet20 and resnet32 next to
resnet56, so the pruning benchmark's results can be read against them: each model is exported, timed on
target ``cpu`` (ONNX Runtime, 1 thread, fit's confirmation timing) and evaluated in ONNX Runtime on the
lossless test subset (1,017 images) and the JPEG test set (10,000), exactly as the pruning cells are.

Latency is measured in ``--passes`` interleaved passes (resnet56, resnet20, resnet32, resnet56, ...) and each
model's figure is the median of its pass medians, so drift on a shared machine hits every model alike; the
speedups are against resnet56 measured in the same run, not against the pruning benchmark's baseline file.
Results: ``docs/figures/reference-models.json`` and the section of docs/benchmarks.md between
``<!-- reference-models:begin -->`` and ``<!-- reference-models:end -->``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from provenance import provenance  # noqa: E402
from pruning_cells import DATA, WEIGHTS  # noqa: E402
from pruning_data import evaluate_onnx  # noqa: E402
from pruning_report import write_section  # noqa: E402

from edgeprune.data.loaders import load_npz  # noqa: E402
from edgeprune.data.tensors import to_model_input  # noqa: E402
from edgeprune.environment import machine_info, package_versions  # noqa: E402
from edgeprune.io_atomic import write_json_atomic  # noqa: E402
from edgeprune.latency.candidates import CONFIRM_TIMING, CandidateMeasurer  # noqa: E402
from edgeprune.models.preprocessing import Preprocessing  # noqa: E402
from edgeprune.prune.graph import count_macs_and_params  # noqa: E402
from edgeprune.runtimes import get_backend  # noqa: E402
from edgeprune.runtimes.base import Artifact  # noqa: E402
from edgeprune.target import load_target  # noqa: E402
from edgeprune.train.default_weights import load_model  # noqa: E402

log = logging.getLogger("reference_models")

#: zoo name -> weights file in ../shared/data/models/cifar10/akamaster_resnet; the first is the reference
MODELS = {"cifar-resnet56": "resnet56-4bfd9763.th", "cifar-resnet20": "resnet20-12fca82f.th",
          "cifar-resnet32": "resnet32-d509ac18.th"}
BEGIN, END = "<!-- reference-models:begin -->", "<!-- reference-models:end -->"
HEADING = "## Reference: smaller CIFAR ResNets trained from scratch"


def measure_references(target_name: str, passes: int, work: Path) -> list[dict[str, Any]]:
    """Export, time (interleaved passes) and evaluate every model of :data:`MODELS`."""
    target = load_target(target_name)
    backend = get_backend(target)
    lossless, jpeg = DATA / "cifar10_test_lossless_first1017.npz", DATA / "cifar10_test_jpeg.npz"
    first_image = load_npz(lossless).images[:1]
    rows: dict[str, dict[str, Any]] = {}
    exported: dict[str, tuple[CandidateMeasurer, Artifact, Preprocessing]] = {}
    for name, weights in MODELS.items():
        bundle = load_model(name, WEIGHTS / weights)
        assert bundle.preprocessing is not None
        example = to_model_input(first_image, bundle.preprocessing)
        macs, params = count_macs_and_params(bundle.model, example)
        measurer = CandidateMeasurer(backend, target, example, work)
        exported[name] = (measurer, measurer.export(bundle.model.eval(), name), bundle.preprocessing)
        rows[name] = {"model": name, "weights": weights, "macs": macs, "params": params, "pass_medians_ms": []}
    for index in range(passes):  # each artifact is exported once and timed once per pass
        for name, (measurer, artifact, _) in exported.items():
            m = measurer.time(artifact, CONFIRM_TIMING)
            rows[name]["pass_medians_ms"].append(m.stats.median_ms)
            log.info("pass %d: %s %.3f ms (cv %.2f)", index + 1, name, m.stats.median_ms, m.stats.cv)
    for name, row in rows.items():
        _, artifact, prep = exported[name]
        row["latency_ms"] = statistics.median(row["pass_medians_ms"])
        row["top1_lossless"], row["lossless_images"] = evaluate_onnx(backend, artifact, target, lossless, prep)
        row["top1_jpeg"], row["jpeg_images"] = evaluate_onnx(backend, artifact, target, jpeg, prep)
    reference = rows[next(iter(MODELS))]["latency_ms"]
    for row in rows.values():
        row["speedup_vs_resnet56"] = reference / row["latency_ms"]
    return list(rows.values())


def render(result: dict[str, Any]) -> str:
    """The markdown section (markers included) for ``result`` as written by :func:`main`."""
    env = result["environment"]
    lines = [BEGIN, "",
             f"`python tools/bench/reference_models.py` on {env.get('cpu', '?')}, target `{result['target']}` "
             f"(ONNX Runtime {env['versions'].get('onnxruntime', '?')}, 1 thread, fp32). akamaster's pretrained CIFAR "
             "ResNets (trained from scratch on the full lossless training set by the weights' author), exported "
             "and evaluated in ONNX Runtime as the pruning cells are. "
             f"Latency: median of {result['passes']} interleaved passes of fit's confirmation "
             "timing; speedup against resnet56 measured in the same run.", "",
             "| model | top-1 lossless | top-1 JPEG | latency ms | speedup vs resnet56 | MACs | params |",
             "|---|---|---|---|---|---|---|"]
    for r in result["models"]:
        lines.append(f"| {r['model']} | {100 * r['top1_lossless']:.2f}% | {100 * r['top1_jpeg']:.2f}% | "
                     f"{r['latency_ms']:.3f} | {r['speedup_vs_resnet56']:.2f}× | {r['macs'] / 1e6:.1f} M | "
                     f"{r['params']:,} |")
    lines += ["", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure the reference models, write the JSON result and the docs section."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description="smaller pretrained CIFAR ResNets: latency and top-1 on target cpu")
    p.add_argument("--target", default="cpu")
    p.add_argument("--passes", type=int, default=3, help="interleaved timing passes per model")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "reference-models.json")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"reference models need {DATA} (../shared/data); it is absent")
    work = Path(tempfile.mkdtemp(prefix="reference-models-"))
    try:
        models = measure_references(args.target, args.passes, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"target": args.target, "passes": args.passes, "models": models,
              "environment": {**machine_info(), "versions": package_versions()}, "provenance": provenance(),
              "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(args.out, result)
    write_section(args.doc, render(result), BEGIN, END, HEADING)
    log.info("wrote %s and %s", args.out, args.doc)


if __name__ == "__main__":
    main()
