"""``edgeprune validate``: check a model file in its runtime (parity, accuracy, measured latency); exit 3 on failure."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.cli.common import console, float_list, fraction, positive_int
from edgeprune.errors import InputError, ValidationFailedError
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.target import load_target
from edgeprune.timing import TimingSpec

if TYPE_CHECKING:
    from edgeprune.validate.artifact_check import ValidationResult

log = logging.getLogger(__name__)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got '{text}'")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``validate`` verb."""
    p = sub.add_parser("validate", help="check an artifact in its runtime: parity, accuracy, measured latency",
                       description="Load ARTIFACT (.onnx, .xml, .tflite; edgeprune's or not) in its runtime with the "
                                   "target's threads and precision, compare it with a reference, score accuracy "
                                   "on labelled data and measure its latency. Exit 0 pass, 3 fail, 2 bad input.")
    p.add_argument("artifact", type=Path, help="model file: .onnx, .xml (with .bin beside it) or .tflite")
    p.add_argument("--target", help="target name or TOML file (default: the sidecar's, else the format's CPU target)")
    p.add_argument("--data", type=Path, help="ImageFolder directory or .npz (default: random inputs)")
    p.add_argument("--class-map", type=Path, metavar="FILE",
                   help="which class index each class folder of --data is: lines 'FOLDER INDEX' or a JSON object "
                        "(default: ImageNet WordNet ids and integers name the model's classes, other names are "
                        "classes 0..K-1 in sorted order; docs/guide/data.md)")
    p.add_argument("--reference", type=Path, metavar="MODEL_OR_ARTIFACT",
                   help="another artifact, or an edgeprune output folder / plan.json (slim PyTorch model)")
    p.add_argument("--min-accuracy", type=fraction, help="fail below this top-1 accuracy (fraction, needs labels)")
    p.add_argument("--images", type=positive_int, help="use a seeded subset of N images (or N random inputs)")
    p.add_argument("--mean", type=float_list, help="per-channel mean for --data (default: the sidecar's)")
    p.add_argument("--std", type=float_list, help="per-channel std for --data (default: the sidecar's)")
    p.add_argument("--timing-seconds", type=_seconds, default=1.0,
                   help="least time spent timing (default 1.0; 0 skips the latency measurement)")
    p.add_argument("--device", metavar="URL", help="measure the latency on the device through 'edgeprune agent' at URL "
                                                   "(parity and accuracy still run here)")
    p.add_argument("--device-token", help="the agent's token (default: $EDGEPRUNE_AGENT_TOKEN)")
    p.add_argument("--allow-factory", metavar="PKG.MOD:FN",
                   help="let a --reference folder whose plan names this model factory rebuild it (imports and runs it); "
                   "only for your own package.module:function, not torchvision:, timm: or ultralytics: models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(handler=run)


def _preprocessing(args: argparse.Namespace) -> Preprocessing | None:
    if args.mean is None and args.std is None:
        return None
    if args.mean is None or args.std is None or len(args.mean) != len(args.std) or len(args.mean) not in (1, 3):
        raise InputError("--mean and --std go together, with 1 or 3 values each")
    try:  # height and width come from the artifact; only the normalisation is used
        return Preprocessing(1, 1, len(args.mean), args.mean, args.std)
    except ValueError as exc:
        raise InputError(f"--mean/--std: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Validate, print the summary (or JSON), and exit 3 when a check failed."""
    from edgeprune.validate.artifact_check import validate_artifact
    from edgeprune.validate.runners import default_target

    target = load_target(args.target) if args.target else default_target(args.artifact)
    timing = TimingSpec(min_seconds=args.timing_seconds)
    device = None
    if args.device:
        from edgeprune.agent.client import AgentClient

        device = AgentClient(args.device, args.device_token)
    result = validate_artifact(args.artifact, target, data=args.data, reference=args.reference,
                               min_accuracy=args.min_accuracy, images=args.images, preprocessing=_preprocessing(args),
                               timing=timing, measure=args.timing_seconds > 0, seed=args.seed,
                               raise_on_failure=False, device=device, allow_factory=args.allow_factory,
                               class_map=args.class_map)
    labels = (result.accuracy or {}).get("label_check") or {}
    if labels.get("suspect"):  # top-1 at chance: the folder names probably do not number the model's classes
        log.warning("%s", labels["message"])
    if args.json:
        console.print_json(json.dumps(result.to_dict()))
    else:
        _print_summary(result)
    if not result.passed:
        raise ValidationFailedError(result.failure_message())
    return 0


def _print_summary(r: ValidationResult) -> None:
    rt = r.runtime
    status = "[bold green]PASS[/]" if r.passed else "[bold red]FAIL[/]"
    console.print(f"\n[bold]edgeprune validate[/] {r.artifact}  {status}", highlight=False)
    console.print(f"  runtime     {rt['name']} {rt['version']} on {rt['device']}, {rt['threads']} thread(s), "
                  f"{rt['precision']}  (target {rt['target']})", highlight=False)
    console.print(f"  input       {r.input['name']} {r.input['shape']} {r.input['layout']}"
                  f"{'  (sidecar verified)' if r.sidecar_verified else ''}", highlight=False)
    console.print(f"  data        {r.data['source']}, {r.data['images_count']} input(s)", highlight=False)
    if r.parity is not None:
        p = r.parity
        console.print(f"  reference   {r.reference}", highlight=False)
        agreement = (f"top-1 agreement {p['top1_agreement_fraction']:.2%}" if "top1_agreement_fraction" in p else
                     f"agreement {p['agreement_fraction']:.2%} ({p['agreement_metric']})")
        console.print(f"  parity      max |diff| {p['max_abs_diff_output_units']:.3g} "
                      f"(relative {p['max_abs_diff_relative']:.3g}), {agreement}", highlight=False)
    if r.accuracy is not None:
        a = r.accuracy
        scores = (f"top-1 {a['top1_accuracy_fraction']:.2%}" if "top1_accuracy_fraction" in a else
                  ", ".join(f"{k.removesuffix('_fraction')} {v:.2%}" for k, v in a.items()
                            if k.endswith("_fraction") and k != "min_accuracy_fraction" and v is not None))
        console.print(f"  accuracy    {scores}", highlight=False)
    if r.latency is not None:
        lat = r.latency
        where = f"measured on {lat['measured_on']}" if lat.get("measured_on") else "measured here"
        console.print(f"  latency     median {lat['median_ms']:.3f} ms, p90 {lat['p90_ms']:.3f} ms ({where}, "
                      f"{lat['runs_count']} runs{', noisy' if lat['noisy'] else ''})", highlight=False)
        pair = lat.get("paired_with_reference")
        if pair:
            console.print(f"  vs reference {pair['ratio']:.3f}x its latency [{pair['ratio_low']:.3f}, "
                          f"{pair['ratio_high']:.3f}] (timed in {pair['rounds']} alternating rounds, median of "
                          "per-round ratios, 90% interval)", highlight=False)
    for check in r.checks:
        mark = "[green]ok[/]" if check.passed else "[red]FAILED[/]"
        console.print(f"  check       {check.describe()}  {mark}", highlight=False)
