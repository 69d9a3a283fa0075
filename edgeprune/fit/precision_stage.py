"""The precision stage of an INT8 or ``--precision auto`` fit run: the unpruned model measured quantized, the
measured choice between INT8, mixed INT8 (a few layers left in float) and float candidates, and the fall-back to
float where no INT8 candidate reaches the budget.

:class:`PrecisionStage` is a part of :class:`~edgeprune.fit.run.FitRun`, kept apart because it is one concept: it
uses the run's state and measuring methods (declared below), never the other way round.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.config import FitConfig
from edgeprune.errors import BudgetUnreachableError, InputError, first_line
from edgeprune.export.formats import runnable_here
from edgeprune.latency.candidates import Measurement
from edgeprune.latency.predicted import PredictedMeasurer
from edgeprune.progress import heartbeat
from edgeprune.quantize.backend import Int8Backend
from edgeprune.quantize.choice import (
    AGREEMENT_IMAGES,
    MIN_INT8_AGREEMENT,
    MIN_INT8_SPEEDUP,
    PrecisionChoice,
    choose_precision,
)
from edgeprune.quantize.mixed import SENSITIVITY_IMAGES, MixedPrecision, QuantizationError, choose_float_layers
from edgeprune.runtimes.base import Backend
from edgeprune.runtimes.table import RUNTIME_FACTS, facts_of
from edgeprune.target import Target
from edgeprune.tasks.classification import ClassificationTask
from edgeprune.validate.accuracy import agreement_with_model, model_logits, quantization_error

log = logging.getLogger(__name__)

#: the round of an INT8 run that measures the unpruned model quantized: when it meets the budget, nothing is
#: pruned; otherwise channel (and depth) pruning start from it, and the latency model is anchored on it
QUANTIZED = "quantized"
#: the same, with the layers the mixed-precision search chose left in float
QUANTIZED_MIXED = "quantized-mixed"
#: evaluation images the mixed-precision search's greedy step measures agreement on, at most: images the
#: quantizer was not calibrated on (on its own calibration images INT8 agrees far better than on others: 100%
#: on 4 of them against 62.5-93.8% on the evaluation images, issue 35)
MIXED_AGREEMENT_IMAGES = 256


#: the round of an ``auto`` run that confirms INT8 alone after the float search kept less of the original's answers
INT8_ALONE = "int8-alone"


@dataclasses.dataclass
class Int8Alone:
    """The unpruned model quantized, measured within the budget, that ``auto`` declined for its agreement: shipped
    instead of the float search's model if that one keeps even less of the original's answers."""

    measurement: Measurement
    backend: Int8Backend
    float_layers: tuple[str, ...]
    target: Target
    agreement: float


class PrecisionStage:
    """The precision stage of a fit run (mixed into :class:`~edgeprune.fit.run.FitRun`)."""

    # the run's state this stage reads and writes (set by FitRun.__init__ and its stages)
    config: FitConfig
    target: Target
    backend: Any
    model: Any
    inputs: Any
    measurer: Any
    rounds: list[dict[str, Any]]
    example: Any
    clock: Any
    budget_ms: float
    precision_choice: PrecisionChoice | None
    journal_prefix: str
    retired_rounds: int
    int8_alone: Int8Alone | None = None

    def measure_final_artifact(self, artifact: Any, kind: str, keep: dict[str, list[int]],
                               predicted: Any = None) -> Measurement:
        raise NotImplementedError

    def _measure(self, model: Any, kind: str, keep: dict[str, list[int]], spec: Any = None) -> Measurement:
        raise NotImplementedError

    def _record(self, kind: str, keep: dict[str, list[int]], info: dict[str, Any], m: Measurement) -> None:
        raise NotImplementedError

    def _measure_quantized(self, baseline: Measurement) -> float:
        """Measure the unpruned model quantized; under ``--precision auto``, keep INT8 only where it pays
        (:func:`~edgeprune.quantize.choice.choose_precision`), trying mixed precision where INT8 is fast but
        changes too many predictions, else go on with float candidates."""
        if self.config.keep_float:
            self._check_float_layers()
        if self._original_meets_the_budget(baseline):
            return baseline.stats.median_ms
        m = self._measure(self.model, QUANTIZED, {})
        self._record(QUANTIZED, {}, {}, m)
        if self.config.precision != "auto":
            return m.stats.median_ms
        images = self.inputs.eval_inputs[:AGREEMENT_IMAGES]
        predicted = isinstance(self.measurer, PredictedMeasurer)
        task = self.inputs.task
        choice = choose_precision(self._speedup(m, baseline), self._agreement(m, images), len(images), predicted,
                                  self.target.float_precision, self.measurer.backend.float_layers,
                                  task.min_int8_agreement, task.agreement_name)
        if (choice.precision != "int8" and choice.int8_speedup >= MIN_INT8_SPEEDUP and not predicted
                and facts_of(self.target.runtime).mixed and not self.config.keep_float
                and isinstance(task, ClassificationTask)):  # the layer search scores class probabilities
            mixed = self._search_float_layers()
            if mixed.float_layers and mixed.meets(MIN_INT8_AGREEMENT):
                self.measurer.backend.float_layers = mixed.float_layers
                m = self._measure(self.model, QUANTIZED_MIXED, {})
                self._record(QUANTIZED_MIXED, {}, {"float_layers": list(mixed.float_layers)}, m)
                choice = choose_precision(self._speedup(m, baseline), self._agreement(m, images), len(images),
                                          predicted, self.target.float_precision, mixed.float_layers)
            if not mixed.meets(MIN_INT8_AGREEMENT):
                choice = dataclasses.replace(choice, reason=f"{choice.reason}; with up to {len(mixed.float_layers)} "
                                             f"of {mixed.layers} layers in float (mixed precision) agreement reached "
                                             f"only {100 * mixed.error.agreement:.1f}% on the evaluation images")
            float_layers = self.measurer.backend.float_layers
            if choice.precision != "int8":
                self.measurer.backend.float_layers = ()
            choice = dataclasses.replace(choice, mixed=mixed.to_dict())
        else:
            float_layers = self.measurer.backend.float_layers
        self.precision_choice = choice
        if choice.precision == "int8":
            return m.stats.median_ms
        if choice.int8_speedup >= MIN_INT8_SPEEDUP and m.stats.median_ms <= self.budget_ms and not predicted:
            self.int8_alone = Int8Alone(m, self.measurer.backend, tuple(float_layers), self.target, choice.agreement)
        self._use_float_candidates()
        return baseline.stats.median_ms

    def int8_alone_if_it_keeps_more(self, outcome: Any) -> Any:
        """An ``auto`` run that declined INT8 for its agreement although INT8 alone met the budget: when the float
        search's model keeps even fewer of the original's answers (pruning without the data to recover it can
        keep none), INT8 alone is confirmed and ships instead; ``outcome`` otherwise."""
        alone = self.int8_alone
        if alone is None or self.precision_choice is None or self.precision_choice.precision == "int8":
            return outcome
        images = self.inputs.eval_inputs[:AGREEMENT_IMAGES]
        kept = pytorch_agreement(outcome.slim, self.model, images, self.inputs.task)
        if kept >= alone.agreement:
            return outcome
        log.warning("--precision auto: the float search's model keeps %.1f%% of the original's answers, INT8 alone "
                    "%.1f%% within the budget: INT8 alone ships", 100 * kept, 100 * alone.agreement)
        self.target, self.measurer.target, self.measurer.backend = alone.target, alone.target, alone.backend
        alone.backend.float_layers = alone.float_layers
        artifact = alone.measurement.artifact
        if artifact is None or not Path(artifact.path).exists():  # replayed on --resume: made again
            artifact = self.measurer.export(self.model, INT8_ALONE)
        final = self.measure_final_artifact(artifact, INT8_ALONE, {})
        if final.stats.median_ms > self.budget_ms:  # confirmed over the budget: the float model stands
            log.warning("--precision auto: INT8 alone measured %.3f ms in its confirmation, over the budget: the "
                        "float search's model ships", final.stats.median_ms)
            self.target = self.measurer.target = alone.target.with_precision(alone.target.float_precision)
            self.measurer.backend = self.measurer.original_backend
            return outcome
        self.precision_choice = dataclasses.replace(
            self.precision_choice, precision="int8", float_layers=alone.float_layers,
            reason=f"{self.precision_choice.reason}; the float search's model then kept only {100 * kept:.1f}% of "
                   f"the original's answers on {len(images)} images, so INT8 alone ({100 * alone.agreement:.1f}%, "
                   "within the budget) ships")
        return dataclasses.replace(outcome, final=final, slim=self.model, keep={}, depth=None)

    def _original_meets_the_budget(self, baseline: Measurement) -> bool:
        """Under the default ``auto``: whether the original already meets the budget, in which case nothing is
        quantized (and nothing pruned: the search starts within the budget) and it ships as it is; asked for with
        ``--precision auto`` or ``int8``, INT8 is measured as usual."""
        config = self.config
        if (config.precision != "auto" or not config.precision_defaulted or baseline.stats.median_ms > self.budget_ms
                or config.sparsity is not None or config.size_budget is not None):
            return False
        reason = (f"the original already meets the budget ({baseline.stats.median_ms:.3f} ms of "
                  f"{self.budget_ms:.3f} ms), so it ships as it is: nothing quantized or pruned (--precision auto or "
                  "int8 quantizes it anyway)")
        log.info("%s", reason)
        self.precision_choice = PrecisionChoice(self.target.float_precision, reason, 1.0, 1.0, 0)
        self._use_float_candidates()
        return True

    def _check_float_layers(self) -> None:
        """Refuse ``--keep-float`` names the model does not have, or a runtime whose quantizer cannot keep them."""
        if not facts_of(self.target.runtime).mixed:
            capable = " and ".join(f.title for f in RUNTIME_FACTS if f.mixed)
            raise InputError(f"--keep-float: leaving layers in float is implemented for {capable} targets; target "
                             f"'{self.target.name}' runs {facts_of(self.target.runtime).title}")
        layers = list(dict.fromkeys(self.measurer.backend.layer_nodes(self.model, self.example).values()))
        unknown = [name for name in self.config.keep_float if name not in layers]
        if unknown:
            raise InputError(f"--keep-float: the model has no compute layer {', '.join(unknown)}; its layers are "
                             f"{', '.join(layers[:6])}{' ...' if len(layers) > 6 else ''} ({len(layers)} in all)")

    def _speedup(self, m: Measurement, baseline: Measurement) -> float:
        """The original's latency over ``m``'s, from the paired ratio (journalled with the reading when it is
        replayed on ``--resume``); from the two medians only where ``m`` was not timed in pairs."""
        ratio = m.paired.summary.ratio if m.paired is not None else m.replayed_ratio
        return 1.0 / ratio if ratio else baseline.stats.median_ms / m.stats.median_ms

    def _agreement(self, m: Measurement, images: torch.Tensor) -> float:
        """The task's agreement (top-1 for classifiers) of ``m``'s artifact (the unpruned model, quantized) with the float model on ``images``."""
        with heartbeat(f"checking the INT8 model against the float model on {len(images)} images"):
            artifact = m.artifact if m.artifact is not None else self.measurer.export(self.model, QUANTIZED)  # resumed
            session = self.backend.load(artifact, runnable_here(self.target)[0])
            return agreement_with_model(session, artifact.input_name, self.model, images, self.inputs.task)

    def _search_float_layers(self) -> MixedPrecision:
        """The layers to leave in float, measured on evaluation images: images the quantizer was not calibrated on
        (on those it agrees far better than on any others, so a choice judged there changes nothing)."""
        log.info("--precision auto: INT8 changes too many predictions; measuring which layers to keep in float")
        with self.clock("mixed precision"):
            return search_float_layers(self.measurer.backend, self.measurer.original_backend, self.model,
                                       self.example, self.target, self.inputs.eval_inputs[:MIXED_AGREEMENT_IMAGES])

    def _use_float_candidates(self) -> None:
        """From here on, candidates are exported and measured at the target's float precision."""
        self.target = self.target.with_precision(self.target.float_precision)
        self.measurer.backend, self.measurer.target = self.measurer.original_backend, self.target

    def _fall_back_to_float(self, exc: BudgetUnreachableError) -> None:
        """An ``auto`` run whose INT8 candidates cannot reach the budget searches float candidates instead (their
        measurements journalled apart, their rounds counted afresh)."""
        assert self.precision_choice is not None
        reason = (f"{self.precision_choice.reason}; but no INT8 candidate met the budget ({first_line(exc, 160)}), "
                  "so the search went on with float candidates")
        log.warning("--precision auto: no INT8 candidate met the budget %.3f ms (fastest %.3f ms); searching float "
                    "candidates", self.budget_ms, exc.floor_ms)
        self.precision_choice = dataclasses.replace(self.precision_choice, precision=self.target.float_precision,
                                                    reason=reason)
        self._use_float_candidates()
        self.journal_prefix, self.retired_rounds = f"{self.target.precision}:", len(self.rounds)



def pytorch_agreement(model: nn.Module, original: nn.Module, images: torch.Tensor, task: Any) -> float:
    """How far ``model`` reproduces ``original``'s predictions on ``images`` in PyTorch, as ``task`` measures it."""
    answers: list[list[Any]] = [[], []]
    with torch.no_grad():
        for which, net in enumerate((model, original)):
            net.eval()
            for i in range(0, len(images), 32):
                out = net(images[i:i + 32]).numpy()
                answers[which] += [task.decode(out[j:j + 1]) for j in range(len(out))]
    return float(task.agreement(answers[0], answers[1]))


def search_float_layers(backend: Int8Backend, float_backend: Backend, model: nn.Module, example: torch.Tensor,
                        target: Target, images: torch.Tensor) -> MixedPrecision:
    """The layers of ``model`` to leave in float (:func:`~edgeprune.quantize.mixed.choose_float_layers`), measured
    on ``images`` through the artifacts ``backend`` writes, run in ``target``'s runtime on this machine.

    The float model is exported once (by ``float_backend``) and quantized again for every trial, with the
    activation ranges calibrated once."""
    reference = model_logits(model, images)
    run_target = runnable_here(target)[0]
    with tempfile.TemporaryDirectory(prefix="edgeprune-mixed-") as tmp:
        work = Path(tmp)
        fp32 = float_backend.export(model, example, work / "fp32", target)
        nodes = backend.layer_nodes(model, example)
        backend.calibration_cache = work / "ranges.json"

        def error_of(float_layers: tuple[str, ...], count: int) -> QuantizationError:
            backend.float_layers = float_layers
            artifact = backend.quantize(fp32, work / "trial", nodes)
            session = backend.load(artifact, run_target)
            return quantization_error(session, artifact.input_name, reference[:count], images[:count])

        try:
            return choose_float_layers(list(dict.fromkeys(nodes.values())), lambda f: error_of(f, SENSITIVITY_IMAGES),
                                       lambda f: error_of(f, len(images)), MIN_INT8_AGREEMENT)
        finally:
            backend.float_layers, backend.calibration_cache = (), None
