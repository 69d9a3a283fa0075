"""Allocation benchmark (issue 39): the default allocation against the uniform cut on classifiers, per runtime.

    python tools/bench/allocation.py --models cifar-resnet56 --targets cpu-openvino cpu-tflite --speedups 1.5x 2x
    python tools/bench/allocation.py --render-only                      # docs/benchmarks.md section

Each cell is one ``edgeprune.fit`` (no fine-tune, ``--precision fp32``, ``--min-agreement 0``: the benchmark reads the
accuracy itself) at a budget given as a share of the original measured in the same fit (66.7% and 50% for 1.5x and
2x), with

* ``default``: the default allocation: the latency-table search, checked against the uniform cut at the same measured
  latency by output distortion on calibration images (:mod:`edgeprune.fit.loop.guard`);
* ``uniform``: ``--allocation uniform``: one keep ratio for every group, bisected on the measured latency.

Both use the default importance (lasso) and its recovery (least-squares reconstruction). Accuracy is the fit's own:
top-1 of the shipped artifact in its runtime on the evaluation images; the speedup is the fit's paired ratio against
the original. The detector cells are ``tools/bench/detection.py``'s.

Models: ``cifar-resnet56`` (akamaster weights; evaluated on the 1,017 lossless test images, calibrated on the 5,085
lossless training images). One JSON file per cell in ``docs/figures/allocation-results/``; cells already there are
skipped, so runs resume.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
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

log = logging.getLogger("allocation_bench")

SHARED = REPO.parent / "shared" / "data" if (REPO.parent / "shared" / "data").is_dir() else Path("/work/shared/data")
CIFAR = SHARED / "cifar10"
TARGETS = ("cpu", "cpu-openvino", "cpu-tflite")
SPEEDUPS = {"1.5x": 1.5, "2x": 2.0}
METHODS = ("default", "uniform")
DEFAULT_RESULTS = REPO / "docs" / "figures" / "allocation-results"
HEADING = "## Allocation: the default against the uniform cut, per runtime (classifiers)"
#: model -> fit options
MODELS: dict[str, dict[str, Any]] = {
    "cifar-resnet56": {"model": "cifar-resnet56",
                       "weights": SHARED / "models/cifar10/akamaster_resnet/resnet56-4bfd9763.th",
                       "data": CIFAR / "cifar10_test_lossless_first1017.npz",
                       "calib_data": CIFAR / "cifar10_train_lossless_subset5085.npz"},
}


@dataclass(frozen=True)
class Cell:
    """One allocation on one model and target at one speedup."""

    model: str
    target: str
    method: str
    speedup: str

    @property
    def name(self) -> str:
        """Cell id, e.g. ``cifar-resnet56-cpu-openvino-default-2x``."""
        return f"{self.model}-{self.target}-{self.method}-{self.speedup}"

    def path(self, results: Path) -> Path:
        """Its result file."""
        return results / f"cell-{self.name}.json"


def run_cell(cell: Cell, results: Path) -> dict[str, Any]:
    """Run one cell and write its result; a budget out of reach is a result, not a crash."""
    record: dict[str, Any] = {"cell": cell.name, "model": cell.model, "target": cell.target, "method": cell.method,
                              "speedup_goal": cell.speedup, "provenance": provenance()}

    def body(work: Path, record: dict[str, Any]) -> None:
        report = edgeprune.fit(**MODELS[cell.model], target=cell.target,
                               budget=f"{100 / SPEEDUPS[cell.speedup]:.3f}%", precision="fp32",
                               allocation="uniform" if cell.method == "uniform" else "latency",
                               out=work / "fit", force=True, seed=0, min_agreement=0.0).report
        record.update({
            "status": "met", "speedup": report.get("speedup_measured"),
            "speedup_interval": report.get("speedup_interval"),
            "baseline_ms": report["baseline"]["latency"]["median_ms"],
            "final_ms": report["final"]["latency"]["median_ms"],
            "top1_before": report["baseline"].get("top1"), "top1_after": report["final"].get("top1"),
            "images": report["evaluation"]["images"],
            "macs_before": report["baseline"]["macs"], "macs_after": report["final"]["macs"],
            "rounds_measured": len(report["search"]["rounds"]),
            "guard_rounds": sum(r["kind"] == "guard" for r in report["search"]["rounds"]),
            "uniform_guard": report["method"].get("uniform_guard"), "fit_timings_s": report["timings_s"]})

    return run_and_save(cell.name, cell.path(results), record, body, "allocation")


def _cell_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return "not run"
    if r["status"] != "met":
        return "budget not met"
    low, high = r.get("speedup_interval") or (None, None)
    interval = f" [{low:.2f}, {high:.2f}]" if low else ""
    guard = r.get("uniform_guard") or {}
    shipped = {"uniform": ", uniform cut shipped", "latency_search": ", search's widths shipped"}.get(
        guard.get("chosen"), "")
    return f"{100 * r['top1_after']:.2f}% at {r['speedup']:.2f}x{interval}{shipped}"


def _guard_text(r: dict[str, Any] | None) -> str:
    guard = (r or {}).get("uniform_guard") or {}
    if not guard.get("uniform"):
        return "–" if not guard else str(guard.get("reason", "–"))
    searched, uniform = guard["latency_search"], guard["uniform"]
    return (f"search {100 * searched['kept_channels']:.0f}% / {searched['distortion']:.3g}; "
            f"uniform {100 * uniform['kept_channels']:.0f}% / {uniform['distortion']:.3g}")


def render(rows: list[dict[str, Any]]) -> list[str]:
    """The docs/benchmarks.md section."""
    by_name = {r["cell"]: r for r in rows}
    commits = sorted({r["provenance"].get("commit", "?") for r in rows})
    lines = [HEADING, "",
             "Written by `python tools/bench/allocation.py` (cells in `docs/figures/allocation-results/`, edgeprune at "
             f"{', '.join(commits)}). One `edgeprune.fit` per cell, no fine-tune, fp32, lasso importance; budgets are "
             "shares of the original measured in the same fit; the speedup is the fit's paired ratio (95% interval). "
             "Top-1 is the shipped artifact's, in its runtime. *Guard*: the default's comparison, kept share of "
             "channels / output distortion (KL on 128 calibration images, after reconstruction) of the search's "
             "widths and of the uniform cut measured within the same latency.", ""]
    for model in MODELS:
        model_rows = [r for r in rows if r["model"] == model]
        if not model_rows:
            continue
        before = next((r["top1_before"] for r in model_rows if r.get("top1_before") is not None), None)
        images = next((r["images"] for r in model_rows if r.get("images")), "?")
        lines += [f"### `{model}` (original {100 * before:.2f}% on {images} images)" if before is not None
                  else f"### `{model}`", "",
                  "| target | budget | default | uniform | guard (default's cell) |", "|---|---|---|---|---|"]
        for target in TARGETS:
            for speedup in SPEEDUPS:
                default = by_name.get(Cell(model, target, "default", speedup).name)
                uniform = by_name.get(Cell(model, target, "uniform", speedup).name)
                if default is None and uniform is None:
                    continue
                lines.append(f"| {target} | {speedup} | {_cell_text(default)} | {_cell_text(uniform)} | "
                             f"{_guard_text(default)} |")
        lines.append("")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--speedups", nargs="+", default=list(SPEEDUPS), choices=list(SPEEDUPS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
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
                    for method in args.methods:
                        cell = Cell(model, target, method, speedup)
                        if cell.path(args.results).is_file():
                            log.info("cell %s: done already", cell.name)
                            continue
                        log.info("cell %s: %s", cell.name, _cell_text(run_cell(cell, args.results)))
    rows = [json.loads(p.read_text()) for p in sorted(args.results.glob("cell-*.json"))]
    write_section(REPO / "docs" / "benchmarks.md", HEADING, render(rows))


if __name__ == "__main__":
    main()
