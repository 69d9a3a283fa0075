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
NOTES = """**The goal is met for YOLOv8n at 320 px on ONNX Runtime (shares and ms: 100% within ±10%, 95% within ±5%)
and missed elsewhere in the 2026-12-07 run**, on a VM whose timings scattered more than in any earlier session (a
fifth to a half of the kernel probes stayed above 25% CV with nothing else running). Rows are the newest run per
model and runtime; the rows without the *two readings* column are older (2026-11, Intel Xeon, one reading) and
were not rerun: LiteRT for mobilenet_v2, and nothing for YOLOv8n on LiteRT yet. What the columns measured:

1. **The noise ceiling.** Each variant was read twice, each reading paired with the whole model. The two readings
   of one file agreed within ±5% for 60-70% of cifar-resnet56's variants on OpenVINO and 63% of mobilenet_v2's
   (80% within ±10%). A prediction scored against a reading cannot beat how well two readings agree by much:
   the ±5% goal is out of reach of any latency model on this machine for those rows, and the ±10% goal for
   mobilenet_v2 on OpenVINO.
2. **The machine's speed between profiling and measuring.** The *ms* columns compare a prediction calibrated on
   measurements taken while profiling with readings taken minutes later. In the second cifar-resnet56 run the
   machine ran the whole model 12% faster (ONNX Runtime) and 5% faster (OpenVINO) while measuring than while
   profiling, so nearly every ms prediction on ONNX Runtime missed ±10% (35%) while the shares, which divide
   out the machine's speed, put 82% within ±10%. `fit` judges every budget on measured paired ratios and
   re-anchors predictions on the original measured in its own run, so the share columns are what its search
   relies on.
3. **OpenVINO's lone probes, and the in-context lines that replace them.** A one-kernel probe on OpenVINO runs
   Reorder → Convolution → Reorder, two layout conversions per kernel where the whole network has two in all.
   The runtime's own profiler on whole sub-networks (`latency/in_context.py`) gives what each layer costs
   inside the network. Scored on the same readings (the *probes alone* column refits the same calibration
   samples without the lines): cifar-resnet56 on OpenVINO, first run (lines always used), 88% of shares within
   ±10% against **8%** for the probes alone, and 92% against 15% in ms; second run, 75% against 60%. On
   mobilenet_v2 the lines did not help (43% against 53% of shares within ±10%), and on ONNX Runtime, whose
   lone probes run much as the network does, the probes alone were as good or better (cifar-resnet56, first run: 92% of
   shares within ±10% for the probes alone against 72% with the lines). The lines are now used only where leave-one-out over the calibration samples says
   they predict better than the probes alone; with 12 noisy samples that choice was wrong for mobilenet_v2 on
   OpenVINO (held-out 13.8% against 15.8%) and ONNX Runtime's cifar-resnet56 (6.0% against 7.7%). On YOLOv8n
   the probes were kept on both runtimes (ONNX Runtime: held-out 4.9% against 4.8%; OpenVINO: only 4 of 12
   samples had a profiled node for every layer).
4. **What has no in-context path yet.** LiteRT's Python interpreter has no per-operator profiler (its rows are
   probes alone); ncnn's profiler times each layer alone on its real inputs; ExecuTorch's ETDump names XNNPACK
   operators but not the modules they came from. Those runtimes keep the lone-kernel probes and calibration.
5. Profiling stayed within 5 minutes per model and runtime (cold tables): 82-115 s for cifar-resnet56 on ONNX
   Runtime and OpenVINO, 243 s on LiteRT, 173-232 s for mobilenet_v2 and 216-226 s for YOLOv8n at 320 px."""


def setup(model_spec: str, target_name: str, table_dir: Path) -> tuple:
    """(target, backend, model, example input, graph, latency table, probe points per side) of one row."""
    target = load_target(target_name)
    backend = get_backend(target)
    model = build_architecture(model_spec, 80 if model_spec.startswith("ultralytics:") else None).model.eval()
    example = torch.full((1, *MODELS[model_spec]), 0.5)
    graph = ModelGraph(model, example, warn_frozen=False)
    table = LatencyTable.open(table_context(backend, target), table_dir)
    max_points = 6 if backend.name in ("onnxruntime", "openvino") else 3
    return target, backend, model, example, graph, table, max_points


def run_one(model_spec: str, target_name: str, configs: int, seed: int, table_dir: Path) -> dict:
    target, backend, model, example, graph, table, max_points = setup(model_spec, target_name, table_dir)
    groups = graph.prunable_groups()
    work = Path(tempfile.mkdtemp(prefix="fidelity-"))
    try:
        start = time.perf_counter()
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
    target, _, model, example, graph, table, max_points = setup(result["model"], result["target"], table_dir)
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
