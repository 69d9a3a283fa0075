"""Pruning benchmark (issue 4): edgeprune's latency search vs Torch-Pruning at equal measured latency budgets.

    python tools/bench/pruning.py --cells 'l1-2x-ft0'                # first: baseline, data, latency table
    taskset -c 0 python tools/bench/pruning.py --part 1/2 &          # then the rest, as two parts pinned to
    taskset -c 1 python tools/bench/pruning.py --part 2/2            # the two cores (about an hour in all)
    python tools/bench/pruning.py --render-only                      # docs/benchmarks.md + docs/figures
    python tools/bench/pruning.py --smoke                            # tiny end-to-end check into a temp dir

cifar-resnet56 (akamaster weights) on target ``cpu`` (ONNX Runtime, 1 thread). The original's latency is
measured once per results directory (``baseline.json``); every method gets the same absolute budgets in ms:
1/1.5, 1/2 and 1/3 of it. Methods: ``blocks`` (``--prune-blocks``), ``lasso``, ``nisp``, ``l1`` through
``edgeprune.fit`` (latency search), and Torch-Pruning's magnitude pruner at a uniform ratio bisected on measured
latency (``tp``, and ``tp-inner`` which leaves the residual stream alone; see pruning_tp.py), each with no
fine-tune and with the same fine-tune recipe. Every final model is evaluated in ONNX Runtime on the lossless
test subset (1,017 images) and on the JPEG test set (10,000). Each method × budget × recipe is a "cell" with
its own JSON file in the results directory (default docs/figures/pruning-results/); cells already there are
skipped, so runs resume and can be split (``--part K/N``, ``--cells PATTERN ...``). ``--render-only`` rewrites
docs/benchmarks.md between the ``pruning`` markers and the plots docs/figures/pruning_*.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from provenance import provenance  # noqa: E402
from pruning_cells import (  # noqa: E402
    BUDGETS,
    DATA,
    DEFAULT_RESULTS,
    EDGEPRUNE_METHODS,
    IMPORTANCE,
    VALIDATION,
    WEIGHTS,
    Cell,
    Settings,
    all_cells,
    cell_recipe,
    extra_fit_options,
    select,
)
from pruning_data import default_cache_dir, evaluate_onnx, load_original, prepare_train_npz  # noqa: E402
from pruning_report import (  # noqa: E402
    METHOD_ORDER,
    VALIDATED_BEGIN,
    VALIDATED_END,
    VALIDATED_HEADING,
    load_results,
    plot,
    render_markdown,
    validated,
    write_section,
)
from pruning_speed import wait_for_baseline_speed  # noqa: E402
from pruning_tp import TP_METHODS, BisectionResult, bisect_ratio, confirm_recovered, tp_prune, with_conv_shortcuts  # noqa: E402

import edgeprune  # noqa: E402
from edgeprune.config import FitConfig  # noqa: E402
from edgeprune.data.loaders import load_npz  # noqa: E402
from edgeprune.data.tensors import calibration_indices, to_model_input  # noqa: E402
from edgeprune.environment import machine_info, package_versions  # noqa: E402
from edgeprune.errors import BudgetUnreachableError  # noqa: E402
from edgeprune.fit.recover import DISTILL_ALPHA, DISTILL_TEMPERATURE  # noqa: E402
from edgeprune.io_atomic import write_json_atomic  # noqa: E402
from edgeprune.latency.candidates import CONFIRM_TIMING, CandidateMeasurer  # noqa: E402
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm  # noqa: E402
from edgeprune.prune.graph import count_macs_and_params, find_classifier  # noqa: E402
from edgeprune.runtimes import get_backend  # noqa: E402
from edgeprune.runtimes.base import Artifact  # noqa: E402
from edgeprune.target import load_target  # noqa: E402
from edgeprune.train.augment import parse_augmentation  # noqa: E402
from edgeprune.train.default_weights import load_model  # noqa: E402
from edgeprune.train.distill import DistillationLoss  # noqa: E402
from edgeprune.train.loop import TrainSpec, train_classifier  # noqa: E402

log = logging.getLogger("pruning_bench")

SEARCH_HEADROOM = 0.05  # fit's default: the Torch-Pruning bisection aims as far under the budget


# -- baseline ------------------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    """Machine and package versions, as recorded with every result."""
    return {**machine_info(), "versions": package_versions(), "provenance": provenance()}


def measure_baseline(s: Settings) -> dict[str, Any]:
    """Measure and evaluate the original once for this results directory (reused when already there)."""
    path = s.results / "baseline.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved["model"] == s.model and Path(saved["weights"]).name == s.weights.name:
            log.info("baseline from %s: %.3f ms", path, saved["baseline_ms"])
            return saved
        raise SystemExit(f"{path} belongs to {saved['model']} / {saved['weights']}; use another --results dir")
    target = load_target(s.target)
    backend = get_backend(target)
    bundle, example = load_original(s.model, s.weights, s.lossless)
    prep = bundle.preprocessing
    assert prep is not None
    work = Path(tempfile.mkdtemp(prefix="pruning-baseline-"))
    try:
        m = CandidateMeasurer(backend, target, example, work).measure(bundle.model.eval(), "original", CONFIRM_TIMING)
        top1_lossless, n_lossless = evaluate_onnx(backend, m.artifact, target, s.lossless, prep)
        top1_jpeg, n_jpeg = evaluate_onnx(backend, m.artifact, target, s.jpeg, prep, s.jpeg_images)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    macs, params = count_macs_and_params(bundle.model, example)
    result = {"model": s.model, "weights": str(s.weights), "target": s.target, "threads": target.threads,
              "baseline_ms": m.stats.median_ms, "p90_ms": m.stats.p90_ms, "cv": m.stats.cv, "runs": m.stats.runs,
              "top1_lossless": top1_lossless, "lossless_images": n_lossless, "top1_jpeg": top1_jpeg,
              "jpeg_images": n_jpeg, "macs": macs, "params": params, "preprocessing": prep.to_dict(),
              "timing": {"warmup_runs": CONFIRM_TIMING.warmup_runs, "min_runs": CONFIRM_TIMING.min_runs,
                         "min_seconds": CONFIRM_TIMING.min_seconds},
              "environment": environment(), "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(path, result)
    log.info("baseline: %.3f ms (p90 %.3f), top-1 lossless %.2f%%, JPEG %.2f%%, %.1f M MACs", result["baseline_ms"],
             result["p90_ms"], 100 * top1_lossless, 100 * top1_jpeg, macs / 1e6)
    return result


# -- cells ---------------------------------------------------------------------------------------------
def cell_record(cell: Cell, s: Settings, baseline: dict[str, Any], budget_ms: float) -> dict[str, Any]:
    """The fields every cell result carries, whatever happened."""
    target = load_target(s.target)
    return {"cell": cell.name, "method": cell.method,
            "importance": IMPORTANCE.get(cell.method, cell.method) if cell.method in EDGEPRUNE_METHODS
            else "torch_pruning.MagnitudeImportance(p=1)",
            "allocation": "latency" if cell.method in EDGEPRUNE_METHODS else "uniform ratio, bisected on measured latency",
            "model": s.model, "weights": str(s.weights), "target": s.target, "threads": target.threads,
            "budget_name": cell.budget_name, "budget_fraction": BUDGETS[cell.budget_name], "budget_ms": budget_ms,
            "baseline_ms": baseline["baseline_ms"], "baseline_top1_lossless": baseline["top1_lossless"],
            "baseline_top1_jpeg": baseline["top1_jpeg"], "macs_before": baseline["macs"],
            "params_before": baseline["params"],
            "finetune": {"epochs": cell.epochs, "images": s.train_images if cell.epochs else 0, "lr": s.finetune_lr,
                         "batch_size": TrainSpec(epochs=1).batch_size, "seconds": 0.0,
                         "schedule": FitConfig.finetune_schedule, "augment": s.augment if cell.epochs else "none",
                         "train_data": s.train_npz.name, **_extra_finetune(cell, s)},
            "seed": s.seed, "environment": environment(), "cpu": machine_info()["cpu"]}


def _extra_finetune(cell: Cell, s: Settings) -> dict[str, Any]:
    if not s.extra_fit:
        return {}
    if cell.method in EDGEPRUNE_METHODS:
        return dict(s.extra_fit)
    if s.recipe in ("kd", "kd50k", "kd45k"):
        return {"distill": True, "note": "distillation from the original, same loss as edgeprune.fit's --distill"}
    return {"note": f"{', '.join(s.extra_fit)} passed to edgeprune.fit only; the Torch-Pruning fine-tune is plain"}


def run_edgeprune_cell(cell: Cell, s: Settings, record: dict[str, Any], work: Path) -> None:
    """``edgeprune.fit`` with the cell's importance and latency search; fills ``record`` in place."""
    out = work / "fit"
    result = edgeprune.fit(
        model=s.model, weights=s.weights, data=s.lossless, train_data=s.train_npz, target=s.target,
        budget=f"{record['budget_ms']:.4f}ms", importance=IMPORTANCE.get(cell.method, cell.method), allocation="latency",
        **({"prune_blocks": True} if cell.method == "blocks" else {}),
        **({"finetune_augment": s.augment} if s.augment != "none" else {}),
        finetune_epochs=cell.epochs, finetune_lr=s.finetune_lr, out=out, force=True, seed=s.seed,
        table_dir=s.table_dir, min_agreement=0.0,  # the benchmark measures accuracy itself: no accuracy guard
        **{"precision": "fp32", **s.extra_fit})  # channel pruning in float, as benchmarked
    report = result.report
    target = load_target(s.target)
    backend = get_backend(target)
    art = report["artifact"]
    artifact = Artifact(Path(art["file"]), art["format"], art["input_name"], tuple(art["input_shape"]))
    prep = load_model(s.model, s.weights).preprocessing
    assert prep is not None
    top1_jpeg, n_jpeg = evaluate_onnx(backend, artifact, target, s.jpeg, prep, s.jpeg_images)
    _validate(backend, artifact, target, s, prep, record)
    final = report["final"]
    record.update({
        "status": "met", "final": _latency(final["latency"]), "speedup": record["baseline_ms"] / final["latency"]["median_ms"],
        "macs_after": final["macs"], "params_after": final["params"], "top1_lossless": final["top1"],
        "top1_jpeg": top1_jpeg, "eval": {"lossless_images": report["evaluation"]["images"], "jpeg_images": n_jpeg},
        "rounds_measured": len(report["search"]["rounds"]), "exports": report["search"]["exports"],
        "fit_baseline_ms": report["baseline"]["latency"]["median_ms"], "method_detail": report["method"],
        "calibration": report["calibration"], "fit_timings_s": report["timings_s"]})
    record["finetune"]["seconds"] = report["finetune"]["seconds"]


def _validate(backend: Any, artifact: Artifact, target: Any, s: Settings, prep: Any, record: dict[str, Any]) -> None:
    """Top-1 on the validation split (held out of fine-tuning and calibration), when the recipe has one."""
    if s.validation is None:
        return
    top1, images = evaluate_onnx(backend, artifact, target, s.validation, prep)
    record["validation"] = {"top1": top1, "images": images, "data": s.validation.name,
                            "note": "training images held out of fine-tuning and calibration; the original was "
                                    "trained on them, so figures near 100% are expected"}


def _latency(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: stats[k] for k in ("median_ms", "p90_ms", "cv", "runs", "noisy")}


def run_tp_cell(cell: Cell, s: Settings, record: dict[str, Any], work: Path) -> None:
    """Torch-Pruning's magnitude pruner, ratio bisected on measured latency; fills ``record`` in place."""
    target = load_target(s.target)
    backend = get_backend(target)
    bundle = load_model(s.model, s.weights)
    prep = bundle.preprocessing
    assert prep is not None
    train = load_npz(s.train_npz)
    calib = to_model_input(train.images[calibration_indices(len(train), FitConfig.calib_images, s.seed)], prep)
    example = calib[:1]  # fit traces and exports with its first calibration image
    model = bundle.model.eval()
    classifier = find_classifier(model, example)
    measurer = CandidateMeasurer(backend, target, example, work)
    # Paired with the original and anchored on its median over the run, as fit does for an absolute budget.
    original = measurer.measure(model, "original", CONFIRM_TIMING)
    measurer.set_reference(original, absolute_budget=True)
    record["fit_baseline_ms"] = original.stats.median_ms  # the cell's own reading of the original (speed drift)
    if cell.method == "tp-exact":
        rewritten = measurer.measure(with_conv_shortcuts(model), "shortcut-convs", CONFIRM_TIMING)
        assert rewritten.paired is not None
        record["shortcut_conv_cost"] = {
            "ratio": rewritten.paired.ratio, "low": rewritten.paired.summary.low,
            "high": rewritten.paired.summary.high,
            "note": "latency of the unpruned model with its shortcuts as 1x1 selection convolutions, paired with "
                    "the original (the form tp-exact prunes and exports)"}
        log.info("shortcut convolutions cost x%.3f [%.3f, %.3f] on the unpruned model", rewritten.paired.ratio,
                 rewritten.paired.summary.low, rewritten.paired.summary.high)
    search = bisect_ratio(lambda r: tp_prune(model, example, r, target.channel_alignment, classifier, cell.method),
                          measurer, record["budget_ms"] * (1 - SEARCH_HEADROOM), s.tp_max_ratio, s.tp_steps,
                          budget_ms=record["budget_ms"])
    record["rounds_measured"] = len(search.rounds)
    record["tp_rounds"] = search.rounds
    while search.model is not None:
        slim = _tp_recover(search.model, s, cell, calib, train, prep, record)
        final, measurements = confirm_recovered(measurer, slim, record["budget_ms"])
        record["rounds_measured"] += measurements
        if final.stats.median_ms <= record["budget_ms"]:
            break
        log.info("tp confirmation missed (%.3f ms > %.3f ms): bisecting deeper", final.stats.median_ms, record["budget_ms"])
        assert search.ratio is not None
        missed_ratio = search.ratio
        search = bisect_ratio(lambda r: tp_prune(model, example, r, target.channel_alignment, classifier, cell.method),
                              measurer, record["budget_ms"] * (1 - SEARCH_HEADROOM), s.tp_max_ratio, s.tp_steps // 2,
                              lo=search.ratio, budget_ms=record["budget_ms"])
        record["tp_rounds"] += search.rounds
        record["rounds_measured"] += len(search.rounds)
        if search.ratio is not None and search.ratio <= missed_ratio:
            search = BisectionResult(None, None, search.floor_ms)  # nothing deeper to try: the budget is missed
    if search.model is None:
        raise BudgetUnreachableError(record["budget_ms"], search.floor_ms, "Torch-Pruning bisection")
    top1_lossless, n_lossless = evaluate_onnx(backend, final.artifact, target, s.lossless, prep)
    top1_jpeg, n_jpeg = evaluate_onnx(backend, final.artifact, target, s.jpeg, prep, s.jpeg_images)
    _validate(backend, final.artifact, target, s, prep, record)
    macs, params = count_macs_and_params(slim, example)
    stats = final.stats.to_dict()
    record.update({"status": "met", "final": _latency(stats), "speedup": record["baseline_ms"] / stats["median_ms"],
                   "macs_after": macs, "params_after": params, "top1_lossless": top1_lossless, "top1_jpeg": top1_jpeg,
                   "eval": {"lossless_images": n_lossless, "jpeg_images": n_jpeg}, "tp_ratio": search.ratio,
                   "method_detail": {"pruner": "torch_pruning.pruner.MagnitudePruner", "round_to": target.channel_alignment,
                                     "global_pruning": False, "pruning_ratio": search.ratio, "variant": cell.method,
                                     "customized_pruners": ("none: shortcuts as 1x1 selection convolutions"
                                                            if cell.method == "tp-exact" else
                                                            "edgeprune.prune.graph._ChannelPaddingPruner"),
                                     "paired": True,
                                     "bn_recalibrated": s.tp_bn_recalibrate}})


def _tp_recover(pruned: torch.nn.Module, s: Settings, cell: Cell, calib: torch.Tensor, train: Any, prep: Any,
                record: dict[str, Any]) -> torch.nn.Module:
    """Batch-norm re-estimation on fit's calibration images, then fit's fine-tune (same TrainSpec)."""
    import copy

    slim = copy.deepcopy(pruned)
    if s.tp_bn_recalibrate:
        recalibrate_batchnorm(slim, calib)
    if cell.epochs:
        start = time.perf_counter()
        x = to_model_input(train.images, prep)
        spec = TrainSpec(epochs=cell.epochs, lr=s.finetune_lr, seed=s.seed, schedule=FitConfig.finetune_schedule,
                         augment=s.augment)
        loss = None
        if s.recipe in ("kd", "kd50k", "kd45k"):
            teacher = load_model(s.model, s.weights).model.eval()
            loss = DistillationLoss(teacher, DISTILL_TEMPERATURE, DISTILL_ALPHA)
        train_classifier(slim, x, torch.from_numpy(train.labels), spec, loss_fn=loss,
                         on_epoch=lambda e, loss: log.info("tp fine-tune epoch %d/%d: loss %.4f", e, cell.epochs, loss))
        record["finetune"]["seconds"] += time.perf_counter() - start
    return slim.eval()


def run_cell(cell: Cell, s: Settings, baseline: dict[str, Any]) -> dict[str, Any]:
    """Run one cell and write its result file; an unreachable budget is a result, not a crash."""
    budget_ms = baseline["baseline_ms"] * BUDGETS[cell.budget_name]
    record = cell_record(cell, s, baseline, budget_ms)
    work = Path(tempfile.mkdtemp(prefix=f"pruning-{cell.name}-"))
    start = time.perf_counter()
    log.info("cell %s: budget %.4f ms", cell.name, budget_ms)
    try:
        if cell.method in TP_METHODS:
            run_tp_cell(cell, s, record, work)
        else:
            run_edgeprune_cell(cell, s, record, work)
    except BudgetUnreachableError as exc:
        log.warning("cell %s: %s", cell.name, exc)
        record.update({"status": "unreachable", "floor_ms": exc.floor_ms, "detail": str(exc)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record["wall_seconds"] = time.perf_counter() - start
    record["created_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(cell.path(s.results), record)
    if record["status"] == "met":
        log.info("cell %s: %.3f ms (%.2fx), top-1 lossless %.2f%%, JPEG %.2f%% [%.0f s]", cell.name,
                 record["final"]["median_ms"], record["speedup"], 100 * record["top1_lossless"],
                 100 * record["top1_jpeg"], record["wall_seconds"])
    return record


# -- command line --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="pruning benchmark: methods at equal measured latency budgets")
    p.add_argument("--model", default="cifar-resnet56")
    p.add_argument("--weights", type=Path, default=WEIGHTS / "resnet56-4bfd9763.th")
    p.add_argument("--target", default="cpu")
    p.add_argument("--methods", nargs="*", default=list(METHOD_ORDER), choices=list(METHOD_ORDER))
    p.add_argument("--budgets", nargs="*", default=list(BUDGETS), choices=list(BUDGETS))
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--finetune-lr", type=float, default=FitConfig.finetune_lr)
    p.add_argument("--train-images", type=int, default=10_000, help="class-balanced decoded training subset")
    p.add_argument("--jpeg-images", type=int, default=None, help="first N JPEG test images (default all 10,000)")
    p.add_argument("--tp-steps", type=int, default=10, help="latency measurements of the Torch-Pruning bisection")
    p.add_argument("--tp-max-ratio", type=float, default=0.75,
                   help="deepest uniform ratio tried; above 0.75 Torch-Pruning's round_to gives resnet56 wider layers "
                        "again (at 0.9 it keeps 16/32/64 channels), so deeper ratios are not deeper models")
    p.add_argument("--no-tp-bn-recalibrate", dest="tp_bn_recalibrate", action="store_false",
                   help="skip batch-norm re-estimation of the Torch-Pruning baseline (fit does it by default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", choices=("", "kd", "kd50k", "kd45k"), default="",
                   help="kd: fine-tune every method (Torch-Pruning too) with distillation from the original, on the "
                        "lossless 5,085-image training subset instead of the decoded JPEG subset; cells get 'kd'. "
                        "kd50k: the same on all 50,000 training images (decoded JPEG); cells get 'kd50k'. "
                        "kd45k (issue 18): the same on the 44,915 training images outside the lossless 5,085-image "
                        "training subset, which is held out as the validation split every cell is also scored on "
                        "(recipes and methods are chosen on it, never on the test subset)")
    p.add_argument("--augment", default="none",
                   help="augment every method's fine-tuning batches (fit --augment): none, crop, flip or crop,flip; "
                        "cells get '-cropflip' etc.")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="one JSON file per cell + baseline.json")
    p.add_argument("--cache-dir", type=Path, default=None, help="decoded training subset (default tools/bench/.cache)")
    p.add_argument("--table-dir", type=Path, default=None, help="latency tables (default: edgeprune's cache)")
    p.add_argument("--cells", nargs="*", default=None, help="glob patterns of cell ids, e.g. 'lasso-*' '*-2x-ft0'")
    p.add_argument("--part", default=None, help="K/N: run every N-th selected cell starting at K (parallel parts)")
    p.add_argument("--render-only", action="store_true", help="render docs and plots from saved results")
    p.add_argument("--no-render", action="store_true", help="do not render after running cells")
    p.add_argument("--allow-speed-drift", action="store_true",
                   help="run cells even when the machine times the original >10%% off the saved baseline")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument("--figures", type=Path, default=REPO / "docs" / "figures")
    p.add_argument("--smoke", action="store_true",
                   help="tiny end-to-end check: resnet20, 1.5x, l1 + tp, 1 epoch on 256 images, temp results and doc")
    fields = FitConfig.__dataclass_fields__
    if "distill" in fields:
        p.add_argument("--distill", action="store_true", help="fit's distillation during fine-tune (edgeprune methods)")
    if "steps" in fields:
        p.add_argument("--steps", type=int, default=None, help="fit's fine-tune steps (edgeprune methods)")
    if "distill_features" in fields:
        p.add_argument("--feature-hints", action="store_true",
                       help="fit --distill-features (edgeprune methods); cells get '-hints'")
    args = p.parse_args(argv)
    if args.smoke:
        apply_smoke(args)
    return args


def apply_smoke(args: argparse.Namespace) -> None:
    """Replace the options by the smoke configuration (results, doc and figures in a temp dir)."""
    tmp = Path(tempfile.mkdtemp(prefix="pruning-smoke-"))
    args.model, args.weights = "cifar-resnet20", WEIGHTS / "resnet20-12fca82f.th"
    args.methods, args.budgets = ["l1", "tp"], ["1.5x"]
    args.finetune_epochs, args.train_images, args.jpeg_images = 1, 256, 200
    args.tp_steps = 6
    args.results, args.doc, args.figures = tmp / "results", tmp / "benchmarks.md", tmp / "figures"
    args.cache_dir = args.cache_dir or tmp / "cache"
    log.info("smoke run into %s", tmp)


def settings(args: argparse.Namespace) -> Settings:
    """Settings from the options, preparing the training subset."""
    extra = extra_fit_options(args)
    if args.recipe == "kd":
        train_npz, args.train_images = DATA / "cifar10_train_lossless_subset5085.npz", 5085
        extra["distill"] = True
    elif args.recipe == "kd45k":
        train_npz = prepare_train_npz(DATA / "cifar10_train_jpegbytes.npz", 0, args.seed,
                                      args.cache_dir or default_cache_dir(), exclude_npz=VALIDATION)
        args.train_images = len(load_npz(train_npz))
        extra["distill"] = True
    elif args.recipe == "kd50k":
        args.train_images = 50_000
        train_npz = prepare_train_npz(DATA / "cifar10_train_jpegbytes.npz", args.train_images, args.seed,
                                      args.cache_dir or default_cache_dir())
        extra["distill"] = True
    else:
        train_npz = prepare_train_npz(DATA / "cifar10_train_jpegbytes.npz", args.train_images, args.seed,
                                      args.cache_dir or default_cache_dir())
    return Settings(args.model, args.weights, args.target, DATA / "cifar10_test_lossless_first1017.npz",
                    DATA / "cifar10_test_jpeg.npz", train_npz, args.train_images, args.finetune_epochs,
                    args.finetune_lr, args.jpeg_images, args.tp_steps, args.tp_max_ratio,
                    args.tp_bn_recalibrate, args.seed, args.results, args.table_dir, extra, args.recipe,
                    parse_augmentation(args.augment).spec, VALIDATION if args.recipe == "kd45k" else None)


def render(args: argparse.Namespace) -> None:
    """Render the markdown section and the plots from the results directory."""
    baseline, cells = load_results(args.results)
    if baseline is None:
        raise SystemExit(f"no baseline.json in {args.results}: run some cells first")
    cells = [c for c in cells if c["model"] == baseline["model"]]
    rel = Path("figures") if args.figures.resolve() == (REPO / "docs" / "figures") else args.figures
    command = "python tools/bench/pruning.py" + (" --smoke" if args.smoke else "")
    if validated(cells):
        write_section(args.doc, render_markdown(baseline, cells, str(rel), command), VALIDATED_BEGIN, VALIDATED_END,
                      VALIDATED_HEADING)
    else:
        write_section(args.doc, render_markdown(baseline, cells, str(rel), command))
    for path in plot(baseline, cells, args.figures):
        log.info("wrote %s", path)
    log.info("wrote %s (%d cells)", args.doc, len(cells))


def main(argv: list[str] | None = None) -> None:
    """Run the selected cells that have no result yet, then render."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    if not args.render_only:
        s = settings(args)
        s.results.mkdir(parents=True, exist_ok=True)
        cells = select(all_cells(args.methods, args.budgets, args.finetune_epochs,
                                 cell_recipe(args.recipe, args.augment, args.finetune_lr,
                                             getattr(args, "feature_hints", False), args.seed)), args.cells, args.part)
        todo = [c for c in cells if not c.path(s.results).exists()]
        log.info("%d cell(s) selected, %d to run: %s", len(cells), len(todo), " ".join(c.name for c in todo))
        baseline = measure_baseline(s) if todo else None
        for cell in todo:
            assert baseline is not None
            if not args.allow_speed_drift:
                wait_for_baseline_speed(s, baseline)
            run_cell(cell, s, baseline)
        if args.no_render:
            return
    render(args)


if __name__ == "__main__":
    main()
