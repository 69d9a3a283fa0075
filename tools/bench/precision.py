"""Precision benchmark (issue 20): fp32 pruning vs INT8 alone vs INT8 + pruning, under one measured budget.

    python tools/bench/precision.py --targets cpu --speedups 2x 3x 4x            # no fine-tune cells
    python tools/bench/precision.py --targets cpu --speedups 3x --finetune-epochs 4 --methods int8-blocks fp32-blocks
    python tools/bench/precision.py --render-only                                   # docs/benchmarks.md section

cifar-resnet56 (akamaster weights). Every pruning cell is one ``edgeprune.fit`` at a budget given as a share of the
original (50%, 33.3%, 25% for 2x, 3x, 4x), so each run measures its own original and its verdict is the paired
ratio of the shipped artifact against it, timed in the same run: cells run minutes apart stay comparable. Methods:

* ``int8``: the unpruned model quantized by the target runtime's quantizer (edgeprune's ``Int8Backend``), timed
  paired against the float original (``edgeprune bench``'s pairing) and evaluated. Not a search: one cell per target;
* ``fp32-lasso`` / ``fp32-blocks``: fit ``--precision fp32 --importance lasso`` (``--prune-blocks``);
* ``int8-lasso`` / ``int8-blocks``: the same with ``--precision int8``: every candidate is quantized and measured.

Calibration (and the fine-tune, where there is one) uses the JPEG-decoded CIFAR-10 training images outside the
5,085-image lossless training subset; that subset is the validation split, kept out of every calibration and
fine-tune, and the goal's choice between methods is made on it. Top-1 is reported on the lossless test subset
(1,017 images), measured in the target's runtime on the shipped artifact. One JSON file per cell in
``docs/figures/precision-results/``; cells already there are skipped, so runs resume.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from docs_section import write_section  # noqa: E402
from provenance import provenance  # noqa: E402
from pruning_cells import DATA, VALIDATION, WEIGHTS  # noqa: E402
from pruning_data import default_cache_dir, evaluate_onnx, load_original, prepare_train_npz  # noqa: E402

import edgeprune  # noqa: E402
from edgeprune.data.loaders import load_npz  # noqa: E402
from edgeprune.data.tensors import calibration_indices, to_model_input  # noqa: E402
from edgeprune.environment import machine_info, package_versions  # noqa: E402
from edgeprune.errors import BudgetUnreachableError, ValidationFailedError  # noqa: E402
from edgeprune.io_atomic import write_json_atomic  # noqa: E402
from edgeprune.quantize.backend import MAX_CALIBRATION_IMAGES, Int8Backend  # noqa: E402
from edgeprune.runtimes import get_backend  # noqa: E402
from edgeprune.runtimes.base import Artifact  # noqa: E402
from edgeprune.target import load_target  # noqa: E402
from edgeprune.train.default_weights import load_model  # noqa: E402
from edgeprune.validate.accuracy import evaluate_session  # noqa: E402
from edgeprune.validate.bench import bench_artifacts  # noqa: E402

log = logging.getLogger("precision_bench")

TARGETS = ("cpu", "cpu-openvino", "cpu-tflite")
SPEEDUPS = {"2x": 2.0, "3x": 3.0, "4x": 4.0}
METHODS = ("int8", "fp32-lasso", "fp32-blocks", "int8-lasso", "int8-blocks")
#: budget-free cells: the unpruned model quantized (cifar-resnet56; mobilenet_v2 on ImageNet samples)
ALONE = ("int8", "mbv2-int8", "mbv2-mixed")
LOSSLESS = DATA / "cifar10_test_lossless_first1017.npz"
#: mobilenet_v2 with torchvision's ImageNet weights on the 20 ImageNet samples (class index in each file name)
MBV2_WEIGHTS = DATA.parent / "models" / "imagenet" / "mobilenet_v2-b0353104.pth"
IMAGENET_SAMPLES = DATA.parent / "samples" / "imagenet_foolbox"
DEFAULT_RESULTS = REPO / "docs" / "figures" / "precision-results"
HEADING = "## Precision and pruning under one measured budget"
#: seconds of alternating rounds for the INT8-alone pairing (fit's confirmations take about as long)
PAIR_SECONDS = 20.0
#: the issue's goals: top-1 at 2x on cpu with no fine-tune; points lost at 3x after the short fine-tune
GOAL_2X_TOP1 = 0.922
GOAL_3X_LOSS = 0.010


@dataclass(frozen=True)
class Cell:
    """One method on one target at one speedup (``int8`` alone has none), with or without the fine-tune."""

    target: str
    method: str
    speedup: str = ""
    epochs: int = 0

    @property
    def name(self) -> str:
        """Cell id, e.g. ``cpu-int8-lasso-2x-ft0`` or ``cpu-int8``."""
        if self.method in ALONE:
            return f"{self.target}-{self.method}"
        return f"{self.target}-{self.method}-{self.speedup}-ft{self.epochs}{'kd45k' if self.epochs else ''}"

    def path(self, results: Path) -> Path:
        """Its result file."""
        return results / f"cell-{self.name}.json"


def cells(targets: list[str], methods: list[str], speedups: list[str], epochs: int) -> list[Cell]:
    """Every cell the options select: ``int8`` once per target, the others per speedup."""
    out: list[Cell] = []
    for target in targets:
        out += [Cell(target, m) for m in ALONE if m in methods]
        out += [Cell(target, m, s, epochs) for s in speedups for m in methods if m not in ALONE]
    return out


# -- running -------------------------------------------------------------------------------------------
def _record(cell: Cell, weights: Path) -> dict[str, Any]:
    return {"cell": cell.name, "target": cell.target, "method": cell.method, "speedup_goal": cell.speedup,
            "budget_share": 1 / SPEEDUPS[cell.speedup] if cell.speedup else None, "finetune_epochs": cell.epochs,
            "model": "cifar-resnet56", "weights": weights.name,
            "environment": {**machine_info(), "versions": package_versions(), "provenance": provenance()}}


def run_int8_alone(cell: Cell, weights: Path, train_npz: Path, work: Path, record: dict[str, Any]) -> None:
    """Quantize the unpruned model, time it paired against the float original, evaluate both."""
    target = load_target(cell.target)
    backend = get_backend(target)
    bundle, example = load_original("cifar-resnet56", weights, LOSSLESS)
    prep = bundle.preprocessing
    assert prep is not None
    model = bundle.model.eval()
    train = load_npz(train_npz)
    picked = calibration_indices(len(train), MAX_CALIBRATION_IMAGES, 0)
    calibration = to_model_input(train.images[picked], prep).numpy()
    fp32 = backend.export(model, example, work / "fp32", target)
    int8_target = target.with_precision("int8")
    int8 = Int8Backend(backend, calibration).export(model, example, work / "int8", int8_target)
    rows = bench_artifacts([fp32.path, int8.path], target, seconds=PAIR_SECONDS, top_kernels=0)
    pair = rows[1]
    top1 = {name: evaluate_onnx(backend, art, tgt, LOSSLESS, prep)[0]
            for name, art, tgt in (("fp32", fp32, target), ("int8", int8, int8_target))}
    validation = evaluate_onnx(backend, int8, int8_target, VALIDATION, prep)[0]
    record.update({"status": "measured", "speedup": 1 / pair.ratio, "speedup_interval": [1 / pair.ratio_high,
                                                                                          1 / pair.ratio_low],
                   "rounds": pair.rounds, "baseline_ms": rows[0].median_ms, "final_ms": pair.median_ms,
                   "baseline_top1": top1["fp32"], "top1": top1["int8"], "validation_top1": validation,
                   "precision": "int8", "calibration_images": len(picked)})


def run_mbv2_int8(cell: Cell, work: Path, record: dict[str, Any]) -> None:
    """mobilenet_v2 (ImageNet weights) quantized, timed paired against its float export, and compared on the 20
    ImageNet samples: top-1 of each and the share of images where they agree. The samples are also the
    calibration images (the only ImageNet images here), which flatters the agreement a little."""
    from edgeprune.data.loaders import load_image_folder

    target = load_target(cell.target)
    backend = get_backend(target)
    bundle = load_model("torchvision:mobilenet_v2", MBV2_WEIGHTS)
    prep = bundle.preprocessing
    assert prep is not None
    data = load_image_folder(IMAGENET_SAMPLES, (prep.height, prep.width), prep.channels)
    labels = np.array([int(p.stem.split("_")[-1]) for p in sorted(IMAGENET_SAMPLES.iterdir()) if p.is_file()])
    x = to_model_input(data.images, prep)
    model = bundle.model.eval()
    fp32 = backend.export(model, x[:1], work / "fp32", target)
    int8_target = target.with_precision("int8")
    int8 = Int8Backend(backend, x.numpy()).export(model, x[:1], work / "int8", int8_target)
    rows = bench_artifacts([fp32.path, int8.path], target, seconds=PAIR_SECONDS, top_kernels=0)
    pair = rows[1]
    predictions = {}
    for name, art, tgt in (("fp32", fp32, target), ("int8", int8, int8_target)):
        predictions[name] = evaluate_session(backend.load(art, tgt), art.input_name, x, labels)
    record.update({"status": "measured", "model": "torchvision:mobilenet_v2", "weights": MBV2_WEIGHTS.name,
                   "speedup": 1 / pair.ratio, "speedup_interval": [1 / pair.ratio_high, 1 / pair.ratio_low],
                   "rounds": pair.rounds, "baseline_ms": rows[0].median_ms, "final_ms": pair.median_ms,
                   "baseline_top1": predictions["fp32"].top1, "top1": predictions["int8"].top1,
                   "agreement": float(np.mean(predictions["fp32"].predictions == predictions["int8"].predictions)),
                   "images": len(labels), "precision": "int8", "calibration_images": len(labels),
                   "calibration_note": "the 20 evaluation images themselves (the only ImageNet images here)"})


#: views of each ImageNet sample the mixed-precision search chooses on (the sample itself is kept for judging)
MBV2_VIEWS = ((0.0, 0.0, 0.85, 0.85), (0.15, 0.15, 1.0, 1.0), (0.15, 0.0, 1.0, 0.85), (0.0, 0.15, 0.85, 1.0))


def _imagenet_views(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the 20 samples, their labels, 9 other views of each: 4 crops and their mirrors plus the mirrored sample),
    as uint8 N x H x W x C at ``size`` px."""
    from PIL import Image

    samples, labels, views = [], [], []
    for path in sorted(p for p in IMAGENET_SAMPLES.iterdir() if p.is_file()):
        image = Image.open(path).convert("RGB")
        width, height = image.size
        whole = np.asarray(image.resize((size, size)))
        samples.append(whole)
        labels.append(int(path.stem.split("_")[-1]))
        views.append(whole[:, ::-1])
        for left, top, right, bottom in MBV2_VIEWS:
            crop = np.asarray(image.crop((int(left * width), int(top * height), int(right * width),
                                          int(bottom * height))).resize((size, size)))
            views += [crop, crop[:, ::-1]]
    return np.stack(samples), np.array(labels), np.ascontiguousarray(np.stack(views))


def run_mbv2_mixed(cell: Cell, work: Path, record: dict[str, Any]) -> None:
    """mobilenet_v2 with the layers mixed precision leaves in float (``--precision auto``'s search, edgeprune's
    ``search_float_layers``), chosen and calibrated on 9 other views of each ImageNet sample (crops, mirrors:
    180 images) and judged on the 20 samples themselves; float, INT8 and mixed timed paired in one run."""
    from edgeprune.fit.precision_stage import search_float_layers

    target = load_target(cell.target)
    backend = get_backend(target)
    bundle = load_model("torchvision:mobilenet_v2", MBV2_WEIGHTS)
    prep = bundle.preprocessing
    assert prep is not None
    samples, labels, views = _imagenet_views(prep.height)
    x = to_model_input(samples, prep)
    chosen_on = to_model_input(views, prep)
    model = bundle.model.eval()
    int8_target = target.with_precision("int8")
    quantizer = Int8Backend(backend, chosen_on.numpy())
    start = time.perf_counter()
    mixed = search_float_layers(quantizer, backend, model, x[:1], int8_target, chosen_on)
    search_seconds = time.perf_counter() - start
    fp32 = backend.export(model, x[:1], work / "fp32", target)
    int8 = quantizer.export(model, x[:1], work / "int8", int8_target)
    quantizer.float_layers = mixed.float_layers
    mixed_art = quantizer.export(model, x[:1], work / "mixed", int8_target)
    rows = bench_artifacts([fp32.path, int8.path, mixed_art.path], target, seconds=PAIR_SECONDS, top_kernels=0)
    predictions = {}
    for name, art, tgt in (("fp32", fp32, target), ("int8", int8, int8_target), ("mixed", mixed_art, int8_target)):
        predictions[name] = evaluate_session(backend.load(art, tgt), art.input_name, x, labels)
    agree = {name: float(np.mean(predictions["fp32"].predictions == predictions[name].predictions))
             for name in ("int8", "mixed")}
    record.update({"status": "measured", "model": "torchvision:mobilenet_v2", "weights": MBV2_WEIGHTS.name,
                   "float_layers": list(mixed.float_layers), "layers": mixed.layers, "search_seconds": search_seconds,
                   "search": mixed.to_dict(),
                   "speedup": 1 / rows[2].ratio, "speedup_interval": [1 / rows[2].ratio_high, 1 / rows[2].ratio_low],
                   "int8_speedup": 1 / rows[1].ratio,
                   "int8_speedup_interval": [1 / rows[1].ratio_high, 1 / rows[1].ratio_low],
                   "rounds": rows[2].rounds, "baseline_ms": rows[0].median_ms, "final_ms": rows[2].median_ms,
                   "baseline_top1": predictions["fp32"].top1, "int8_top1": predictions["int8"].top1,
                   "top1": predictions["mixed"].top1, "int8_agreement": agree["int8"], "agreement": agree["mixed"],
                   "chosen_on_agreement": {"int8": mixed.int8_error.agreement, "mixed": mixed.error.agreement,
                                           "images": mixed.error.images},
                   "images": len(labels), "precision": "int8 (mixed)", "calibration_images": len(views),
                   "calibration_note": "9 other views of each sample (4 crops, their mirrors, the mirrored sample); "
                                       "the 20 samples themselves are only evaluated"})


def run_fit_cell(cell: Cell, weights: Path, train_npz: Path, work: Path, record: dict[str, Any],
                 table_dir: Path | None) -> None:
    """One ``edgeprune.fit`` at the cell's budget share; fills ``record``."""
    precision, importance = cell.method.split("-")
    try:
        report = edgeprune.fit(
            model="cifar-resnet56", weights=weights, data=LOSSLESS, train_data=train_npz, target=cell.target,
            budget=f"{100 / SPEEDUPS[cell.speedup]:.3f}%", importance="lasso", allocation="latency",
            prune_blocks=importance == "blocks", precision=precision, finetune_epochs=cell.epochs,
            distill=cell.epochs > 0, out=work / "fit", force=True, seed=0, table_dir=table_dir,
            min_agreement=0.0).report  # the benchmark measures accuracy itself: no accuracy guard
        status = "met"
    except ValidationFailedError as exc:  # the fit wrote its results and says which check failed: a result too
        report = json.loads((work / "fit" / "report.json").read_text())
        status = "validation failed"
        record["validation_failure"] = str(exc).split(" (results kept")[0]
    art = report["artifact"]
    target = load_target(cell.target).with_precision(precision)
    artifact = Artifact(Path(art["file"]), art["format"], art["input_name"], tuple(art["input_shape"]))
    prep = load_original("cifar-resnet56", weights, LOSSLESS)[0].preprocessing
    assert prep is not None
    validation = evaluate_onnx(get_backend(target), artifact, target, VALIDATION, prep)[0]
    record.update({
        "status": status, "speedup": report.get("speedup_measured"), "speedup_interval": report.get("speedup_interval"),
        "baseline_ms": report["baseline"]["latency"]["median_ms"], "final_ms": report["final"]["latency"]["median_ms"],
        "baseline_top1": report["baseline"]["top1"], "top1": report["final"]["top1"], "validation_top1": validation,
        "macs_before": report["baseline"]["macs"], "macs_after": report["final"]["macs"], "precision": precision,
        "rounds_measured": len(report["search"]["rounds"]), "finetune_seconds": report["finetune"]["seconds"],
        "quantization": report["method"].get("quantization"), "fit_timings_s": report["timings_s"]})


def run_cell(cell: Cell, weights: Path, train_npz: Path, results: Path, table_dir: Path | None) -> dict[str, Any]:
    """Run one cell and write its result; a budget out of reach is a result, not a crash."""
    record = _record(cell, weights)
    work = Path(tempfile.mkdtemp(prefix=f"precision-{cell.name}-"))
    start = time.perf_counter()
    log.info("cell %s", cell.name)
    try:
        if cell.method == "int8":
            run_int8_alone(cell, weights, train_npz, work, record)
        elif cell.method == "mbv2-int8":
            run_mbv2_int8(cell, work, record)
        elif cell.method == "mbv2-mixed":
            run_mbv2_mixed(cell, work, record)
        else:
            run_fit_cell(cell, weights, train_npz, work, record, table_dir)
    except BudgetUnreachableError as exc:
        log.warning("cell %s: %s", cell.name, exc)
        record.update({"status": "unreachable", "detail": str(exc)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record["wall_seconds"] = time.perf_counter() - start
    record["created_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(cell.path(results), record)
    if record.get("top1") is not None:
        log.info("cell %s: %.2fx, top-1 %.2f%% [%.0f s]", cell.name, record["speedup"] or math.nan,
                 100 * record["top1"], record["wall_seconds"])
    return record


# -- rendering -----------------------------------------------------------------------------------------
def load_cells(results: Path) -> list[dict[str, Any]]:
    """Every saved cell result."""
    return [json.loads(p.read_text()) for p in sorted(results.glob("cell-*.json"))]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _cell_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return "not run"
    if r["status"] == "unreachable":
        return "budget not met"
    low, high = r.get("speedup_interval") or (None, None)
    interval = f" [{low:.2f}, {high:.2f}]" if low else ""
    failed = " (failed validation)" if r["status"] == "validation failed" else ""
    return f"{_pct(r['top1'])} at {r['speedup']:.2f}×{interval}{failed}"


def render(rows: list[dict[str, Any]]) -> list[str]:
    """The benchmarks.md section: one table per target, then the goal check."""
    by_name = {r["cell"]: r for r in rows}
    env = rows[0]["environment"] if rows else {}
    versions = env.get("versions", {})
    lines = [HEADING, "",
             f"`python tools/bench/precision.py` (see its docstring for each cell's command) on {env.get('cpu', '?')} "
             f"(2 logical cores), 1 thread; torch {versions.get('torch', '?')}, onnxruntime "
             f"{versions.get('onnxruntime', '?')}, openvino {versions.get('openvino', '?')}, nncf "
             f"{versions.get('nncf', '?')}, ai-edge-quantizer {versions.get('ai-edge-quantizer', '?')}.", "",
             "cifar-resnet56 (akamaster weights). Each entry: top-1 on the lossless test subset (1,017 images) of the "
             "shipped artifact in the target's runtime, at its **measured** speedup: the median of per-round ratios "
             "against the float original timed alternately in the same run, with its 90% interval. Budgets are "
             "shares of the original (2x = 50%), so each fit measures its own original. `int8` is the unpruned model "
             "quantized, no search (the same number in every column; it meets a column's budget only where its "
             "speedup reaches it). Quantizers: ONNX Runtime `quantize_static` (QDQ, per-channel int8 weights, uint8 "
             "activations), NNCF `quantize` (OpenVINO), ai-edge-quantizer `static_wi8_ai8` (LiteRT, fully integer); "
             "128 calibration images from the training set. `ft4kd45k` = 4 distillation epochs over the 44,915 JPEG "
             "training images outside the validation split.", ""]
    for target in TARGETS:
        mine = [r for r in rows if r["target"] == target and not r["method"].startswith("mbv2-")]
        if not mine:
            continue
        base = next((r for r in mine if r.get("baseline_top1") is not None), None)
        lines += [f"### `{target}`" + (f" (original {_pct(base['baseline_top1'])})" if base else ""), "",
                  "| method | fine-tune | " + " | ".join(SPEEDUPS) + " |", "|---|---|" + "---|" * len(SPEEDUPS)]
        alone = by_name.get(f"{target}-int8")
        if alone:
            lines.append("| int8 alone | none | " + " | ".join(
                _cell_text(alone) + ("" if alone["speedup"] >= s else " (misses)") for s in SPEEDUPS.values()) + " |")
        for epochs in sorted({r["finetune_epochs"] for r in mine if r["method"] not in ALONE}):
            for method in METHODS[1:]:
                picked = [by_name.get(Cell(target, method, s, epochs).name) for s in SPEEDUPS]
                if any(picked):
                    lines.append(f"| {method} | {f'{epochs} ep kd45k' if epochs else 'none'} | "
                                 + " | ".join(_cell_text(p) for p in picked) + " |")
        lines.append("")
    mbv2 = [by_name[f"{t}-mbv2-int8"] for t in TARGETS if f"{t}-mbv2-int8" in by_name]
    if mbv2:
        lines += ["### mobilenet_v2 (ImageNet weights), INT8 alone", "",
                  "torchvision's weights, the 20 ImageNet sample images at 224 px (resize 256, centre crop); they "
                  "are also the calibration images, the only ImageNet images here, which flatters the agreement a "
                  "little. Twenty images measure agreement and top-1 to ±5 points at best.", "",
                  "| target | float top-1 | INT8 top-1 | agreement | speedup (paired, 90% interval) | float ms |",
                  "|---|---|---|---|---|---|"]
        for r in mbv2:
            low, high = r["speedup_interval"]
            lines.append(f"| `{r['target']}` | {_pct(r['baseline_top1'])} | {_pct(r['top1'])} | "
                         f"{_pct(r['agreement'])} ({r['images']} images) | {r['speedup']:.2f}× [{low:.2f}, {high:.2f}] "
                         f"| {r['baseline_ms']:.2f} |")
        lines.append("")
    mixed = [by_name[f"{t}-mbv2-mixed"] for t in TARGETS if f"{t}-mbv2-mixed" in by_name]
    if mixed:
        lines += ["### mobilenet_v2: mixed precision (`--precision auto`'s layers left in float)", "",
                  "The layers are chosen by edgeprune's search (per-layer sensitivity, then greedy on measured KL; "
                  "`edgeprune/quantize/mixed.py`) on 180 other views of the samples (four crops and their mirrors, "
                  "the mirrored samples), which are also the calibration images, and judged on the 20 samples. "
                  "Float, INT8 and mixed artifacts are timed paired in one run.", "",
                  "| target | layers in float | agreement INT8 → mixed (20 samples) | agreement on the 180 views | "
                  "top-1 float / INT8 / mixed | speedup INT8 | speedup mixed (90% interval) | search s |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in mixed:
            low, high = r["speedup_interval"]
            views = r["chosen_on_agreement"]
            lines.append(f"| `{r['target']}` | {len(r['float_layers'])} of {r['layers']}: "
                         f"{', '.join(f'`{n}`' for n in r['float_layers']) or 'none'} | {_pct(r['int8_agreement'])} → "
                         f"{_pct(r['agreement'])} | {_pct(views['int8'])} → {_pct(views['mixed'])} | "
                         f"{_pct(r['baseline_top1'])} / {_pct(r['int8_top1'])} / {_pct(r['top1'])} | "
                         f"{r['int8_speedup']:.2f}× | {r['speedup']:.2f}× [{low:.2f}, {high:.2f}] | "
                         f"{r['search_seconds']:.0f} |")
        lines.append("")
    lines += goal_lines(by_name)
    return lines


def _best(by_name: dict[str, Any], names: list[str]) -> dict[str, Any] | None:
    """The met cell with the best validation top-1 (the choice is never made on the test subset)."""
    met = [by_name[n] for n in names if n in by_name and by_name[n]["status"] == "met"]
    return max(met, key=lambda r: r["validation_top1"]) if met else None


def goal_lines(by_name: dict[str, Any]) -> list[str]:
    """The issue's two goals on ``cpu``, each from the method chosen on the validation split."""
    lines = ["### Goal check (`cpu`)", ""]
    methods = [m for m in METHODS if m != "int8"]
    two = _best(by_name, [Cell("cpu", m, "2x", 0).name for m in methods]
                + (["cpu-int8"] if by_name.get("cpu-int8", {}).get("speedup", 0) >= 2.0 else []))
    if two is None:
        lines.append("* 2x, no fine-tune: no cell met the budget yet.")
    else:
        verdict = "met" if two["top1"] >= GOAL_2X_TOP1 else "missed"
        lines.append(f"* 2x, no fine-tune, goal ≥ {100 * GOAL_2X_TOP1:.1f}%: chosen on validation `{two['cell']}`, "
                     f"{_pct(two['top1'])} at {two['speedup']:.2f}× measured: **{verdict}**.")
    three = _best(by_name, [n for n in by_name if n.startswith("cpu-") and "-3x-ft" in n and not n.endswith("ft0")])
    if three is None:
        lines.append("* 3x after the short fine-tune: no fine-tuned cell met the budget yet.")
    else:
        loss = three["baseline_top1"] - three["top1"]
        verdict = "met" if loss <= GOAL_3X_LOSS else "missed"
        lines.append(f"* 3x after the short fine-tune, goal ≤ {100 * GOAL_3X_LOSS:.1f} point lost: chosen on "
                     f"validation `{three['cell']}`, {_pct(three['top1'])} against the original's "
                     f"{_pct(three['baseline_top1'])} ({-100 * loss:+.2f} points) at {three['speedup']:.2f}×: "
                     f"**{verdict}**.")
    return lines + [""]


# -- command line --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=WEIGHTS / "resnet56-4bfd9763.th")
    p.add_argument("--targets", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS) + ["mbv2-int8", "mbv2-mixed"])
    p.add_argument("--speedups", nargs="*", default=list(SPEEDUPS), choices=list(SPEEDUPS))
    p.add_argument("--finetune-epochs", type=int, default=0, help="0, or the distillation epochs of the short recipe")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--cache-dir", type=Path, default=None, help="decoded training images (default tools/bench/.cache)")
    p.add_argument("--table-dir", type=Path, default=None, help="latency tables (default: edgeprune's cache)")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument("--render-only", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the selected cells that have no result yet, then render the section."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    if not args.render_only:
        args.results.mkdir(parents=True, exist_ok=True)
        todo = [c for c in cells(args.targets, args.methods, args.speedups, args.finetune_epochs)
                if not c.path(args.results).exists()]
        log.info("%d cell(s) to run: %s", len(todo), " ".join(c.name for c in todo))
        if todo:
            train_npz = prepare_train_npz(DATA / "cifar10_train_jpegbytes.npz", 0, 0,
                                          args.cache_dir or default_cache_dir(), exclude_npz=VALIDATION)
            for cell in todo:
                run_cell(cell, args.weights, train_npz, args.results, args.table_dir)
    write_section(args.doc, HEADING, render(load_cells(args.results)))
    log.info("wrote %s", args.doc)


if __name__ == "__main__":
    main()
