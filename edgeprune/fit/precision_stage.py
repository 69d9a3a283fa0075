"""The precision stage of an INT8 or ``--precision auto`` fit run: the unpruned model measured quantized, the
measured choice between INT8 and float candidates, and the fall-back to float where no INT8 candidate reaches the
budget.

:class:`PrecisionStage` is a part of :class:`~edgeprune.fit.run.FitRun`, kept apart because it is one concept: it
uses the run's state and measuring methods (declared below), never the other way round.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from edgeprune.config import FitConfig
from edgeprune.errors import BudgetUnreachableError, first_line
from edgeprune.export.formats import runnable_here
from edgeprune.latency.candidates import Measurement
from edgeprune.latency.predicted import PredictedMeasurer
from edgeprune.quantize.choice import AGREEMENT_IMAGES, PrecisionChoice, choose_precision
from edgeprune.target import Target
from edgeprune.validate.accuracy import top1_agreement

log = logging.getLogger(__name__)

#: the round of an INT8 run that measures the unpruned model quantized: when it meets the budget, nothing is
#: pruned; otherwise channel (and depth) pruning start from it, and the latency model is anchored on it
QUANTIZED = "quantized"


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
    budget_ms: float
    precision_choice: PrecisionChoice | None
    journal_prefix: str
    retired_rounds: int

    def _measure(self, model: Any, kind: str, keep: dict[str, list[int]], spec: Any = None) -> Measurement:
        raise NotImplementedError

    def _record(self, kind: str, keep: dict[str, list[int]], info: dict[str, Any], m: Measurement) -> None:
        raise NotImplementedError

    def _measure_quantized(self, baseline: Measurement) -> float:
        """Measure the unpruned model quantized; under ``--precision auto``, keep INT8 only where it pays
        (:func:`~edgeprune.quantize.choice.choose_precision`), else go on with float candidates."""
        m = self._measure(self.model, QUANTIZED, {})
        self._record(QUANTIZED, {}, {}, m)
        if self.config.precision != "auto":
            return m.stats.median_ms
        artifact = m.artifact if m.artifact is not None else self.measurer.export(self.model, QUANTIZED)  # resumed
        speedup = 1.0 / m.paired.summary.ratio if m.paired is not None else \
            baseline.stats.median_ms / m.stats.median_ms
        images = self.inputs.eval_inputs[:AGREEMENT_IMAGES]
        session = self.backend.load(artifact, runnable_here(self.target)[0])
        agreement = top1_agreement(session, artifact.input_name, self.model, images)
        self.precision_choice = choose_precision(speedup, agreement, len(images),
                                                 predicted=isinstance(self.measurer, PredictedMeasurer),
                                                 float_precision=self.target.float_precision)
        if self.precision_choice.precision == "int8":
            return m.stats.median_ms
        self._use_float_candidates()
        return baseline.stats.median_ms

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

