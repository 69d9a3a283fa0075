"""``fit``: the one place that wires the stages together.

Flow (foundation version): load model and data → channel groups → importance → measure the original on
the target → bisect one uniform keep ratio on *measured* latency → (optional) fine-tune → export the final
model and confirm its latency with a longer measurement → evaluate both artifacts in the runtime → write
plan, weights, ONNX file and reports atomically into the output directory.

The search aims ``search_headroom`` (default 5%) under the budget so that run-to-run timing noise does not push the shipped model over
it; the confirmation measures the final artifact against the budget itself. If the confirmation misses,
the next smaller candidate that met the budget is tried, so the loop closes on measured latency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from edgeprune._version import __version__
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
from edgeprune.prune.ratio_bisect import bisect_largest_feasible
from edgeprune.prune.surgery import slim_copy
from edgeprune.prune.uniform import uniform_keep
from edgeprune.report.environment import machine_info, package_versions
from edgeprune.report.fit_result import REPORT_SCHEMA, FitResult
from edgeprune.report.markdown import render_markdown
from edgeprune.target import Target, load_target
from edgeprune.train.bn_recalibration import recalibrate_batchnorm
from edgeprune.train.loop import TrainSpec, train_classifier
from edgeprune.validate.accuracy import evaluate_session, max_abs_difference

log = logging.getLogger(__name__)

FLOOR_RATIO = 1e-6
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
    if target.latency_source == "predicted-profile" and not config.device:
        raise InputError(
            f"target '{target.name}' cannot be measured from this machine and fit ships only measured latencies "
            "in this version; run 'edgeprune agent' on the device and pass --device URL, or use a local target"
        )
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
        self.measurer = CandidateMeasurer(backend, target, self.example, out.work, timer)
        self.rounds: list[dict[str, Any]] = []
        # First keep ratio that produced each set of widths, and its measurement.
        self.by_widths: dict[tuple[int, ...], tuple[float, Measurement]] = {}
        self.groups: list[ChannelGroup] = []
        self.frozen: list[ChannelGroup] = []
        self.scores: dict[str, np.ndarray] = {}
        self.finetune_seconds = 0.0

    # -- stages -----------------------------------------------------------------------------------
    def execute(self) -> FitResult:
        with self.clock("analyse"):
            graph = ModelGraph(self.model, self.example, self.config.frozen_modules)
            self.groups, self.frozen = graph.prunable_groups(), [g for g in graph.groups if not g.prunable]
            if not self.groups:
                raise InputError(f"model '{self.inputs.bundle.spec}' has no channel group edgeprune can prune")
            ctx = ScoringContext(self.model, self.inputs.calibration)
            self.importance.prepare(ctx)
            self.scores = {g.name: np.asarray(self.importance.score(g, ctx)) for g in self.groups}
        with self.clock("measure"):
            baseline = self.measurer.measure(self.model, "original", CONFIRM_TIMING)
            self.budget_ms = self.budget_spec.resolve(baseline.stats.median_ms)
            self._record("baseline", 1.0, baseline)
            log.info("original model: %.3f ms on %s; budget %.3f ms (%s)", baseline.stats.median_ms,
                     self.target.name, self.budget_ms, self.budget_spec)
        ratio, slim, final = self._search_and_confirm(baseline)
        return self._finish(baseline, ratio, slim, final)

    def _keep(self, ratio: float) -> dict[str, list[int]]:
        return uniform_keep(self.groups, self.scores, ratio, self.target.channel_alignment)

    def _widths(self, keep: dict[str, list[int]]) -> tuple[int, ...]:
        return tuple(len(keep[g.name]) for g in self.groups)

    def _record(self, kind: str, ratio: float, m: Measurement) -> None:
        meets = m.stats.median_ms <= self.budget_ms
        self.rounds.append({"kind": kind, "keep_ratio": ratio, "median_ms": m.stats.median_ms,
                            "p90_ms": m.stats.p90_ms, "cv": m.stats.cv, "meets_budget": meets})
        log.info("%s: keep %.1f%% of channels → %.3f ms %s", kind, 100 * ratio, m.stats.median_ms,
                 "(within budget)" if meets else "(over budget)")

    def _measure_ratio(self, ratio: float, kind: str) -> tuple[float, float]:
        """(median ms, the first ratio measured with the same widths) for a keep ratio."""
        keep = self._keep(ratio)
        widths = self._widths(keep)
        if widths not in self.by_widths:
            if len(self.rounds) >= self.config.max_rounds:
                raise _RoundsExhausted()
            slim = slim_copy(self.model, self.example, keep, self.config.frozen_modules)
            self.by_widths[widths] = (ratio, self.measurer.measure(slim, f"keep{ratio:.4f}"))
            self._record(kind, ratio, self.by_widths[widths][1])
        first_ratio, measurement = self.by_widths[widths]
        return measurement.stats.median_ms, first_ratio

    def _search_and_confirm(self, baseline: Measurement) -> tuple[float, nn.Module, Measurement]:
        target_ms = self.budget_ms * (1 - self.config.search_headroom)
        feasible: list[float] = []
        with self.clock("search"):
            if baseline.stats.median_ms <= target_ms:
                feasible = [1.0]
                log.info("the original model already meets the budget; nothing to prune")
            else:
                floor_ms, _ = self._measure_ratio(FLOOR_RATIO, "floor")
                if floor_ms > target_ms:
                    raise BudgetUnreachableError(self.budget_ms, floor_ms, _floor_hint(self.frozen))
                max_width = max(g.width for g in self.groups)
                feasible_ratios: list[float] = [FLOOR_RATIO]

                def latency_at(ratio: float) -> float:
                    ms, first_ratio = self._measure_ratio(ratio, "search")
                    if ms <= target_ms:
                        feasible_ratios.append(first_ratio)
                    return ms

                try:
                    bisect_largest_feasible(latency_at, target_ms, FLOOR_RATIO, 1.0,
                                            self.config.max_rounds, 0.5 / max_width)
                except _RoundsExhausted:
                    log.info("round limit reached; continuing with the best candidate measured")
                feasible = sorted(set(feasible_ratios))
        while feasible:
            ratio = feasible.pop()
            slim = self.model if ratio == 1.0 else slim_copy(self.model, self.example, self._keep(ratio),
                                                             self.config.frozen_modules)
            if slim is not self.model and self.config.bn_recalibrate:
                with self.clock("recover"):
                    recalibrate_batchnorm(slim, self.inputs.calibration)
            slim = self._finetune(slim)
            with self.clock("confirm"):
                final = self.measurer.measure(slim, "final", CONFIRM_TIMING)
            self._record("confirm", ratio, final)
            if final.stats.median_ms <= self.budget_ms:
                return ratio, slim, final
        floor = min(r["median_ms"] for r in self.rounds)
        raise BudgetUnreachableError(self.budget_ms, floor, "The confirmation measurement missed the budget.")

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
    def _finish(self, baseline: Measurement, ratio: float, slim: nn.Module, final: Measurement) -> FitResult:
        stage = self.out.staging
        labels = self.inputs.eval_set.labels
        with self.clock("evaluate"):
            backend, target = self.measurer.backend, self.target
            base_eval = evaluate_session(backend.load(baseline.artifact, target), baseline.artifact.input_name,
                                         self.inputs.eval_inputs, labels)
            final_session = backend.load(final.artifact, target)
            final_eval = evaluate_session(final_session, final.artifact.input_name, self.inputs.eval_inputs, labels)
            parity = max_abs_difference(final_session, final.artifact.input_name, slim,
                                        self.inputs.calibration[:PARITY_IMAGES])
        macs_before, params_before = count_macs_and_params(self.model, self.example)
        macs_after, params_after = count_macs_and_params(slim, self.example)
        keep = self._keep(ratio) if ratio < 1.0 else {g.name: list(range(g.width)) for g in self.groups}
        bundle = self.inputs.bundle
        method = {"importance": self.importance.name, "allocation": "uniform-ratio-bisection",
                  "keep_ratio": ratio, "search_headroom": self.config.search_headroom}
        plan = SlimPlan(bundle.spec, bundle.build_kwargs, list(self.example.shape),
                        self.inputs.preprocessing.to_dict(),
                        [{"name": g.name, "width_before": g.width, "width_after": len(keep[g.name]),
                          "kept": keep[g.name]} for g in self.groups],
                        module_shapes(slim), method)
        artifact_files = ARTIFACT_FILES[final.artifact.format]
        for name in artifact_files:  # model.xml comes with model.bin; the others are one file
            final.artifact.path.with_suffix(Path(name).suffix).replace(stage / name)
        state = {k: v.detach().contiguous() for k, v in slim.state_dict().items()}
        save_file(state, str(stage / "model.safetensors"), metadata={"plan_sha256": plan.digest()})
        write_json_atomic(stage / "plan.json", plan.to_dict())
        names = [*artifact_files, "model.safetensors", "plan.json", "report.json", "report.md"]
        out_dir = self.out.path.resolve()
        report: dict[str, Any] = {
            "schema": REPORT_SCHEMA,
            "edgeprune_version": __version__,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "status": "budget met",
            "out_dir": str(out_dir),
            "model": {"spec": bundle.spec, "weights": str(self.config.weights) if self.config.weights else None,
                      "input_shape": list(self.example.shape), "preprocessing": self.inputs.preprocessing.to_dict()},
            "target": asdict(self.target),
            "budget_ms": self.budget_ms,
            "budget_spec": str(self.budget_spec),
            "baseline": self._side(baseline, base_eval.top1, macs_before, params_before),
            "final": self._side(final, final_eval.top1, macs_after, params_after),
            "speedup_measured": baseline.stats.median_ms / final.stats.median_ms,
            "mac_reduction": macs_before / max(macs_after, 1),
            "method": method,
            "artifact": {"format": final.artifact.format, "file": str(out_dir / artifact_files[0]),
                         "input_name": final.artifact.input_name, "input_shape": list(final.artifact.input_shape)},
            "evaluation": {"dataset": self.inputs.eval_set.source, "images": base_eval.images,
                           "runtime": self.target.runtime,
                           "agreement_with_original": float((base_eval.predictions == final_eval.predictions).mean())},
            "parity": {"max_abs_diff": parity, "images": min(PARITY_IMAGES, len(self.inputs.calibration)),
                       "reference": "pruned PyTorch model"},
            "calibration": {"images": len(self.inputs.calibration), "source": self.inputs.calibration_source,
                            "bn_recalibrated": self.config.bn_recalibrate and slim is not self.model},
            "finetune": {"epochs": self.config.finetune_epochs if slim is not self.model else 0,
                         "images": 0 if self.inputs.train_set is None else len(self.inputs.train_set),
                         "seconds": self.finetune_seconds},
            "search": {"rounds": self.rounds, "exports": self.measurer.exports},
            "groups": plan.groups and [{k: g[k] for k in ("name", "width_before", "width_after")} for g in plan.groups],
            "frozen_groups": [{"name": g.name, "width": g.width, "reason": g.frozen_reason} for g in self.frozen],
            "files": {n: str(out_dir / n) for n in names},
            "environment": {"machine": machine_info(), "versions": package_versions(),
                            "measured_on": {"source": self.measurer.timer.source,
                                            "machine": self.measurer.timer.machine()}},
            "timings_s": dict(self.clock.seconds),
        }
        write_json_atomic(stage / "report.json", report)
        write_text_atomic(stage / "report.md", render_markdown(report))
        self.out.commit(names)
        return FitResult(report)

    def _side(self, m: Measurement, top1: float | None, macs: int, params: int) -> dict[str, Any]:
        timer = self.measurer.timer
        return {"latency": {**m.stats.to_dict(), "measured": True, "source": timer.source,
                            "machine": timer.machine().get("cpu"),
                            "backend": self.target.runtime, "runtime_version": timer.runtime_version(),
                            "device": self.target.device, "threads": self.target.threads,
                            "precision": self.target.precision},
                "top1": top1, "macs": macs, "params": params}


class _RoundsExhausted(Exception):
    """Internal: the search used all its export-and-measure rounds."""


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
