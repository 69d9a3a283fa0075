"""``fit``: the one place that wires the stages together.

Flow: load model and data → channel groups → importance → measure the original on the target → an
allocation strategy proposes widths (``latency``: greedy importance-per-millisecond search on the profiled
latency table; ``uniform``: one keep ratio bisected on measured latency) → every candidate is exported and
measured on the target → recover (batch-norm statistics, optional fine-tune) → export the final model and
confirm its latency with a longer measurement → on any miss the strategy recalibrates and proposes again →
evaluate both artifacts in the runtime → write plan, weights, artifact and reports atomically.

The stages live in :mod:`edgeprune.fit.run` (search and closed loop, ``--steps``), :mod:`edgeprune.fit.recover`
(reconstruction, batch norm, fine-tuning) and :mod:`edgeprune.fit.finish` (evaluation and outputs). Targets
edgeprune cannot reach without an agent get the same flow on a shipped profile's predictions, labelled as
such (:mod:`edgeprune.latency.predicted`); an interrupted run resumes from its journal (:mod:`edgeprune.fit.resume`).

The search aims ``search_headroom`` (default 5%) under the budget so that drift between measurements
does not push the shipped model over it; the confirmation measures the shipped artifact against the
budget itself, and only a confirmed model is ever written.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from edgeprune.agent.devices import parse_devices
from edgeprune.budget import Budget, SizeBudget
from edgeprune.config import SPARSITY_SCHEDULES, SPARSITY_SCOPES, FitConfig
from edgeprune.errors import (
    BudgetUnreachableError,
    DeviceUnavailableError,
    EdgepruneError,
    InputError,
    OutputError,
    OversubscribedError,
)
from edgeprune.export.formats import parse_formats
from edgeprune.fit.calibration_floor import criterion_for, note_short_calibration
from edgeprune.fit.data_parallel import run_ranked
from edgeprune.fit.finish import finish_run
from edgeprune.fit.inputs import resolve_inputs
from edgeprune.fit.option_use import moot_options, refuse_options_without_effect
from edgeprune.fit.outputs import RESULT_FILES, OutputDir
from edgeprune.fit.qat import quantization_aware
from edgeprune.fit.resume import RunJournal, finished_run, has_interrupted_run, restore_state_renamed_aside
from edgeprune.fit.run import FitRun, RunOutcome, StageClock
from edgeprune.fit.runtime_choice import AUTO, RuntimeChoice, choose_runtime, in_runtime, resolve_runtime, runtimes_of
from edgeprune.fit.sparsity_stage import weight_sparsity
from edgeprune.latency.analytic import load_profile
from edgeprune.latency.candidates import CandidateMeasurer
from edgeprune.latency.predicted import PredictedMeasurer
from edgeprune.latency.profile_model import default_table_dir
from edgeprune.latency.timers import ProfileTimer, make_timer
from edgeprune.progress import heartbeat
from edgeprune.prune.importance import get_importance
from edgeprune.quantize.backend import check_int8_target, for_precision
from edgeprune.quantize.choice import auto_target
from edgeprune.quantize.qat import check_qat_runtime
from edgeprune.report.fit_result import FitResult
from edgeprune.runtimes import facts_of, get_backend, keep_runtime_telemetry_off
from edgeprune.target import Target, load_target
from edgeprune.train import distributed
from edgeprune.train.augment import parse_augmentation
from edgeprune.train.device import resolve_train_device
from edgeprune.train.schedules import SCHEDULES
from edgeprune.writable import require_writable_dir

log = logging.getLogger(__name__)


def _check_config(config: FitConfig) -> None:
    if config.budget is None and config.size_budget is None and config.sparsity is None:
        raise InputError("a fit needs --budget (latency), or --size-budget or --sparsity for a size-only fit")
    if config.finetune_epochs < 0:
        raise InputError(f"--finetune-epochs must be >= 0, got {config.finetune_epochs}")
    if config.qat_epochs < 0:
        raise InputError(f"--qat-epochs must be >= 0, got {config.qat_epochs}")
    if config.finetune_lr <= 0:
        raise InputError(f"--finetune-lr must be positive, got {config.finetune_lr}")
    if not 0 <= config.search_headroom < 0.5:
        raise InputError(f"--search-headroom must be in [0, 0.5), got {config.search_headroom}")
    if config.allocation not in ("latency", "uniform"):
        raise InputError(f"--allocation must be 'latency' or 'uniform', got '{config.allocation}'")
    if config.max_rounds < 3:
        raise InputError(f"--max-rounds must be at least 3, got {config.max_rounds}")
    if config.finetune_schedule not in SCHEDULES:
        raise InputError(f"--finetune-schedule must be one of {', '.join(SCHEDULES)}, got '{config.finetune_schedule}'")
    parse_augmentation(config.finetune_augment)  # an unknown augmentation is refused before any work
    if config.steps < 1:
        raise InputError(f"--steps must be at least 1, got {config.steps}")
    if config.min_accuracy is not None and not 0 <= config.min_accuracy <= 1:
        raise InputError(f"--min-accuracy must be a fraction between 0 and 1, got {config.min_accuracy}")
    if config.export:
        parse_formats(config.export)  # an unknown format is refused before any work
    if config.eval_images is not None and config.eval_images < 1:
        raise InputError(f"--eval-images must be at least 1, got {config.eval_images}")
    resolve_train_device(config.train_device)  # an unknown or absent GPU is refused before any work
    if config.train_nproc > 1:
        raise InputError("train_nproc launches processes from the command line (edgeprune fit --train-nproc N); "
                         "from Python, start your script with torchrun instead")
    if config.data_workers < 0 or config.in_memory_mb < 1:
        raise InputError("--data-workers must be >= 0 and --in-memory-mb >= 1")
    if distributed.launched_by_torchrun() and config.distill_features:
        raise InputError("--distill-features is not available for data-parallel fine-tuning (torchrun): use "
                         "--distill")
    _check_sparsity(config)
    refuse_options_without_effect(config)


def _moot_options(run: FitRun, outcome: RunOutcome) -> list[dict[str, str]]:
    """The options given that this run's course made moot (each said in a warning), for ``report.json``."""
    pruned = outcome.slim is not run.model or bool(outcome.depth and outcome.depth.removed)
    if run.budget_spec is None:
        why = "a size-only fit keeps every channel"
    elif run.step_start_ms <= run.budget_ms and run.measurer.quantizes:
        why = "INT8 alone met the budget"
    else:
        why = "the original met the budget as it is"
    scored = run.budget_spec is not None and not run._nothing_to_prune(1)
    return moot_options(run.config, finetuned=run.recovery.finetunes_run > 0, pruned=pruned, scored=scored,
                        why_unpruned=why)


def _check_sparsity(config: FitConfig) -> None:
    """``--sparsity`` and ``--size-budget`` and the schedule's options, refused before any work."""
    if config.size_budget is not None:
        SizeBudget.parse(config.size_budget)
    if config.sparsity is not None and not 0 < config.sparsity < 1:
        raise InputError(f"--sparsity must be a fraction in (0, 1), e.g. 0.8, got {config.sparsity}")
    if not 0 <= config.sparsity_initial < 1:
        raise InputError(f"--sparsity-initial must be a fraction in [0, 1), got {config.sparsity_initial}")
    if config.sparsity is not None and config.sparsity_initial > config.sparsity:
        raise InputError(f"--sparsity-initial ({config.sparsity_initial}) must not exceed --sparsity ({config.sparsity})")
    if config.sparsity_scope not in SPARSITY_SCOPES:
        raise InputError(f"--sparsity-scope must be one of {', '.join(SPARSITY_SCOPES)}, got '{config.sparsity_scope}'")
    if config.sparsity_schedule not in SPARSITY_SCHEDULES:
        raise InputError(f"--sparsity-schedule must be one of {', '.join(SPARSITY_SCHEDULES)}, "
                         f"got '{config.sparsity_schedule}'")
    begin, end, frequency = config.sparsity_begin_step, config.sparsity_end_step, config.sparsity_frequency
    if begin is not None and begin < 0:
        raise InputError(f"--sparsity-begin-step must be >= 0, got {begin}")
    if end is not None and end <= (begin or 0):
        raise InputError(f"--sparsity-end-step ({end}) must be after --sparsity-begin-step ({begin or 0})")
    if frequency is not None and frequency < 1:
        raise InputError(f"--sparsity-frequency must be at least 1, got {frequency}")
    if config.qat_epochs > 0 and (config.sparsity is not None or config.size_budget is not None):
        raise InputError("--qat-epochs cannot be combined with --sparsity or --size-budget: the quantization-aware "
                         "fine-tune does not keep the weight masks; INT8 post-training quantization (--precision "
                         "int8) keeps the zeros")


def fit(config: FitConfig) -> FitResult | None:
    """Prune ``config.model`` until its exported artifact meets ``config.budget`` measured on the target.

    Under torchrun, rank 0 runs the fit and the other ranks fine-tune their shares of it; they return None
    (:mod:`edgeprune.fit.data_parallel`). Its long stages show their progress (:mod:`edgeprune.progress`); the
    whole fit is one more, so that a stage that shows none still gets a line at least every 30 s.
    """
    keep_runtime_telemetry_off()
    return run_ranked(config, _watched_fit)


def _watched_fit(config: FitConfig) -> FitResult:
    """:func:`_fit` as one stage of :mod:`edgeprune.progress` (rank 0's only, under torchrun)."""
    with heartbeat("fitting"):
        return _fit(config)


def _fit(config: FitConfig) -> FitResult:
    """Prune ``config.model`` until its exported artifact meets ``config.budget`` measured on the target.

    Raises :class:`~edgeprune.errors.BudgetUnreachableError` (exit code 2) with the smallest latency measured
    when no candidate meets the budget; the output directory then holds no result files. An interrupted run
    (Ctrl-C, a crash) keeps its resume state in the output directory; ``resume=True`` continues it.
    """
    clock = StageClock()
    budget = Budget.parse(config.budget) if config.budget is not None else None
    _check_config(config)
    loaded = load_target(config.target)
    runtime = resolve_runtime(config.runtime, loaded)
    measured = bool(config.device) or loaded.latency_source != "predicted-profile"
    if config.precision is None:  # the default: auto where latency is measured, never on an estimate alone
        config = dataclasses.replace(config, precision="auto" if measured else loaded.precision,
                                     precision_defaulted=True)
        log.info("precision: %s (the default%s)", config.precision,
                 "" if measured else ": latency here is predicted from a shipped profile, so INT8 is not chosen on "
                 "its estimate unless --precision auto or int8 asks")
    target = _at_precision(config, in_runtime(loaded, loaded.runtime if runtime == AUTO else runtime), measured)
    if config.keep_float and target.precision != "int8":
        log.warning("--keep-float is ignored: this run's candidates are %s, not INT8", target.precision)
    if config.qat_epochs > 0 and (runtime != AUTO or not _runtimes_for(config, loaded)):  # before any work
        check_qat_runtime(target.runtime, target.name)  # (auto chooses among the runtimes with a QAT path)
    backend = get_backend(target)
    importance = get_importance(config.importance)
    choice: RuntimeChoice | None = None
    if config.resume:
        restore_state_renamed_aside(config.out)
    resuming = config.resume and has_interrupted_run(config.out)
    if config.resume and not resuming and not config.force and any((Path(config.out) / f).exists() for f in RESULT_FILES):
        finished = finished_run(config)
        if finished is not None:  # killed after its state was removed, or simply done: its results stand
            return finished
        raise OutputError(f"{config.out} holds the results of a finished run and no interrupted one: nothing to "
                          "resume; pass --force to run again or choose another --out")
    out = OutputDir(config.out, config.force, resuming=resuming)
    keep_state = False
    try:
        with clock("load"):
            inputs = resolve_inputs(config, target)
        if config.allocation == "latency" and measured:  # the table is saved after minutes: refused before them,
            require_writable_dir(config.table_dir or default_table_dir(), "--table-dir")  # inputs and --out first
        journal = RunJournal(out.path, config)  # after the inputs: a refused input leaves no state behind
        if runtime == AUTO:
            with clock("runtime choice"):
                chosen, choice = choose_runtime(
                    loaded, inputs.bundle.model, inputs.example, inputs.calibration.numpy(), inputs.eval_inputs,
                    inputs.task, _choice_precisions(config, loaded), out.work, journal,
                    device=parse_devices(config.device, config.device_token)[0] if config.device else None,
                    runtimes=_runtimes_for(config, loaded))
            target = _at_precision(config, chosen, measured)
            backend = get_backend(target)
        timer = make_timer(backend, target, config.device, config.device_token, predict_unreachable=True)
        images = len(inputs.calibration)  # what they are enough for: one line per step switched off
        note_short_calibration(images, config.calib_images, inputs.calibration_source)
        importance = get_importance(criterion_for(importance.name, images))
        torch.manual_seed(config.seed)
        measurer_type = PredictedMeasurer if isinstance(timer, ProfileTimer) else CandidateMeasurer
        if target.precision == "int8" and isinstance(timer, ProfileTimer):
            timer.profile.at_precision("int8")  # one line where the shipped profile has no INT8 estimate
        candidates = for_precision(backend, target, inputs.calibration.numpy(), config.keep_float)
        measurer = measurer_type(candidates, target, inputs.example, out.work, timer,  # type: ignore[arg-type]
                                 original_backend=backend)
        run = FitRun(config, budget, target, backend, importance, inputs, measurer, journal, clock)
        run.runtime_choice = choice
        keep_state = True
        try:
            outcome = run.execute()
        except BudgetUnreachableError as exc:
            if config.precision == "int8" and exc.floor_ms > exc.budget_ms:  # INT8's floor sits above float's
                exc = exc.with_detail("INT8 adds quantize/dequantize work around every layer, so its narrowest "
                                      "model can be slower than float's: --prune-blocks removes whole layers, and "
                                      "--precision auto searches float candidates where INT8 cannot reach")
            if isinstance(measurer, PredictedMeasurer) and not exc.predicted:
                raise exc.as_predicted() from None
            raise exc from None
        outcome = weight_sparsity(run, outcome)
        outcome = quantization_aware(run, outcome)
        run.options_not_used = _moot_options(run, outcome)
        result = finish_run(run, outcome, out)
        journal.finish()
        return result
    except DeviceUnavailableError as exc:
        if not keep_state:
            raise
        # a lost device is not a final answer: the journal and checkpoints stay for --resume
        raise DeviceUnavailableError(f"{exc}; the run's measurements and checkpoints are kept in {out.path}: "
                                     "rerun the same command with --resume once the device answers") from None
    except OversubscribedError as exc:
        if not keep_state:
            raise
        # a busy CPU is not a final answer either: the measurements so far stay for --resume
        raise OversubscribedError(f"{exc} (the measurements and checkpoints so far are kept in {out.path})") from None
    except OutputError as exc:
        if not keep_state:
            raise
        # the state or a result could not be written: not a final answer, the measurements so far stay
        raise OutputError(f"{exc}; the run's measurements and checkpoints so far are kept in {out.path}: rerun the "
                          "same command with --resume once it can be written") from None
    except EdgepruneError:
        if keep_state:
            journal.finish()  # a final answer (e.g. the budget is out of reach): resuming would repeat it
        raise
    except KeyboardInterrupt:
        if keep_state:
            log.warning("interrupted; rerun the same command with --resume to continue from the last finished "
                        "measurement and fine-tune epoch")
        raise
    finally:
        out.discard()


def _at_precision(config: FitConfig, target: Target, measured: bool) -> Target:
    """``target`` at the precision the run's candidates start at (``--precision``; ``auto``: INT8 where the runtime
    quantizes and its latency is measured or estimated), checked against what its runtime can do."""
    if config.precision == "auto":
        target = auto_target(target, measured=measured,
                             estimated=bool(target.profile) and load_profile(target.profile).int8 is not None)
    else:
        target = target.with_precision(config.precision)
    check_int8_target(target)
    return target


def _runtimes_for(config: FitConfig, target: Target) -> tuple[str, ...]:
    """The target's runtimes that can do what the options ask (``--qat-epochs``: a QAT path; ``--keep-float``:
    mixed precision)."""
    needs = [name for name, asked in (("qat", config.qat_epochs > 0), ("mixed", bool(config.keep_float))) if asked]
    return tuple(r for r in runtimes_of(target) if all(getattr(facts_of(r), need) for need in needs))


def _choice_precisions(config: FitConfig, target: Target) -> tuple[str, ...]:
    """The precisions ``--runtime auto`` tries each runtime at: those the run may ship."""
    if config.precision == "auto":
        return tuple(p for p in (target.float_precision, "int8") if p in target.precisions)
    return (config.precision or target.precision,)


def fit_api(model: str = "demo", data: str | Path | None = None, target: str = "cpu", budget: str | None = "2ms",
            **options: Any) -> FitResult | None:
    """Python API mirroring ``edgeprune fit``: ``edgeprune.fit("demo", target="cpu", budget="1ms")``.

    Keyword options are the fields of :class:`~edgeprune.config.FitConfig` (``weights``, ``out``,
    ``finetune_epochs`` ...). Under torchrun, ranks other than 0 return None.
    """
    fields = set(FitConfig.__dataclass_fields__)
    unknown = set(options) - fields
    if unknown:
        raise InputError(f"unknown fit option(s): {', '.join(sorted(unknown))}")
    for key in ("weights", "train_data", "calib_data", "class_map", "out"):
        if key in options and options[key] is not None:
            options[key] = Path(options[key])
    config = FitConfig(budget=budget, model=model, data=Path(data) if data is not None else None,
                       target=target, **options)
    return fit(config)
