"""Quantization-aware fine-tuning (``--qat-epochs N``): the last stage before the results are written.

After the final candidate is chosen, recovered in float and its post-training-quantized (PTQ) artifact confirmed,
an INT8 run on ONNX Runtime or OpenVINO may fine-tune the quantized model itself: the slim model's batch norms
are folded, NNCF inserts fake-quantize operations (calibrated on the run's calibration images, the PTQ preset;
the layers mixed precision left in float in the PTQ artifact stay float, NNCF's ignored scope),
and the model is trained ``N`` epochs with the recovery fine-tune's data, loss (distillation from the original
when the run distils; feature hints are not used here), seed and augmentation, at a constant learning rate of
``finetune_lr / 100`` (:data:`QAT_LR_SHARE`: the model starts from recovered weights, and only the rounding is
new; on the demo, one epoch on the labels at ``finetune_lr / 10`` lost 1.1 points of top-1, 98.00% → 96.89%,
where ``/ 100`` kept 98.00%; with distillation both kept it). Each epoch is checkpointed in the run's journal, so ``--resume`` continues from the last
finished one. The INT8 artifact exported from the trained model is measured (paired with the original, like the
final confirmation) and evaluated in the runtime; it replaces the PTQ artifact only when it meets the budget and
its top-1 on the evaluation images (without labels: its top-1 agreement with the original PyTorch model) is not
lower than the PTQ artifact's. Either way the report says what ran,
for how long, and both artifacts' top-1 (``method.qat``).

When the quantization-aware artifact ships, it is validated (INT8 tolerances) against the quantization-aware
PyTorch model itself, fake quantization and all (``RunOutcome.reference``): its export, so they agree closely
(0.03 of the output scale on the demo). ``model.safetensors`` holds its float form (the trained weights in the plan's
un-folded architecture, :func:`~edgeprune.quantize.qat.float_form`), from which ``--export``'s other formats are
made and against which they are validated; the INT8 artifact differs from that float form by its quantization, as
a PTQ artifact differs from its float model (0.17 to 0.28 of the output scale on the demo, limit 0.5), so
``edgeprune validate --reference OUT`` passes too.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from edgeprune.export.formats import runnable_here
from edgeprune.fit.recover import DISTILL_ALPHA, DISTILL_TEMPERATURE
from edgeprune.fit.run import FitRun, RunOutcome
from edgeprune.latency.candidates import Measurement
from edgeprune.progress import heartbeat
from edgeprune.quantize.qat import export_qat, float_form, prepare_qat
from edgeprune.train.distill import DistillationLoss
from edgeprune.train.loop import TrainSpec, train_classifier
from edgeprune.validate.accuracy import evaluate_session, max_abs_difference, model_logits

log = logging.getLogger(__name__)

#: how the report names each way NNCF exports a quantization-aware model (the runtime's ``qat_onnx_mode``)
_QAT_EXPORTS = {"qdq": "QDQ (QuantizeLinear/DequantizeLinear)", "fake_quantize": "FakeQuantize operations"}

#: the quantization-aware fine-tune's learning rate, as a share of ``--finetune-lr``
QAT_LR_SHARE = 0.01
#: its schedule: the rate held constant (the model is already recovered)
QAT_SCHEDULE = "constant"
#: the round kind of the quantization-aware artifact's measurement (journal and report)
QAT_KIND = "qat"
#: images of the parity check between the artifact and the quantization-aware PyTorch model
PARITY_IMAGES = 16


def skipped_for_float(run: FitRun) -> dict[str, Any]:
    """The report block of a run asked for QAT that ships float (``--precision fp32``, or ``auto`` chose it)."""
    precision = run.target.precision
    why = "the run ships a float model" if run.config.precision != "auto" else \
        "--precision auto chose float"
    log.warning("--qat-epochs %d skipped: %s (%s); quantization-aware fine-tuning only applies to INT8 artifacts",
                run.config.qat_epochs, why, precision)
    return {"ran": False, "epochs": 0, "reason": f"skipped: {why} ({precision}), and QAT applies to INT8 only"}


def quantization_aware(run: FitRun, outcome: RunOutcome) -> RunOutcome:
    """Fine-tune ``outcome``'s model quantization-aware, and ship its INT8 artifact where it measures within the
    budget and is at least as accurate as the PTQ one; sets ``run.qat_report``. Returns the outcome shipped."""
    config = run.config
    if config.qat_epochs <= 0:
        return outcome
    if run.target.precision != "int8":
        run.qat_report = skipped_for_float(run)
        return outcome
    inputs, example = run.inputs, run.example
    train = inputs.train_set
    assert train is not None  # resolve_inputs refuses --qat-epochs without training data
    with run.clock("qat"):
        float_layers = tuple(getattr(run.measurer.backend, "float_layers", ()))  # mixed precision: as PTQ left them
        with heartbeat(f"preparing the quantization-aware model (NNCF) on {len(inputs.calibration)} images"):
            qat, pairs = prepare_qat(outcome.slim, example, inputs.calibration, float_layers)
        spec = TrainSpec(epochs=config.qat_epochs, lr=config.finetune_lr * QAT_LR_SHARE, seed=config.seed,
                         schedule=QAT_SCHEDULE, augment=run.recovery.augment)
        loss = DistillationLoss(run.model, DISTILL_TEMPERATURE, DISTILL_ALPHA) if run.recovery.distills else None
        start = time.perf_counter()
        train_classifier(qat, run.recovery.training_images(), None, spec, loss_fn=loss, data_parallel=False,
                         checkpoint=run.journal.checkpoint_path("qat"), description="QAT",
                         on_epoch=lambda e, value: log.info("QAT epoch %d/%d: loss %.4f", e, spec.epochs, value))
        seconds = time.perf_counter() - start
        with heartbeat("exporting the quantization-aware model"):
            artifact = export_qat(qat.eval(), example, run.measurer.work_dir / "qat-final", run.backend)
    measured = _measure(run, outcome, artifact)
    target = runnable_here(run.target)[0]
    with run.clock("evaluate"):
        ptq_eval = evaluate_session(run.backend.load(outcome.final.artifact, target),
                                    outcome.final.artifact.input_name, inputs.eval_inputs, inputs.eval_set.labels)
        session = run.backend.load(artifact, target)
        qat_eval = evaluate_session(session, artifact.input_name, inputs.eval_inputs, inputs.eval_set.labels)
        parity = max_abs_difference(session, artifact.input_name, qat, inputs.calibration[:PARITY_IMAGES])
    budget_ms = run.budget_ms
    meets = measured.stats.median_ms <= budget_ms
    original = model_logits(run.model, inputs.eval_inputs).argmax(1)  # without labels: agreement with the original decides
    agreement = {"ptq": float((ptq_eval.predictions == original).mean()),
                 "qat": float((qat_eval.predictions == original).mean())}
    measure = "top-1" if qat_eval.top1 is not None and ptq_eval.top1 is not None else "agreement with the original"
    score = {"ptq": ptq_eval.top1, "qat": qat_eval.top1} if measure == "top-1" else agreement
    ships = meets and score["qat"] >= score["ptq"]
    if ships:
        reason = f"measured within the budget, and its {measure} is at least the PTQ artifact's"
    elif not meets:
        reason = (f"kept the PTQ artifact: the QAT artifact measured {measured.stats.median_ms:.3f} ms, over the "
                  f"budget {budget_ms:.3f} ms")
    else:
        reason = (f"kept the PTQ artifact: its {measure} {score['ptq']:.4f} beats the QAT artifact's "
                  f"{score['qat']:.4f}")
    log.info("QAT: %d epoch(s) in %.1f s; top-1 PTQ %s, QAT %s; %s", config.qat_epochs, seconds,
             _pct(ptq_eval.top1), _pct(qat_eval.top1), "QAT artifact shipped" if ships else reason)
    run.qat_report = {
        "ran": True, "epochs": config.qat_epochs, "seconds": seconds, "shipped": "qat" if ships else "ptq",
        "reason": reason,
        "tool": "nncf.quantize on the PyTorch model (preset PERFORMANCE), fine-tuned with fake quantization",
        "batch_norms_folded": len(pairs), "float_layers": list(float_layers), "lr": spec.lr, "schedule": spec.schedule, "augment": spec.augment,
        "distill": loss is not None, "images": len(train),
        "export": _QAT_EXPORTS.get(str(run.backend.qat_onnx_mode), str(run.backend.qat_onnx_mode)),
        "ptq": {"top1": ptq_eval.top1, "agreement_with_original": agreement["ptq"],
                "median_ms": outcome.final.stats.median_ms},
        "qat": {"top1": qat_eval.top1, "agreement_with_original": agreement["qat"],
                "median_ms": measured.stats.median_ms, "meets_budget": meets,
                "latency_source": run.measurer.timer.source,
                "paired_ratio": measured.paired.summary.ratio if measured.paired is not None else measured.replayed_ratio,
                "max_abs_diff_vs_qat_model": parity},
        "evaluation_images": qat_eval.images,
    }
    if not ships:
        return outcome
    return dataclasses.replace(outcome, final=measured, slim=float_form(qat, outcome.slim, pairs), reference=qat)


def _measure(run: FitRun, outcome: RunOutcome, artifact: Any) -> Measurement:
    """The quantization-aware artifact timed like the final confirmation (paired with the original), journalled
    so that ``--resume`` replays it; a predicted target's estimate is the PTQ artifact's (same architecture)."""
    return run.measure_final_artifact(artifact, QAT_KIND, outcome.keep, predicted=outcome.final.stats)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
