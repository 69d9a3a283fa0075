"""Recipe probes: what limits the accuracy a short distillation fine-tune recovers on cifar-resnet56.

    taskset -c 0 python tools/bench/recipe_probes.py --probe self-kd1 &      # about 15 min on one core
    taskset -c 1 python tools/bench/recipe_probes.py --probe blocks-kd4      # about 35 min each
    taskset -c 0 python tools/bench/recipe_probes.py --probe blocks-featkd4
    python tools/bench/recipe_probes.py --render-only

The pruning benchmark's best 2x model (``blocks``, four distillation epochs over the 50,000 JPEG-decoded
training images) stops about 1.7 points under the original on the lossless test subset, and eight epochs or a
three times higher learning rate end at the same place. Each probe tests one explanation, in PyTorch, with the
fit recipe's optimiser (``TrainSpec``: SGD, peak lr 0.01, batch 64, learning-rate rewinding) and loss
(``DistillationLoss``, T = 4, weight 0.9), seed 0:

* ``self-kd1``: the *unpruned* resnet56 distilled from itself for one epoch. If fine-tuning on JPEG-decoded
  images cost lossless accuracy (a domain shift), it would show here, with no pruning involved.
* ``blocks-kd4``: the 15 blocks that cell ``blocks-2x-ft4kd50k`` removed, batch-norm statistics re-estimated
  on fit's 256 calibration images, four distillation epochs: the cell's recipe outside ``fit`` (no channel
  pruning, no export), the control for the next probe.
* ``blocks-featkd4``: the same, plus feature distillation: the mean squared error between the student's and the
  original's stage outputs (``layer1..3``; depth pruning keeps their shapes), each divided by the mean square of
  the original's, averaged over the stages, weight ``--feature-weight`` (FitNets-style hints, Romero et al. 2015):
  ``fit --distill-features``'s ``FeatureHintLoss``. The recorded run (commit 3d230d3) used an in-script copy of
  the same computation on the same three stages.

Lossless top-1 is logged after every epoch. Results: ``docs/figures/recipe-probes/<probe>.json`` and the
section of docs/benchmarks.md between ``<!-- recipe-probes:begin -->`` and ``<!-- recipe-probes:end -->``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from provenance import provenance  # noqa: E402
from pruning_cells import DATA, DEFAULT_RESULTS, WEIGHTS  # noqa: E402
from pruning_data import default_cache_dir, prepare_train_npz  # noqa: E402
from pruning_report import write_section  # noqa: E402

from edgeprune.config import FitConfig  # noqa: E402
from edgeprune.data.loaders import load_npz  # noqa: E402
from edgeprune.data.tensors import calibration_indices, to_model_input  # noqa: E402
from edgeprune.environment import machine_info, package_versions  # noqa: E402
from edgeprune.fit.recover import DISTILL_ALPHA, DISTILL_TEMPERATURE  # noqa: E402
from edgeprune.io_atomic import write_json_atomic  # noqa: E402
from edgeprune.prune.blocks import remove_blocks  # noqa: E402
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm  # noqa: E402
from edgeprune.train.default_weights import load_model  # noqa: E402
from edgeprune.train.distill import DistillationLoss  # noqa: E402
from edgeprune.train.feature_hints import FeatureHintLoss  # noqa: E402
from edgeprune.train.loop import TrainSpec, train_classifier  # noqa: E402

log = logging.getLogger("recipe_probes")

PROBES = {"self-kd1": 1, "blocks-kd4": 4, "blocks-featkd4": 4}  # probe -> epochs
SOURCE_CELL = "cell-blocks-2x-ft4kd50k.json"
RESULTS = REPO / "docs" / "figures" / "recipe-probes"
BEGIN, END = "<!-- recipe-probes:begin -->", "<!-- recipe-probes:end -->"
HEADING = "## Recipe probes: what limits the short fine-tune"


def top1(model: nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    """Top-1 in PyTorch (eval mode; the model's mode is restored)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)]).numpy()
    model.train(was_training)
    return float((predictions == y).mean())


def run_probe(probe: str, feature_weight: float, seed: int) -> dict[str, Any]:
    """Fine-tune the probe's student and return its record."""
    torch.set_num_threads(1)
    bundle = load_model("cifar-resnet56", WEIGHTS / "resnet56-4bfd9763.th")
    prep = bundle.preprocessing
    assert prep is not None
    teacher = bundle.model.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    train = load_npz(prepare_train_npz(DATA / "cifar10_train_jpegbytes.npz", 50_000, seed, default_cache_dir()))
    assert train.labels is not None
    x = to_model_input(train.images, prep)
    lossless, jpeg = load_npz(DATA / "cifar10_test_lossless_first1017.npz"), load_npz(DATA / "cifar10_test_jpeg.npz")
    x_lossless, x_jpeg = to_model_input(lossless.images, prep), to_model_input(jpeg.images, prep)
    removed: list[str] = []
    if probe.startswith("blocks"):
        cell = json.loads((DEFAULT_RESULTS / SOURCE_CELL).read_text())
        removed = cell["method_detail"]["blocks"]["removed"]
        student = remove_blocks(teacher, removed)
        recalibrate_batchnorm(student, x[calibration_indices(len(x), FitConfig.calib_images, seed)])
    else:
        student = remove_blocks(teacher, [])  # a copy
    for p in student.parameters():
        p.requires_grad_(True)
    before = {"lossless": top1(student, x_lossless, lossless.labels), "jpeg": top1(student, x_jpeg, jpeg.labels)}
    example = x[:1]
    loss = FeatureHintLoss(student, teacher, example, DISTILL_TEMPERATURE, DISTILL_ALPHA, feature_weight) \
        if "featkd" in probe else DistillationLoss(teacher, DISTILL_TEMPERATURE, DISTILL_ALPHA)
    epochs = PROBES[probe]
    spec = TrainSpec(epochs=epochs, lr=FitConfig.finetune_lr, seed=seed, schedule=FitConfig.finetune_schedule)
    per_epoch: list[dict[str, float]] = []

    def on_epoch(epoch: int, value: float) -> None:
        per_epoch.append({"epoch": epoch, "loss": value, "top1_lossless": top1(student, x_lossless, lossless.labels)})
        log.info("%s epoch %d/%d: loss %.4f, lossless top-1 %.2f%%", probe, epoch, epochs, value,
                 100 * per_epoch[-1]["top1_lossless"])

    start = time.perf_counter()
    train_classifier(student, x, torch.from_numpy(train.labels), spec, loss_fn=loss, on_epoch=on_epoch)
    seconds = time.perf_counter() - start
    after = {"lossless": top1(student, x_lossless, lossless.labels), "jpeg": top1(student, x_jpeg, jpeg.labels)}
    return {"probe": probe, "blocks_removed": removed, "epochs": epochs, "images": len(x), "train_spec": dataclasses.asdict(spec),
            "distill": {"temperature": DISTILL_TEMPERATURE, "alpha": DISTILL_ALPHA},
            "feature_weight": feature_weight if "featkd" in probe else None, "top1_before": before,
            "top1_after": after, "per_epoch": per_epoch, "finetune_seconds": seconds,
            "environment": {**package_versions(), "cpu": machine_info().get("cpu")}, "provenance": provenance(),
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def render(results: list[dict[str, Any]]) -> str:
    """The docs section (markers included)."""
    lines = [BEGIN, "", "cifar-resnet56, PyTorch evaluation, seed 0, the fit recipe's optimiser and distillation loss "
             "over the 50,000 JPEG-decoded training images. Reproduce: `python tools/bench/recipe_probes.py --probe "
             "NAME` (one core), then `--render-only`.", "",
             "| probe | blocks removed | epochs | top-1 lossless before | after | top-1 JPEG before | after | "
             "lossless per epoch | fine-tune time |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        name = r["probe"] + (f" (weight {r['feature_weight']:g})" if r.get("feature_weight") is not None else "")
        epochs = " / ".join(f"{100 * e['top1_lossless']:.2f}" for e in r["per_epoch"])
        lines.append(f"| {name} | {len(r['blocks_removed'])} | {r['epochs']} | {100 * r['top1_before']['lossless']:.2f}% "
                     f"| {100 * r['top1_after']['lossless']:.2f}% | {100 * r['top1_before']['jpeg']:.2f}% | "
                     f"{100 * r['top1_after']['jpeg']:.2f}% | {epochs} | {r['finetune_seconds'] / 60:.0f} min |")
    return "\n".join(lines + ["", END])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probe", choices=tuple(PROBES), help="run one probe (its JSON is replaced)")
    p.add_argument("--feature-weight", type=float, default=1.0, help="weight of the stage-output term (featkd)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--render-only", action="store_true", help="only rewrite the docs section from the JSON files")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.render_only:
        if args.probe is None:
            p.error("--probe is required unless --render-only")
        record = run_probe(args.probe, args.feature_weight, args.seed)
        write_json_atomic(RESULTS / f"{args.probe}.json", record)
        return  # probes run in parallel; --render-only writes the docs once they are done
    results = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("*.json"))] if RESULTS.is_dir() else []
    write_section(args.doc, render(results), BEGIN, END, HEADING)


if __name__ == "__main__":
    main()
