"""Weight pruning of the final model (``--sparsity``) and the size budget (``--size-budget``).

After channel pruning has found a model that meets the latency budget (and it was recovered), weight pruning
sets the smallest-magnitude weights of its convolutions and linear layers to zero (:mod:`edgeprune.prune.sparsity`,
``torch.nn.utils.prune``'s masks): gradually during a fine-tune of ``--finetune-epochs`` epochs as the schedule says
(``--sparsity-schedule polynomial``: TF-MOT's PolynomialDecay; ``constant``; :mod:`edgeprune.train.sparsity_schedule`),
or in one shot without fine-tuning. The masks are buffers of the model, so the fine-tune's checkpoints (and
``--resume``) keep them; they are made permanent (``prune.remove``) before anything is exported.

The zeros stay in dense tensors: every runtime here runs a dense kernel over them, so the artifact is not faster,
only smaller once compressed. The sparse artifact's latency is still measured (paired with the original, like the
final confirmation) and must meet the latency budget; its size is measured on the file as shipped, raw and zipped.

``--size-budget`` is judged on the zipped (deflate) bytes of the measured artifact (the target's format). Without
``--sparsity`` the run takes the lowest sparsity up to :data:`MAX_SPARSITY` whose one-shot artifact fits (bisection
on exported artifacts, aiming :data:`SIZE_HEADROOM` under the budget, since fine-tuning changes the surviving
weights and so how they compress); with ``--sparsity F``, ``F`` is used and is the most the run may use. When even
that most-sparse artifact is over the budget, the run stops (exit code 2) saying the smallest size reachable, before
any fine-tune is spent. Should the fine-tuned artifact still be over, the weights are pruned further in one shot,
a point of sparsity at a time, up to that ceiling.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.budget import SizeBudget
from edgeprune.errors import BudgetUnreachableError, SizeBudgetUnreachableError
from edgeprune.export.size import ArtifactSize, artifact_size, format_bytes, weight_zeros
from edgeprune.export.sparse_cpu import sparse_inference_verdict
from edgeprune.fit.outputs import ARTIFACT_FILES
from edgeprune.fit.run import FitRun, RunOutcome
from edgeprune.latency.candidates import Measurement
from edgeprune.latency.predicted import PredictedMeasurer
from edgeprune.progress import heartbeat
from edgeprune.prune.sparsity import WeightMasks, layer_sparsity, sparsify, total_sparsity
from edgeprune.runtimes.base import Artifact
from edgeprune.runtimes.litert.sparse_writer import write_sparse_tflite
from edgeprune.runtimes.table import facts_of_format
from edgeprune.train.sparsity_schedule import ConstantSparsity, GradualPruning, PolynomialDecay, default_steps

log = logging.getLogger(__name__)

#: the most sparsity a size budget may ask for when ``--sparsity`` does not set it
MAX_SPARSITY = 0.95
#: the sparsity search aims this share under the size budget (fine-tuning changes how the weights compress)
SIZE_HEADROOM = 0.02
#: bisection steps of the sparsity search (a resolution of MAX_SPARSITY / 2**7, under 1%)
SEARCH_STEPS = 7
#: the one-shot top-up step when a fine-tuned artifact is over the size budget
TOP_UP = 0.01
#: the round kind of the weight-pruned artifact's measurement (journal and report)
SPARSE_KIND = "sparse"
#: the round kind of the sparse LiteRT file's measurement
SPARSE_TFLITE_KIND = "sparse-tflite"
#: a sparse LiteRT file ships when it measures at most this share slower than the dense one (timing noise: it is
#: smaller on disk, and never meant to be slower)
SPARSE_NOT_SLOWER = 0.02


def artifact_files(artifact: Artifact) -> list[Path]:
    """The files of an artifact (``model.xml`` and ``model.bin`` for OpenVINO)."""
    return facts_of_format(artifact.format).files(artifact.path)


def weight_sparsity(run: FitRun, outcome: RunOutcome) -> RunOutcome:
    """Weight-prune ``outcome``'s model as ``--sparsity`` and ``--size-budget`` ask; sets ``run.sparsity_report``.

    Raises :class:`~edgeprune.errors.SizeBudgetUnreachableError` when the size budget is out of reach.
    """
    config = run.config
    if config.sparsity is None and config.size_budget is None:
        return outcome
    size_budget = SizeBudget.parse(config.size_budget) if config.size_budget else None
    fmt = outcome.final.artifact.format
    original = artifact_size(artifact_files(outcome.baseline.artifact))
    dense = artifact_size(artifact_files(outcome.final.artifact))
    budget_bytes = size_budget.resolve(original.zip_bytes) if size_budget is not None else None
    ceiling = config.sparsity if config.sparsity is not None else MAX_SPARSITY
    probes: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "scope": config.sparsity_scope, "ceiling": ceiling, "size_budget": config.size_budget,
        "size_budget_bytes": budget_bytes, "judged_on": f"{ARTIFACT_FILES[fmt][0]} ({fmt}), zip (deflate) bytes",
        "dense_size": dense.to_dict(), "original_size": original.to_dict(), "probes": probes,
        "latency_note": _latency_note(run),
        "dense_top1_pytorch": _pytorch_accuracy(run, outcome.slim), "evaluation_images": _images(run)}
    run.sparsity_report = report

    def probe(sparsity: float) -> ArtifactSize:
        model = sparsify(copy.deepcopy(outcome.slim), sparsity, config.sparsity_scope)
        with heartbeat(f"exporting the model at {100 * sparsity:.1f}% weight sparsity"):
            size = artifact_size(artifact_files(run.measurer.export(model, f"sparsity-{1000 * sparsity:.0f}")))
        probes.append({"sparsity": sparsity, **size.to_dict(), "top1_pytorch": _pytorch_accuracy(run, model),
                       "note": "one shot, no fine-tuning"})
        log.info("size probe: %.1f%% of the weights zeroed in one shot (a trial copy, checked against --size-budget) → %s "
                 "zipped", 100 * sparsity, format_bytes(size.zip_bytes))
        return size

    with run.clock("sparsity"):
        if budget_bytes is not None and config.sparsity is None and dense.zip_bytes <= budget_bytes:
            target = 0.0  # channel pruning alone met the size budget
        elif budget_bytes is not None:
            floor = probe(ceiling)
            if floor.zip_bytes > budget_bytes:
                raise SizeBudgetUnreachableError(
                    budget_bytes, floor.zip_bytes, ceiling, ARTIFACT_FILES[fmt][0],
                    f"Without weight pruning it is {dense.zip_bytes:,} bytes; the original's is {original.zip_bytes:,}."
                    + (" A higher --sparsity, or a tighter --budget (fewer channels), makes it smaller."
                       if config.sparsity is not None else " A tighter --budget (fewer channels) makes it smaller."))
            target = ceiling if config.sparsity is not None else \
                _lowest_sparsity(probe, int(budget_bytes * (1 - SIZE_HEADROOM)), ceiling)
        else:
            target = float(config.sparsity or 0.0)
        report["target"] = target
        if target <= 0.0:
            log.info("size budget met without weight pruning: %s zipped, budget %s", format_bytes(dense.zip_bytes),
                     format_bytes(budget_bytes or 0))
            report.update({"applied": False, "sparsity": 0.0, "size": dense.to_dict(), "layers": []})
            return outcome
        model = copy.deepcopy(outcome.slim)
        masks = WeightMasks(model, config.sparsity_scope)
        start = time.perf_counter()
        report["method"] = _prune(run, outcome, model, masks, target)
        report["seconds"] = time.perf_counter() - start
        masks.make_permanent()
        artifact = run.measurer.export(model, SPARSE_KIND)
        size = artifact_size(artifact_files(artifact))
        while budget_bytes is not None and size.zip_bytes > budget_bytes and target < ceiling:
            target = min(ceiling, round(target + TOP_UP, 4))
            log.info("the fine-tuned artifact is %s zipped, over the size budget %s: pruned further to %.0f%% "
                     "(one shot)", format_bytes(size.zip_bytes), format_bytes(budget_bytes), 100 * target)
            sparsify(model, target, config.sparsity_scope)
            report.setdefault("top_up", []).append(target)
            artifact = run.measurer.export(model, SPARSE_KIND)
            size = artifact_size(artifact_files(artifact))
        if budget_bytes is not None and size.zip_bytes > budget_bytes:
            raise SizeBudgetUnreachableError(budget_bytes, size.zip_bytes, target, ARTIFACT_FILES[fmt][0],
                                             "(after the sparsity fine-tune)")
    layers = layer_sparsity(model)
    report.update({"applied": True, "sparsity": total_sparsity(layers), "size": size.to_dict(),
                   "layers": [layer.to_dict() for layer in layers],
                   "artifact_zeros": weight_zeros(artifact.path, fmt).to_dict(),
                   "top1_pytorch": _pytorch_accuracy(run, model)})
    measured = _measure(run, outcome, model, artifact)
    report["median_ms"] = measured.stats.median_ms
    if facts_of_format(artifact.format).sparse and run.target.precision == "fp32" and not isinstance(run.measurer,
                                                                                        PredictedMeasurer):
        measured = sparse_tflite(run, outcome, measured, report)
    return dataclasses.replace(outcome, final=measured, slim=model)


def sparse_tflite(run: FitRun, outcome: RunOutcome, dense: Measurement, report: dict[str, Any]) -> Measurement:
    """The weight-pruned LiteRT file rewritten for XNNPACK's sparse path where its rules hold
    (:mod:`edgeprune.runtimes.litert.sparsity`), measured like the dense one, and shipped when it measures no slower
    (within :data:`SPARSE_NOT_SLOWER` of the dense file; it is also smaller on disk). Its rules, its measured
    speed-up and the choice go in ``report["sparse_tflite"]``; returns the measurement of the file shipped."""
    path = dense.artifact.path.with_name(dense.artifact.path.stem + "-sparse.tflite")
    written = write_sparse_tflite(dense.artifact.path, path)
    entry: dict[str, Any] = {"rules": written.rules.to_dict(), "rules_hold": written.rules.holds,
                             "summary": written.rules.summary()}
    report["sparse_tflite"] = entry
    if not written.written:
        log.info("sparse LiteRT file not written: %s", written.rules.summary())
        return dense
    artifact = dataclasses.replace(dense.artifact, path=path)
    sparse = _time(run, outcome, artifact, SPARSE_TFLITE_KIND)
    speedup = dense.stats.median_ms / sparse.stats.median_ms
    ships = sparse.stats.median_ms <= dense.stats.median_ms * (1 + SPARSE_NOT_SLOWER) and \
        sparse.stats.median_ms <= run.budget_ms
    entry.update({"sparse_tensors": written.sparse_tensors, "dense_bytes": written.dense_bytes,
                  "sparse_bytes": written.sparse_bytes, "dense_ms": dense.stats.median_ms,
                  "sparse_ms": sparse.stats.median_ms, "measured_speedup": speedup, "shipped": ships})
    log.info("sparse LiteRT file (%d 1x1 weights in CSR): %.3f ms against %.3f ms dense (%.2fx); %s",
             written.sparse_tensors, sparse.stats.median_ms, dense.stats.median_ms, speedup,
             "shipped" if ships else "the dense file ships")
    if not ships:
        return dense
    dense.artifact.path.unlink()
    path.rename(dense.artifact.path)  # shipped under the artifact's own name
    return dataclasses.replace(sparse, artifact=dense.artifact)


def _lowest_sparsity(probe: Any, aim_bytes: int, ceiling: float) -> float:
    """The lowest sparsity in (0, ``ceiling``] whose one-shot artifact is at most ``aim_bytes`` zipped (bisection;
    compressed size falls as sparsity rises); ``ceiling`` when only it fits."""
    low, high = 0.0, ceiling
    for _ in range(SEARCH_STEPS):
        middle = round((low + high) / 2, 4)
        if probe(middle).zip_bytes <= aim_bytes:
            high = middle
        else:
            low = middle
    return high


def _prune(run: FitRun, outcome: RunOutcome, model: nn.Module, masks: WeightMasks, target: float) -> dict[str, Any]:
    """Prune ``model``'s weights to ``target``: gradually in a fine-tune where there is one, else one shot."""
    config, recovery = run.config, run.recovery
    if not recovery.finetune_enabled():
        masks.apply(target)
        return {"kind": "one-shot", "finetune_epochs": 0}
    total = config.finetune_epochs * recovery.steps_per_epoch()
    begin, end, frequency = default_steps(total, config.sparsity_begin_step, config.sparsity_end_step,
                                          config.sparsity_frequency)
    schedule: PolynomialDecay | ConstantSparsity
    if config.sparsity_schedule == "polynomial":
        schedule = PolynomialDecay(config.sparsity_initial, target, begin, end, frequency=frequency)
    else:
        schedule = ConstantSparsity(target, begin, end, frequency)
    gradual = GradualPruning(masks, schedule)
    gradual.start()
    log.info("weight pruning to %.1f%% during a %d-epoch fine-tune (%d steps; %s schedule, steps %d to %d, every %d)",
             100 * target, config.finetune_epochs, total, config.sparsity_schedule, begin, end, frequency)
    recovery.finetune_with_steps(model, "sparse", outcome.keep, run.groups, gradual)
    if masks.sparsity < target:  # the schedule ended short of it (an end step past the fine-tune): one shot to it
        log.info("the schedule reached %.1f%% by the end of the fine-tune: pruned to %.1f%% in one shot",
                 100 * masks.sparsity, 100 * target)
        masks.apply(target)
    return {"kind": "gradual", "finetune_epochs": config.finetune_epochs, "steps": total, **schedule.to_dict(),
            "updates": len(gradual.history)}


def _measure(run: FitRun, outcome: RunOutcome, model: nn.Module, artifact: Artifact) -> Measurement:
    """The weight-pruned artifact timed like the final confirmation (paired with the original), journalled for
    ``--resume``; measured once more when it misses, and refused (exit code 2) when it misses again."""
    if isinstance(run.measurer, PredictedMeasurer):  # the architecture's prediction: zeros change nothing in it
        measured = Measurement(artifact, outcome.final.stats)
        run._record(SPARSE_KIND, outcome.keep, {}, measured)
        return measured
    measured = _time(run, outcome, artifact, SPARSE_KIND)
    if measured.stats.median_ms > run.budget_ms:
        measured = _time(run, outcome, artifact, SPARSE_KIND + "-recheck")
    if measured.stats.median_ms > run.budget_ms:
        raise BudgetUnreachableError(run.budget_ms, measured.stats.median_ms,
                                     "The weight-pruned artifact missed the latency budget twice; its dense "
                                     "architecture had met it, so timings here may be too noisy.")
    return measured


def _time(run: FitRun, outcome: RunOutcome, artifact: Artifact, kind: str) -> Measurement:
    return run.measure_final_artifact(artifact, kind, outcome.keep)


def _latency_note(run: FitRun) -> str:
    """What zeros do for this target's latency; where latency is predicted, that the prediction is the dense
    architecture's (a shipped profile holds no timings of sparse kernels) and the sparse file is not written."""
    note = sparse_inference_verdict(run.target).reason
    if isinstance(run.measurer, PredictedMeasurer):
        note += ("; latency here is predicted from the dense architecture (a shipped profile has no timings of "
                 "sparse kernels), so no sparse speed-up is predicted and no sparse LiteRT file is written: connect "
                 "an agent on the device (--device URL) to measure one")
    return note


def _images(run: FitRun) -> int:
    return min(len(run.inputs.eval_inputs), run._candidate_images())


def _pytorch_accuracy(run: FitRun, model: nn.Module) -> float | None:
    """The task's headline metric of ``model`` in PyTorch on the first evaluation images (as search candidates
    are scored), without touching its batch-norm statistics; None without labels."""
    task, truth = run.inputs.task, run.inputs.truth
    if truth is None:
        return None
    x = run.inputs.eval_inputs[:_images(run)]
    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(x[i:i + 64]) for i in range(0, len(x), 64)]).numpy()
    predictions = [task.decode(outputs[i:i + 1]) for i in range(len(outputs))]
    return task.score(predictions, task.subset_truth(truth, np.arange(len(x)))).headline
