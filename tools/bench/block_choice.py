"""Block-choice benchmark: which residual blocks depth pruning removes, and how well each choice recovers.

    python tools/bench/block_choice.py            # about 20 min on one core; needs ../shared/data

cifar-resnet56 loses the same number of blocks under every criterion (14 of 25 removable: what the 2x
measured budget on target ``cpu`` needed), so the sets differ only in *which* blocks go. Criteria:

- ``greedy-recal``: edgeprune's order: greedy least KL divergence from the original, each candidate scored
  after its batch-norm statistics are re-estimated on the calibration images;
- ``greedy-stale``: the same greedy order scored with the original (stale) statistics (edgeprune before
  this benchmark);
- ``greedy-stale-lossless``: that order on calibration images from the lossless training subset instead;
- ``single-shot``: each block scored alone once, stale statistics.

Calibration images are drawn as ``fit`` draws them (256, seed 0) from the decoded 50,000-image JPEG training
set that the ``kd50k`` recipe fine-tunes on, unless the criterion says lossless. For each set, batch-norm
statistics are re-estimated on those images, then it is scored before and after a short distillation
fine-tune (12,800 training images, one epoch, one-cycle, peak lr 0.01, T=4, alpha 0.9): KL divergence from
the original on 2,000 held-out training images (not calibration, not fine-tune images) and top-1 on the
lossless test subset (1,017 images), in PyTorch. The short fine-tune is the arbiter the criteria are
proxies for. Results: ``docs/figures/block-choice.json`` and the section of docs/benchmarks.md between
``<!-- block-choice:begin -->`` and ``<!-- block-choice:end -->``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from provenance import provenance  # noqa: E402
from pruning_cells import DATA, WEIGHTS  # noqa: E402
from pruning_data import default_cache_dir, prepare_train_npz  # noqa: E402
from pruning_report import write_section  # noqa: E402

from edgeprune.config import FitConfig  # noqa: E402
from edgeprune.data.loaders import load_npz  # noqa: E402
from edgeprune.data.tensors import calibration_indices, to_model_input  # noqa: E402
from edgeprune.fit.recover import DISTILL_ALPHA, DISTILL_TEMPERATURE  # noqa: E402
from edgeprune.io_atomic import write_json_atomic  # noqa: E402
from edgeprune.prune.blocks import (  # noqa: E402
    find_removable_blocks,
    greedy_removal_order,
    removal_distortion,
    removal_order,
    remove_blocks,
)
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm  # noqa: E402
from edgeprune.train.default_weights import load_model  # noqa: E402
from edgeprune.train.distill import DistillationLoss  # noqa: E402
from edgeprune.train.loop import TrainSpec, train_classifier  # noqa: E402

log = logging.getLogger("block_choice_bench")

REMOVED = 14
HELD_OUT = 2000
SHORT_FINETUNE_IMAGES = 12_800
BEGIN, END = "<!-- block-choice:begin -->", "<!-- block-choice:end -->"
HEADING = "## Depth pruning: which blocks to remove"
CRITERIA = ("greedy-recal", "greedy-stale", "greedy-stale-lossless", "single-shot")


def _kl(model: torch.nn.Module, teacher_logits: torch.Tensor, x: torch.Tensor) -> float:
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 250]) for i in range(0, len(x), 250)])
        return float(F.kl_div(F.log_softmax(logits, 1), F.softmax(teacher_logits, 1), reduction="batchmean"))


def _top1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((torch.cat([model(x[i:i + 250]) for i in range(0, len(x), 250)]).argmax(1) == y).float().mean())


def choose(criterion: str, model: torch.nn.Module, blocks: list[str], calib: dict[str, torch.Tensor]) -> list[str]:
    """The ``REMOVED`` blocks ``criterion`` removes (model order)."""
    images = calib["lossless" if criterion.endswith("lossless") else "jpeg"]
    scoring = images[:128]  # fit's depth stage scores on the first 128 calibration images
    if criterion == "single-shot":
        order = removal_order(removal_distortion(model, blocks, scoring))
    else:
        recal = images if criterion == "greedy-recal" else None
        order, _ = greedy_removal_order(model, blocks, scoring, REMOVED, recalibration=recal)
    chosen = set(order[:REMOVED])
    return [b for b in blocks if b in chosen]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every criterion's set, scored before and after the short fine-tune."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    bundle = load_model("cifar-resnet56", WEIGHTS / "resnet56-4bfd9763.th")
    teacher, prep = bundle.model.eval(), bundle.preprocessing
    train = load_npz(prepare_train_npz(DATA / "cifar10_train_jpegbytes.npz", 50_000, 0, default_cache_dir()))
    lossless_train = load_npz(DATA / "cifar10_train_lossless_subset5085.npz")
    test = load_npz(DATA / "cifar10_test_lossless_first1017.npz")
    x_train, y_train = to_model_input(train.images, prep), torch.from_numpy(train.labels).long()
    calib_idx = calibration_indices(len(train), FitConfig.calib_images, 0)
    calib = {"jpeg": x_train[calib_idx],
             "lossless": to_model_input(lossless_train.images[calibration_indices(len(lossless_train),
                                                                                  FitConfig.calib_images, 0)], prep)}
    free = np.setdiff1d(np.arange(SHORT_FINETUNE_IMAGES, len(train)), calib_idx)
    held_out = x_train[free[-HELD_OUT:]]
    x_test, y_test = to_model_input(test.images, prep), torch.from_numpy(test.labels).long()
    with torch.no_grad():
        teacher_held = torch.cat([teacher(held_out[i:i + 250]) for i in range(0, len(held_out), 250)])
    blocks = find_removable_blocks(teacher, x_test[:1])
    rows = []
    for criterion in args.criteria:
        start = time.perf_counter()
        removed = choose(criterion, teacher, blocks, calib)
        choose_s = time.perf_counter() - start
        student = remove_blocks(teacher, removed)
        recalibrate_batchnorm(student, calib["jpeg"])
        before = {"kl": _kl(student, teacher_held, held_out), "top1": _top1(student, x_test, y_test)}
        start = time.perf_counter()
        train_classifier(student, x_train[:SHORT_FINETUNE_IMAGES], y_train[:SHORT_FINETUNE_IMAGES],
                         TrainSpec(epochs=1, lr=0.01, schedule="one-cycle"),
                         loss_fn=DistillationLoss(copy.deepcopy(teacher), DISTILL_TEMPERATURE, DISTILL_ALPHA),
                         description=f"short fine-tune ({criterion})")
        student.eval()
        after = {"kl": _kl(student, teacher_held, held_out), "top1": _top1(student, x_test, y_test)}
        rows.append({"criterion": criterion, "removed": removed, "choose_s": choose_s,
                     "finetune_s": time.perf_counter() - start, "before": before, "after": after,
                     "per_stage": [sum(b.startswith(f"layer{k}.") for b in removed) for k in (1, 2, 3)]})
        log.info("%s: %s; KL %.3f → %.3f, top-1 %.2f%% → %.2f%%", criterion, removed, before["kl"], after["kl"],
                 100 * before["top1"], 100 * after["top1"])
    return {"model": "cifar-resnet56", "removable": len(blocks), "removed": REMOVED, "held_out": HELD_OUT,
            "finetune_images": SHORT_FINETUNE_IMAGES, "rows": rows}


def render(result: dict[str, Any]) -> str:
    """The markdown section (between the markers)."""
    lines = [BEGIN, "", f"cifar-resnet56, {result['removed']} of {result['removable']} removable blocks removed by "
             "each criterion; batch-norm statistics re-estimated on the 256 calibration images; then a short "
             f"distillation fine-tune ({result['finetune_images']:,} JPEG training images, one epoch). KL: from the "
             f"original, on {result['held_out']:,} held-out training images. Top-1: lossless test subset, PyTorch. "
             "Reproduce: `python tools/bench/block_choice.py` (one core).", "",
             "| criterion | blocks removed per stage | KL before | top-1 before | KL after short fine-tune | "
             "top-1 after | time to choose |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['criterion']} | {' / '.join(map(str, r['per_stage']))} | {r['before']['kl']:.3f} | "
                     f"{100 * r['before']['top1']:.2f}% | {r['after']['kl']:.3f} | {100 * r['after']['top1']:.2f}% | "
                     f"{r['choose_s']:.0f} s |")
    lines += ["", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run (or, with --render-only, re-render) the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--criteria", nargs="*", default=list(CRITERIA), choices=list(CRITERIA))
    p.add_argument("--results", type=Path, default=REPO / "docs" / "figures" / "block-choice.json")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument("--render-only", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not DATA.is_dir():
        log.error("needs ../shared/data (CIFAR-10 and the ResNet-56 weights); not found at %s", DATA)
        return 2
    if args.render_only:
        result = json.loads(args.results.read_text())
    else:
        result = run(args)
        result["provenance"] = provenance()
        write_json_atomic(args.results, result)
    write_section(args.doc, render(result), BEGIN, END, HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
