"""Runtimes benchmark (issue 38): each runtime x precision against ONNX Runtime fp32, ``--runtime auto``'s pick,
then fits at 2x and 3x in ``--runtime auto`` against each fixed runtime.

    python tools/bench/runtimes.py                                   # part 1, every model (about 15 min)
    python tools/bench/runtimes.py --models cifar-resnet56 --quick   # smoke test: short pairings (about 2 min)
    python tools/bench/runtimes.py --fits --models cifar-resnet56    # part 2: fits (heavy; a quiet machine)
    python tools/bench/runtimes.py --render-only                     # docs/benchmarks.md section

Part 1, per model, in one run: the unpruned model is exported to every runtime x precision ``edgeprune fit
--runtime auto`` tries on target ``cpu`` (fp32 everywhere, int8 where the runtime's row in
``edgeprune/runtimes/table.py`` says it quantizes), through the fit's own code
(:mod:`edgeprune.fit.runtime_choice`: ``_trials``, ``_export_and_check``, ``_time_against``, ``_fastest``) on the
fit's own inputs (:func:`edgeprune.fit.inputs.resolve_inputs` of the same options). Each file is checked as the fit
checks it (fp32: relative max |diff| against PyTorch; int8: the task's agreement with the PyTorch model on up to 128
evaluation images, refused under the task's INT8 floor) and timed against the ONNX Runtime fp32 session with
:func:`edgeprune.paired.measure_paired`, twice: once exactly as the fit does (``_time_against``: about 1 s per pair,
extended while its interval is wider than 10%) and once longer (``--pair-seconds``, extended to a 5% interval) for the
table. ``_fastest`` (the fit's rule) is applied to both, so the table says what ``--runtime auto`` picks with the
fit's short pairing and what the same rule picks on the longer one. Why not ``edgeprune fit --budget 100%``: the
runtime choice runs before the budget is looked at (so 100% does not skip it, and the fit then ships the original
as it is: ``FitRun._nothing_to_prune``, ``_original_meets_the_budget``), and its report.json would hold the same
table; but it times each pair once, for about 1 s, and drops the sessions. Calling the module runs the same code,
keeps the sessions for the longer pairing and turns any exception the fit does not catch into that cell's status.

Part 2 (``--fits``), per model: the ONNX Runtime fp32 original is exported and timed alone; each fit gets 50% and
33.3% of that median as an absolute budget in ms (the same for every runtime), and ``edgeprune fit --runtime R
--precision auto --budget Xms --min-agreement 0`` (no fine-tune) runs for R = auto and each runtime, as a user would.
Recorded: the exit status and the fit's last line, the shipped runtime and precision, its measured latency and its
own paired speedup (against the original in its runtime), its agreement with the original and top-1 where labelled;
then every shipped file is timed paired against the ONNX Runtime fp32 original in one run
(:func:`edgeprune.validate.bench.paired_against`, ``edgeprune bench``'s pairing): the speedup against a common
reference. A runtime that fails on a model is a row saying why, never a crash.

Results: ``docs/figures/runtimes.json`` (per model and part; a run of some models keeps the others), and the
section of docs/benchmarks.md named by :data:`HEADING`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from docs_section import write_section  # noqa: E402
from provenance import provenance  # noqa: E402

from edgeprune.io_atomic import write_json_atomic  # noqa: E402

log = logging.getLogger("runtimes_bench")

SHARED = REPO.parent / "shared" / "data" if (REPO.parent / "shared" / "data").is_dir() else Path("/work/shared/data")
CIFAR = SHARED / "cifar10"
IMAGENET_SAMPLES = SHARED / "samples" / "imagenet_foolbox"
HEADING = "## Runtimes: each runtime x precision against ONNX Runtime fp32, and --runtime auto"
DEFAULT_RESULTS = REPO / "docs" / "figures" / "runtimes.json"
TARGET = "cpu"
#: part 2's budgets as shares of the ONNX Runtime fp32 original (2x, 3x)
SHARES = {"2x": 0.5, "3x": 1 / 3}
#: seconds per pair of the long pairing (part 1) and of the common-reference pairing (part 2); --quick's
PAIR_SECONDS, QUICK_PAIR_SECONDS = 10.0, 1.0


@dataclass(frozen=True)
class ModelCase:
    """One benchmarked model: the fit options that load it and what its weights are."""

    name: str
    spec: str
    weights: Path | None
    data: Path
    #: calibration images kept apart from the evaluation images (None: the fit's own held-out part of --data)
    calib_data: Path | None = None
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    #: what the doc says about the weights and data
    note: str = ""

    @property
    def real_weights(self) -> bool:
        """Whether the model has trained weights (else agreement and top-1 mean little)."""
        return self.weights is not None and self.weights.is_file()

    def fit_options(self) -> dict[str, Any]:
        """Options of :class:`edgeprune.config.FitConfig` (and of ``edgeprune fit``) that load this model."""
        return {"model": self.spec, "weights": self.weights if self.real_weights else None, "data": self.data,
                "calib_data": self.calib_data, "input_shape": self.input_shape, "num_classes": self.num_classes}


def _shapes_yaml() -> Path:
    from edgeprune.train.default_detector import shapes_dataset_dir

    return shapes_dataset_dir() / "data.yaml"  # generated on first use (seconds)


def model_cases(work: Path) -> dict[str, ModelCase]:
    """The four models of the issue; ``work`` receives generated calibration views (mobilenet_v2, resnet18)."""
    views = work / "imagenet-views"
    return {
        "cifar-resnet56": ModelCase(
            "cifar-resnet56", "cifar-resnet56", SHARED / "models/cifar10/akamaster_resnet/resnet56-4bfd9763.th",
            CIFAR / "cifar10_test_lossless_first1017.npz", CIFAR / "cifar10_train_lossless_subset5085.npz",
            note="akamaster weights; evaluated on the lossless test subset (1,017 images), calibrated on the "
                 "lossless training subset (5,085)"),
        "mobilenet_v2": ModelCase(
            "mobilenet_v2", "torchvision:mobilenet_v2", SHARED / "models/imagenet/mobilenet_v2-b0353104.pth",
            IMAGENET_SAMPLES, views, note="torchvision's ImageNet weights, 224 px; the 20 ImageNet samples, "
                                         "calibrated on 180 other views of them (crops, mirrors)"),
        "resnet18": ModelCase(
            "resnet18", "torchvision:resnet18", SHARED / "models/imagenet/resnet18-f37072fd.pth", IMAGENET_SAMPLES,
            views, note="224 px; **random weights** unless resnet18-f37072fd.pth is in ../shared/data (latency and "
                        "fp32 parity hold; int8 agreement of a random network means little)"),
        "yolov8n-320": ModelCase(
            "yolov8n-320", "ultralytics:yolov8n.yaml", None, Path("shapes"), input_shape=(3, 320, 320),
            num_classes=80, note="80 classes at 320 px, **random weights** as in the detection benchmark (no "
                                 "pretrained detector offline); the generated shapes images letterboxed to 320 px; "
                                 "int8 agreement of a random detector means little"),
    }


def resolved(case: ModelCase) -> ModelCase:
    """``case`` with generated inputs in place: the shapes set's data.yaml, the ImageNet views folder."""
    data = _shapes_yaml() if case.data == Path("shapes") else case.data
    if case.calib_data is not None and case.calib_data.name == "imagenet-views" and not case.calib_data.exists():
        write_imagenet_views(case.calib_data)
    return ModelCase(case.name, case.spec, case.weights, data, case.calib_data, case.input_shape, case.num_classes,
                     case.note)


def write_imagenet_views(folder: Path) -> None:
    """The 9 other views of each ImageNet sample precision.py chooses layers on (4 crops, their mirrors, the mirrored
    sample), as PNG files: calibration images that are not the evaluated ones."""
    from PIL import Image
    from precision import MBV2_VIEWS

    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in IMAGENET_SAMPLES.iterdir() if p.is_file()):
        image = Image.open(path).convert("RGB")
        width, height = image.size
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / f"{path.stem}-mirror.png")
        for index, (left, top, right, bottom) in enumerate(MBV2_VIEWS):
            crop = image.crop((int(left * width), int(top * height), int(right * width), int(bottom * height)))
            crop.save(folder / f"{path.stem}-crop{index}.png")
            crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / f"{path.stem}-crop{index}-mirror.png")


# -- part 1: every runtime x precision against ONNX Runtime fp32 --------------------------------------------
class _NoJournal:
    """A fit's journal that replays nothing and keeps nothing (``_time_against`` asks it before timing)."""

    replayed_ratio = None

    def measurement(self, key: str) -> None:
        """Nothing to replay."""
        return None

    def record(self, *args: Any) -> None:
        """Nothing kept."""


def _trial_row(trial: Any) -> dict[str, Any]:
    row = trial.to_dict()
    row["faithful"] = trial.faithful
    return row


def _pick(trials: list[Any], own: str) -> dict[str, Any]:
    """``--runtime auto``'s rule (the fit's ``_fastest``) on the trials' current ratios."""
    from edgeprune.fit.runtime_choice import _fastest

    if not any(t.faithful for t in trials):
        return {"runtime": None, "precision": None, "tied": []}
    chosen, tied = _fastest(trials, own)
    return {"runtime": chosen.runtime, "precision": chosen.precision, "ratio": chosen.ratio,
            "tied": [f"{t.runtime} {t.precision}" for t in tied]}


def measure_runtimes(case: ModelCase, pair_seconds: float, work: Path) -> dict[str, Any]:
    """Part 1 for one model: export and check every runtime x precision as ``--runtime auto`` does, time each
    against ONNX Runtime fp32 (the fit's pairing, then a longer one), and apply the fit's rule to both."""
    import numpy as np

    from edgeprune.config import FitConfig
    from edgeprune.fit import runtime_choice as rc
    from edgeprune.fit.inputs import resolve_inputs
    from edgeprune.fit.pipeline import _choice_precisions, _runtimes_for
    from edgeprune.paired import measure_paired, schedule
    from edgeprune.target import load_target

    work.mkdir(parents=True, exist_ok=True)
    config = FitConfig(budget=None, target=TARGET, runtime="auto", precision="auto", **case.fit_options())
    target = load_target(TARGET)
    inputs = resolve_inputs(config, target)
    model = inputs.bundle.model.eval()
    trials = rc._trials(_runtimes_for(config, target), _choice_precisions(config, target))
    export_s: dict[str, float] = {}
    for trial in trials:
        start = time.perf_counter()
        try:  # the fit's own check; anything it does not catch is this cell's failure too
            rc._export_and_check(trial, target, model, inputs.example, inputs.calibration.numpy(),
                                 inputs.eval_inputs, inputs.task, work)
        except Exception as exc:  # noqa: BLE001 (a runtime's failure on a model is a table cell)
            trial.status, trial.session = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", None
        export_s[f"{trial.runtime}:{trial.precision}"] = time.perf_counter() - start
        log.info("%s %s %s: %s", case.name, trial.runtime, trial.precision, trial.status)
    reference = next((t for t in trials if t.runtime == target.runtime and t.precision != "int8" and t.session), None)
    if reference is None:
        raise RuntimeError(f"{case.name}: ONNX Runtime fp32 did not load; nothing to time against")
    timed = [t for t in trials if t.session is not None and t.artifact is not None]
    fit_rows: dict[str, dict[str, Any]] = {}
    for trial in timed:  # exactly the fit's pairing, one pair at a time (as _time_against)
        try:
            rc._time_against(reference, [trial], _NoJournal())  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            trial.status = f"failed while timed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        fit_rows[f"{trial.runtime}:{trial.precision}"] = {"ratio": trial.ratio, "interval": [trial.low, trial.high],
                                                          "median_ms": trial.median_ms}
    fit_pick = _pick(trials, target.runtime)
    ref_feed = rc._feed(reference.artifact)  # type: ignore[arg-type]
    reference_ms: list[float] = []
    long_rows: dict[str, dict[str, Any]] = {}
    for trial in timed:
        if not trial.faithful:
            continue
        feed = rc._feed(trial.artifact)
        session, ref_session = trial.session, reference.session
        assert session is not None and ref_session is not None
        try:
            paired = measure_paired(lambda: ref_session.run(ref_feed), lambda: session.run(feed),  # noqa: B023
                                    schedule(pair_seconds, max_interval_share=0.05))
        except Exception as exc:  # noqa: BLE001
            trial.status = f"failed while timed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            continue
        s = paired.summary
        trial.ratio, trial.low, trial.high, trial.median_ms = s.ratio, s.low, s.high, paired.candidate.median_ms
        reference_ms += paired.reference_round_ms
        long_rows[f"{trial.runtime}:{trial.precision}"] = {"rounds": s.rounds, "extended": paired.extended,
                                                           "oversubscribed": paired.oversubscribed,
                                                           "disturbed_share": paired.disturbed_share}
        log.info("%s %s %s: %.3f ms, %.3fx ONNX Runtime fp32 [%.3f, %.3f] (%d rounds)", case.name, trial.runtime,
                 trial.precision, trial.median_ms, s.ratio, s.low, s.high, s.rounds)
    long_pick = _pick(trials, target.runtime)
    rows = []
    for trial in trials:
        key = f"{trial.runtime}:{trial.precision}"
        rows.append({**_trial_row(trial), "export_s": export_s.get(key), "fit_pairing": fit_rows.get(key),
                     "long_pairing": long_rows.get(key)})
        trial.session = None
    return {"model": case.name, "spec": case.spec, "weights": case.weights.name if case.real_weights else None,
            "real_weights": case.real_weights, "note": case.note, "target": TARGET,
            "input_shape": list(inputs.example.shape), "eval_images": len(inputs.eval_inputs),
            "agreement_images": min(rc.AGREEMENT_IMAGES, len(inputs.eval_inputs)),
            "calibration": inputs.calibration_source, "task": inputs.task.name,
            "reference_ms": float(np.median(reference_ms)) if reference_ms else None,
            "fit_pair_seconds": rc.PAIR_SECONDS, "pair_seconds": pair_seconds,
            "pick_fit_pairing": fit_pick, "pick_long_pairing": long_pick, "trials": rows}


# -- part 2: fits in --runtime auto against each fixed runtime ----------------------------------------------
def _cli_args(options: dict[str, Any]) -> list[str]:
    """``edgeprune fit`` arguments for :meth:`ModelCase.fit_options`."""
    args: list[str] = []
    for key, value in options.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return args


def _fit_row(report: dict[str, Any]) -> dict[str, Any]:
    """What part 2 keeps of a fit's report.json."""
    final, base = report.get("final", {}), report.get("baseline", {})
    latency = final.get("latency", {})
    evaluation = report.get("evaluation", {})
    return {"status": report.get("status"), "runtime": evaluation.get("runtime"),
            "precision": latency.get("precision"), "final_ms": latency.get("median_ms"),
            "baseline_ms": base.get("latency", {}).get("median_ms"),
            "speedup_own": report.get("speedup_measured"), "speedup_own_interval": report.get("speedup_interval"),
            "agreement": evaluation.get("agreement_with_original"), "top1_before": base.get("top1"),
            "top1_after": final.get("top1"), "artifact": report.get("artifact", {}).get("file"),
            "runtime_choice": (report.get("runtime_choice") or {}).get("runtime"),
            "runtime_choice_reason": (report.get("runtime_choice") or {}).get("reason")}


def run_fits(case: ModelCase, runtimes: list[str], goals: list[str], pair_seconds: float, work: Path
             ) -> dict[str, Any]:
    """Part 2 for one model: fits at 2x and 3x of the ONNX Runtime fp32 original (absolute ms budgets) with each
    ``--runtime``, then every shipped file timed paired against that original in one run."""
    from edgeprune.config import FitConfig
    from edgeprune.fit.inputs import resolve_inputs
    from edgeprune.runtimes import backend_of
    from edgeprune.target import load_target
    from edgeprune.validate.bench import bench_artifacts, paired_against
    from edgeprune.validate.runners import load_artifact

    work.mkdir(parents=True, exist_ok=True)
    target = load_target(TARGET)
    inputs = resolve_inputs(FitConfig(budget=None, target=TARGET, **case.fit_options()), target)
    original = backend_of("onnxruntime").export(inputs.bundle.model.eval(), inputs.example, work / "ort-original",
                                                target)
    original_ms = bench_artifacts([original.path], target, seconds=max(2.0, pair_seconds / 2), top_kernels=0)[0].median_ms
    log.info("%s: ONNX Runtime fp32 original %.3f ms", case.name, original_ms)
    fits = []
    exe = str(Path(sys.executable).with_name("edgeprune"))
    for goal in goals:
        budget = f"{round(SHARES[goal] * original_ms, 3)}ms"
        for runtime in runtimes:
            out = work / f"fit-{goal}-{runtime}"
            command = [exe, "fit", *_cli_args(case.fit_options()), "--target", TARGET, "--runtime", runtime,
                       "--precision", "auto", "--budget", budget, "--min-agreement", "0", "--out", str(out),
                       "--force"]
            log.info("%s %s --runtime %s: %s", case.name, goal, runtime, shlex.join(command))
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            row: dict[str, Any] = {"goal": goal, "budget": budget, "runtime_asked": runtime,
                                   "exit_code": done.returncode, "wall_s": time.perf_counter() - start,
                                   "message": (done.stderr.strip().splitlines() or [""])[-1][:300]}
            report_path = out / "report.json"
            if report_path.exists():
                row.update(_fit_row(json.loads(report_path.read_text())))
            log.info("%s %s --runtime %s: exit %d, %s", case.name, goal, runtime, done.returncode,
                     row.get("final_ms") or row["message"])
            fits.append(row)
    reference = load_artifact(original.path, target)
    for row in fits:  # every shipped file against the same ONNX Runtime fp32 original, in one run
        if not row.get("artifact"):
            continue
        try:
            paired = paired_against(reference, load_artifact(row["artifact"], target), pair_seconds)
        except Exception as exc:  # noqa: BLE001 (a file that will not load or run here is a cell)
            row["vs_ort"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
            continue
        s = paired.summary
        row["vs_ort"] = {"speedup": 1 / s.ratio, "interval": [1 / s.high, 1 / s.low], "rounds": s.rounds,
                         "ort_ms": paired.reference_median_ms, "ms": paired.candidate.median_ms}
    return {"model": case.name, "spec": case.spec, "real_weights": case.real_weights, "note": case.note,
            "target": TARGET, "original_ms": original_ms, "pair_seconds": pair_seconds, "fits": fits}


# -- rendering ---------------------------------------------------------------------------------------------
def _num(value: float | None, fmt: str = ".3f", suffix: str = "") -> str:
    return "–" if value is None else f"{value:{fmt}}{suffix}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _ratio_text(ratio: float | None, interval: list[float | None] | None) -> str:
    if ratio is None:
        return "–"
    low, high = interval or (None, None)
    return f"{ratio:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")


def _pick_text(pick: dict[str, Any]) -> str:
    if not pick.get("runtime"):
        return "nothing faithful"
    tied = [t for t in pick.get("tied", []) if t != f"{pick['runtime']} {pick['precision']}"]
    return f"**{pick['runtime']} {pick['precision']}**" + (f" (tied with {', '.join(tied)})" if tied else "")


def render_part1(result: dict[str, Any]) -> list[str]:
    """One model's table of runtime x precision and the picks."""
    lines = [f"### {result['model']} (`{result['spec']}`, input {'x'.join(map(str, result['input_shape']))})", "",
             f"{result['note']}. Calibration: {result['calibration']}; int8 agreement on "
             f"{result['agreement_images']} evaluation images ({result['task']}). ONNX Runtime fp32 median "
             f"{_num(result['reference_ms'])} ms over the long pairings' reference rounds. "
             f"`{result.get('command', '')}`, {result['wall_s']:.0f} s.", "",
             "| runtime | precision | status | ratio vs ORT fp32, long pairing [90%] | ms | ratio, fit's pairing | "
             "parity (rel. max \\|diff\\|) | int8 agreement | export + check s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in result["trials"]:
        fit = t.get("fit_pairing") or {}
        status = "ok" if t["status"] == "measured" else t["status"].replace("|", "\\|")
        long = t.get("long_pairing") or {}
        ratio = _ratio_text(t["ratio"], t["interval"]) if long else "–"
        lines.append(f"| {t['title']} | {t['precision']} | {status} | {ratio} | "
                     f"{_num(t['median_ms']) if long else '–'} | {_ratio_text(fit.get('ratio'), fit.get('interval'))} "
                     f"| {_num(t['parity'], '.1e')} | {_pct(t['agreement'])} | {_num(t.get('export_s'), '.1f')} |")
    lines += ["", f"* `--runtime auto` picks, with the fit's own pairing ({result['fit_pair_seconds']:g} s a pair): "
              f"{_pick_text(result['pick_fit_pairing'])}; the same rule on the {result['pair_seconds']:g} s "
              f"pairings: {_pick_text(result['pick_long_pairing'])}.", ""]
    return lines


def render_part2(result: dict[str, Any]) -> list[str]:
    """One model's fits at 2x and 3x, one row per --runtime."""
    lines = [f"### Fits: {result['model']} (ONNX Runtime fp32 original {result['original_ms']:.3f} ms)", "",
             f"`{result.get('command', '')}`, {result['wall_s']:.0f} s.", "",
             "| goal | budget | --runtime | exit | shipped in | precision | ms | speedup vs ORT fp32 original "
             "[90%] | fit's own speedup | agreement | top-1 before → after | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in result["fits"]:
        vs = f.get("vs_ort") or {}
        if "speedup" in vs:
            low, high = vs["interval"]
            speedup = f"{vs['speedup']:.2f}× [{low:.2f}, {high:.2f}]"
        else:
            speedup = vs.get("error", "–")
        shipped = f.get("runtime") or f["message"].replace("|", "\\|")[:120]
        top1 = (f"{_pct(f.get('top1_before'))} → {_pct(f.get('top1_after'))}"
                if result["real_weights"] and f.get("top1_after") is not None else "–")
        lines.append(f"| {f['goal']} | {f['budget']} | {f['runtime_asked']} | {f['exit_code']} | {shipped} | "
                     f"{f.get('precision') or '–'} | {_num(f.get('final_ms'))} | {speedup} | "
                     f"{_num(f.get('speedup_own'), '.2f', '×')} | {_pct(f.get('agreement'))} | {top1} | "
                     f"{f['wall_s']:.0f} |")
    return lines + [""]


def render(saved: dict[str, Any]) -> list[str]:
    """The benchmarks.md section."""
    env = saved.get("provenance", {})
    versions = env.get("versions", {})
    machine = env.get("machine", {})
    versions = {**versions, **{k: v for k, v in env.get("runtime_versions", {}).items() if v}}
    wanted = ("onnxruntime", "openvino", "ai-edge-litert", "ncnn", "pnnx", "executorch", "torch")
    lines = [HEADING, "",
             f"`python tools/bench/runtimes.py` (each model's own command below) on {machine.get('cpu', '?')} "
             f"({machine.get('logical_cores', '?')} logical cores), target `{TARGET}` (1 thread), edgeprune at "
             f"{env.get('commit', '?')}, {env.get('created_utc', '?')}; "
             + ", ".join(f"{k} {versions[k]}" for k in wanted if versions.get(k)) + ".", "",
             "Each runtime x precision is the unpruned model exported, checked and timed by `--runtime auto`'s own "
             "code (`edgeprune/fit/runtime_choice.py`) on the inputs a fit with the same options reads: fp32 parity is "
             "the relative max |diff| against PyTorch; int8 is the task's agreement with the PyTorch model, refused "
             "under the task's INT8 floor. Ratios are latency against the ONNX Runtime fp32 session, paired "
             "(alternating rounds, median of per-round ratios, 90% bootstrap interval) in the same run: below 1 is "
             "faster. *Fit's pairing* is the fit's own short measurement; the pick applies the fit's rule "
             "(`_fastest`: lowest ratio; among pairs within each other's intervals the target's own runtime, else "
             "the first with a per-layer profiler) to each set of ratios. Why not `edgeprune fit --budget 100%`: it "
             "makes the same choice (before the budget is looked at) and its report.json holds the same table, "
             "but it times each pair once, about 1 s; calling the module keeps the sessions for the longer "
             "pairing and turns any failure into its cell.", ""]
    for name, result in saved.get("part1", {}).items():
        lines += render_part1(result) if "trials" in result else [f"### {name}", "", f"failed: {result['error']}", ""]
    if saved.get("part2"):
        lines += ["Fits (`--fits`): `edgeprune fit --runtime R --precision auto --budget Xms --min-agreement 0`, no "
                  "fine-tune, at 50% and 33.3% of the ONNX Runtime fp32 original's median given in ms, so every "
                  "runtime has the same absolute budget. *Speedup vs ORT fp32 original*: the shipped file timed "
                  "paired against that original after all fits (`edgeprune bench`'s pairing); *fit's own*: its "
                  "report's paired speedup against the original in the runtime it shipped in. Exit 0: shipped; "
                  "2: refused (the budget cannot be met, or an input error: the fit's line says which); 3: "
                  "validation failed (files kept); 5: CPU oversubscribed.", ""]
        for name, result in saved["part2"].items():
            lines += render_part2(result) if "fits" in result else [f"### Fits: {name}", "",
                                                                   f"failed: {result['error']}", ""]
    return lines


# -- command line ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=["cifar-resnet56", "mobilenet_v2", "resnet18", "yolov8n-320"],
                   choices=["cifar-resnet56", "mobilenet_v2", "resnet18", "yolov8n-320"])
    p.add_argument("--fits", action="store_true", help="part 2 (fits at 2x and 3x) instead of part 1")
    p.add_argument("--fit-runtimes", nargs="*", default=None,
                   help="--runtime values of part 2 (default: auto and every runtime)")
    p.add_argument("--goals", nargs="*", default=list(SHARES), choices=list(SHARES), help="part 2's speedups")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_PAIR_SECONDS:g} s pairings: a smoke test")
    p.add_argument("--pair-seconds", type=float, default=None, help=f"seconds per pair (default {PAIR_SECONDS:g})")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument("--render-only", action="store_true")
    return p.parse_args(argv)


def runtime_versions() -> dict[str, str | None]:
    """Each runtime's installed distribution version (``package_versions`` lists some of them only)."""
    from importlib.metadata import PackageNotFoundError, version

    from edgeprune.runtimes.table import RUNTIME_FACTS

    found: dict[str, str | None] = {}
    for facts in RUNTIME_FACTS:
        for dist in (facts.dist, *(["pnnx"] if facts.name == "ncnn" else [])):
            try:
                found[dist] = version(dist)
            except PackageNotFoundError:
                found[dist] = None
    return found


def reproducing_command(model: str, fits: bool, seconds: float, goals: list[str] | None = None,
                        runtimes: list[str] | None = None) -> str:
    """The command that reproduces one model's result of one part."""
    extra = (["--fits"] if fits else []) + (["--goals", *goals] if fits and goals and goals != list(SHARES) else [])
    extra += ["--fit-runtimes", *runtimes] if fits and runtimes else []
    extra += [] if seconds == PAIR_SECONDS else ["--pair-seconds", f"{seconds:g}"]
    return shlex.join(["python", "tools/bench/runtimes.py", "--models", model, *extra])


def main(argv: list[str] | None = None) -> None:
    """Run the selected part for the selected models, merge into the results file, write the docs section."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    saved = json.loads(args.results.read_text()) if args.results.exists() else {}
    if not args.render_only:
        from edgeprune.runtimes import RUNTIME_NAMES

        seconds = args.pair_seconds or (QUICK_PAIR_SECONDS if args.quick else PAIR_SECONDS)
        part = "part2" if args.fits else "part1"
        work = Path(tempfile.mkdtemp(prefix="runtimes-bench-"))
        try:
            cases = model_cases(work)
            for name in args.models:
                start = time.perf_counter()
                try:
                    case = resolved(cases[name])
                    result = (run_fits(case, args.fit_runtimes or ["auto", *RUNTIME_NAMES], args.goals, seconds,
                                       work / name)
                              if args.fits else measure_runtimes(case, seconds, work / name))
                except Exception as exc:  # noqa: BLE001 (one model's failure is its section, not the run's end)
                    log.exception("%s failed", name)
                    result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
                result.update({"wall_s": time.perf_counter() - start,
                               "provenance": {**provenance(), "runtime_versions": runtime_versions()},
                               "command": reproducing_command(name, args.fits, seconds, args.goals,
                                                              args.fit_runtimes)})
                saved.setdefault(part, {})[name] = result
                saved["provenance"] = result["provenance"]
                write_json_atomic(args.results, saved)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    write_section(args.doc, HEADING, render(saved))
    log.info("wrote %s and %s", args.results, args.doc)


if __name__ == "__main__":
    main()
