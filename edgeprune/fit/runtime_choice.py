"""``--runtime auto``: the runtime a fit prunes in, chosen by measuring the unpruned model in every runtime the target has.

On an edge CPU the runtime is the biggest lever after INT8 (the same YOLO nano model runs 1.8-3.7x apart across
runtimes on a Raspberry Pi 5, anchors-2026-12.md). Before anything is pruned, the original model is exported to each
runtime of the target (its TOML's ``runtimes``; every runtime in the facts table for a target that lists none), at
fp32 and, where the runtime quantizes and the run may ship INT8, at int8; each file is

* checked against PyTorch (fp32: its outputs within fp32's tolerance, :func:`~edgeprune.validate.original
  .check_original_runs`; int8: the task's agreement with the PyTorch model on evaluation images, at least the task's
  INT8 floor, the file quantized on at most :data:`CHOICE_CALIBRATION_IMAGES` calibration images: it is screened
  and timed, not shipped),
* timed against the reference, the target's own runtime at fp32, in alternating rounds on this machine
  (:func:`~edgeprune.paired.measure_paired`): a ratio with its bootstrap interval, never two readings minutes apart.
  On a device behind ``--device`` (the first agent of a pool), the files are timed in turn, reference first, in
  :data:`AGENT_ROUNDS` rounds of one short measurement each: the ratio is the median of the rounds' ratios and its
  interval their range (an agent pairs two files only within one runtime).

The runtime whose fastest faithful file has the lowest ratio wins, and the search prunes in it; the precision is then
decided as for any fit (``--precision``). The table, each runtime x precision with its ratio, interval, parity,
agreement and why it was or was not chosen, goes into ``report.json`` (``runtime_choice``) and the summary.

Where latency is predicted from a shipped profile (no ``--device``), the runtime cannot be chosen by measurement: the
target's own runtime is kept and the report says so.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.agent.devices import DeviceSpec
from edgeprune.errors import EdgepruneError, InputError, first_line
from edgeprune.export.formats import runnable_here
from edgeprune.fit.resume import RunJournal
from edgeprune.paired import PairedStats, measure_paired, schedule
from edgeprune.progress import heartbeat
from edgeprune.quantize.backend import for_precision
from edgeprune.runtimes import RUNTIME_NAMES, backend_of, facts_of, known_runtime
from edgeprune.runtimes.base import Artifact, Session
from edgeprune.target import Target
from edgeprune.tasks.base import Task
from edgeprune.timing import TimingSpec
from edgeprune.validate.accuracy import agreement_with_model
from edgeprune.validate.original import check_original_runs

log = logging.getLogger(__name__)

#: ``--runtime``'s value that asks for the choice by measurement
AUTO = "auto"
#: seconds of alternating rounds per runtime x precision against the reference (extended while noisy)
PAIR_SECONDS = 1.0
#: evaluation images an int8 file's agreement with the PyTorch model is measured on, at most
AGREEMENT_IMAGES = 128
#: calibration images each runtime's quantizer gets for the choice, at most: its file is timed and screened here,
#: not shipped (the fit quantizes the chosen runtime's models on every calibration image); quantizers that calibrate
#: image by image in Python (ExecuTorch's PT2E took 165 s on cifar-resnet56 at 128) are the choice's slowest step
CHOICE_CALIBRATION_IMAGES = 32
#: rounds of measurements through an agent (each file once per round, in the same order)
AGENT_ROUNDS = 3
#: one measurement of a round through an agent
AGENT_SPEC = TimingSpec(warmup_runs=5, min_runs=20, min_seconds=0.3, retries=0)


@dataclass
class RuntimeTrial:
    """The original model in one runtime at one precision: exported, checked, timed against the reference."""

    runtime: str
    precision: str
    #: ``measured``, or why the file was not timed or cannot be chosen
    status: str = "measured"
    #: paired latency ratio against the reference (candidate / reference), and its interval
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    median_ms: float | None = None
    #: relative max |difference| from PyTorch (fp32), or None
    parity: float | None = None
    #: the task's agreement with the PyTorch model (int8), or None
    agreement: float | None = None
    artifact: Artifact | None = field(default=None, repr=False)
    session: Session | None = field(default=None, repr=False)

    @property
    def faithful(self) -> bool:
        """Exported, run and checked: it may be chosen."""
        return self.status == "measured" and self.ratio is not None

    def to_dict(self) -> dict[str, Any]:
        """For report.json."""
        return {"runtime": self.runtime, "title": facts_of(self.runtime).title, "precision": self.precision,
                "status": self.status, "ratio": self.ratio, "interval": [self.low, self.high]
                if self.low is not None else None, "median_ms": self.median_ms, "parity": self.parity,
                "agreement": self.agreement}


@dataclass
class RuntimeChoice:
    """Which runtime the fit prunes in, and the measurements that chose it."""

    runtime: str
    how: str
    reason: str
    reference: str = ""
    trials: list[RuntimeTrial] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For report.json."""
        return {"runtime": self.runtime, "how": self.how, "reason": self.reason, "reference": self.reference,
                "trials": [t.to_dict() for t in self.trials]}


def runtimes_of(target: Target) -> tuple[str, ...]:
    """The runtimes ``target`` can run: its TOML's ``runtimes``, else every runtime edgeprune has."""
    return target.runtimes or RUNTIME_NAMES


def resolve_runtime(requested: str | None, target: Target) -> str:
    """What ``--runtime`` means for ``target``: ``auto`` (asked, or the default for a target listing several
    runtimes) or one runtime's name; a name the target cannot run is refused in one line."""
    if requested is None:
        return AUTO if len(target.runtimes) > 1 else target.runtime
    if requested == AUTO:
        return AUTO
    if not known_runtime(requested):
        raise InputError(f"--runtime {requested}: not a runtime edgeprune has; choose auto or one of "
                         f"{', '.join(RUNTIME_NAMES)}")
    if target.runtimes and requested not in target.runtimes:
        raise InputError(f"--runtime {requested}: target '{target.name}' runs {', '.join(target.runtimes)}")
    return requested


def in_runtime(target: Target, runtime: str) -> Target:
    """``target`` with ``runtime`` in place of its own: the same device and threads for its own runtime; another
    runtime runs on the CPU, at the float and INT8 precisions it has."""
    if runtime == target.runtime:
        return target
    facts = facts_of(runtime)
    precisions = tuple(p for p in target.precisions if p == "fp32" or (p == "int8" and facts.int8)) or ("fp32",)
    precision = target.precision if target.precision in precisions else "fp32"
    return dataclasses.replace(target, runtime=runtime, device="cpu", precision=precision, precisions=precisions)


def choose_runtime(target: Target, model: nn.Module, example: torch.Tensor, calibration: np.ndarray,
                   eval_inputs: torch.Tensor, task: Task, precisions: tuple[str, ...], work: Path,
                   journal: RunJournal, device: DeviceSpec | None = None, runtimes: tuple[str, ...] | None = None
                   ) -> tuple[Target, RuntimeChoice]:
    """The target in the runtime this fit should prune in (see the module docstring), and the choice's record.

    ``precisions``: the precisions the run may ship (``fp32``/``int8``); each runtime is tried at those it has.
    ``runtimes``: the runtimes to try (default: :func:`runtimes_of` the target). ``device``: the agent the
    target's latency is measured on (None: this machine).
    """
    if device is None and target.latency_source == "predicted-profile":
        reason = (f"{facts_of(target.runtime).title}, the target's own: its latency here is predicted from a shipped "
                  "profile, so the runtime was not chosen by measurement (pass --device to measure them on it)")
        log.info("runtime: %s", reason)
        return target, RuntimeChoice(target.runtime, "predicted", reason)
    trials = _trials(runtimes or runtimes_of(target), precisions)
    if device is not None:
        _not_on_the_device(trials, device)
    tried = sum(t.status == "measured" for t in trials)
    with heartbeat(f"exporting the original model to {tried} runtime x precision pairs"):
        for trial in trials:
            _export_and_check(trial, target, model, example, calibration, eval_inputs, task, work)
    reference = next((t for t in trials if t.runtime == target.runtime and t.precision != "int8" and t.session),
                     next((t for t in trials if t.session is not None), None))
    if reference is None:
        failures = "; ".join(f"{t.runtime} {t.precision}: {t.status}" for t in trials)
        raise InputError(f"--runtime auto: the original model runs faithfully in none of the target's runtimes "
                         f"({failures})")
    if device is None:
        _time_against(reference, trials, journal)
    else:
        _time_in_turn(reference, trials, journal, device, target)
    chosen, tied = _fastest(trials, target.runtime)
    ref_name = f"{facts_of(reference.runtime).title} {reference.precision}"
    reason = (f"{facts_of(chosen.runtime).title} {chosen.precision} ran at {chosen.ratio:.2f}x the latency of "
              f"{ref_name} [{chosen.low:.2f}, {chosen.high:.2f}], the fastest of "
              f"{sum(t.faithful for t in trials)} faithful runtime x precision pairs")
    if len(tied) > 1:
        others = ", ".join(f"{facts_of(t.runtime).title} {t.precision}" for t in tied if t is not chosen)
        reason += (f" (tied within the intervals with {others}; " +
                   ("the target's own runtime is kept" if chosen.runtime == target.runtime else
                    "the first with a per-layer profiler, else the first in edgeprune's table, is taken") + ")")
    log.info("runtime: %s", reason)
    for trial in trials:
        trial.session = None  # the sessions' memory back before the search
    how = "measured here" if device is None else f"measured on {device.url}"
    return in_runtime(target, chosen.runtime), RuntimeChoice(chosen.runtime, how, reason, ref_name, trials)


def _fastest(trials: list[RuntimeTrial], own: str) -> tuple[RuntimeTrial, list[RuntimeTrial]]:
    """The trial to choose and those tied with the fastest: the lowest ratio, unless others' intervals overlap
    its interval; among such ties the target's own runtime is kept, else the first runtime with a per-layer
    profiler (its latency table is read from the runtime rather than probed), else the first in the table."""
    faithful = [t for t in trials if t.faithful]
    best = min(faithful, key=lambda t: t.ratio or float("inf"))
    tied = [t for t in faithful if (t.low or 0.0) <= (best.high or 0.0) and (best.low or 0.0) <= (t.high or 0.0)]
    ranked = sorted(tied, key=lambda t: (t.runtime != own, not facts_of(t.runtime).profiler, faithful.index(t)))
    return ranked[0], tied


def _trials(runtimes: tuple[str, ...], precisions: tuple[str, ...]) -> list[RuntimeTrial]:
    trials = []
    for runtime in runtimes:
        facts = facts_of(runtime)
        for precision in precisions:
            trial = RuntimeTrial(runtime, precision)
            trials.append(trial)
            if precision == "int8" and not facts.int8:
                trial.status = "no INT8 quantizer here"
            elif not backend_of(runtime).available():
                trial.status = f"not installed (pip install 'edgeprune[{facts.extra}]')"
    return trials


def _export_and_check(trial: RuntimeTrial, target: Target, model: nn.Module, example: torch.Tensor,
                      calibration: np.ndarray, eval_inputs: torch.Tensor, task: Task, work: Path) -> None:
    """Export the original for ``trial``, load it, and check it against PyTorch; a failure is the trial's status."""
    if trial.status != "measured":
        return
    runtime_target = in_runtime(target, trial.runtime).with_precision(trial.precision)
    backend = backend_of(trial.runtime)
    try:
        exporter = for_precision(backend, runtime_target, calibration[:CHOICE_CALIBRATION_IMAGES])
        trial.artifact = exporter.export(model, example, work / f"runtime-{trial.runtime}-{trial.precision}",
                                         runtime_target)
        if trial.precision == "int8":
            session = backend.load(trial.artifact, runnable_here(runtime_target)[0])
            trial.agreement = agreement_with_model(session, trial.artifact.input_name, model,
                                                   eval_inputs[:AGREEMENT_IMAGES], task)
            if trial.agreement < task.min_int8_agreement:
                trial.status = (f"keeps {trial.agreement:.1%} of the original's answers, under the "
                                f"{task.min_int8_agreement:.0%} INT8 floor")
        else:
            trial.parity = check_original_runs(backend, runtime_target, trial.artifact, model, eval_inputs)
            session = backend.load(trial.artifact, runnable_here(runtime_target)[0])
        trial.session = session if trial.status == "measured" else None  # a refused file is not timed
    except (EdgepruneError, NotImplementedError, RuntimeError, ValueError) as exc:
        trial.status = f"failed: {first_line(exc, 200)}"
        log.info("runtime %s %s: %s", trial.runtime, trial.precision, trial.status)


def _time_against(reference: RuntimeTrial, trials: list[RuntimeTrial], journal: RunJournal) -> None:
    """Each trial with a session timed against ``reference`` in alternating rounds (replayed on --resume)."""
    assert reference.session is not None and reference.artifact is not None
    ref_session, ref_feed = reference.session, _feed(reference.artifact)
    for trial in trials:
        if trial.session is None or trial.artifact is None:
            continue
        key = f"runtime-choice:{trial.runtime}:{trial.precision}"
        replayed = journal.measurement(key)
        if replayed is not None and journal.replayed_ratio is not None:
            trial.median_ms, trial.ratio = replayed.median_ms, journal.replayed_ratio
            trial.low = trial.high = trial.ratio
            continue
        session, feed = trial.session, _feed(trial.artifact)
        with heartbeat(f"timing {facts_of(trial.runtime).title} {trial.precision} against the reference"):
            paired: PairedStats = measure_paired(lambda: ref_session.run(ref_feed), lambda: session.run(feed),
                                                 schedule(PAIR_SECONDS, max_interval_share=0.1))
        summary = paired.summary
        trial.ratio, trial.low, trial.high = summary.ratio, summary.low, summary.high
        trial.median_ms = paired.candidate.median_ms
        journal.record(key, paired.candidate, summary.ratio)
        log.info("runtime %s %s: %.3f ms, %.2fx the reference [%.2f, %.2f]", trial.runtime, trial.precision,
                 trial.median_ms, trial.ratio, trial.low, trial.high)


def _not_on_the_device(trials: list[RuntimeTrial], device: DeviceSpec) -> None:
    """Trials whose runtime the agent does not have installed are not tried (said in their status)."""
    from edgeprune.agent.client import AgentClient

    installed = AgentClient(device.url, device.token).info().get("runtimes", {})
    for trial in trials:
        entry = installed.get(trial.runtime)
        if trial.status == "measured" and not (isinstance(entry, dict) and entry.get("installed")):
            extra = facts_of(trial.runtime).agent_extra or facts_of(trial.runtime).extra
            trial.status = f"not installed on the device (pip install 'edgeprune[{extra}]' there)"


def _time_in_turn(reference: RuntimeTrial, trials: list[RuntimeTrial], journal: RunJournal, device: DeviceSpec,
                  target: Target) -> None:
    """Each trial's file timed on the agent in turn with the reference's, :data:`AGENT_ROUNDS` rounds (replayed
    on --resume); its ratio is the median of the rounds' ratios, its interval their range."""
    from edgeprune.agent.client import AgentClient

    client = AgentClient(device.url, device.token)
    timed = [t for t in trials if t.artifact is not None and t.session is not None]
    readings: dict[int, list[float]] = {id(t): [] for t in timed}
    for round_index in range(AGENT_ROUNDS):
        for trial in [reference, *[t for t in timed if t is not reference]]:
            key = f"runtime-choice:{trial.runtime}:{trial.precision}:{round_index}"
            stats = journal.measurement(key)
            if stats is None:
                runtime_target = in_runtime(target, trial.runtime).with_precision(trial.precision)
                with heartbeat(f"timing {facts_of(trial.runtime).title} {trial.precision} on the device"):
                    stats = client.measure(trial.artifact, runtime_target, AGENT_SPEC).stats  # type: ignore[arg-type]
                journal.record(key, stats)
            readings[id(trial)].append(stats.median_ms)
    base = readings[id(reference)]
    for trial in timed:
        ratios = sorted(ms / ref for ms, ref in zip(readings[id(trial)], base))
        trial.ratio, trial.low, trial.high = float(np.median(ratios)), ratios[0], ratios[-1]
        trial.median_ms = float(np.median(readings[id(trial)]))
        log.info("runtime %s %s on the device: %.3f ms, %.2fx the reference [%.2f, %.2f]", trial.runtime,
                 trial.precision, trial.median_ms, trial.ratio, trial.low, trial.high)


def _feed(artifact: Artifact) -> dict[str, np.ndarray]:
    return {artifact.input_name: np.full(artifact.input_shape, 0.5, dtype=np.float32)}


__all__ = ["AUTO", "RuntimeChoice", "RuntimeTrial", "choose_runtime", "in_runtime",
           "resolve_runtime", "runtimes_of"]
