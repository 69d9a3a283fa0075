"""``profile``: build (or complete) the latency table of a model on a target, and its calibration.

>>> model, summary = profile_model(ProfileConfig(model="cifar-resnet56", target="cpu"))   # doctest: +SKIP
>>> model.predict({"conv1": 8})                                                           # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgeprune.cache import cache_dir
from edgeprune.config import CALIBRATION_SAMPLES
from edgeprune.errors import InputError
from edgeprune.latency.candidates import CONFIRM_TIMING, SEARCH_TIMING, CandidateMeasurer, Measurement
from edgeprune.latency.in_context_profiler import InContextProfiler
from edgeprune.latency.layers import extract_layers
from edgeprune.latency.predictor import LookupLatencyModel, structure_key
from edgeprune.latency.profiler import (
    ProfileSummary,
    ProgressFn,
    bounded_grids,
    fit_measured,
    measure_probes,
    missing_probes,
    sample_widths,
)
from edgeprune.latency.spread import spread, workers_of
from edgeprune.latency.table import LatencyTable, TableContext
from edgeprune.latency.timers import ArtifactTimer, LocalTimer, make_timer
from edgeprune.models.zoo import build_architecture
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.surgery import slim_copy
from edgeprune.quantize.backend import check_int8_target
from edgeprune.quantize.probes import int8_probe_backend
from edgeprune.runtimes import get_backend
from edgeprune.runtimes.base import Artifact, Backend
from edgeprune.runtimes.onnx_export import is_onnx
from edgeprune.target import Target, load_target

log = logging.getLogger(__name__)


@dataclass
class ProfileConfig:
    """Options of ``edgeprune profile`` (each maps to a flag).

    Attributes:
        model: model spec (weights do not change latency, so none are needed).
        target: target name or TOML path.
        input_shape: (C, H, W) override.
        num_classes: classifier outputs for spec-built architectures.
        table_dir: where latency tables live (default: the edgeprune cache).
        max_points: most widths probed per layer side (default: 6, or 3 for runtimes probed through PyTorch).
        calibration_samples: sub-networks measured end to end for the calibration.
        recalibrate: measure the calibration again even if the table has one for this model.
        seed: seed of the calibration samples.
        device: URL of an ``edgeprune agent`` on the device (probes are then timed there); several separated by
            commas, or a TOML file of them: a pool of identical devices timing probes and calibration at once.
        device_token: the agent's token (default: the EDGEPRUNE_AGENT_TOKEN environment variable).
        precision: ``int8`` probes quantized kernels into an INT8 table (the one ``fit --precision int8`` reads);
            None = the target's precision.
    """

    model: str = "demo"
    target: str = "cpu"
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    table_dir: Path | None = None
    max_points: int | None = None
    calibration_samples: int = CALIBRATION_SAMPLES
    recalibrate: bool = False
    seed: int = 0
    device: str | None = None
    device_token: str | None = None
    frozen_modules: tuple[str, ...] = field(default=())
    precision: str | None = None


def table_context(backend: Backend, target: Target, timer: ArtifactTimer | None = None) -> TableContext:
    """The measurement context (machine, runtime version ...) of whatever times the probes."""
    timer = timer or LocalTimer(backend, target)
    machine = timer.machine()
    return TableContext(
        runtime=backend.name,
        runtime_version=timer.runtime_version(),
        device=target.device,
        threads=target.threads,
        # an INT8 target's probes are quantized kernels (edgeprune.quantize.probes): a table of their own
        precision=target.precision,
        # what decides kernel speed: the CPU model and its feature flags (not the model name alone), cores, ISA
        machine=f"{machine.get('cpu')} ({machine.get('logical_cores')} cores, {machine.get('architecture')}, "
                f"features {machine.get('cpu_features') or 'unknown'})",
    )


def default_table_dir() -> Path:
    """Where latency tables are kept unless ``--table-dir`` says otherwise."""
    return cache_dir() / "latency-tables"


def build_lookup_model(
    model: torch.nn.Module,
    example: torch.Tensor,
    graph: ModelGraph,
    target: Target,
    backend: Backend,
    table: LatencyTable,
    work: Path,
    max_points: int,
    calibration_samples: int = CALIBRATION_SAMPLES,
    recalibrate: bool = False,
    seed: int = 0,
    progress: ProgressFn | None = None,
    timer: ArtifactTimer | None = None,
) -> tuple[LookupLatencyModel, int, int]:
    """Probe what the table lacks, then calibrate; returns (model, probes measured, probes reused)."""
    layers = extract_layers(model, example, graph.groups)
    grids = bounded_grids(layers, target.channel_alignment, max_points)
    todo = missing_probes(grids, table)
    total = len({(g.layer.signature.key(), c) for g in grids for c in g.probes()}) + 1  # + the empty probe
    log.info("latency table: %d kernel timings needed, %d to measure", total, len(todo))
    timer = timer or LocalTimer(backend, target)
    measure_probes(todo, backend, target, table, work, timer, progress)
    lookup = LookupLatencyModel(grids, table)
    key = structure_key(layers, list(example.shape))
    if key in table.calibrations and not recalibrate:
        lookup.calibration = table.calibrations[key]
    else:
        measurer = CandidateMeasurer(backend, target, example, work, timer)
        # every calibration sample is timed against the whole model in alternating rounds, its ms being the
        # ratio times the whole model's median over the calibration: a change of speed meanwhile moves neither
        measurer.set_reference(measurer.measure(model, "calibration-reference", CONFIRM_TIMING), absolute_budget=True)
        groups = graph.prunable_groups()
        samples = sample_widths(groups, target.channel_alignment, calibration_samples, seed)
        measured: list[float] = [0.0] * len(samples)
        devices: list[str | None] = [None] * len(samples)
        done = 0

        def export(widths: Mapping[str, int]) -> Artifact:
            keep = {g.name: list(range(widths[g.name])) for g in groups if widths[g.name] < g.width}
            return measurer.export(slim_copy(model, example, keep) if keep else model, "calibration")

        reference = measurer.reference
        profiler = InContextProfiler.for_run(model, example, layers, backend, target, timer, work, len(samples),
                                             reference.path if reference and is_onnx(reference.format) else None)
        in_context: list[dict[str, float] | None] = [None] * len(samples)

        def finish(index: int, widths: Mapping[str, int], artifact: Artifact, result: Measurement) -> None:
            nonlocal done
            measured[index], devices[index], done = result.stats.median_ms, result.device, done + 1
            if profiler is not None:
                in_context[index] = profiler.layer_times(artifact, result.stats.median_ms)
            if progress:
                progress(done, len(samples), "calibration")

        # on a pool of devices, several samples are timed at once, each paired on one device
        spread(samples, export, lambda artifact: measurer.time(artifact, SEARCH_TIMING), finish, workers_of(timer))
        lines = profiler.fit(lookup, samples, measured, in_context) if profiler is not None else {}
        lookup.calibration = fit_measured(lookup, samples, measured, devices, lines,
                                          profiler.source if profiler is not None else "")
        table.calibrations[key] = lookup.calibration
        table.save()
    return lookup, len(todo), total - len(todo)


def profile_model(config: ProfileConfig, progress: ProgressFn | None = None) -> tuple[LookupLatencyModel, ProfileSummary]:
    """Build the latency table and calibration of ``config.model`` on ``config.target``."""
    if config.calibration_samples < 2:
        raise InputError(f"--calibration-samples must be at least 2, got {config.calibration_samples}")
    start = time.perf_counter()
    target = load_target(config.target).with_precision(config.precision)
    check_int8_target(target)
    backend = get_backend(target)
    timer = make_timer(backend, target, config.device, config.device_token)
    bundle = build_architecture(config.model, config.num_classes)
    shape = config.input_shape or (bundle.preprocessing.input_shape if bundle.preprocessing else None) or target.input_shape
    if shape is None:
        raise InputError(f"model '{config.model}' does not say its input size; pass --input-shape C,H,W")
    model = bundle.model.eval()
    example = torch.full((1, *shape), 0.5)
    graph = ModelGraph(model, example, config.frozen_modules)
    if target.precision == "int8":  # whole sub-networks are timed quantized too; scales change values, not timing
        backend = int8_probe_backend(backend, tuple(example.shape))
    max_points = config.max_points or (6 if backend.facts.reads_onnx else 3)
    table = LatencyTable.open(table_context(backend, target, timer), config.table_dir or default_table_dir())
    work = Path(tempfile.mkdtemp(prefix="edgeprune-profile-"))
    try:
        lookup, measured, reused = build_lookup_model(
            model, example, graph, target, backend, table, work, max_points,
            config.calibration_samples, config.recalibrate, config.seed, progress, timer,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    calibration = lookup.calibration
    assert calibration is not None and table.path is not None
    sums: list[dict[str, float] | None] = list(calibration.kind_sums) or [None] * len(calibration.samples)
    errors = [abs(calibration.apply(x, k) - y) / y for (x, y), k in zip(calibration.samples, sums) if y > 0]
    summary = ProfileSummary(
        table_path=table.path,
        probes_measured=measured,
        probes_reused=reused,
        calibration=calibration,
        calibration_error_pct=100 * max(errors) if errors else 0.0,
        seconds=time.perf_counter() - start,
        device_shares=dict(getattr(timer, "shares", {})),
    )
    return lookup, summary
