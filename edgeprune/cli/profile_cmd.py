"""``edgeprune profile``: measure a model's kernels on a target and write its latency table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgeprune.cli.common import console, err_console, float_list, positive_int, shape
from edgeprune.config import CALIBRATION_SAMPLES
from edgeprune.target import load_target

if TYPE_CHECKING:
    from edgeprune.latency.profile_model import ProfileConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``profile`` verb."""
    p = sub.add_parser("profile", help="build the latency table of a model on a target",
                       description="Time every kernel of MODEL on TARGET across the widths pruning can produce, "
                                   "and calibrate on whole sub-networks; the table is reused by later runs.")
    p.add_argument("--model", default="demo", help="model spec (weights do not change latency)")
    p.add_argument("--weights", type=Path, help="accepted as in 'fit' and checked against the model; latency does "
                                                 "not depend on them")
    p.add_argument("--mean", type=float_list, help="accepted as in 'fit' (normalisation does not change latency)")
    p.add_argument("--std", type=float_list, help="accepted as in 'fit' (normalisation does not change latency)")
    p.add_argument("--target", default="cpu", help="target name or TOML file")
    p.add_argument("--input-shape", type=shape, help="input shape C,H,W (overrides the model's)")
    p.add_argument("--num-classes", type=positive_int, help="classifier outputs for spec-built architectures")
    p.add_argument("--table-dir", type=Path, help="directory of latency tables (default: edgeprune's cache)")
    p.add_argument("--max-points", type=positive_int, help="most widths probed per layer side")
    p.add_argument("--calibration-samples", type=positive_int, default=CALIBRATION_SAMPLES,
                   help=f"sub-networks measured end to end for calibration (default {CALIBRATION_SAMPLES})")
    p.add_argument("--recalibrate", action="store_true", help="measure the calibration again")
    p.add_argument("--precision", choices=("fp32", "int8"),
                   help="int8: probe quantized kernels (each quantized by the runtime's own quantizer) into the "
                        "INT8 table that 'fit --precision int8' reads (default: the target's precision)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", metavar="URL", help="time the probes on the device through 'edgeprune agent' at URL; "
                   "URL1,URL2,... or a TOML file of [[device]] url/token tables: a pool of identical devices, "
                   "probes and calibration timed on all of them at once")
    p.add_argument("--device-token", help="the agents' token (default: $EDGEPRUNE_AGENT_TOKEN)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Profile with a progress bar and print where the table went."""
    from edgeprune.latency.profile_model import ProfileConfig, profile_model

    config = ProfileConfig(model=args.model, target=args.target, input_shape=args.input_shape,
                           num_classes=args.num_classes, table_dir=args.table_dir, max_points=args.max_points,
                           calibration_samples=args.calibration_samples, recalibrate=args.recalibrate,
                           seed=args.seed, device=args.device, device_token=args.device_token,
                           precision=args.precision)
    check_inputs(config)
    if args.weights is not None:  # a wrong file is one line now, not after the profile
        from edgeprune.models.weights import load_weights
        from edgeprune.models.zoo import build_architecture

        load_weights(build_architecture(config.model, config.num_classes).model, args.weights)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(done: int, total: int, what: str) -> None:
            label = "calibrating on sub-networks" if what == "calibration" else "timing kernel probes"
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        _, summary = profile_model(config, progress)
    c = summary.calibration
    console.print(f"latency table: [bold]{summary.table_path}[/]", highlight=False)
    console.print(f"  kernel timings measured {summary.probes_measured}, reused {summary.probes_reused}")
    if c.kind_scales:
        terms = " + ".join(f"{v:.3f} × Σ {k}" for k, v in sorted(c.kind_scales.items()))
        line = f"measured ≈ {terms} + {c.kind_offset_ms:.3f} ms (a scale per kernel kind)"
    else:
        line = f"measured ≈ {c.scale:.3f} × Σ kernels + {c.offset_ms:.3f} ms"
    console.print(f"  calibration: {line} "
                  f"(worst error on its {len(c.samples)} samples: {summary.calibration_error_pct:.1f}%)")
    if c.in_context:
        console.print(f"  in-context layer times: {len(c.in_context)} kernel signature(s) from the "
                      f"{c.in_context_source}, in place of their lone-kernel timings", highlight=False)
    elif c.in_context_source:
        console.print(f"  in-context layer times: not used, the lone-kernel timings predict better ({c.in_context_source})",
                      highlight=False)
    if summary.device_shares:
        console.print("  measurements per device: " + ", ".join(f"{url} {n}" for url, n in summary.device_shares.items()),
                      highlight=False)
    console.print(f"  took {summary.seconds:.1f} s")
    return 0


def check_inputs(config: ProfileConfig) -> None:
    """Refuse, before any probe is timed, a target whose runtime is missing and an input shape the model
    cannot take (either would otherwise surface deep inside the profiler)."""
    load_target(config.target).require_runtime()
    if config.input_shape is not None:
        from edgeprune.fit.inputs import check_forward
        from edgeprune.models.zoo import build_architecture

        bundle = build_architecture(config.model, config.num_classes)
        check_forward(bundle.model.eval(), config.model, tuple(config.input_shape))
