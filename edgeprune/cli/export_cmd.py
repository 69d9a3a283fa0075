"""``edgeprune export``: rebuild a slim model from its plan and write ONNX / OpenVINO / TFLite artifacts with sidecars."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from edgeprune.cli.common import console
from edgeprune.errors import InputError
from edgeprune.target import load_target


def _formats(text: str) -> str:
    """Check ``--export`` while parsing, so that an unknown format is reported before anything is loaded."""
    from edgeprune.export.formats import parse_formats

    try:
        parse_formats(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``export`` verb."""
    p = sub.add_parser("export", help="export a pruned model to ONNX, OpenVINO IR and/or TFLite, with sidecars",
                       description="Rebuild the slim model from an edgeprune output folder (or its plan.json) and "
                                   "write one artifact per format, each with a JSON sidecar (versions, target, "
                                   "input spec, plan hash, checksums).")
    p.add_argument("--from", dest="source", type=Path, required=True, metavar="OUT_DIR|plan.json",
                   help="edgeprune output folder, or its plan.json")
    p.add_argument("--weights", type=Path, help="slim weights (.safetensors; default: the folder's model.safetensors)")
    p.add_argument("--export", dest="formats", default="onnx", type=_formats, metavar="FORMATS",
                   help="comma-separated formats: onnx, openvino, tflite (default onnx)")
    p.add_argument("--nhwc", action="store_true", help="give the artifacts channels-last (N, H, W, C) input")
    p.add_argument("--target", default="cpu", help="target name or TOML file (threads/precision recorded)")
    p.add_argument("--precision", choices=("fp32", "int8"),
                   help="default: the target's. int8: quantize the ONNX artifact with ONNX Runtime's static QDQ "
                        "quantizer, calibrated on --data (formats of other runtimes stay fp32)")
    p.add_argument("--data", type=Path, help="calibration images for --precision int8 (ImageFolder or .npz)")
    p.add_argument("--calib-images", type=int, default=128, help="calibration images used (default 128)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace existing artifacts in --out")
    p.add_argument("--allow-factory", metavar="PKG.MOD:FN",
                   help="let a plan that names this model factory rebuild the model (it imports and runs it); "
                   "only for your own package.module:function, not torchvision:, timm: or ultralytics: models")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export and list the files written."""
    from edgeprune.export.slim_source import export_from_source

    target = load_target(args.target).with_precision(args.precision)
    exported = export_from_source(args.source, args.formats, args.out, target=target, weights=args.weights,
                                  nhwc=args.nhwc, force=args.force, allow_factory=args.allow_factory,
                                  calibration_data=args.data, calibration_images=args.calib_images)
    table = Table(title=f"edgeprune export → {args.out}")
    for column in ("format", "runtime", "input", "files"):
        table.add_column(column)
    for item in exported:
        s = item.sidecar
        table.add_row(item.format, f"{s.runtime} {s.runtime_version}", f"{s.input.layout} {list(s.input.shape)}",
                      ", ".join(item.file_names))
    console.print(table)
    return 0
