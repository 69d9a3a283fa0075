"""Latency-model fidelity: predicted vs measured latency of random pruned variants, per backend.

    python tools/bench/latency_fidelity.py                       # everything (about an hour on 2 cores)
    python tools/bench/latency_fidelity.py --models cifar-resnet56 --backends cpu --configs 20
    taskset -c 0 python tools/bench/latency_fidelity.py --models cifar-resnet56 --part r56 &   # two parts in
    taskset -c 1 python tools/bench/latency_fidelity.py --models torchvision:mobilenet_v2 --part mnv2   # parallel
    python tools/bench/latency_fidelity.py --render-only

For each model (cifar-resnet56, mobilenet_v2, YOLOv8n at 320 px) and local backend (target cpu = ONNX Runtime,
cpu-openvino, cpu-tflite; 1 thread each): profile the model (kernel probes + calibration, with in-context layer
times where the runtime has a profiler; timed), draw N random channel configurations (seeded, not the
calibration's), predict each with the lookup model, export and measure it on the runtime twice (each reading
paired with the whole model), and report the share within ±10% and ±5% and the median absolute error, with
how often the two readings of one variant agreed (the noise ceiling). Two forms are scored: milliseconds
(the prediction against the variant's paired ratio times the original's median over the run) and shares of
the original (the prediction over the predicted full model, against the paired ratio itself: what a
relative budget is judged on, and free of the machine's speed between profiling and measuring). Results go
to docs/benchmarks.md (section "Latency-model fidelity"), docs/figures/latency_fidelity.png and
docs/figures/latency_fidelity-<part>.json. Goal (issues 17, 39): >= 95% within ±10% and >= 80% within ±5% on
every backend.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from docs_section import write_section  # noqa: E402
from provenance import git_commit, provenance  # noqa: E402

from edgeprune.environment import machine_info, package_versions  # noqa: E402
from edgeprune.latency.candidates import CONFIRM_TIMING, CandidateMeasurer, TimingSpec  # noqa: E402
from edgeprune.latency.layers import extract_layers  # noqa: E402
from edgeprune.latency.predictor import LookupLatencyModel, structure_key  # noqa: E402
from edgeprune.latency.profile_model import build_lookup_model, table_context  # noqa: E402
from edgeprune.latency.profiler import bounded_grids, fit_measured, sample_widths  # noqa: E402
from edgeprune.latency.table import LatencyTable  # noqa: E402
from edgeprune.models.zoo import build_architecture  # noqa: E402
from edgeprune.prune.graph import ModelGraph  # noqa: E402
from edgeprune.prune.surgery import slim_copy  # noqa: E402
from edgeprune.runtimes import get_backend  # noqa: E402
from edgeprune.target import load_target  # noqa: E402

log = logging.getLogger("latency_fidelity")
MODELS = {"cifar-resnet56": (3, 32, 32), "torchvision:mobilenet_v2": (3, 224, 224),
          "ultralytics:yolov8n.yaml": (3, 320, 320)}
TARGETS = ("cpu", "cpu-openvino", "cpu-tflite")
MEASURE = TimingSpec(warmup_runs=10, min_runs=50, min_seconds=1.0)
#: readings of each variant (each paired with the whole model)
REPEATS = 2
SECTION = "## Latency-model fidelity"
#: what the table does not say by itself (kept with the script, so a rerun keeps it; update it with the numbers)
NOTES = """**The goal is met for cifar-resnet56 on ONNX Runtime and LiteRT and missed elsewhere.** What changed since
the previous run (2026-11-21, AMD EPYC, unpaired): the measured side is paired with the whole model; a conv
whose output feeds a residual add is probed with that add (the runtimes fuse it: OpenVINO's runtime graph of
mobilenet_v2 on this CPU has 52 Convolution nodes for its 52 convs, its 10 adds fused into the 10 projection
convs that `edgeprune.latency.layers.residual_add_convs` finds, and no other node but two input/output
Reorders); the calibration has 12 samples and may give each kernel kind its own scale where leave-one-out error
says that predicts better (kinds under 5% of the sum ride with the largest one). Why the rest misses:

1. **OpenVINO's one-kernel probes measure mostly what the network does not do.** Each probe compiles to
   Reorder → Convolution → Reorder (2 layout conversions per kernel; the whole network has 2), so the sum of
   probe times is 3-4x the network's latency and the excess depends on each
   layer's activation size, not its compute (fitted scales 0.24-0.35). Even a least-squares line fitted on the 50
   test variants themselves puts only 38% of cifar-resnet56's within ±5% (66% with two activation-volume terms added).
   Probes that cancel the conversions (a kernel timed in a chain of its own kind, minus the chain without it)
   are the next step.
2. **mobilenet_v2's residual scatter is in the kernel timings, not the calibration.** On ONNX Runtime a
   least-squares fit of a scale per kernel kind on the 50 test variants themselves reaches 56% within ±5%
   (98% within ±10%), against 62% as shipped: no calibration of these 572 probe timings can reach 80%
   (`python tools/bench/fidelity_bound.py`, output in `docs/figures/fidelity_bound.txt`). Each
   probe is timed for 0.15 s, and 52 layers' interpolation errors add up; longer probes, or denser width
   grids for the depthwise and pointwise kernels, are the next step.
3. **Share against milliseconds.** A share's error also carries the prediction error of the whole model
   (the share divides by it), so mobilenet_v2's shares score worse than its milliseconds. Inside `fit` the
   closed loop re-anchors the prediction on the original measured in the same run, and every verdict is a
   measured paired ratio, so these errors cost search rounds, not missed budgets (docs: drift benchmark)."""


def run_one(model_spec: str, target_name: str, configs: int, seed: int, table_dir: Path) -> dict:
    target = load_target(target_name)
    backend = get_backend(target)
    shape = MODELS[model_spec]
    model = build_architecture(model_spec, 80 if model_spec.startswith("ultralytics:") else None).model.eval()
    example = torch.full((1, *shape), 0.5)
    graph = ModelGraph(model, example, warn_frozen=False)
    groups = graph.prunable_groups()
    table = LatencyTable.open(table_context(backend, target), table_dir)
    work = Path(tempfile.mkdtemp(prefix="fidelity-"))
    try:
        start = time.perf_counter()
        max_points = 6 if backend.name in ("onnxruntime", "openvino") else 3
        lookup, measured, reused = build_lookup_model(model, example, graph, target, backend, table, work,
                                                      max_points, recalibrate=True)
        profile_s = time.perf_counter() - start
        # the same probes and calibration samples without the in-context lines: what they change, on the same readings
        probes_only = probe_only_model(model, example, graph, target, table, lookup, max_points)
        measurer = CandidateMeasurer(backend, target, example, work)
        # the measured side is paired: each variant timed against the whole model in alternating rounds, its ms
        # the ratio times the whole model's median over the run, so a change of machine speed moves neither side
        measurer.set_reference(measurer.measure(model, "original", CONFIRM_TIMING), absolute_budget=True)
        rows = []
        predicted_full = lookup.predict({g.name: g.width for g in groups})
        for i, widths in enumerate(sample_widths(groups, target.channel_alignment, configs + 2, seed)[2:], 1):
            predicted = lookup.predict(widths)
            t0 = time.perf_counter()
            keep = {g.name: list(range(widths[g.name])) for g in groups if widths[g.name] < g.width}
            slim = slim_copy(model, example, keep) if keep else model
            artifact = measurer.export(slim, f"cfg{i}")
            # measured twice, each reading paired with the whole model: their agreement is the ceiling any model
            # can reach against one reading; the prediction is scored against their mean
            ratios = []
            for _ in range(REPEATS):
                measurement = measurer.time(artifact, MEASURE)
                ratios.append(measurement.paired.ratio if measurement.paired else
                              measurement.stats.median_ms / measurer.baseline_ms)
            call = time.perf_counter()
            for _ in range(100):
                lookup.predict(widths)
            predict_us = (time.perf_counter() - call) / 100 * 1e6
            rows.append({"predicted_ms": predicted, "ratios": ratios, "predict_us": predict_us, "widths": widths,
                         "probe_only_ms": probes_only.predict(widths) if probes_only else None,
                         "predicted_share": predicted / predicted_full, "measured_share": float(np.mean(ratios))})
            log.info("%s %s %d/%d: predicted share %.3f measured %.3f, %.3f [%.0f s]", model_spec, target_name, i,
                     configs, predicted / predicted_full, *ratios[:2], time.perf_counter() - t0)
        # every ratio in ms at one anchor: the whole model's median over the run (a change of speed moves nothing)
        anchor = float(np.median([ms for _, ms in measurer.reference_medians]))
        for row in rows:
            row["measured_ms"] = row["measured_share"] * anchor
    finally:
        shutil.rmtree(work, ignore_errors=True)
    errors = np.array([abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows])
    share_errors = np.array([abs(r["predicted_share"] - r["measured_share"]) / r["measured_share"] for r in rows])
    calibration = lookup.calibration
    extra = probe_only_scores(rows, probes_only.predict({g.name: g.width for g in groups})) if probes_only else {}
    if calibration is not None and calibration.samples:  # sample 0 is the whole model, measured while profiling
        extra["profiling_full_ms"] = calibration.samples[0][1]
        extra["measuring_full_ms"] = anchor
    repeats = np.array([abs(r["ratios"][0] - r["ratios"][1]) / np.mean(r["ratios"]) for r in rows])
    return {
        **extra,
        "repeat_within_10pct": float((repeats <= 0.10).mean()), "repeat_within_5pct": float((repeats <= 0.05).mean()),
        "in_context_signatures": len(calibration.in_context) if calibration else 0,
        "signatures": len({layer.signature.key() for layer in extract_layers(model, example, graph.groups)}),
        "in_context_source": calibration.in_context_source if calibration else "",
        "model": model_spec, "target": target_name, "backend": backend.name, "runtime_version": backend.version(),
        "commit": git_commit(), "machine": machine_info()["cpu"], "provenance": provenance(),
        "configs": len(rows), "within_10pct": float((errors <= 0.10).mean()),
        "within_5pct": float((errors <= 0.05).mean()), "measured_side": "paired with the whole model",
        "share_within_10pct": float((share_errors <= 0.10).mean()),
        "share_within_5pct": float((share_errors <= 0.05).mean()),
        "share_median_abs_error_pct": float(100 * np.median(share_errors)),
        "calibration_kind_scales": calibration.kind_scales if calibration else {},
        "median_abs_error_pct": float(100 * np.median(errors)),
        "max_abs_error_pct": float(100 * errors.max()), "profile_seconds": profile_s, "probes_measured": measured,
        "probes_reused": reused, "predict_us_median": float(np.median([r["predict_us"] for r in rows])), "rows": rows,
    }


def probe_only_model(model: torch.nn.Module, example: torch.Tensor, graph: ModelGraph, target, table: LatencyTable,
                     lookup: LookupLatencyModel, max_points: int) -> LookupLatencyModel | None:
    """The lookup model refitted on the same calibration samples (their measured ms) with the probe timings alone;
    None when the run had no in-context lines (it is the model itself)."""
    calibration = lookup.calibration
    if calibration is None or not calibration.in_context:
        return None
    layers = extract_layers(model, example, graph.groups)
    plain = LookupLatencyModel(bounded_grids(layers, target.channel_alignment, max_points), table)
    samples = sample_widths(graph.prunable_groups(), target.channel_alignment, len(calibration.samples), 0)
    plain.calibration = fit_measured(plain, samples, [ms for _, ms in calibration.samples])
    return plain


def probe_only_scores(rows: list[dict], full_ms: float) -> dict:
    """Scores of the probes-alone predictions (``probe_only_ms`` in each row) in both forms."""
    ms = np.array([abs(r["probe_only_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows])
    share = np.array([abs(r["probe_only_ms"] / full_ms - r["measured_share"]) / r["measured_share"] for r in rows])
    return {"probe_only_within_10pct": float((ms <= 0.10).mean()), "probe_only_within_5pct": float((ms <= 0.05).mean()),
            "probe_only_share_within_10pct": float((share <= 0.10).mean()),
            "probe_only_share_within_5pct": float((share <= 0.05).mean())}


def rescore(result: dict, table_dir: Path, seed: int) -> dict:
    """Add the probes-alone scores to a result written before they were recorded, from its saved table (the same
    probes and calibration) and its variants (the same seed), without timing anything again."""
    if "probe_only_share_within_10pct" in result or not result.get("in_context_signatures"):
        return result
    target = load_target(result["target"])
    backend = get_backend(target)
    model = build_architecture(result["model"], 80 if result["model"].startswith("ultralytics:") else None).model.eval()
    example = torch.full((1, *MODELS[result["model"]]), 0.5)
    graph = ModelGraph(model, example, warn_frozen=False)
    table = LatencyTable.open(table_context(backend, target), table_dir)
    max_points = 6 if backend.name in ("onnxruntime", "openvino") else 3
    layers = extract_layers(model, example, graph.groups)
    lookup = LookupLatencyModel(bounded_grids(layers, target.channel_alignment, max_points), table)
    lookup.calibration = table.calibrations[structure_key(layers, list(example.shape))]
    plain = probe_only_model(model, example, graph, target, table, lookup, max_points)
    groups = graph.prunable_groups()
    variants = sample_widths(groups, target.channel_alignment, result["configs"] + 2, seed)[2:]
    for row, widths in zip(result["rows"], variants):
        if abs(lookup.predict(widths) - row["predicted_ms"]) > 1e-9 * max(1.0, row["predicted_ms"]):
            raise SystemExit(f"{result['model']} {result['target']}: the saved table does not reproduce the run")
        row["widths"], row["probe_only_ms"] = widths, plain.predict(widths)
    result.update(probe_only_scores(result["rows"], plain.predict({g.name: g.width for g in groups})),
                  probe_only_rescored=True)
    result.setdefault("profiling_full_ms", lookup.calibration.samples[0][1])
    result.setdefault("measuring_full_ms", result["rows"][0]["measured_ms"] / result["rows"][0]["measured_share"])
    return result


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODELS), figsize=(6 * len(MODELS), 5.5), squeeze=False)
    for ax, model in zip(axes[0], MODELS):
        top = 0.0
        for r in (r for r in results if r["model"] == model):
            m = [row["measured_ms"] for row in r["rows"]]
            p = [row["predicted_ms"] for row in r["rows"]]
            top = max(top, *m, *p)
            ax.scatter(m, p, s=14, label=f"{r['backend']}: {100 * r['within_10pct']:.0f}% within ±10%")
        xs = np.linspace(0, top * 1.05, 10)
        ax.plot(xs, xs, "k-", lw=0.8)
        ax.fill_between(xs, xs * 0.9, xs * 1.1, color="grey", alpha=0.2, label="±10%")
        ax.set(title=model, xlabel="measured median latency (ms)", ylabel="predicted latency (ms)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _repeat(r: dict) -> str:
    """How often a variant's two readings agreed (older results took one reading)."""
    if "repeat_within_10pct" not in r:
        return "n/a"
    return f"{100 * r['repeat_within_10pct']:.0f}% / {100 * r['repeat_within_5pct']:.0f}%"


def _plain(r: dict) -> str:
    """The same readings scored against the probe timings alone (no in-context lines): shares, then ms."""
    if "probe_only_share_within_10pct" not in r:
        return "n/a" if "signatures" not in r else "(same)"
    return (f"{100 * r['probe_only_share_within_10pct']:.0f}% / {100 * r['probe_only_share_within_5pct']:.0f}%; "
            f"{100 * r['probe_only_within_10pct']:.0f}% / {100 * r['probe_only_within_5pct']:.0f}%")


def _speed(r: dict) -> str:
    """How much faster (-) or slower (+) the machine ran the whole model while measuring than while profiling."""
    if "profiling_full_ms" not in r:
        return "n/a"
    return f"{100 * (r['measuring_full_ms'] / r['profiling_full_ms'] - 1):+.0f}%"


def _lines(r: dict) -> str:
    """How many kernel signatures took their in-context line from the runtime's profiler."""
    if "signatures" not in r:
        return "n/a"
    return f"{r['in_context_signatures']} of {r['signatures']}"


def write_markdown(results: list[dict], doc: Path) -> None:
    machine, versions = machine_info(), package_versions()
    lines = [
        SECTION, "",
        f"`python tools/bench/latency_fidelity.py` on {machine['cpu']} ({machine['logical_cores']} logical cores, shared VM), "
        "1 thread per runtime, random configurations per row as the *variants* column says "
        "(seeded; not the calibration samples), edgeprune at "
        f"{', '.join(sorted({r.get('commit', 'unknown') for r in results}))}. Measured = each variant timed against "
        "the whole model in alternating rounds (>= 1 s), twice; its share is the mean of the two paired ratios, "
        "its ms that share times the whole model's median over the run; *two readings within* says how often the "
        "two readings of one variant agreed (|A - B| / mean), the ceiling of any prediction scored against one. Predicted share = the prediction over the predicted whole model. "
        f"torch {versions['torch']}, onnxruntime {versions['onnxruntime']}. Goal: >= 95% within ±10% and >= 80% "
        "within ±5%.",
        "",
        "| model | backend (version) | variants | share within ±10% | share within ±5% | share median error "
        "| ms within ±10% | ms within ±5% | ms median error | max ms error | two readings within ±10% / ±5% "
        "| in-context lines | probes alone: share, ms within ±10% / ±5% | whole model, measuring vs profiling "
        "| time to profile | probes measured (reused) | predict() |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        share = (f"{100 * r['share_within_10pct']:.0f}% | {100 * r['share_within_5pct']:.0f}% | "
                 f"{r['share_median_abs_error_pct']:.1f}%" if "share_within_10pct" in r else "n/a | n/a | n/a")
        lines.append(
            f"| {r['model']} | {r['backend']} {r['runtime_version']} | {r['configs']} | {share} | "
            f"{100 * r['within_10pct']:.0f}% | "
            f"{100 * r.get('within_5pct', float('nan')):.0f}% | "
            f"{r['median_abs_error_pct']:.1f}% | {r['max_abs_error_pct']:.1f}% | {_repeat(r)} | {_lines(r)} | {_plain(r)} | {_speed(r)} | "
            f"{r['profile_seconds']:.0f} s | "
            f"{r['probes_measured']} ({r['probes_reused']}) | {r['predict_us_median']:.0f} µs |"
        )
    lines += ["", "![predicted vs measured](figures/latency_fidelity.png)", "", NOTES, ""]
    write_section(doc, SECTION, lines)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description="predicted vs measured latency per backend")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--backends", nargs="*", default=list(TARGETS), help="target names")
    parser.add_argument("--configs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--table-dir", type=Path, default=Path(tempfile.gettempdir()) / "edgeprune-fidelity-tables")
    parser.add_argument("--part", default="all",
                        help="name of this run's results file (parallel runs pinned to separate cores use different parts)")
    parser.add_argument("--render-only", action="store_true", help="merge the saved parts into the docs and plot")
    parser.add_argument("--rescore", action="store_true",
                        help="add the probes-alone scores to saved results that lack them (from their saved tables)")
    args = parser.parse_args()
    figures = REPO / "docs" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    if args.rescore:
        for part in sorted(figures.glob("latency_fidelity-*.json")):
            saved = json.loads(part.read_text())
            rescored = [rescore(dict(r), args.table_dir, args.seed) for r in saved]
            if rescored != saved:  # untouched parts keep their time: the newest result per row wins the table
                part.write_text(json.dumps(rescored, indent=1))
    elif not args.render_only:
        out_json = figures / f"latency_fidelity-{args.part}.json"
        previous = json.loads(out_json.read_text()) if out_json.exists() else []
        done = [r for r in previous if not (r["model"] in args.models and r["target"] in args.backends)]
        for model in args.models:
            for target in args.backends:
                done.append(run_one(model, target, args.configs, args.seed, args.table_dir))
                out_json.write_text(json.dumps(done, indent=1))
    # the newest result per model and backend (parts in the order they were written)
    newest = {(r["model"], r["target"]): r
              for part in sorted(figures.glob("latency_fidelity-*.json"), key=lambda f: f.stat().st_mtime)
              for r in json.loads(part.read_text())}
    results = list(newest.values())
    results.sort(key=lambda r: (list(MODELS).index(r["model"]), TARGETS.index(r["target"])))
    plot(results, REPO / "docs" / "figures" / "latency_fidelity.png")
    write_markdown(results, REPO / "docs" / "benchmarks.md")
    for r in results:
        log.info("%s %s: %.0f%% within ±10%%, median error %.1f%%", r["model"], r["backend"], 100 * r["within_10pct"], r["median_abs_error_pct"])


if __name__ == "__main__":
    main()
