"""Model-zoo conformance (issue 19): does edgeprune's structural path work on the models users bring?

    python tools/bench/zoo.py                      # every family, structural part, docs/zoo.md
    python tools/bench/zoo.py --resolution 64      # the CI test's setting
    python tools/bench/zoo.py --families ResNet ViT
    python tools/bench/zoo.py --fit --first-only      # the full fit per family: docs/zoo-fit.md
    python tools/bench/zoo.py --library timm --resolution 64   # timm's edge families: docs/zoo-timm.md

One or two members of every family of torchvision's classification models (or, with ``--library timm``, of
timm's families that run on edge devices), with random weights (nothing is fetched), at a stated resolution. For each model, the structural part of ``edgeprune fit``, without the latency
search:

1. the original exports to ONNX and runs in ONNX Runtime, with parity against PyTorch;
2. edgeprune's channel groups (Torch-Pruning's dependency graph plus edgeprune's checks), and the smallest and
   largest latency probe of every kernel the latency table would time, each run once in ONNX Runtime;
3. a uniform cut (every prunable group keeps ``--keep`` of its channels, the top L1-norm ones), channel surgery;
4. the slim model exports and runs in ONNX Runtime, with parity against the slim PyTorch model.

Each row is ``ok`` (with MAC reduction), ``refused`` (edgeprune raised its own error: one line naming what it
cannot handle) or ``failed`` (anything else: an internal error, an invalid artifact, a parity miss). The goal is
zero ``failed``. Measured speedups need the latency search and are not part of this structural run.

With ``--fit``, each model instead goes through the whole ``edgeprune fit`` command as a user types it (a child
process per model, with a timeout): ``--target cpu --budget 70%``, no fine-tuning, default importance, on
unlabelled images (the 20 ImageNet samples of ``../shared/data`` when present, else generated noise images).
Its rows (:mod:`zoo_fit`) give the exit code, the measured paired speedup, whether the budget was met, the MAC
reduction, the validated artifact's parity and the wall time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from provenance import provenance  # noqa: E402

from edgeprune.environment import machine_info, package_versions  # noqa: E402
from edgeprune.errors import EdgepruneError  # noqa: E402

log = logging.getLogger("zoo")

#: family -> members (torchvision names); the first member is the one the CI test runs
FAMILIES: dict[str, tuple[str, ...]] = {
    "ResNet": ("resnet18",),
    "ResNeXt": ("resnext50_32x4d",),
    "Wide-ResNet": ("wide_resnet50_2",),
    "RegNet X": ("regnet_x_400mf",),
    "RegNet Y": ("regnet_y_400mf",),
    "MobileNet V2": ("mobilenet_v2",),
    "MobileNet V3": ("mobilenet_v3_small", "mobilenet_v3_large"),
    "MNASNet": ("mnasnet0_5",),
    "EfficientNet V1": ("efficientnet_b0",),
    "EfficientNet V2": ("efficientnet_v2_s",),
    "ShuffleNet V2": ("shufflenet_v2_x0_5",),
    "SqueezeNet": ("squeezenet1_1",),
    "DenseNet": ("densenet121",),
    "GoogLeNet": ("googlenet",),
    "Inception V3": ("inception_v3",),
    "VGG": ("vgg11_bn",),
    "AlexNet": ("alexnet",),
    "ConvNeXt": ("convnext_tiny",),
    "ViT": ("vit_b_32",),
    "Swin": ("swin_t",),
    "MaxViT": ("maxvit_t",),
}
#: timm's families that run on edge devices (``--library timm``): full ``timm:`` specs, random weights, first member
#: the one the CI test runs
TIMM_FAMILIES: dict[str, tuple[str, ...]] = {
    "MobileNetV3 (timm)": ("timm:mobilenetv3_small_050", "timm:mobilenetv3_large_100"),
    "MobileNetV4": ("timm:mobilenetv4_conv_small",),
    "LCNet": ("timm:lcnet_050",),
    "EfficientNet-Lite": ("timm:efficientnet_lite0",),
    "GhostNet": ("timm:ghostnet_100",),
    "GhostNetV2": ("timm:ghostnetv2_100",),
    "RepGhostNet": ("timm:repghostnet_050",),
    "ReXNet": ("timm:rexnet_100",),
    "ConvNeXt (timm)": ("timm:convnext_atto",),
    "RegNet (timm)": ("timm:regnetx_002",),
    "ResNet (timm)": ("timm:resnet18",),
    "MobileOne": ("timm:mobileone_s0",),
    "FastViT": ("timm:fastvit_t8",),
    "EfficientViT (MIT)": ("timm:efficientvit_b0",),
    "MobileViT": ("timm:mobilevit_xxs",),
}
#: models whose architecture fixes the input size (positional embeddings, window partitions)
NATIVE_RESOLUTION = {"vit_b_32": 224, "vit_b_16": 224, "maxvit_t": 224}
#: the smallest input some models accept (pooling stacks)
MIN_RESOLUTION = {"inception_v3": 75, "alexnet": 64, "googlenet": 64}
PARITY_RTOL = 1e-3  # max |ORT - torch| over max |torch| of the logits


@dataclass
class Row:
    """One model's structural result."""

    family: str
    model: str
    resolution: int
    status: str = "failed"  # ok | refused | failed
    stage: str = ""  # where it stopped: build, export-original, groups, surgery, export-slim, parity
    detail: str = ""
    groups: int = 0
    prunable_groups: int = 0
    frozen_groups: int = 0
    macs_before: int = 0
    macs_after: int = 0
    parity_original: float | None = None
    parity_slim: float | None = None
    seconds: float = 0.0
    frozen_reasons: list[str] = field(default_factory=list)


def _ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def _parity(model: torch.nn.Module, path: Path, x: torch.Tensor) -> float:
    with torch.no_grad():
        expected = model(x)
    if not isinstance(expected, torch.Tensor):
        raise TypeError(f"the model returns {type(expected).__name__}, not one tensor")
    got = np.concatenate([_ort_outputs(path, x[i:i + 1].numpy()) for i in range(len(x))])  # exported for batch 1
    ref = expected.numpy()
    return float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))


def _l1_scores(model: torch.nn.Module, groups: list[Any]) -> dict[str, np.ndarray]:
    """edgeprune's ``l1`` criterion for each group (data-free: the structural check needs no images)."""
    from edgeprune.prune.importance import ScoringContext, get_importance

    l1, ctx = get_importance("l1"), ScoringContext(model)
    return {g.name: np.asarray(l1.score(g, ctx)) for g in groups}


def model_spec(name: str) -> str:
    """The ``--model`` spec of a zoo member: a torchvision name, or a full spec (``timm:ghostnet_100``)."""
    return name if ":" in name else f"torchvision:{name}"


def check_model(family: str, name: str, resolution: int, keep_ratio: float = 0.7, work: Path | None = None) -> Row:
    """The structural part of fit on ``name`` (:func:`model_spec`) at ``resolution`` px (see the module docstring)."""
    from edgeprune.models.zoo import build_architecture
    from edgeprune.prune.graph import ModelGraph, count_macs_and_params
    from edgeprune.prune.surgery import slim_copy
    from edgeprune.prune.trial import freeze_untrimmable
    from edgeprune.prune.uniform import uniform_keep
    from edgeprune.runtimes.onnx_export import export_onnx

    resolution = NATIVE_RESOLUTION.get(name, max(resolution, MIN_RESOLUTION.get(name, 0)))
    row = Row(family, name, resolution)
    start = time.perf_counter()
    stem = name.replace(":", "-")
    work = work or Path(tempfile.mkdtemp(prefix=f"zoo-{stem}-"))
    try:
        row.stage = "build"
        torch.manual_seed(0)
        model = build_architecture(model_spec(name), None).model.eval()
        x = torch.randn(2, 3, resolution, resolution)
        example = x[:1]
        row.stage = "export-original"
        original_path = export_onnx(model, example, work / f"{stem}.onnx")
        row.parity_original = _parity(model, original_path, x)
        if row.parity_original > PARITY_RTOL:
            raise AssertionError(f"original: ONNX Runtime differs from PyTorch by {row.parity_original:.2e}")
        row.stage = "groups"
        graph = ModelGraph(model, example, warn_frozen=False)
        freeze_untrimmable(model, example, graph)
        prunable = graph.prunable_groups()
        row.groups, row.prunable_groups = len(graph.groups), len(prunable)
        frozen = [g for g in graph.groups if not g.prunable]
        row.frozen_groups = len(frozen)
        row.frozen_reasons = sorted({g.frozen_reason.split("(")[0].strip() for g in frozen})[:5]
        row.macs_before = count_macs_and_params(model, example)[0]
        row.stage = "latency-probes"
        _run_probes(model, example, graph.groups)
        row.stage = "surgery"
        keep = uniform_keep(prunable, _l1_scores(model, prunable), keep_ratio)
        slim = slim_copy(model, example, keep)
        row.macs_after = count_macs_and_params(slim, example)[0]
        row.stage = "export-slim"
        slim_path = export_onnx(slim, example, work / f"{stem}-slim.onnx")
        row.stage = "parity"
        row.parity_slim = _parity(slim, slim_path, x)
        if row.parity_slim > PARITY_RTOL:
            raise AssertionError(f"slim: ONNX Runtime differs from PyTorch by {row.parity_slim:.2e}")
        row.status, row.stage = "ok", ""
    except EdgepruneError as exc:
        row.status, row.detail = "refused", str(exc).splitlines()[0][:300]
    except Exception as exc:  # the point of the suite: anything else is a failure to report, not to hide
        row.status, row.detail = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    row.seconds = time.perf_counter() - start
    log.info("%-20s %-8s %s %s (%.1f s)", name, row.status, row.stage, row.detail[:120], row.seconds)
    return row


def _run_probes(model: torch.nn.Module, example: torch.Tensor, groups: list[Any]) -> None:
    """Run, once each in ONNX Runtime, the smallest and largest latency probes of every kernel the latency
    table would time for this model (a probe the runtime rejects breaks the fit's profiling)."""
    import onnxruntime as ort

    from edgeprune.latency.layers import extract_layers
    from edgeprune.latency.probes import PROBE_INPUT, probe_input_shape, probe_onnx
    from edgeprune.latency.profiler import layer_grids

    grids = layer_grids(extract_layers(model, example, groups), alignment=8, max_points=2)
    probes = {(g.layer.signature.key(), cin, cout): g.layer.signature for g in grids for cin, cout in g.probes()}
    for (_, cin, cout), sig in probes.items():
        session = ort.InferenceSession(probe_onnx(sig, cin, cout).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        session.run(None, {PROBE_INPUT: np.zeros(probe_input_shape(sig, cin), dtype=np.float32)})


def _check_in_child(queue: Any, family: str, name: str, resolution: int) -> None:
    torch.set_num_threads(1)
    logging.getLogger("edgeprune").setLevel(logging.ERROR)
    queue.put(asdict(check_model(family, name, resolution)))


def check_model_with_timeout(family: str, name: str, resolution: int, timeout_s: float) -> Row:
    """:func:`check_model` in a child process; one that runs past ``timeout_s`` is a failure (stage ``timeout``)."""
    import multiprocessing as mp

    context = mp.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_check_in_child, args=(queue, family, name, resolution), daemon=True)
    start = time.perf_counter()
    child.start()
    try:
        return Row(**queue.get(timeout=timeout_s))
    except Exception:  # queue.Empty: the child hung or died
        row = Row(family, name, NATIVE_RESOLUTION.get(name, max(resolution, MIN_RESOLUTION.get(name, 0))))
        row.stage = "timeout" if child.is_alive() else "crash"
        row.detail = (f"the structural part did not finish in {timeout_s:.0f} s" if child.is_alive() else
                      f"the check process died (exit code {child.exitcode})")
        row.seconds = time.perf_counter() - start
        log.info("%-20s failed   %s (%.1f s)", name, row.detail, row.seconds)
        return row
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)


def render(rows: list[Row], command: str, wall_s: float) -> str:
    """docs/zoo.md from the rows."""
    env = machine_info()
    versions = package_versions()
    ok = [r for r in rows if r.status == "ok"]
    families = sorted({r.family for r in rows})
    families_ok = sorted({r.family for r in ok})
    library = "timm's edge models" if any(r.model.startswith("timm:") for r in rows) else "torchvision's classifiers"
    lines = [
        f"# Model zoo: the structural part of fit on {library}", "",
        f"`{command}` on {env.get('cpu', '?')}, {wall_s / 60:.1f} min; torch {versions.get('torch', '?')}, "
        f"torchvision {versions.get('torchvision', '?')}, timm {versions.get('timm', '?')}, "
        f"torch-pruning {versions.get('torch-pruning', '?')}, "
        f"onnxruntime {versions.get('onnxruntime', '?')}; commit {provenance().get('commit', '?')}.", "",
        "Random weights (nothing is fetched). Per model: the original exported to ONNX and run in ONNX Runtime "
        "(parity against PyTorch), edgeprune's channel groups, the smallest and largest latency probe of every kernel "
        "run once in ONNX Runtime, a uniform cut to 70% of every prunable group's "
        "channels, surgery, and the slim model exported and run (parity against the slim PyTorch model; a "
        f"relative difference over {PARITY_RTOL:g} fails). No latency search: measured speedups are not in this "
        "table. `refused` = edgeprune's own one-line error; `failed` = anything else.", "",
        f"**{len(families_ok)} of {len(families)} families pass the structural part; "
        f"{sum(r.status == 'refused' for r in rows)} refused, {sum(r.status == 'failed' for r in rows)} failed.**", "",
        "| family | model | px | status | groups (prunable / frozen) | MACs after / before | parity orig / slim | "
        "time | detail |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        macs = f"{r.macs_after / max(r.macs_before, 1):.2f}" if r.macs_after else "–"
        par = " / ".join("–" if v is None else f"{v:.0e}" for v in (r.parity_original, r.parity_slim))
        detail = (f"at {r.stage}: {r.detail}" if r.status != "ok" else
                  "frozen: " + "; ".join(r.frozen_reasons) if r.frozen_reasons else "")
        lines.append(f"| {r.family} | `{r.model}` | {r.resolution} | {r.status} | {r.groups} ({r.prunable_groups} / "
                     f"{r.frozen_groups}) | {macs} | {par} | {r.seconds:.0f} s | {detail.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the selected families and write docs/zoo.md (and the rows as JSON beside the figures)."""
    from edgeprune.io_atomic import write_json_atomic

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("edgeprune").setLevel(logging.ERROR)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--library", choices=("torchvision", "timm"), default="torchvision",
                   help="whose models: torchvision's classifiers (docs/zoo.md) or timm's edge families (docs/zoo-timm.md)")
    p.add_argument("--families", nargs="*", help="default: every family of --library")
    p.add_argument("--first-only", action="store_true", help="one member per family")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per model before it counts as failed")
    p.add_argument("--doc", type=Path, default=None, help="default docs/zoo.md (docs/zoo-fit.md with --fit)")
    p.add_argument("--json", type=Path, default=None, help="default docs/figures/zoo.json (zoo-fit.json)")
    p.add_argument("--fit", action="store_true", help="run the whole edgeprune fit per model (see zoo_fit)")
    p.add_argument("--budget", default="70%", help="with --fit: the budget (default 70%%)")
    p.add_argument("--data", type=Path, help="with --fit: image folder (default: ../shared ImageNet samples)")
    p.add_argument("--render-partial", action="store_true",
                   help="with --fit: write the table from the rows a stopped run saved, run nothing")
    args = p.parse_args(argv)
    families = TIMM_FAMILIES if args.library == "timm" else FAMILIES
    unknown = sorted(set(args.families or []) - set(families))
    if unknown:
        p.error(f"unknown {args.library} families: {', '.join(unknown)} (known: {', '.join(families)})")
    args.families = args.families or list(families)
    suffix = ("-timm" if args.library == "timm" else "") + ("-fit" if args.fit else "")
    args.doc = args.doc or REPO / "docs" / f"zoo{suffix}.md"
    args.json = args.json or REPO / "docs" / "figures" / f"zoo{suffix}.json"
    if args.fit:
        import zoo_fit

        zoo_fit.main(args, families, {n: NATIVE_RESOLUTION.get(n, max(args.resolution, MIN_RESOLUTION.get(n, 0)))
                                      for members in families.values() for n in members})
        return
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = [check_model_with_timeout(f, m, args.resolution, args.timeout) for f in args.families
            for m in (families[f][:1] if args.first_only else families[f])]
    wall = time.perf_counter() - start
    command = "python tools/bench/zoo.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    args.doc.write_text(render(rows, command, wall), encoding="utf-8")
    write_json_atomic(args.json, {"rows": [asdict(r) for r in rows], "wall_s": wall, "command": command,
                                  "environment": {**machine_info(), "versions": package_versions(),
                                                  "provenance": provenance()},
                                  "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    log.info("wrote %s and %s", args.doc, args.json)


if __name__ == "__main__":
    main()
