"""One fit run as a sequence of stages: analyse, measure the original, (remove blocks), search, closed loop,
recover.

With ``--prune-blocks`` the depth stage (:mod:`edgeprune.fit.depth`) first removes whole residual blocks,
and channel pruning starts from that model.

With ``--steps N`` the search/recover part repeats N times towards geometrically shrinking budgets
(baseline · (budget / baseline)^(k/N)), each step pruning the previous step's recovered model; only the
last step must meet the real budget. Every latency query goes through the run's measurer (export and time
on the target, or the shipped profile's prediction) and through the resume journal, so an interrupted run
replays what it had measured.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from edgeprune.budget import Budget
from edgeprune.config import FitConfig
from edgeprune.errors import BudgetUnreachableError, EdgepruneError, InputError
from edgeprune.fit.candidate_distortion import CandidateDistortion
from edgeprune.fit.closed_loop import DEPTH_KINDS, ClosedLoop, search_rounds
from edgeprune.fit.depth import NEAR_MISS_SHARE, DepthResult, depth_hint, prune_depth
from edgeprune.fit.inputs import FitInputs
from edgeprune.fit.labels import check_labels_early
from edgeprune.fit.loop.base import Allocation, RoundsExhausted, floor_hint, kept_fraction
from edgeprune.fit.loop.deferred import DeferredAllocation
from edgeprune.fit.loop.guard import GUARD_KINDS, UniformGuard
from edgeprune.fit.loop.latency_search import LatencySearch
from edgeprune.fit.loop.uniform import UniformBisection
from edgeprune.fit.precision_stage import QUANTIZED, QUANTIZED_MIXED, PrecisionStage
from edgeprune.fit.recover import Recovery
from edgeprune.fit.resume import RunJournal, keep_key
from edgeprune.latency.candidates import CONFIRM_TIMING, CandidateMeasurer, Measurement
from edgeprune.latency.predicted import PredictedMeasurer
from edgeprune.latency.profile_model import build_lookup_model, default_table_dir, table_context
from edgeprune.latency.table import LatencyTable
from edgeprune.progress import heartbeat, progress_bar, progress_callback
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.groups import ChannelGroup
from edgeprune.prune.importance import ScoringContext
from edgeprune.prune.module_errors import naming_the_module, scoring_failure
from edgeprune.prune.surgery import slim_copy
from edgeprune.prune.trial import freeze_untrimmable
from edgeprune.quantize.choice import PrecisionChoice
from edgeprune.runtimes.base import Artifact
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec
from edgeprune.train.device import placed_on
from edgeprune.validate.original import check_original_runs

if TYPE_CHECKING:
    from edgeprune.fit.runtime_choice import RuntimeChoice

log = logging.getLogger(__name__)

#: evaluation images used to score each search candidate (in PyTorch, before recovery)
CANDIDATE_EVAL_IMAGES = 500
#: the same for detectors and segmenters, whose images cost more to run and to score
DENSE_CANDIDATE_EVAL_IMAGES = 128



class StageClock:
    """Wall time spent per named stage (seconds), summed over repeats."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


@dataclass
class StepState:
    """The model one pruning step starts from, with its channel groups and scores."""

    index: int
    model: nn.Module
    graph: ModelGraph
    groups: list[ChannelGroup]
    scores: dict[str, np.ndarray]


@dataclass
class RunOutcome:
    """What the closed loop produced: the shipped model, its measurement, and the composed kept channels."""

    baseline: Measurement
    final: Measurement
    slim: nn.Module
    keep: dict[str, list[int]]
    allocation: Allocation
    depth: DepthResult | None = None
    #: the PyTorch model the measured artifact is checked against when it is not ``slim``: the quantization-aware
    #: model (NNCF's fake quantization in its forward pass) when its artifact ships (``slim`` is then its float form)
    reference: nn.Module | None = None


class FitRun(ClosedLoop, PrecisionStage):
    """State of one fit run (kept in one object so the stages read as a sequence); the closed loop itself is
    :class:`~edgeprune.fit.closed_loop.ClosedLoop`."""

    def __init__(self, config: FitConfig, budget: Budget | None, target: Target, backend: Any, importance: Any,
                 inputs: FitInputs, measurer: CandidateMeasurer, journal: RunJournal, clock: StageClock) -> None:
        self.config, self.budget_spec, self.target, self.importance = config, budget, target, importance
        #: the latency budget in ms: resolved once the original is measured; infinite in a size-only fit
        self.budget_ms = math.inf if budget is None else budget.ms if budget.ms is not None else float("nan")
        self.original_ms = math.inf  # set once the original is measured (predicted runs: after the analysis)
        self.inputs, self.clock, self.journal = inputs, clock, journal
        self.model: nn.Module = inputs.bundle.model
        self.example = inputs.example
        self.backend = backend
        self.measurer = measurer
        self.rounds: list[dict[str, Any]] = []
        self.step: StepState | None = None
        self.groups: list[ChannelGroup] = []  # the original model's prunable groups
        self.frozen: list[ChannelGroup] = []
        self.step_budget_ms = float("nan")
        self.step_start_ms = float("nan")
        self.depth: DepthResult | None = None
        #: under ``--precision auto``, what the run chose and why (set once the quantized model is measured)
        self.precision_choice: PrecisionChoice | None = None
        #: after an ``auto`` run falls back to float: its journal keys' prefix and the INT8 rounds not counted
        self.journal_prefix, self.retired_rounds = "", 0
        #: with ``--qat-epochs``: what the quantization-aware fine-tune did (:mod:`edgeprune.fit.qat`)
        self.qat_report: dict[str, Any] | None = None
        #: with ``--sparsity`` or ``--size-budget``: what weight pruning did (:mod:`edgeprune.fit.sparsity_stage`)
        self.sparsity_report: dict[str, Any] | None = None
        #: whether the original's artifact was already run in the target's runtime (predicted targets: first)
        self.original_checked = False
        #: options given that the run's course made moot (:mod:`edgeprune.fit.option_use`), for report.json
        self.options_not_used: list[dict[str, str]] = []
        #: ``--runtime auto``'s measurements and choice (None: the runtime was given or the target's own)
        self.runtime_choice: RuntimeChoice | None = None
        reconstructs = importance.name == "lasso" if config.reconstruct is None else config.reconstruct
        self.recovery = Recovery(config, inputs, self.model, journal, reconstructs)

    # -- stages -----------------------------------------------------------------------------------
    def execute(self) -> RunOutcome:
        """Run every stage; raises BudgetUnreachableError when no candidate meets the budget."""
        predicted = isinstance(self.measurer, PredictedMeasurer)
        if not predicted:  # the original runs on the target before any scoring or profiling is spent on it
            baseline = self._measure_original()
        else:  # a prediction needs the channel groups, the check that the runtime runs the original does not
            self._check_original(self.measurer.export(self.model, "original"))
            self.original_checked = True
            check_labels_early(self.model, self.inputs)  # labels at chance: said before minutes are spent
        self.step = self._analyse(1, self.model)
        self.groups = self.step.groups
        self.frozen = [g for g in self.step.graph.groups if not g.prunable]
        if predicted:  # predictions need the channel groups bound first
            baseline = self._measure_original()
            check_labels_early(self.model, self.inputs)
        self.step_start_ms = baseline.stats.median_ms
        if self.measurer.quantizes:  # INT8 candidates: the unpruned model, quantized, is where pruning starts
            self.step_start_ms = self._measure_quantized(baseline)
        if self.precision_choice is None or self.precision_choice.precision != "int8":
            return self.int8_alone_if_it_keeps_more(self._search(baseline))
        original_step = self.step
        try:
            return self._search(baseline)
        except BudgetUnreachableError as exc:  # --precision auto: INT8's floor may sit above float's
            self._fall_back_to_float(exc)
            self.step, self.groups, self.depth = original_step, original_step.groups, None
            self.frozen = [g for g in original_step.graph.groups if not g.prunable]
            self.recovery.depth_pruned = False
            if isinstance(self.measurer, PredictedMeasurer):  # predictions for the original's kernels, in float
                self.measurer.bind(self.model, original_step.groups)
            self.step_start_ms = baseline.stats.median_ms
            return self._search(baseline)

    def _search(self, baseline: Measurement) -> RunOutcome:
        """Depth pruning where asked, then the width search in ``config.steps`` steps, from ``step_start_ms``."""
        if self.config.prune_blocks and self.step_start_ms > self.budget_ms:
            self._prune_depth(baseline)
        elif self.inputs.task.name == "classification" and (  # --prune-blocks scores class probabilities
                hint := depth_hint(self.model, self.example, self.config.frozen_modules,
                                   self.step_start_ms / self.budget_ms)):
            log.info("%s", hint)
        total = self.config.steps
        composed: dict[str, list[int]] = {}
        for index in range(1, total + 1):
            if index > 1:
                self.step = self._analyse(index, self.step.model)
            step_budget = baseline.stats.median_ms * (self.budget_ms / baseline.stats.median_ms) ** (index / total)
            self.step_budget_ms = step_budget
            if index < total:
                log.info("step %d/%d: intermediate budget %.3f ms", index, total, step_budget)
            allocation = self._allocation()
            keep, slim, final = self._closed_loop(allocation, baseline, step_budget, final_step=index == total)
            composed = _compose(composed, keep)
            self.step.model = slim
            if index == total:
                return RunOutcome(baseline, final, slim, composed, allocation, self.depth)
        raise AssertionError("unreachable")

    def _measure_original(self) -> Measurement:
        """Export the original, check it runs in the target's runtime as in PyTorch, measure it, set the budget."""
        with self.clock("measure"):
            baseline = self._measure(self.model, "original", {}, CONFIRM_TIMING)
            spec = self.budget_spec
            self.budget_ms = math.inf if spec is None else spec.resolve(baseline.stats.median_ms)
            self.original_ms = baseline.stats.median_ms
            if not isinstance(self.measurer, PredictedMeasurer):  # every later reading is paired with it
                self.measurer.set_reference(baseline, absolute_budget=spec is not None and spec.ms is not None)
            self._record("baseline", {}, {}, baseline)
            if spec is None:
                log.info("original model: %.3f ms on %s (%s); no latency budget: a size-only fit keeps every "
                         "channel and reports the shipped artifact's measured latency", baseline.stats.median_ms,
                         self.target.name, self.measurer.timer.source)
            else:
                log.info("original model: %.3f ms on %s (%s); budget %.3f ms (%s)", baseline.stats.median_ms,
                         self.target.name, self.measurer.timer.source, self.budget_ms, spec)
        return baseline

    def _check_original(self, artifact: Artifact) -> None:
        """The original's artifact runs in the target's runtime as in PyTorch, and the model runs on a batch in
        PyTorch as every data-driven stage will run it (else one line naming the module, exit code 2): found here,
        before the latency table and the search, not minutes later."""
        check_original_runs(self.backend, self.target, artifact, self.model, self.inputs.calibration)
        batch = self.inputs.calibration[:2]
        if len(batch) > 1:
            was_training = self.model.training
            with naming_the_module(self.model, "running the model on a batch of 2 images"), torch.no_grad():
                self.model.eval()
                self.model(batch)
            self.model.train(was_training)

    def _nothing_to_prune(self, index: int) -> bool:
        """Whether the original, in float, already meets the budget, so that no channel will be removed (a size-only
        fit, or a budget met as it is: scoring channels would decide nothing)."""
        return (index == 1 and self.config.precision != "int8" and self.config.sparsity is None
                and self.config.size_budget is None and self.original_ms <= self.budget_ms)

    def _analyse(self, index: int, model: nn.Module) -> StepState:
        with self.clock("analyse"):
            with naming_the_module(model, "tracing the model's channel groups"):
                with heartbeat("tracing the model's channel groups"):
                    graph = ModelGraph(model, self.example, self.config.frozen_modules)
                with heartbeat("trying one channel off every group (the trial cut)"):
                    freeze_untrimmable(model, self.example, graph, self.config.frozen_modules)
            groups = graph.prunable_groups()
            if not groups:
                raise InputError(f"model '{self.inputs.bundle.spec}' has no channel group edgeprune can prune")
            if self.budget_spec is None or self._nothing_to_prune(index):  # every channel kept: nothing to decide
                scores = {g.name: np.ones(g.width) for g in groups}
            else:
                with placed_on(model, self.recovery.device):  # --train-device: scoring passes run there too
                    with naming_the_module(model, f"preparing channel importance ({self.importance.name})"), \
                            heartbeat(f"preparing channel importance ({self.importance.name}) on "
                                      f"{len(self.inputs.calibration)} calibration images"):
                        ctx = ScoringContext(model, self.inputs.calibration)
                        self.importance.prepare(ctx)
                    scores = {}
                    with progress_bar(f"scoring channel importance ({self.importance.name})", len(groups),
                                      "groups") as advance:
                        for group in groups:
                            scores[group.name] = self._score(group, ctx)
                            advance(1)
            if isinstance(self.measurer, PredictedMeasurer):
                self.measurer.bind(model, groups)
        return StepState(index, model, graph, groups, scores)

    def _score(self, group: ChannelGroup, ctx: ScoringContext) -> np.ndarray:
        """The criterion's scores of one group; a failure is a line naming the group and ``--freeze``."""
        try:
            return np.asarray(self.importance.score(group, ctx))
        except EdgepruneError:
            raise
        except Exception as exc:
            raise scoring_failure(self.importance.name, group.name, exc) from exc

    def _prune_depth(self, baseline: Measurement) -> None:
        """The depth stage: remove blocks, then make the result the model channel pruning starts from."""
        target_ms = self.budget_ms * (1 - self.config.search_headroom)
        with self.clock("depth"):
            self.depth = prune_depth(self.model, self.example, self.inputs.calibration, self.config.frozen_modules,
                                     self.step_start_ms, target_ms, self._measure_blocks,
                                     0.0 if isinstance(self.measurer, PredictedMeasurer) else NEAR_MISS_SHARE,
                                     self.inputs.task.output_distortion, self.recovery.device)
        if not self.depth.removed:
            return
        self.recovery.depth_pruned = True
        self.step = self._analyse(1, self.depth.model)
        self.groups = self.step.groups
        self.frozen = [g for g in self.step.graph.groups if not g.prunable]
        self.step_start_ms = self.depth.latency_ms

    def _measure_blocks(self, removed: list[str], model: nn.Module, kind: str = "depth") -> float:
        """Measure a depth candidate (journalled by the names of its removed blocks and the round kind)."""
        if isinstance(self.measurer, PredictedMeasurer):
            graph = ModelGraph(model, self.example, self.config.frozen_modules, warn_frozen=False)
            self.measurer.bind(model, graph.prunable_groups())
        m = self._measure(model, kind, {f"block:{name}": [] for name in removed})
        self._record(kind, {}, {"blocks_removed": len(removed)}, m)
        if kind == "depth":  # a recheck measures the same model
            self._record_accuracy(model, "after batch-norm re-estimation only (no fine-tuning)")
        return m.stats.median_ms

    def _allocation(self) -> Allocation:
        step = self.step
        assert step is not None
        hint = floor_hint([g for g in step.graph.groups if not g.prunable])
        if self.config.allocation == "uniform":
            return UniformBisection(step.groups, step.scores, self.target.channel_alignment, self._measure_keep,
                                    self.config.max_rounds, hint)
        comparable = getattr(self.importance, "globally_comparable", False)
        floor = lambda keep: self._measure_keep(keep, "floor", {})  # noqa: E731
        if isinstance(self.measurer, PredictedMeasurer):
            assert self.measurer.latency is not None
            return self._guarded(LatencySearch(step.groups, step.scores, self.measurer.latency,
                                               self.target.channel_alignment, comparable, floor, hint,
                                               self.measurer.latency.source))

        def table_search() -> Allocation:
            assert step is not None
            with self.clock("profile"):
                table = LatencyTable.open(table_context(self.backend, self.target, self.measurer.timer),
                                          self.config.table_dir or default_table_dir())
                max_points = 6 if self.backend.facts.reads_onnx else 3
                with progress_callback("profiling kernels") as report:
                    lookup, measured, reused = build_lookup_model(
                        step.model, self.example, step.graph, self.target, self.measurer.backend, table,
                        self.measurer.work_dir, max_points, seed=self.config.seed, timer=self.measurer.timer,
                        progress=report)
                log.info("latency table %s: %d kernel timings measured, %d reused", table.path, measured, reused)
            return LatencySearch(step.groups, step.scores, lookup, self.target.channel_alignment, comparable, floor,
                                 hint, f"lookup table ({self.measurer.timer.source})")

        if self.step_start_ms <= self.step_budget_ms * (1 - self.config.search_headroom):
            # nothing to search unless the starting model misses later
            return self._guarded(DeferredAllocation(table_search))
        return self._guarded(table_search())

    def _guarded(self, search: Allocation) -> UniformGuard:
        """``search`` behind the uniform-cut guard (:mod:`edgeprune.fit.loop.guard`): its candidate against the
        uniform cut at the same measured latency, by output distortion on calibration images."""
        step = self.step
        assert step is not None
        distortion = CandidateDistortion(step.model, step.groups, self.inputs.calibration, self.recovery.rebuild,
                                         self.inputs.task.output_distortion, self.recovery.device)

        def distortion_of(keep: dict[str, list[int]]) -> float:
            with naming_the_module(step.model, "comparing the search's candidate with the uniform cut"), \
                    heartbeat("rebuilding a candidate and measuring its output distortion"):
                return distortion(keep)

        return UniformGuard(search, step.groups, step.scores, self.target.channel_alignment, self._measure_keep,
                            distortion_of)

    # -- measuring --------------------------------------------------------------------------------
    def _measure(self, model: nn.Module, kind: str, keep: dict[str, list[int]],
                 spec: TimingSpec | None = None) -> Measurement:
        """Measure (or replay from the journal, or predict) one candidate."""
        step = self.step.index if self.step else 1
        key = keep_key(step, self.journal_prefix + kind, keep)
        whole_run = kind in (*DEPTH_KINDS, QUANTIZED, QUANTIZED_MIXED)  # judged against the run's budget, not the step's
        decision_ms = self.budget_ms if whole_run else self.step_budget_ms
        self.measurer.decision_ms = None if kind == "original" or not math.isfinite(decision_ms) else decision_ms
        check = self._check_original if kind == "original" and not self.original_checked else None
        recorded = self.journal.measurement(key)  # only when resuming
        if recorded is not None:  # replayed: the artifact is rebuilt where it is used later, not timed again
            artifact = self.measurer.export(model, kind) if kind in ("original", "final") else None
            if check is not None:
                check(artifact)
            return Measurement(artifact, recorded, replayed_ratio=self.journal.replayed_ratio)  # type: ignore[arg-type]
        args = (model, kind) if spec is None else (model, kind, spec)
        m = self.measurer.measure(*args, keep=keep, check=check)
        self.journal.record(key, m.stats, m.paired.summary.ratio if m.paired is not None else None)
        return m

    def measure_final_artifact(self, artifact: Artifact, kind: str, keep: dict[str, list[int]],
                               predicted: LatencyStats | None = None) -> Measurement:
        """An artifact made after the search (QAT's, the weight-pruned one) timed like the final confirmation,
        paired with the original, journalled so that ``--resume`` replays it, and recorded as a ``kind`` round.
        ``predicted``: the estimate to use where latency is predicted (the same architecture's), not measured."""
        step = self.step.index if self.step is not None else 1
        key = keep_key(step, self.journal_prefix + kind, keep)
        recorded = self.journal.measurement(key)
        if recorded is not None:
            measured = Measurement(artifact, recorded, replayed_ratio=self.journal.replayed_ratio)
        elif predicted is not None and isinstance(self.measurer, PredictedMeasurer):
            measured = Measurement(artifact, predicted)
        else:
            self.measurer.decision_ms = self.budget_ms if math.isfinite(self.budget_ms) else None
            with self.clock("confirm"):
                measured = self.measurer.time(artifact, CONFIRM_TIMING)
            self.journal.record(key, measured.stats,
                                measured.paired.summary.ratio if measured.paired is not None else None)
        self._record(kind, keep, {}, measured)
        return measured

    def _record(self, kind: str, keep: dict[str, list[int]], info: dict[str, Any], m: Measurement) -> None:
        stats = m.stats
        whole_run = kind in ("baseline", QUANTIZED, QUANTIZED_MIXED, *DEPTH_KINDS)  # judged against the run's budget, not the step's
        meets = stats.median_ms <= (self.budget_ms if whole_run else self.step_budget_ms)
        groups = self.step.groups if self.step else self.groups
        fraction = kept_fraction(keep, {g.name: g.width for g in groups})
        measured = stats.runs > 0
        self.rounds.append({"kind": kind, "step": self.step.index if self.step else 1, "channels_kept": fraction,
                            **info, "median_ms": stats.median_ms, "p90_ms": stats.p90_ms if measured else None,
                            "cv": stats.cv if measured else None, "noisy": stats.noisy if measured else None,
                            "measured": measured, "meets_budget": meets,
                            "precision": self.target.float_precision if kind == "baseline" and self.measurer.quantizes
                            else self.target.precision})
        if m.paired is not None:  # the readings against the original, enough to recompute the figure
            self.rounds[-1]["paired"] = m.paired.to_dict()
        if m.device is not None:  # the agent that timed it
            self.rounds[-1]["device"] = m.device
        predicted = f", predicted {info['predicted_ms']:.3f} ms" if "predicted_ms" in info and measured else ""
        verb = "measured" if measured else "predicted"
        what = f"{info['blocks_removed']} blocks removed" if "blocks_removed" in info else \
            f"{100 * fraction:.1f}% of channels kept"
        noisy = f" (noisy: CV {100 * stats.cv:.0f}%)" if measured and stats.noisy else ""
        verdict = "" if not math.isfinite(self.budget_ms) else " (within budget)" if meets else " (over budget)"
        log.info("%s: %s → %s %.3f ms%s%s%s", kind, what, verb, stats.median_ms, predicted, noisy, verdict)

    def _measure_keep(self, keep: dict[str, list[int]], kind: str, info: dict[str, Any]) -> float:
        if kind not in GUARD_KINDS and \
                search_rounds(self.rounds[self.retired_rounds:]) >= self.config.max_rounds * self.config.steps:
            raise RoundsExhausted()
        assert self.step is not None
        model = self.step.model
        slim = slim_copy(model, self.example, keep, self.config.frozen_modules) if keep else model
        m = self._measure(slim, kind, keep)
        self._record(kind, keep, info, m)
        if keep and kind not in GUARD_KINDS:  # for the accuracy-vs-latency plot (the guard scores its own cuts)
            self._record_accuracy(slim, "after batch-norm re-estimation only (no reconstruction or fine-tuning)")
        return m.stats.median_ms

    def _candidate_accuracy(self, model: nn.Module) -> float | None:
        """The task's headline metric (top-1, mAP50-95, mIoU) of a candidate in PyTorch, after batch-norm
        re-estimation, on the first evaluation images; None without labels."""
        task, truth = self.inputs.task, self.inputs.truth
        if truth is None:
            return None
        x = self.inputs.eval_inputs[:self._candidate_images()]
        device = self.recovery.device
        with placed_on(model, device), naming_the_module(model, "estimating a candidate's accuracy"):
            if self.recovery.recalibrates_bn:  # as the recovery will (not below the calibration floor)
                recalibrate_batchnorm(model, self.inputs.calibration)  # a throw-away copy: fair across candidates
            batches = []
            with torch.no_grad(), progress_bar("a candidate's accuracy in PyTorch", len(x), "images") as advance:
                for i in range(0, len(x), 64):
                    batches.append(model(x[i:i + 64].to(device)).cpu())
                    advance(len(batches[-1]))
            outputs = torch.cat(batches).numpy()
        predictions = [task.decode(outputs[i:i + 1]) for i in range(len(outputs))]
        return task.score(predictions, task.subset_truth(truth, np.arange(len(x)))).headline

    def _record_accuracy(self, model: nn.Module, note: str) -> None:
        """The candidate's accuracy on the last round, under the task's metric key, for the plot and report.md."""
        accuracy = self._candidate_accuracy(model)
        if accuracy is not None:
            self.rounds[-1].update({self.inputs.task.metric_key: accuracy, "accuracy_note":
                                    f"{note}, PyTorch, first {self._candidate_images()} evaluation images"})

    def _candidate_images(self) -> int:
        """How many evaluation images score a candidate."""
        return CANDIDATE_EVAL_IMAGES if self.inputs.task.name == "classification" else DENSE_CANDIDATE_EVAL_IMAGES


def _compose(outer: dict[str, list[int]], inner: dict[str, list[int]]) -> dict[str, list[int]]:
    """Kept channels of two successive prunings, as indices into the original model's channels.

    Groups are named after modules, so a group keeps its name across steps; a group the first pruning left
    whole still indexes the original channels.
    """
    composed = {k: list(v) for k, v in outer.items()}
    for name, kept in inner.items():
        composed[name] = [outer[name][i] for i in kept] if name in outer else list(kept)
    return composed
