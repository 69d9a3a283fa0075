"""Detection benchmark (issue 21): YOLOv8n pruned to measured budgets, mAP before and after, against Torch-Pruning.

    python tools/bench/detection.py --models shapes --targets cpu cpu-openvino cpu-tflite --speedups 1.5x 2x
    python tools/bench/detection.py --models shapes --targets cpu --speedups 1.5x 2x --epochs 3 --methods edgeprune tp
    python tools/bench/detection.py --models yolov8n-320 yolov8n-640 --targets cpu --speedups 1.5x 2x
    python tools/bench/detection.py --render-only                     # docs/benchmarks.md section

Models:

* ``shapes``: ``ultralytics:yolov8n.yaml`` trained here on the generated shapes set (160 px, 4 classes; the
  weights and data of :mod:`edgeprune.train.default_detector`, trained on first use, about 6 minutes on one core).
  mAP50-95 and mAP50 on its 200 validation images, by COCO's evaluation, computed on each artifact's own outputs
  in its runtime; the fine-tune uses the 600 training images (Ultralytics' loss plus distillation);
* ``yolov8n-320``, ``yolov8n-640``: the same architecture with 80 classes at 320 and 640 px, **random weights**
  (no pretrained detector is reachable offline): latency and MACs only; their mAP is meaningless and not shown.

Methods, each at a budget given as a share of the original measured in the same run (66.7% and 50% for a
measured 1.5x and 2x, paired timing):

* ``edgeprune``: ``edgeprune.fit(..., precision="fp32")`` (lasso importance, the default allocation: the latency-table
  search checked against the uniform cut at the same measured latency since issue 39, closed loop);
* ``edgeprune-uniform``: the same with ``allocation="uniform"``: one keep ratio for every group, bisected on the
  measured latency (lasso still picks which channels go), to separate the allocation from the rest;
* ``edgeprune-blocks``: the same with ``prune_blocks=True`` (``--prune-blocks``): the backbone's residual
  bottlenecks ordered by the detection output's distortion and removed first, as far as the measured budget needs;
* ``edgeprune-auto``: the same with the default ``--precision auto``: INT8 (box decoding kept float) where it
  measures faster and keeps 75% agreement with the float model's boxes, pruned further where INT8 alone is short;
* ``tp``: Torch-Pruning's YOLOv8 recipe as its example does it: C2f's stem split into two convolutions (edgeprune's
  exact rewrite is the same as the example's ``C2f_v2``), the whole Detect head ignored, ``MagnitudeImportance``
  (L2), one uniform ratio for every layer; the ratio bisected on the exported model's measured latency (paired
  with the original) until it meets the same budget; batch norms re-estimated, then the same fine-tune.

One JSON file per cell in ``docs/figures/detection-results/``; cells already there are skipped, so runs resume.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from cell_run import run_and_save  # noqa: E402
from docs_section import write_section  # noqa: E402
from provenance import provenance  # noqa: E402

import edgeprune  # noqa: E402
from edgeprune.environment import machine_info, package_versions  # noqa: E402
from edgeprune.errors import BudgetUnreachableError, ValidationFailedError  # noqa: E402

log = logging.getLogger("detection_bench")

TARGETS = ("cpu", "cpu-openvino", "cpu-tflite")
SPEEDUPS = {"1.5x": 1.5, "2x": 2.0}
METHODS = ("edgeprune", "edgeprune-uniform", "edgeprune-blocks", "edgeprune-auto", "tp")
#: model name -> (input side in px, classes, trained on the shapes set)
MODELS = {"shapes": (160, 4, True), "yolov8n-320": (320, 80, False), "yolov8n-640": (640, 80, False)}
DEFAULT_RESULTS = REPO / "docs" / "figures" / "detection-results"
HEADING = "## Detectors: YOLOv8n under a measured budget"
#: Torch-Pruning's bisection: the deepest uniform ratio tried, and how many measured steps. Above about 0.6 its
#: uniform ratio stops pruning yolov8n's 16-channel layers (round_to 8), so deeper ratios are not faster: at 0.9 it
#: kept 169 M MACs against 109 M at 0.5 (160 px), and the bisection, which assumes deeper is faster, gave up
TP_MAX_RATIO = 0.6
TP_STEPS = 8
SEARCH_HEADROOM = 0.05


@dataclass(frozen=True)
class Cell:
    """One method on one model and target at one speedup, with or without the fine-tune."""

    model: str
    target: str
    method: str
    speedup: str
    epochs: int = 0

    @property
    def name(self) -> str:
        """Cell id, e.g. ``shapes-cpu-edgeprune-1.5x-ft0``."""
        return f"{self.model}-{self.target}-{self.method}-{self.speedup}-ft{self.epochs}"

    def path(self, results: Path) -> Path:
        """Its result file."""
        return results / f"cell-{self.name}.json"


def _shapes_paths() -> tuple[Path, Path]:
    """(trained weights, data.yaml) of the shapes detector, built on first use."""
    from edgeprune.train.default_detector import shapes_dataset_dir, trained_shapes_detector

    return trained_shapes_detector(), shapes_dataset_dir() / "data.yaml"


def _record(cell: Cell) -> dict[str, Any]:
    size, classes, trained = MODELS[cell.model]
    return {"cell": cell.name, "model": cell.model, "target": cell.target, "method": cell.method,
            "speedup_goal": cell.speedup, "budget_share": 1 / SPEEDUPS[cell.speedup], "finetune_epochs": cell.epochs,
            "input_px": size, "classes": classes, "trained": trained,
            "environment": {**machine_info(), "versions": package_versions(), "provenance": provenance()}}


# -- edgeprune ----------------------------------------------------------------------------------------
def run_edgeprune(cell: Cell, work: Path, record: dict[str, Any]) -> None:
    """One ``edgeprune.fit`` at the cell's budget share; fills ``record``."""
    size, classes, trained = MODELS[cell.model]
    weights, data_yaml = _shapes_paths()
    try:
        report = edgeprune.fit(
            model="ultralytics:yolov8n.yaml", weights=weights if trained else None, num_classes=classes,
            input_shape=(3, size, size), data=data_yaml, train_data=data_yaml if cell.epochs else None,
            target=cell.target, budget=f"{100 / SPEEDUPS[cell.speedup]:.3f}%",
            precision="auto" if cell.method == "edgeprune-auto" else "fp32",
            prune_blocks=cell.method == "edgeprune-blocks",
            allocation="uniform" if cell.method == "edgeprune-uniform" else "latency",
            finetune_epochs=cell.epochs, distill=cell.epochs > 0, out=work / "fit", force=True, seed=0,
            min_agreement=0.0).report  # the benchmark measures accuracy itself: no accuracy guard
        status = "met"
    except ValidationFailedError as exc:  # the fit wrote its results and says which check failed: a result too
        report = json.loads((work / "fit" / "report.json").read_text())
        status, record["validation_failure"] = "validation failed", str(exc).split(" (results kept")[0]
    record.update({
        "status": status, "speedup": report.get("speedup_measured"), "speedup_interval": report.get("speedup_interval"),
        "baseline_ms": report["baseline"]["latency"]["median_ms"], "final_ms": report["final"]["latency"]["median_ms"],
        "metrics_before": report["baseline"].get("metrics") if trained else None,
        "metrics_after": report["final"].get("metrics") if trained else None,
        "macs_before": report["baseline"]["macs"], "macs_after": report["final"]["macs"],
        "params_before": report["baseline"]["params"], "params_after": report["final"]["params"],
        "rounds_measured": len(report["search"]["rounds"]), "finetune_seconds": report["finetune"]["seconds"],
        "frozen_groups": len(report["frozen_groups"]), "fit_timings_s": report["timings_s"],
        "precision": report["final"]["latency"]["precision"],
        "blocks_removed": (report["method"].get("blocks") or {}).get("removed"),
        "precision_choice": (report["method"].get("precision_choice") or {}).get("reason"),
        "uniform_guard": report["method"].get("uniform_guard")})


# -- Torch-Pruning's recipe ---------------------------------------------------------------------------
def run_tp(cell: Cell, work: Path, record: dict[str, Any]) -> None:
    """Torch-Pruning's magnitude pruner (Detect ignored), one uniform ratio bisected on measured latency."""
    import torch
    import torch_pruning as tp
    from pruning_tp import bisect_ratio, confirm_recovered

    from edgeprune.data.detection import load_detection_dataset
    from edgeprune.data.tensors import calibration_indices, to_model_input
    from edgeprune.latency.candidates import CONFIRM_TIMING, CandidateMeasurer
    from edgeprune.models.weights import load_weights
    from edgeprune.models.zoo import build_architecture
    from edgeprune.prune.bn_recalibration import recalibrate_batchnorm
    from edgeprune.prune.graph import count_macs_and_params
    from edgeprune.runtimes import get_backend
    from edgeprune.target import load_target
    from edgeprune.tasks.detection import DetectionTask, DetectionTruth
    from edgeprune.train.detector_distill import YoloDistillationLoss
    from edgeprune.train.detector_loop import DetectorTrainSpec, train_detector
    from edgeprune.validate.accuracy import evaluate_session

    size, classes, trained = MODELS[cell.model]
    weights, data_yaml = _shapes_paths()
    bundle = build_architecture("ultralytics:yolov8n.yaml", classes)
    if trained:
        load_weights(bundle.model, weights)
    model = bundle.model.eval()
    prep = bundle.preprocessing.__class__(size, size, 3, bundle.preprocessing.mean, bundle.preprocessing.std)
    val = load_detection_dataset(data_yaml, (size, size), split="val")
    train = load_detection_dataset(data_yaml, (size, size), split="train")
    calib = to_model_input(train.images[calibration_indices(len(train), 256, 0)], prep)
    example = calib[:1]
    target = load_target(cell.target)
    backend = get_backend(target)
    measurer = CandidateMeasurer(backend, target, example, work)
    original = measurer.measure(model, "original", CONFIRM_TIMING)
    measurer.set_reference(original, absolute_budget=False)
    budget_ms = original.stats.median_ms / SPEEDUPS[cell.speedup]
    record.update({"baseline_ms": original.stats.median_ms, "budget_ms": budget_ms})
    head = model.model[-1]

    def prune(ratio: float) -> torch.nn.Module:
        pruned = copy.deepcopy(model).eval()
        if ratio <= 0:
            return pruned
        with torch.enable_grad():
            pruner = tp.pruner.MagnitudePruner(
                pruned, example, importance=tp.importance.MagnitudeImportance(p=2), global_pruning=False,
                pruning_ratio=ratio, round_to=target.channel_alignment, ignored_layers=[pruned.model[-1]])
            pruner.step()
        return pruned.eval()

    search = bisect_ratio(prune, measurer, budget_ms * (1 - SEARCH_HEADROOM), TP_MAX_RATIO, TP_STEPS,
                          budget_ms=budget_ms)
    record["tp_rounds"] = search.rounds
    if search.model is None:
        raise BudgetUnreachableError(budget_ms, search.floor_ms, "Torch-Pruning bisection")
    slim = copy.deepcopy(search.model)
    recalibrate_batchnorm(slim, calib)
    seconds = 0.0
    if cell.epochs:
        start = time.perf_counter()
        teacher = copy.deepcopy(model)
        spec = DetectorTrainSpec(epochs=cell.epochs, optimizer="sgd", lr=0.01, momentum=0.937,
                                 warmup_epochs=min(1.0, cell.epochs / 4), flips=False, channel_shuffle=False, seed=0)
        train_detector(slim, train, spec, description="tp fine-tune", distill=YoloDistillationLoss(teacher))
        seconds = time.perf_counter() - start
    final, _ = confirm_recovered(measurer, slim.eval(), budget_ms)
    task = DetectionTask()
    truth = DetectionTruth(list(val.boxes), list(val.classes), classes) if trained else None
    x = to_model_input(val.images, prep)
    before = evaluate_session(backend.load(original.artifact, target), original.artifact.input_name, x, truth, task)
    after = evaluate_session(backend.load(final.artifact, target), final.artifact.input_name, x, truth, task)
    macs_before, params_before = count_macs_and_params(model, example)
    macs_after, params_after = count_macs_and_params(slim, example)
    ratio = final.paired.summary if final.paired is not None else None
    record.update({
        "status": "met" if final.stats.median_ms <= budget_ms else "missed at confirmation",
        "speedup": 1 / ratio.ratio if ratio else original.stats.median_ms / final.stats.median_ms,
        "speedup_interval": [1 / ratio.high, 1 / ratio.low] if ratio else None,
        "final_ms": final.stats.median_ms,
        "metrics_before": dict(before.score.metrics) if before.score else None,
        "metrics_after": dict(after.score.metrics) if after.score else None,
        "macs_before": macs_before, "macs_after": macs_after, "params_before": params_before,
        "params_after": params_after, "tp_ratio": search.ratio, "finetune_seconds": seconds,
        "method_detail": {"pruner": "torch_pruning.pruner.MagnitudePruner", "importance": "MagnitudeImportance(p=2)",
                          "ignored": f"the Detect head ({type(head).__name__}, all of it)", "global_pruning": False,
                          "round_to": target.channel_alignment, "bn_recalibrated": True,
                          "c2f": "stem split into two convolutions (edgeprune's exact rewrite = TP's C2f_v2)"}})


# -- running and rendering ------------------------------------------------------------------------------
def run_cell(cell: Cell, results: Path) -> dict[str, Any]:
    """Run one cell and write its result; a budget out of reach is a result, not a crash."""
    body = (lambda work, record: run_tp(cell, work, record)) if cell.method == "tp" else \
        (lambda work, record: run_edgeprune(cell, work, record))
    return run_and_save(cell.name, cell.path(results), _record(cell), body, "detection")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _cell_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return "not run"
    if r["status"] == "unreachable":
        return "budget not met"
    low, high = r.get("speedup_interval") or (None, None)
    interval = f" [{low:.2f}, {high:.2f}]" if low else ""
    after = r.get("metrics_after")
    accuracy = f"{_pct(after['map50_95'])} / {_pct(after['map50'])} at " if after else ""
    failed = "" if r["status"] == "met" else f" ({r['status']})"
    failed += " INT8" if r.get("precision") == "int8" else ""
    failed += f", {len(r['blocks_removed'])} blocks removed" if r.get("blocks_removed") else ""
    failed += ", uniform cut shipped" if (r.get("uniform_guard") or {}).get("chosen") == "uniform" else ""
    macs = "" if not r.get("macs_after") else ", unpruned" if r["macs_after"] >= r["macs_before"] else \
        f", {r['macs_before'] / max(r['macs_after'], 1):.2f}x fewer MACs"
    return f"{accuracy}{r['speedup']:.2f}x{interval}{macs}{failed}"


def render(rows: list[dict[str, Any]]) -> list[str]:
    """The docs/benchmarks.md section."""
    by_name = {r["cell"]: r for r in rows}
    lines = [
        HEADING, "",
        "Written by `tools/bench/detection.py` (cells in `docs/figures/detection-results/`). Budgets are shares of "
        "the original's latency measured in the same run; every speedup is the paired ratio of the shipped artifact "
        "against the original timed in alternating rounds (95% interval in brackets), 1 thread, fp32 (INT8 where a "
        "cell says so). Accuracy is "
        "mAP50-95 / mAP50 (%, COCO's evaluation by faster-coco-eval) on the shapes detector's 200 validation images, "
        "computed on each artifact's own outputs in its runtime.", ""]
    for model in MODELS:
        model_rows = [r for r in rows if r["model"] == model]
        if not model_rows:
            continue
        size, classes, trained = MODELS[model]
        before = next((r["metrics_before"] for r in model_rows if r.get("metrics_before")), None)
        title = (f"### `{model}`: yolov8n, {size} px, {classes} classes, "
                 + (f"trained on the shapes set (original: {_pct(before['map50_95'])} / {_pct(before['map50'])})"
                    if trained and before else "random weights: latency and MACs only"))
        epochs = sorted({r["finetune_epochs"] for r in model_rows})
        methods = [m for m in METHODS if any(r["method"] == m for r in model_rows)]
        columns = [(m, e) for m in methods for e in epochs
                   if any(r["method"] == m and r["finetune_epochs"] == e for r in model_rows)]
        header = ["target", "budget"] + [f"{m} {'no fine-tune' if e == 0 else f'+{e} epochs'}" for m, e in columns]
        lines += [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for target in TARGETS:
            for speedup in SPEEDUPS:
                cells = [by_name.get(Cell(model, target, m, speedup, e).name) for m, e in columns]
                if not any(cells):
                    continue
                lines.append(f"| {target} | {speedup} | " + " | ".join(_cell_text(c) for c in cells) + " |")
        lines.append("")
    return lines + findings(by_name)


def _map(r: dict[str, Any] | None) -> float | None:
    """A met cell's mAP50-95, else None."""
    if r is None or r.get("status") != "met" or not r.get("metrics_after"):
        return None
    return float(r["metrics_after"]["map50_95"])


def goal_check(by_name: dict[str, Any]) -> list[str]:
    """Issue 39's goal, cell by cell: the default allocation at least as good as the better of the uniform cut and
    Torch-Pruning with fine-tuning, ahead of both without."""
    lines = ["Goal check (issue 39: the default at least max(uniform, Torch-Pruning) in every cell with fine-tuning, "
             "ahead of both without. The evaluation is deterministic: the same widths score the same mAP, so a gap of "
             "0.0 is the same model; the Torch-Pruning cells of 2026-12-03 ran on that day's detector):", "",
             "| target | budget | fine-tune | default | uniform | Torch-Pruning | default − best other | what the "
             "default shipped |", "|---|---|---|---|---|---|---|---|"]
    for target in TARGETS:
        for speedup in SPEEDUPS:
            for epochs in (3, 0):
                default = by_name.get(Cell("shapes", target, "edgeprune", speedup, epochs).name)
                others = [by_name.get(Cell("shapes", target, m, speedup, epochs).name)
                          for m in ("edgeprune-uniform", "tp")]
                if default is None:
                    continue
                scores = [_map(r) for r in others]
                known = [v for v in scores if v is not None]
                gap = f"{100 * (_map(default) - max(known)):+.1f}" if known and _map(default) is not None else "–"
                guard = default.get("uniform_guard") or {}
                shipped = {"uniform": "uniform cut", "latency_search": "search's widths"}.get(
                    guard.get("chosen"), "search's widths (no guard)")
                lines.append(f"| {target} | {speedup} | {epochs} | {_pct(_map(default))} | {_pct(scores[0])} | "
                             f"{_pct(scores[1])} | {gap} | {shipped} |")
    return lines + [""]


def findings(by_name: dict[str, Any]) -> list[str]:
    """What the shapes cells say (built from the cells; absent cells say "not run")."""
    if not any(name.startswith("shapes-") for name in by_name):
        return []
    return goal_check(by_name) + [
        "Notes:", "",
        "- **The default allocation** is the latency-table search checked against the uniform cut at the same measured "
        "latency (issue 39): the cells say which widths each default fit went on with. Before that check, the "
        "latency tables of OpenVINO and LiteRT spent the budget on a few layers cut deep: at 2x +3 epochs the "
        "default kept 36.0 (OpenVINO) and 50.3 (LiteRT) mAP50-95 where the uniform cut kept 77.7 and 76.3 "
        "(2026-12-03, the detector trained then: 90.7 before pruning).",
        "- **Cells of different days** may hold differently trained shapes detectors (the weights are retrained when "
        "the cache is empty; each cell's *original* mAP is in its JSON file): the `edgeprune-auto` and "
        "`edgeprune-blocks` cells were measured before the guard, on the 2026-12-03 detector.",
        "- **OpenVINO's float latency is a staircase in the channel count for this model,** so its float cells land "
        "past the asked speedup: a uniform cut one alignment step wider can measure over the budget while the one "
        "shipped measures well under it.", ""]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["shapes"], choices=list(MODELS))
    parser.add_argument("--targets", nargs="+", default=["cpu"], choices=list(TARGETS))
    parser.add_argument("--speedups", nargs="+", default=list(SPEEDUPS), choices=list(SPEEDUPS))
    parser.add_argument("--methods", nargs="+", default=["edgeprune"], choices=list(METHODS))
    parser.add_argument("--epochs", nargs="+", type=int, default=[0])
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--render-only", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.results.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        for model in args.models:
            for target in args.targets:
                for speedup in args.speedups:
                    for epochs in args.epochs:
                        for method in args.methods:
                            if method == "tp" and not MODELS[model][2]:
                                continue  # an accuracy comparison needs a trained detector
                            cell = Cell(model, target, method, speedup, epochs)
                            if cell.path(args.results).is_file():
                                log.info("cell %s: done already", cell.name)
                                continue
                            record = run_cell(cell, args.results)
                            log.info("cell %s: %s", cell.name, _cell_text(record))
    rows = [json.loads(p.read_text()) for p in sorted(args.results.glob("cell-*.json"))]
    write_section(REPO / "docs" / "benchmarks.md", HEADING, render(rows))


if __name__ == "__main__":
    main()
