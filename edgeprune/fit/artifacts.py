"""The artifacts a fit run ships: the measured one plus any other runtime's (``--export``), each with a
JSON sidecar and each validated in its own runtime against the pruned PyTorch model.

The measured artifact (the target's runtime) is the one whose latency was confirmed against the budget;
artifacts for other runtimes are exported from the same slim model and validated on this machine's CPU
(their latency there is measured and reported as such, never as the target's). A failed validation does
not hide the files: everything is written, the report says which artifact failed on which number, and
``fit`` exits with code 3.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from edgeprune.config import FitConfig
from edgeprune.export.artifacts import export_artifacts, write_artifact_sidecar
from edgeprune.export.formats import parse_formats, runnable_here, runtime_target
from edgeprune.export.sidecar import sidecar_path
from edgeprune.fit.inputs import FitInputs
from edgeprune.progress import heartbeat
from edgeprune.runtimes.base import Artifact
from edgeprune.target import Target
from edgeprune.tasks.classification import ClassificationTask
from edgeprune.timing import TimingSpec
from edgeprune.validate.artifact_check import ModelInputs, validate_artifact

log = logging.getLogger(__name__)

VALIDATION_IMAGES = 256
VALIDATION_TIMING = TimingSpec(warmup_runs=10, min_runs=50, min_seconds=1.0)


def requested_formats(config: FitConfig, target: Target, measured_format: str) -> tuple[str, ...]:
    """The formats to ship: ``--export`` (the measured format always included), else the target's own."""
    formats = parse_formats(config.export) if config.export else ()
    return (measured_format, *[f for f in formats if f != measured_format])


def ship_artifacts(config: FitConfig, inputs: FitInputs, target: Target, slim: nn.Module, stage: Path,
                   measured: Artifact, measured_file: str, plan_digest: str, measure_locally: bool,
                   measured_reference: nn.Module | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """Write sidecars and extra formats into ``stage``, validate each artifact; (file names, summaries).

    The measured artifact is checked against ``measured_reference`` where given (the quantization-aware model
    whose export it is), the others against ``slim``, from which they are exported.
    """
    prep = inputs.preprocessing
    write_artifact_sidecar(stage / measured_file, measured.format, target=target, input_name=measured.input_name,
                           input_shape=measured.input_shape, preprocessing=prep, plan_digest=plan_digest)
    names = [sidecar_path(stage / measured_file).name]
    artifacts = [(measured.format, stage / measured_file)]
    extra = requested_formats(config, target, measured.format)[1:]
    if extra:
        with heartbeat(f"exporting {', '.join(extra)}"):
            exported = export_artifacts(slim, inputs.example, extra, stage, target=target, preprocessing=prep,
                                        plan_digest=plan_digest, force=True)
        for item in exported:
            names += item.file_names
            artifacts.append((item.format, item.path))
    references = [measured_reference or slim] + [slim] * (len(artifacts) - 1)
    summaries = [_validate(config, inputs, target, reference, fmt, path, measure_locally)
                 for reference, (fmt, path) in zip(references, artifacts, strict=True)]
    return names, summaries


def _validate(config: FitConfig, inputs: FitInputs, target: Target, slim: nn.Module, fmt: str, path: Path,
              measure_locally: bool) -> dict[str, Any]:
    run_target, _ = runnable_here(runtime_target(target, fmt))  # the target itself for its own format, if here
    # without --data (the demo), the images the run evaluated on: random inputs would judge a quantized model on
    # inputs outside the ranges it was calibrated for
    # a detector's or segmenter's data is read by the task's own loader: always hand over the images the run
    # evaluated on
    other_task = not isinstance(inputs.task, ClassificationTask)
    data = ModelInputs(inputs.eval_inputs.numpy(), inputs.truth, inputs.eval_set.source, inputs.task) \
        if other_task or config.data is None else config.data
    with heartbeat(f"validating {path.name} in {run_target.runtime}"):
        result = validate_artifact(path, run_target, data=data, reference=slim, min_accuracy=config.min_accuracy,
                                   images=min(VALIDATION_IMAGES, config.eval_images or VALIDATION_IMAGES),
                                   preprocessing=inputs.preprocessing, timing=VALIDATION_TIMING,
                                   measure=measure_locally, seed=config.seed, raise_on_failure=False,
                                   class_map=None if isinstance(data, ModelInputs) else config.class_map)
    full = result.to_dict()
    parity, accuracy, latency = full.get("parity") or {}, full.get("accuracy") or {}, full.get("latency") or {}
    summary = {"format": fmt, "file": path.name, "runtime": run_target.runtime, "passed": result.passed,
               "max_abs_diff": parity.get("max_abs_diff_output_units"), "max_abs_diff_relative": parity.get("max_abs_diff_relative"),
               "top1_agreement": parity.get("top1_agreement_fraction"), "top1": accuracy.get("top1_accuracy_fraction"),
               **({"agreement": parity.get("agreement_fraction"),  # the task's (mAP50-95, pixel agreement)
                   **{key: accuracy.get(f"{key}_fraction") for key in inputs.task.metric_keys}} if other_task else {}),
               "median_ms": latency.get("median_ms"), "p90_ms": latency.get("p90_ms"),
               "latency_note": None if measure_locally else "not timed: this machine is not the target",
               "images": parity.get("images_count") or accuracy.get("images_count"),
               "data": (full.get("data") or {}).get("source"),
               # named as shipped, not by its place in the staging folder
               "failure": result.failure_message().replace(str(path), path.name) or None}
    log.info("validated %s in %s: %s", path.name, run_target.runtime,
             "passed" if result.passed else summary["failure"])
    return summary

