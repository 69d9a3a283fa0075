"""``fit``: the one place that wires the stages together.

Flow: load model and data → channel groups → importance → measure the original on the target → an
allocation strategy proposes widths (``latency``: greedy importance-per-millisecond search on the profiled
latency table; ``uniform``: one keep ratio bisected on measured latency) → every candidate is exported and
measured on the target → recover (batch-norm statistics, optional fine-tune) → export the final model and
confirm its latency with a longer measurement → on any miss the strategy recalibrates and proposes again →
evaluate both artifacts in the runtime → write plan, weights, artifact and reports atomically.

The search aims ``search_headroom`` (default 5%) under the budget so that drift between measurements
does not push the shipped model over it; the confirmation measures the shipped artifact against the
budget itself, and only a confirmed model is ever written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from edgeprune.backends import get_backend
from edgeprune.budget import Budget
from edgeprune.config import FitConfig
from edgeprune.errors import BudgetUnreachableError, InputError
from edgeprune.fit_inputs import FitInputs, resolve_inputs
from edgeprune.io_atomic import write_json_atomic, write_text_atomic
from edgeprune.latency.candidates import CONFIRM_TIMING, CandidateMeasurer, Measurement
from edgeprune.latency.timers import ArtifactTimer, make_timer
from edgeprune.outputs import ARTIFACT_FILES, OutputDir
from edgeprune.prune.graph import ModelGraph, count_macs_and_params
from edgeprune.prune.groups import ChannelGroup
from edgeprune.prune.importance import ScoringContext, get_importance
from edgeprune.prune.plan import SlimPlan, module_shapes
from edgeprune.prune.reconstruct import reconstruct_consumers
from edgeprune.prune.surgery import slim_copy
from edgeprune.latency.profile_model import build_lookup_model, default_table_dir, table_context
from edgeprune.latency.table import LatencyTable
from edgeprune.latency.timing import LatencyStats
from edgeprune.loop.base import Allocation, Candidate, RoundsExhausted, kept_fraction
from edgeprune.loop.latency_search import LatencySearch
from edgeprune.loop.uniform import UniformBisection
from edgeprune.report.fit_report import ModelSide, build_fit_report
from edgeprune.report.fit_result import FitResult
from edgeprune.report.markdown import render_markdown
from edgeprune.target import Target, load_target
from edgeprune.train.bn_recalibration import recalibrate_batchnorm
from edgeprune.train.loop import TrainSpec, train_classifier
from edgeprune.validate.accuracy import evaluate_session, max_abs_difference

log = logging.getLogger(__name__)

PARITY_IMAGES = 16


class _StageClock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def _check_config(config: FitConfig) -> None:
    if config.finetune_epochs < 0:
        raise InputError(f"--finetune-epochs must be >= 0, got {config.finetune_epochs}")
    if config.finetune_lr <= 0:
        raise InputError(f"--finetune-lr must be positive, got {config.finetune_lr}")
    if not 0 <= config.search_headroom < 0.5:
        raise InputError(f"--search-headroom must be in [0, 0.5), got {config.search_headroom}")
    if config.allocation not in ("latency", "uniform"):
        raise InputError(f"--allocation must be 'latency' or 'uniform', got '{config.allocation}'")
    if config.max_rounds < 3:
        raise InputError(f"--max-rounds must be at least 3, got {config.max_rounds}")
    if config.eval_images is not None and config.eval_images < 1:
        raise InputError(f"--eval-images must be at least 1, got {config.eval_images}")


def fit(config: FitConfig) -> FitResult:
    """Prune ``config.model`` until its exported artifact meets ``config.budget`` measured on the target.

    Raises :class:`~edgeprune.errors.BudgetUnreachableError` (exit code 2) with the smallest latency measured
    when no candidate meets the budget; the output directory then holds no result files.
    """
    clock = _StageClock()
    budget = Budget.parse(config.budget)
    _check_config(config)
    target = load_target(config.target)
    backend = get_backend(target)
    timer = make_timer(backend, target, config.device, config.device_token)
    importance = get_importance(config.importance)
    out = OutputDir(config.out, config.force)
    try:
        with clock("load"):
            inputs = resolve_inputs(config, target)
        torch.manual_seed(config.seed)
        return _Run(config, budget, target, backend, importance, inputs, out, clock, timer).execute()
    finally:
        out.discard()


class _Run:
    """State of one fit run (kept in one object so the stages read as a sequence)."""

    def __init__(self, config: FitConfig, budget: Budget, target: Target, backend: Any, importance: Any,
                 inputs: FitInputs, out: OutputDir, clock: _StageClock, timer: ArtifactTimer) -> None:
        self.config, self.budget_spec, self.target, self.importance = config, budget, target, importance
        self.budget_ms = budget.ms if budget.ms is not None else float("nan")
        self.inputs, self.out, self.clock = inputs, out, clock
        self.model: nn.Module = inputs.bundle.model
        self.example = inputs.example
        self.backend = backend
        self.measurer = CandidateMeasurer(backend, target, self.example, out.work, timer)
        self.rounds: list[dict[str, Any]] = []
        self.graph: ModelGraph | None = None
        self.groups: list[ChannelGroup] = []
        self.frozen: list[ChannelGroup] = []
        self.scores: dict[str, np.ndarray] = {}
        self.finetune_seconds = 0.0
        self.reconstruction: dict[str, Any] | None = None

    # -- stages -----------------------------------------------------------------------------------
    def execute(self) -> FitResult:
        with self.clock("analyse"):
            self.graph = ModelGraph(self.model, self.example, self.config.frozen_modules)
            graph = self.graph
            self.groups, self.frozen = graph.prunable_groups(), [g for g in graph.groups if not g.prunable]
            if not self.groups:
                raise InputError(f"model '{self.inputs.bundle.spec}' has no channel group edgeprune can prune")
            ctx = ScoringContext(self.model, self.inputs.calibration)
            self.importance.prepare(ctx)
            self.scores = {g.name: np.asarray(self.importance.score(g, ctx)) for g in self.groups}
        with self.clock("measure"):
            baseline = self.measurer.measure(self.model, "original", CONFIRM_TIMING)
            self.budget_ms = self.budget_spec.resolve(baseline.stats.median_ms)
            self._record("baseline", {}, {}, baseline.stats.median_ms, baseline.stats)
            log.info("original model: %.3f ms on %s; budget %.3f ms (%s)", baseline.stats.median_ms,
                     self.target.name, self.budget_ms, self.budget_spec)
        allocation = self._allocation()
        keep, slim, final = self._closed_loop(allocation, baseline)
        return self._finish(baseline, keep, slim, final, allocation)

    def _allocation(self) -> Allocation:
        hint = _floor_hint(self.frozen)
        if self.config.allocation == "uniform":
            return UniformBisection(self.groups, self.scores, self.target.channel_alignment, self._measure_keep,
                                    self.config.max_rounds, hint)
        with self.clock("profile"):
            assert self.graph is not None
            table = LatencyTable.open(table_context(self.backend, self.target, self.measurer.timer),
                                      self.config.table_dir or default_table_dir())
            max_points = 6 if self.backend.name in ("onnxruntime", "openvino") else 3
            lookup, measured, reused = build_lookup_model(
                self.model, self.example, self.graph, self.target, self.backend, table, self.out.work, max_points,
                seed=self.config.seed, timer=self.measurer.timer)
            log.info("latency table %s: %d kernel timings measured, %d reused", table.path, measured, reused)
        return LatencySearch(self.groups, self.scores, lookup, self.target.channel_alignment,
                             getattr(self.importance, "globally_comparable", False),
                             lambda keep: self._measure_keep(keep, "floor", {}), hint,
                             f"lookup table ({self.measurer.timer.source})")

    def _record(self, kind: str, keep: dict[str, list[int]], info: dict[str, Any], median_ms: float,
                stats: LatencyStats | None = None) -> None:
        meets = median_ms <= self.budget_ms
        fraction = kept_fraction(keep, {g.name: g.width for g in self.groups})
        self.rounds.append({"kind": kind, "channels_kept": fraction, **info, "median_ms": median_ms,
                            "p90_ms": stats.p90_ms if stats else None, "cv": stats.cv if stats else None,
                            "meets_budget": meets})
        predicted = f", predicted {info['predicted_ms']:.3f} ms" if "predicted_ms" in info else ""
        log.info("%s: %.1f%% of channels kept → measured %.3f ms%s %s", kind, 100 * fraction, median_ms, predicted,
                 "(within budget)" if meets else "(over budget)")

    def _measure_keep(self, keep: dict[str, list[int]], kind: str, info: dict[str, Any]) -> float:
        if len(self.rounds) >= self.config.max_rounds:
            raise RoundsExhausted()
        slim = slim_copy(self.model, self.example, keep, self.config.frozen_modules) if keep else self.model
        m = self.measurer.measure(slim, kind)
        self._record(kind, keep, info, m.stats.median_ms, m.stats)
        return m.stats.median_ms

    def _closed_loop(self, allocation: Allocation, baseline: Measurement
                     ) -> tuple[dict[str, list[int]], nn.Module, Measurement]:
        """Measure candidates until the shipped artifact's confirmed latency meets the budget."""
        target_ms = self.budget_ms * (1 - self.config.search_headroom)
        best_ms = baseline.stats.median_ms
        with self.clock("search"):
            candidate: Candidate | None = allocation.first(baseline.stats.median_ms, self.budget_ms, target_ms)
        while candidate is not None:
            if candidate.measured_ms is None:  # a predicted candidate: measure it before recovering it
                try:
                    with self.clock("search"):
                        candidate.measured_ms = self._measure_keep(candidate.keep, "search", candidate.info)
                except RoundsExhausted:
                    break
            best_ms = min(best_ms, candidate.measured_ms)
            if candidate.measured_ms <= self.budget_ms:
                slim = self._recover(candidate.keep)
                with self.clock("confirm"):
                    final = self.measurer.measure(slim, "final", CONFIRM_TIMING)
                self._record("confirm", candidate.keep, candidate.info, final.stats.median_ms, final.stats)
                if final.stats.median_ms <= self.budget_ms:
                    return candidate.keep, slim, final
                missed_ms = final.stats.median_ms
            else:
                missed_ms = candidate.measured_ms
            if len(self.rounds) >= self.config.max_rounds:
                break
            with self.clock("search"):
                candidate = allocation.after_miss(candidate, missed_ms)
        raise BudgetUnreachableError(self.budget_ms, best_ms,
                                     f"No candidate met it within {self.config.max_rounds} measured rounds.")

    def _recover(self, keep: dict[str, list[int]]) -> nn.Module:
        if not keep:
            return self.model
        slim = slim_copy(self.model, self.example, keep, self.config.frozen_modules)
        if self._reconstructs():
            with self.clock("recover"):
                errors = reconstruct_consumers(self.model, slim, self.example, self.inputs.calibration, keep,
                                               self.groups, seed=self.config.seed)
            if errors:
                before = float(np.mean([e.error_before for e in errors.values()]))
                after = float(np.mean([e.error_after for e in errors.values()]))
                log.info("least-squares reconstruction of %d layers: relative output error %.3f → %.3f",
                         len(errors), before, after)
                self.reconstruction = {"layers": len(errors), "mean_error_before": before, "mean_error_after": after}
        if self._recalibrates_bn():
            with self.clock("recover"):
                recalibrate_batchnorm(slim, self.inputs.calibration)
        return self._finetune(slim)

    def _recalibrates_bn(self) -> bool:
        wanted = self.config.bn_recalibrate
        return not self._reconstructs() if wanted is None else wanted

    def _reconstructs(self) -> bool:
        wanted = self.config.reconstruct
        return self.importance.name == "lasso" if wanted is None else wanted

    def _finetune(self, model: nn.Module) -> nn.Module:
        epochs = self.config.finetune_epochs
        train = self.inputs.train_set
        if epochs == 0 or train is None or train.labels is None or model is self.model:
            return model
        from edgeprune.data.tensors import to_model_input

        start = time.perf_counter()
        with self.clock("recover"):
            x = to_model_input(train.images, self.inputs.preprocessing)
            spec = TrainSpec(epochs=epochs, lr=self.config.finetune_lr, seed=self.config.seed)
            train_classifier(model, x, torch.from_numpy(train.labels), spec,
                             on_epoch=lambda e, loss: log.info("fine-tune epoch %d/%d: loss %.4f", e, epochs, loss))
        self.finetune_seconds += time.perf_counter() - start
        return model.eval()

    # -- outputs ----------------------------------------------------------------------------------
    def _finish(self, baseline: Measurement, keep: dict[str, list[int]], slim: nn.Module, final: Measurement,
                allocation: Allocation) -> FitResult:
        stage = self.out.staging
        labels = self.inputs.eval_set.labels
        with self.clock("evaluate"):
            backend, target = self.backend, self.target
            base_eval = evaluate_session(backend.load(baseline.artifact, target), baseline.artifact.input_name,
                                         self.inputs.eval_inputs, labels)
            final_session = backend.load(final.artifact, target)
            final_eval = evaluate_session(final_session, final.artifact.input_name, self.inputs.eval_inputs, labels)
            parity = max_abs_difference(final_session, final.artifact.input_name, slim,
                                        self.inputs.calibration[:PARITY_IMAGES])
        macs_before, params_before = count_macs_and_params(self.model, self.example)
        macs_after, params_after = count_macs_and_params(slim, self.example)
        kept = {g.name: keep.get(g.name, list(range(g.width))) for g in self.groups}
        bundle = self.inputs.bundle
        method = {"importance": self.importance.name, **allocation.method(),
                  "search_headroom": self.config.search_headroom}
        plan = SlimPlan(bundle.spec, bundle.build_kwargs, list(self.example.shape),
                        self.inputs.preprocessing.to_dict(),
                        [{"name": g.name, "width_before": g.width, "width_after": len(kept[g.name]),
                          "kept": kept[g.name]} for g in self.groups],
                        module_shapes(slim), method)
        artifact_files = ARTIFACT_FILES[final.artifact.format]
        for name in artifact_files:  # model.xml comes with model.bin; the others are one file
            final.artifact.path.with_suffix(Path(name).suffix).replace(stage / name)
        state = {k: v.detach().contiguous() for k, v in slim.state_dict().items()}
        save_file(state, str(stage / "model.safetensors"), metadata={"plan_sha256": plan.digest()})
        write_json_atomic(stage / "plan.json", plan.to_dict())
        names = [*artifact_files, "model.safetensors", "plan.json", "report.json", "report.md"]
        out_dir = self.out.path.resolve()
        pruned = slim is not self.model
        report = build_fit_report(
            out_dir=out_dir, files=names,
            model={"spec": bundle.spec, "weights": str(self.config.weights) if self.config.weights else None,
                   "input_shape": list(self.example.shape), "preprocessing": self.inputs.preprocessing.to_dict()},
            target=self.target, timer=self.measurer.timer, budget_ms=self.budget_ms,
            budget_spec=str(self.budget_spec),
            baseline=ModelSide(baseline.stats, base_eval.top1, macs_before, params_before),
            final=ModelSide(final.stats, final_eval.top1, macs_after, params_after),
            method=method,
            artifact={"format": final.artifact.format, "file": str(out_dir / artifact_files[0]),
                      "input_name": final.artifact.input_name, "input_shape": list(final.artifact.input_shape)},
            evaluation={"dataset": self.inputs.eval_set.source, "images": base_eval.images,
                        "runtime": self.target.runtime,
                        "agreement_with_original": float((base_eval.predictions == final_eval.predictions).mean())},
            parity={"max_abs_diff": parity, "images": min(PARITY_IMAGES, len(self.inputs.calibration)),
                    "reference": "pruned PyTorch model"},
            calibration={"images": len(self.inputs.calibration), "source": self.inputs.calibration_source,
                         "bn_recalibrated": self._recalibrates_bn() and pruned,
                         "reconstruction": self.reconstruction if pruned else None},
            finetune={"epochs": self.config.finetune_epochs if pruned else 0,
                      "images": 0 if self.inputs.train_set is None else len(self.inputs.train_set),
                      "seconds": self.finetune_seconds},
            rounds=self.rounds, exports=self.measurer.exports,
            groups=[{k: g[k] for k in ("name", "width_before", "width_after")} for g in plan.groups],
            frozen=self.frozen, timings_s=dict(self.clock.seconds),
        )
        write_json_atomic(stage / "report.json", report)
        write_text_atomic(stage / "report.md", render_markdown(report))
        self.out.commit(names)
        return FitResult(report)


def _floor_hint(frozen: list[ChannelGroup]) -> str:
    frozen = [g for g in frozen if not g.frozen_reason.startswith("output classes")]
    if not frozen:
        return "Every prunable channel group was already cut to its minimum width."
    return (f"{len(frozen)} channel group(s) are frozen (e.g. {frozen[0].name}) and set a floor; "
            "choose a larger budget or a smaller model.")


def fit_api(model: str = "demo", data: str | Path | None = None, target: str = "cpu", budget: str = "2ms",
            **options: Any) -> FitResult:
    """Python API mirroring ``edgeprune fit``: ``edgeprune.fit("demo", target="cpu", budget="1ms")``.

    Keyword options are the fields of :class:`~edgeprune.config.FitConfig` (``weights``, ``out``,
    ``finetune_epochs`` ...).
    """
    fields = set(FitConfig.__dataclass_fields__)
    unknown = set(options) - fields
    if unknown:
        raise InputError(f"unknown fit option(s): {', '.join(sorted(unknown))}")
    for key in ("weights", "train_data", "out"):
        if key in options and options[key] is not None:
            options[key] = Path(options[key])
    config = FitConfig(budget=budget, model=model, data=Path(data) if data is not None else None,
                       target=target, **options)
    return fit(config)
