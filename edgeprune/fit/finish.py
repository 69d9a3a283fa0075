"""The end of a fit run: evaluate both artifacts in the runtime, then write plan, weights, artifact, reports.

Everything is written into the output directory's staging area and moved in by atomic renames only when
all of it exists, so a failure here leaves no partial results.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from edgeprune.errors import AccuracyCollapsedError, ValidationFailedError
from edgeprune.export.formats import runnable_here
from edgeprune.export.size import artifact_size, weight_zeros
from edgeprune.export.sparse_cpu import sparse_inference_verdict
from edgeprune.fit.artifacts import ship_artifacts
from edgeprune.fit.labels import final_label_check
from edgeprune.fit.outputs import ARTIFACT_FILES, ORIGINAL_FILES, OutputDir
from edgeprune.fit.run import FitRun, RunOutcome
from edgeprune.io_atomic import write_json_atomic
from edgeprune.progress import heartbeat
from edgeprune.prune.graph import count_macs_and_params
from edgeprune.prune.plan import SlimPlan, module_shapes
from edgeprune.quantize.layers import layer_precisions, summarise
from edgeprune.report.fit_report import ModelSide, build_fit_report, paired_speedup
from edgeprune.report.fit_result import FitResult
from edgeprune.report.layer_latency import per_layer_latency, predicted_layer_latency
from edgeprune.report.plots import ACCURACY_PLOT, LAYER_PLOT
from edgeprune.report.render import render_report_files
from edgeprune.report.size_report import SIZE_PLOT
from edgeprune.runtimes.base import Artifact
from edgeprune.runtimes.table import facts_of_format
from edgeprune.tasks.base import Task
from edgeprune.tasks.classification import ClassificationTask
from edgeprune.timing import TimingSpec
from edgeprune.validate.accuracy import ArtifactEvaluation, evaluate_session, max_abs_difference

log = logging.getLogger(__name__)

PARITY_IMAGES = 16
#: what the shipped artifact is checked against when quantization-aware fine-tuning shipped it
QAT_REFERENCE = ("quantization-aware PyTorch model (NNCF fake quantization); model.safetensors holds its float form, "
                 "from which the other formats are exported and against which they are validated")


def _task_metrics(task: Task, evaluation: ArtifactEvaluation) -> dict[str, float] | None:
    """A detector's or segmenter's metrics for report.json (None for classifiers, whose ``top1`` says it all, or
    without labels)."""
    if isinstance(task, ClassificationTask) or evaluation.score is None:
        return None
    return dict(evaluation.score.metrics)


def finish_run(run: FitRun, outcome: RunOutcome, out: OutputDir) -> FitResult:
    """Evaluate, write every result file atomically, and return the result (== report.json)."""
    stage = out.staging
    inputs, clock = run.inputs, run.clock
    baseline, final, slim, keep = outcome.baseline, outcome.final, outcome.slim, outcome.keep
    task, truth = inputs.task, inputs.truth
    with clock("evaluate"):
        backend = run.backend
        target, evaluation_note = runnable_here(run.target)
        if evaluation_note:
            log.info("%s", evaluation_note)
        base_eval = evaluate_session(backend.load(baseline.artifact, target), baseline.artifact.input_name,
                                     inputs.eval_inputs, truth, task)
        final_session = backend.load(final.artifact, target)
        final_eval = evaluate_session(final_session, final.artifact.input_name, inputs.eval_inputs, truth, task)
        parity = max_abs_difference(final_session, final.artifact.input_name, outcome.reference or slim,
                                    inputs.calibration[:PARITY_IMAGES])
    macs_before, params_before = count_macs_and_params(run.model, run.example)
    macs_after, params_after = count_macs_and_params(slim, run.example)
    kept = {g.name: keep.get(g.name, list(range(g.width))) for g in run.groups}
    bundle = inputs.bundle
    config = run.config
    method = {"importance": run.importance.name, **outcome.allocation.method(),
              "search_headroom": config.search_headroom, "steps": config.steps,
              "reconstruct": run.recovery.reconstructs, "bn_recalibrate": run.recovery.recalibrates_bn}
    quantizer = getattr(run.measurer.backend, "describe", None)
    if callable(quantizer):  # an INT8 run: how every candidate, and so the shipped artifact, was quantized
        method["quantization"] = quantizer()
    if run.qat_report is not None:  # --qat-epochs: what the quantization-aware fine-tune did, and what shipped
        method["qat"] = run.qat_report
    qat_shipped = (run.qat_report or {}).get("shipped") == "qat"
    if run.precision_choice is not None:  # --precision auto: what was measured and why INT8 was taken or not
        method["precision_choice"] = run.precision_choice.to_dict()
    depth = outcome.depth
    removed = depth.removed if depth is not None else []
    if depth is not None:
        method["blocks"] = {"removable": depth.removable, "removed": removed,
                            "criterion": "greedy: least output distortion (KL vs the original) with the blocks "
                                         "already removed, after batch-norm re-estimation",
                            "distortion": depth.distortion}
    plan = SlimPlan(bundle.spec, bundle.build_kwargs, list(run.example.shape), inputs.preprocessing.to_dict(),
                    [{"name": g.name, "width_before": g.width, "width_after": len(kept[g.name]),
                      "kept": kept[g.name]} for g in run.groups],
                    module_shapes(slim), method, removed)
    per_layer = _layer_latency(run, outcome, kept)
    artifact_files = ARTIFACT_FILES[final.artifact.format]
    for source, name in zip(facts_of_format(final.artifact.format).files(final.artifact.path), artifact_files):
        source.replace(stage / name)  # model.xml comes with model.bin; most formats are one file
    local = run.measurer.timer.source == "measured-local"
    with clock("export"):
        shipped, validations = ship_artifacts(config, inputs, run.target, slim, stage, final.artifact,
                                              artifact_files[0], plan.digest(), measure_locally=local,
                                              measured_reference=outcome.reference)
    original_files = _stage_original(baseline.artifact, stage)
    state = {k: v.detach().contiguous() for k, v in slim.state_dict().items()}
    save_file(state, str(stage / "model.safetensors"), metadata={"plan_sha256": plan.digest()})
    write_json_atomic(stage / "plan.json", plan.to_dict())
    plots = [ACCURACY_PLOT, SIZE_PLOT] + ([LAYER_PLOT] if per_layer and per_layer.get("layers") else [])
    names = [*artifact_files, *shipped, *original_files, "model.safetensors", "plan.json", "report.json", "report.md",
             *plots]
    out_dir = out.path.resolve()
    pruned = slim is not run.model
    timer = run.measurer.timer
    report: dict[str, Any] = build_fit_report(
        out_dir=out_dir, files=names,
        model={"spec": bundle.spec, "weights": str(config.weights) if config.weights else None,
               "input_shape": list(run.example.shape), "preprocessing": inputs.preprocessing.to_dict()},
        target=run.target, timer=timer, budget_ms=run.budget_ms,
        budget_spec=str(run.budget_spec) if run.budget_spec is not None else "none (size-only fit)",
        baseline=ModelSide(baseline.stats, base_eval.top1, macs_before, params_before, _task_metrics(task, base_eval)),
        final=ModelSide(final.stats, final_eval.top1, macs_after, params_after, _task_metrics(task, final_eval)),
        method=method,
        artifact={"format": final.artifact.format, "file": str(out_dir / artifact_files[0]),
                  "input_name": final.artifact.input_name, "input_shape": list(final.artifact.input_shape)},
        evaluation={"dataset": inputs.eval_set.source, "images": base_eval.images, "runtime": run.target.runtime,
                    "device": target.device, "note": evaluation_note,
                    "task": task.name, "metric": task.metric_name, "metric_key": task.metric_key,
                    "agreement_with_original": task.agreement(final_eval.predictions, base_eval.predictions)},
        parity={"max_abs_diff": parity, "images": min(PARITY_IMAGES, len(inputs.calibration)),
                "reference": QAT_REFERENCE if qat_shipped else "pruned PyTorch model"},
        calibration={"images": len(inputs.calibration), "source": inputs.calibration_source,
                     "bn_recalibrated": (run.recovery.recalibrates_bn or run.recovery.depth_pruned) and pruned,
                     "reconstruction": run.recovery.reconstruction if pruned else None},
        finetune=run.recovery.summary(),
        rounds=run.rounds, exports=run.measurer.exports,
        groups=[{k: g[k] for k in ("name", "width_before", "width_after")} for g in plan.groups],
        frozen=run.frozen, timings_s=dict(clock.seconds),
    )
    report["label_check"] = final_label_check(inputs, base_eval.top1, base_eval.images)
    report["accuracy_guard"] = guard = accuracy_guard(task, report["evaluation"]["agreement_with_original"],
                                                      config.min_agreement, base_eval.images)
    report.update(paired_speedup(final.paired, run.measurer.drift() if run.measurer.reference is not None else None))
    report["resume"] = {"measurements_replayed": run.journal.replayed}
    report["config_fingerprint"] = run.journal.fingerprint  # a later --resume of this finished run answers with it
    report["budget_met_by_original"] = (not pruned and run.sparsity_report is None
                                        and final.artifact.format == baseline.artifact.format
                                        and baseline.stats.median_ms <= run.budget_ms
                                        and run.target.precision == run.target.float_precision)
    report["per_layer_latency"] = per_layer
    report["options_not_used"] = run.options_not_used
    report["runtime_choice"] = run.runtime_choice.to_dict() if run.runtime_choice is not None else None
    layers = layer_precisions(stage / artifact_files[0], final.artifact.format)
    report["layer_precision"] = {"summary": summarise(layers), "layers": [layer.to_dict() for layer in layers],
                                 "source": f"read from {artifact_files[0]} (edgeprune.quantize.layers)"}
    report["artifacts"] = validations
    report["size"] = _sizes(run, outcome, stage, validations)
    if run.sparsity_report is not None:
        report["sparsity"] = run.sparsity_report
    if any(not v["passed"] for v in validations):
        report["status"] = "validation failed"
    if not guard["passed"]:
        report["status"] = "accuracy collapsed"
    written = set(render_report_files(stage, report))
    missing = [n for n in plots if n not in written]  # matplotlib absent: the report says so, no file
    names = [n for n in names if n not in missing]
    report["files"] = {k: v for k, v in report["files"].items() if k not in missing}
    write_json_atomic(stage / "report.json", report)
    out.commit(names)
    if not guard["passed"]:  # the files stay for inspection; success is not claimed
        raise AccuracyCollapsedError(f"{guard['message']} (results kept in {out.path} for inspection)")
    failed = [v["failure"] for v in validations if not v["passed"]]
    if failed:  # the files stay (the report says what failed); the exit code says it too
        raise ValidationFailedError("; ".join(failed) + f" (results kept in {out.path} for inspection)")
    return FitResult(report)


def _stage_original(baseline: Artifact | None, stage: Path) -> list[str]:
    """Copy the original's artifact (measured against the budget, in the target's runtime and float precision)
    into the staging folder as ``original.*``; returns the file names (none when there is no artifact)."""
    if baseline is None:
        return []
    names = list(ORIGINAL_FILES[baseline.format])
    for source, name in zip(facts_of_format(baseline.format).files(baseline.path), names):
        shutil.copyfile(source, stage / name)  # original.xml comes with original.bin (OpenVINO reads it by stem)
    return names


def accuracy_guard(task: Task, agreement: float, floor: float | None, images: int) -> dict[str, Any]:
    """report.json's ``accuracy_guard``: the shipped model's agreement with the original on the evaluation
    images against the floor (``--min-agreement``, else the task's), and the line that says it collapsed."""
    source = f"the {task.name} default" if floor is None else "--min-agreement"
    floor = task.min_agreement if floor is None else floor
    passed = agreement >= floor
    message = None if passed else (
        f"the shipped model collapsed: its {task.agreement_name} with the original is {100 * agreement:.1f}% on "
        f"{images} evaluation images, under the {100 * floor:.0f}% floor; look at the calibration images and "
        "fine-tuning (report.md), or lower the floor with --min-agreement")
    reads = task.agreement_phrase or f"{task.agreement_name} with the original"
    return {"agreement": agreement, "measure": task.agreement_name, "reads": reads, "floor": floor,
            "floor_source": source, "images": images, "passed": passed, "message": message}


def _sizes(run: FitRun, outcome: RunOutcome, stage: Path, validations: list[dict[str, Any]]) -> dict[str, Any]:
    """Every shipped artifact's size (raw and zipped with deflate) and the zeros its weights carry, read back from
    the files (also written into each artifact's entry of ``validations``); the original's size; the size budget."""
    for entry in validations:
        files = [stage / name for name in ARTIFACT_FILES[entry["format"]]]
        entry["size"] = artifact_size(files).to_dict()
        try:
            entry["weight_zeros"] = weight_zeros(files[0], entry["format"]).to_dict()
        except Exception as exc:  # the report is still useful without the count: said, not fatal
            log.warning("zeros of %s's weights not read back: %s", entry["file"], exc)
            entry["weight_zeros"] = None
    baseline = outcome.baseline.artifact
    original = artifact_size(facts_of_format(baseline.format).files(baseline.path))
    sparsity = run.sparsity_report or {}
    budget = sparsity.get("size_budget_bytes")
    shipped = validations[0]["size"]
    return {"original": {"format": baseline.format, **original.to_dict()},
            "shipped": {"file": validations[0]["file"], **shipped},
            "compression": "zip archive of the artifact's files, deflate level 6 (zipfile.ZIP_DEFLATED)",
            "size_budget": run.config.size_budget, "size_budget_bytes": budget,
            "size_budget_met": None if budget is None else shipped["zip_bytes"] <= budget,
            "latency_note": sparse_inference_verdict(run.target).reason}


LAYER_PROFILE_TIMING = TimingSpec(warmup_runs=10, min_runs=100, min_seconds=0.5)


def _layer_latency(run: FitRun, outcome: RunOutcome, kept: dict[str, list[int]]) -> dict[str, Any] | None:
    """Per-layer latency before/after: the runtime's profiler when measuring here, else the latency model.

    Through an agent the local profiler would time this workstation, not the device, so only the model's
    prediction (labelled so) is given; the same holds for shipped-profile targets.
    """
    if run.measurer.timer.source == "measured-local" and outcome.baseline.artifact is not None:
        try:
            with run.clock("evaluate"), heartbeat("timing both artifacts layer by layer (the runtime's profiler)"):
                measured = per_layer_latency(run.backend, run.target, outcome.baseline.artifact,
                                             outcome.final.artifact, run.example.numpy(), LAYER_PROFILE_TIMING)
            if measured is not None:
                return measured
        except Exception as exc:  # the report is still useful without this figure
            log.warning("per-layer profile skipped: %s", exc)
    latency = getattr(outcome.allocation, "latency", None)
    if latency is None or run.config.steps != 1:  # the last step's model cannot predict the original's layers
        return None
    before = latency.breakdown({g.name: g.width for g in run.groups})
    after = latency.breakdown({g.name: len(kept[g.name]) for g in run.groups})
    result = predicted_layer_latency(before, after)
    if run.measurer.timer.source == "predicted-profile":
        result["source"] = "predicted (shipped profile)"
    return result
