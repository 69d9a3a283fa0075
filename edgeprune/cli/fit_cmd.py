"""``edgeprune fit``: prune a model until its exported artifact meets a measured latency budget."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.cli.common import console, float_list, fraction, non_negative_int, positive_int, shape
from edgeprune.config import (
    DEFAULT_IMPORTANCE,
    DEFAULT_OUT_DIR,
    FINETUNE_SCHEDULES,
    IMPORTANCE_CRITERIA,
    SPARSITY_SCHEDULES,
    SPARSITY_SCOPES,
    FitConfig,
)

if TYPE_CHECKING:
    from edgeprune.report.fit_result import FitResult


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``fit`` verb."""
    p = sub.add_parser("fit", help="prune a model to meet a latency budget measured on a target",
                       usage="edgeprune fit [--model MODEL --weights FILE] [--data DATA] [--target TARGET] "
                             "--budget BUDGET [options]",
                       description="Prune MODEL until its exported artifact, measured on TARGET, meets BUDGET. "
                                   "The options come in groups below; docs/guide/options.md says more of each.")
    what = p.add_argument_group("what to fit", "the model, its data, where it runs and the budget")
    device = p.add_argument_group("measuring on the device", "through 'edgeprune agent' (docs/guide/devices.md)")
    output = p.add_argument_group("output")
    precision = p.add_argument_group("precision")
    search = p.add_argument_group("pruning and the latency search")
    data = p.add_argument_group("calibration and evaluation")
    recovery = p.add_argument_group("recovery: reconstruction and fine-tuning")
    sparsity = p.add_argument_group("weight sparsity and size budgets", "zeros in the weights: a smaller file once compressed (docs/guide/sparsity.md)")
    input = p.add_argument_group("model input", "built-in models carry their own; for your own factory")
    what.add_argument("--budget", help="latency budget with a unit (20ms, 1.5ms, 0.02s) or a share of the original's "
                   "latency measured on the target (60%%). Required unless --size-budget or --sparsity asks for a "
                   "size-only fit, which keeps every channel and reports the measured latency")
    what.add_argument("--model", default="demo",
                   help="demo | cifar-resnetN | torchvision:NAME (classifiers, segmentation models) | "
                   "timm:NAME (timm's classifiers, the [timm] extra) | "
                   "ultralytics:YAML (YOLO detectors, e.g. ultralytics:yolov8n.yaml) | package.module:factory "
                   "(default: demo)")
    what.add_argument("--weights", type=Path, help="weights file: state dict (.pt/.pth/.th) or .safetensors")
    what.add_argument("--data", type=Path, help="evaluation data: ImageFolder directory or .npz with x, y (a detector: a YOLO "
                   "folder or data.yaml; a segmenter: a folder with images/ and masks/)")
    recovery.add_argument("--train-data", type=Path, help="labelled data for --finetune-epochs (same forms as --data; "
                   "images without labels need --distill)")
    what.add_argument("--class-map", type=Path, metavar="FILE",
                   help="which class index each class folder of --data and --train-data is: lines 'FOLDER INDEX' "
                        "(or FOLDER,INDEX) or a JSON object {\"FOLDER\": INDEX}. Default: folders named by ImageNet "
                        "WordNet id (n01440764) or by class index (129) are the model's classes, other names are "
                        "classes 0..K-1 in sorted order (docs/guide/data.md)")
    what.add_argument("--config", type=Path, metavar="TOML",
                   help="read fit's options from a TOML file (keys are the long options: budget = \"20ms\", "
                        "finetune-epochs = 2 ...); flags on the command line override it")
    what.add_argument("--target", default="cpu", help="target name (see 'edgeprune targets') or TOML file")
    what.add_argument("--runtime", metavar="NAME",
                   help="the runtime to prune in and ship for: auto (export the unpruned model to every runtime the "
                        "target has, check each against PyTorch, time them against each other in alternating "
                        "rounds, keep the fastest; the default for targets listing several runtimes) or a name "
                        "(onnxruntime, openvino, litert, ncnn, executorch). Default: the target's own runtime")
    output.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help=f"output directory (default: {DEFAULT_OUT_DIR})")
    output.add_argument("--force", action="store_true", help="replace results already in --out")
    search.add_argument("--importance", default=DEFAULT_IMPORTANCE,
                   help=f"channel importance: {', '.join(IMPORTANCE_CRITERIA)} (default: {DEFAULT_IMPORTANCE}, "
                        "the one that kept the most accuracy in docs/benchmarks.md)")
    search.add_argument("--allocation", choices=("latency", "uniform"), default="latency",
                   help="latency: search per-group widths on the profiled latency table, then keep them or the "
                        "uniform cut measured within the same latency, whichever distorts the output less (default); "
                        "uniform: one keep ratio for all groups, bisected on measured latency")
    search.add_argument("--table-dir", type=Path, help="directory of latency tables (default: edgeprune's cache)")
    recovery.add_argument("--finetune-epochs", type=non_negative_int, default=0, help="recovery fine-tuning epochs")
    recovery.add_argument("--finetune-lr", type=float, default=0.01, help="peak fine-tuning learning rate (default 0.01)")
    recovery.add_argument("--finetune-schedule", choices=FINETUNE_SCHEDULES, default="rewind",
                   help="rewind: learning-rate rewinding (Renda et al. 2020; default); constant: classic fine-tuning")
    recovery.add_argument("--augment", default="none", metavar="LIST",
                   help="augment fine-tuning batches: none (default) or crop, flip, crop,flip "
                        "(random shift by up to 1/8 of the image; random left-right mirror)")
    recovery.add_argument("--train-device", default="auto", metavar="DEVICE",
                   help="where fine-tuning and PyTorch scoring run: auto (a CUDA GPU if PyTorch sees one, else the "
                        "CPU; default), cpu, cuda, cuda:N. Mixed precision on GPUs. Latency is measured on the target")
    recovery.add_argument("--train-nproc", type=positive_int, default=1, metavar="N",
                   help="fine-tune data-parallel on N processes here (launches torch.distributed.run; for several "
                        "machines run 'torchrun ... -m edgeprune fit' yourself)")
    recovery.add_argument("--data-workers", type=non_negative_int, default=2, metavar="N",
                   help="processes reading a training folder too large for memory (default 2)")
    recovery.add_argument("--in-memory-mb", type=positive_int, default=2048, metavar="MB",
                   help="read a training folder batch by batch from disk when its decoded images exceed this "
                        "(default 2048)")
    recovery.add_argument("--distill", action="store_true",
                   help="fine-tune with knowledge distillation from the original model (works without labels)")
    recovery.add_argument("--distill-features", action="store_true",
                   help="--distill, and also fit the pruned model's stage outputs to the original's (feature hints; "
                        "a channel-pruned stage is fitted to the original's kept channels); no measurable gain "
                        "over --distill on 10,000 test images (docs/benchmarks.md)")
    precision.add_argument("--qat-epochs", type=non_negative_int, default=0, metavar="N",
                   help="INT8 runs on ONNX Runtime and OpenVINO: fine-tune the final model quantization-aware for N "
                        "epochs (NNCF) and ship its INT8 artifact if it measures within the budget and is at least "
                        "as accurate as the post-training-quantized one (default 0: off)")
    search.add_argument("--prune-blocks", action="store_true",
                   help="remove whole residual blocks (least output distortion first) before pruning channels; "
                        "recovers best with --finetune-epochs and --distill")
    search.add_argument("--steps", type=positive_int, default=1,
                   help="prune in N steps towards the budget, recovering after each (default 1: one shot)")
    output.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out (same options) from its last finished step")
    data.add_argument("--calib-images", type=positive_int, default=256, help="calibration images (default 256)")
    precision.add_argument("--precision", choices=("fp32", "int8", "auto"),
                   help="precision of the shipped artifact (default: auto where latency is measured, here or through "
                        "--device; the target's own where it is predicted from a shipped profile). int8: every candidate is "
                        "quantized by the runtime's own quantizer (ONNX Runtime static QDQ, NNCF, ai-edge-quantizer; "
                        "calibrated on up to 128 calibration images) and measured as INT8 against the float "
                        "original. auto: the unpruned model is quantized and measured first; INT8 is kept when it "
                        "is at least 1.1x faster and agrees with the float model on 97%% of the evaluation images; "
                        "where it is faster but agrees less, the layers measured to matter most stay in float "
                        "(mixed precision, ONNX Runtime and OpenVINO)")
    precision.add_argument("--keep-float", type=_layer_list, default=(), metavar="LAYERS",
                   help="comma-separated layers (module paths, as the report's 'Precision per layer' names them) "
                        "left in float in INT8 artifacts (mixed precision); replaces auto's own choice")
    sparsity.add_argument("--sparsity", type=_sparsity, metavar="F",
                   help="weight pruning of the final model: set this share of its conv/linear weights to zero, the "
                        "smallest magnitudes first (torch.nn.utils.prune); gradually during --finetune-epochs, else "
                        "one shot. Zeros make the zipped artifact smaller, not faster. With --size-budget: the most "
                        "sparsity allowed")
    sparsity.add_argument("--sparsity-scope", choices=SPARSITY_SCOPES, default="global",
                   help="global: rank weights across all layers (like global_unstructured; default); layer: the same "
                        "share in every layer (like l1_unstructured)")
    sparsity.add_argument("--sparsity-schedule", choices=SPARSITY_SCHEDULES, default="polynomial",
                   help="polynomial: TF-MOT's PolynomialDecay from --sparsity-initial to --sparsity (default); "
                        "constant: the final sparsity from the begin step on")
    sparsity.add_argument("--sparsity-initial", type=_sparsity_initial, default=0.0, metavar="F",
                   help="the polynomial schedule's initial sparsity (default 0; TF-MOT's tutorial uses 0.5)")
    sparsity.add_argument("--sparsity-begin-step", type=non_negative_int, metavar="N",
                   help="optimiser step at which weight pruning begins (default 0)")
    sparsity.add_argument("--sparsity-end-step", type=positive_int, metavar="N",
                   help="optimiser step at which the final sparsity is reached (default: 3/4 of the fine-tune)")
    sparsity.add_argument("--sparsity-frequency", type=positive_int, metavar="N",
                   help="update the masks every N steps (default 100, as TF-MOT, or less to get 10 updates)")
    sparsity.add_argument("--size-budget", metavar="SIZE",
                   help="budget on the shipped artifact's size zipped (deflate): 2MB, 500kB (1000-based), 1.5MiB "
                        "(1024-based), or a share of the original artifact's zipped size (40%%); met by weight "
                        "pruning (the lowest sparsity that fits, at most --sparsity or 0.95)")
    data.add_argument("--calib-data", type=Path, help="images to calibrate on (default: --train-data, else a part of "
                                                   "--data held out from the accuracy)")
    recovery.add_argument("--bn-recalibrate", action=argparse.BooleanOptionalAction, default=None,
                   help="re-estimate batch-norm statistics after pruning (default: on unless --reconstruct)")
    recovery.add_argument("--reconstruct", action=argparse.BooleanOptionalAction, default=None,
                   help="refit layers consuming pruned channels by least squares (default: on for lasso)")
    data.add_argument("--eval-images", type=positive_int, help="evaluate on at most this many images")
    input.add_argument("--mean", type=float_list, help="input normalisation mean per channel, e.g. 0.485,0.456,0.406")
    input.add_argument("--std", type=float_list, help="input normalisation std per channel")
    input.add_argument("--input-shape", type=shape, help="input shape C,H,W (overrides the model's)")
    input.add_argument("--num-classes", type=positive_int, help="classifier outputs (a segmenter's classes) for spec-built "
                   "architectures")
    search.add_argument("--freeze", nargs="+", action="extend", default=[], metavar="MODULE",
                   help="module names never to prune (repeat the flag or list several)")
    search.add_argument("--max-rounds", type=positive_int, default=12, help="bound on the search's export-and-measure rounds per step (confirmations do not count)")
    search.add_argument("--search-headroom", type=float, default=0.05,
                   help="aim this fraction under the budget while searching (default 0.05)")
    search.add_argument("--seed", type=int, default=0, help="seed for every random choice")
    device.add_argument("--device", metavar="URL", help="measure on the device through 'edgeprune agent' at URL; "
                   "URL1,URL2,... or a TOML file of [[device]] url/token tables: a pool of identical devices "
                   "(profiling spread over all of them, each paired reading on one)")
    device.add_argument("--device-token", help="the agents' token (default: $EDGEPRUNE_AGENT_TOKEN)")
    output.add_argument("--export", metavar="FORMATS",
                   help="artifacts to ship, e.g. onnx,openvino,tflite (default: the target's format); each is "
                        "validated in its runtime")
    data.add_argument("--min-accuracy", type=fraction, metavar="FRACTION",
                   help="exit with code 3 if an artifact's accuracy on --data is below this (e.g. 0.9): top-1, a "
                   "detector's mAP50-95, a segmentation model's mIoU")
    data.add_argument("--min-agreement", type=fraction, metavar="FRACTION",
                   help="the accuracy guard: exit with code 3 (results kept) when the shipped model agrees with the "
                   "original on fewer than this share of the evaluation images (default 0.8 for classifiers and "
                   "segmenters, 0.5 for a detector's mAP50-95 against the original's boxes; 0 turns it off)")
    output.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> FitConfig:
    """The :class:`FitConfig` that ``fit``'s parsed flags describe."""
    return FitConfig(
        budget=args.budget, model=args.model, weights=args.weights, data=args.data, train_data=args.train_data,
        class_map=args.class_map,
        target=args.target, out=args.out, force=args.force, importance=args.importance,
        allocation=args.allocation, table_dir=args.table_dir,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr,
        finetune_schedule=args.finetune_schedule, finetune_augment=args.augment, train_device=args.train_device,
        train_nproc=args.train_nproc, data_workers=args.data_workers, in_memory_mb=args.in_memory_mb,
        distill=args.distill,
        distill_features=args.distill_features, qat_epochs=args.qat_epochs,
        prune_blocks=args.prune_blocks,
        steps=args.steps, resume=args.resume,
        export=args.export, min_accuracy=args.min_accuracy, min_agreement=args.min_agreement,
        calib_images=args.calib_images, calib_data=args.calib_data, bn_recalibrate=args.bn_recalibrate, reconstruct=args.reconstruct,
        eval_images=args.eval_images, mean=args.mean, std=args.std, input_shape=args.input_shape,
        num_classes=args.num_classes, max_rounds=args.max_rounds, search_headroom=args.search_headroom,
        device=args.device, device_token=args.device_token, seed=args.seed, frozen_modules=tuple(args.freeze),
        precision=args.precision, keep_float=args.keep_float, runtime=args.runtime,
        sparsity=args.sparsity, sparsity_scope=args.sparsity_scope, sparsity_schedule=args.sparsity_schedule,
        sparsity_initial=args.sparsity_initial, sparsity_begin_step=args.sparsity_begin_step,
        sparsity_end_step=args.sparsity_end_step, sparsity_frequency=args.sparsity_frequency,
        size_budget=args.size_budget,
    )


def run(args: argparse.Namespace) -> int:
    """Build a FitConfig from the flags, run fit, print the summary."""
    config = config_from_args(args)
    if config.train_nproc > 1:
        from edgeprune.fit.data_parallel import launch

        return launch(config.train_nproc)
    from edgeprune.fit.pipeline import fit

    result = fit(config)
    if result is None:  # a rank other than 0 of a data-parallel run: it fine-tuned, rank 0 reports
        return 0
    if args.json:
        console.print_json(json.dumps(result.report))
    else:
        print_summary(result)
    return 0


def _pct(value: float | None) -> str:
    return "n/a (no labels)" if value is None else f"{100 * value:.2f}%"


def print_summary(result: FitResult) -> None:
    """The demo's promise: baseline, budget, final latency, accuracy before/after, files."""
    r = result.report
    t = r["target"]
    console.print(f"\n[bold]edgeprune fit[/] {r['model']['spec']} → target [bold]{t['name']}[/] "
                  f"({t['runtime']}, {t['threads']} thread(s), {t['precision']})")
    where = {"measured-agent": "measured on the device through the agent",
             "predicted-profile": "PREDICTED from the shipped profile, not measured"}.get(
        r["final"]["latency"]["source"], "measured on the target")
    console.print(f"  baseline latency  {result.baseline_latency_ms:8.3f} ms   {where} (median)")
    if math.isfinite(result.budget_ms):
        console.print(f"  budget            {result.budget_ms:8.3f} ms")
    else:
        console.print("  budget            none on latency (a size-only fit: measured and reported, not judged)")
    speedup = r.get("speedup_measured", r.get("speedup_predicted", float("nan")))
    interval = r.get("speedup_interval")
    paired = f" (paired with the original: {interval[0]:.2f}–{interval[1]:.2f}x)" if interval else ""
    budgeted = math.isfinite(result.budget_ms)
    console.print(f"  final latency     {result.final_latency_ms:8.3f} ms   {where} (median), "
                  + (f"{speedup:.2f}x faster{paired}, [green]budget met[/]"
                     + (" as it is: the original already met it, nothing changed" if r.get("budget_met_by_original")
                        else "") if budgeted else
                     f"{speedup:.2f}x the original's speed{paired}")
                  + ("" if r["final"]["latency"]["measured"] else " [yellow](by prediction)[/]"), highlight=False)
    drift = r.get("measurement") or {}
    if drift.get("drift_detected"):
        console.print(f"  [yellow]machine speed changed[/] during the run: the original's median moved by "
                      f"{100 * drift['max_change']:+.0f}% (at {drift['max_change_at_s']:.0f} s); the verdict and the "
                      f"speedup are paired ratios and hold, figures in ms are on {drift['anchor']}", highlight=False)
    left_out = float(drift.get("disturbed_share_max") or 0.0)
    if left_out >= 0.05:  # a busy CPU: say that its preempted runs were not counted
        console.print(f"  [yellow]busy CPU[/]: up to {left_out:.0%} of a measurement's timed runs waited for a CPU and "
                      "were left out of the medians (they favour the shorter model)", highlight=False)
    choice = r.get("runtime_choice") or {}
    if choice:  # --runtime auto: which runtime, and from what
        console.print(f"  runtime           {choice['runtime']}: {choice['reason']}", highlight=False)
        tried = [f"{t['title']} {t['precision']} {t['ratio']:.2f}" for t in choice.get("trials") or []
                 if t.get("ratio") is not None]
        if tried:
            console.print(f"                    latency ratios against {choice['reference']}: {', '.join(tried)}",
                          highlight=False)
    widths = (r.get("method") or {}).get("uniform_guard") or {}
    if widths.get("uniform"):  # the search's candidate against the uniform cut at the same latency
        names = {"uniform": "one keep ratio for every group", "latency_search": "the latency search's widths"}
        console.print(f"  widths            {names[widths['chosen']]} ({widths['reason']}); output distortion: "
                      f"latency search {widths['latency_search']['distortion']:.3g}, uniform cut "
                      f"{widths['uniform']['distortion']:.3g}, both measured within {widths['ceiling_ms']:.3f} ms",
                      highlight=False)
    metric = "accuracy" if result.metric_name == "top-1" else result.metric_name
    console.print(f"  {metric:17s} {_pct(result.accuracy_before)} → {_pct(result.accuracy_after)}   "
                  f"({r['evaluation']['images']} images, run in {t['runtime']})")
    if r["evaluation"].get("note"):
        console.print(f"                    {r['evaluation']['note']}", highlight=False)
    if (r.get("label_check") or {}).get("suspect"):  # the original at chance: the labels, not the pruning
        console.print("                    [yellow]the original scores no better than chance[/]: the labels probably "
                      "do not number the model's classes (see the warning above; docs/guide/data.md)", highlight=False)
    guard = r.get("accuracy_guard") or {}
    if guard:  # the task says what its agreement is (a classifier's answers kept, a detector's box mAP)
        reads = guard.get("reads") or "of the original's answers kept"  # a report written before "reads"
        console.print(f"  agreement         {100 * guard['agreement']:.1f}% {reads} "
                      f"({r['evaluation']['images']} images; the floor, {100 * guard['floor']:.0f}%, is "
                      f"{guard['floor_source']})", highlight=False)
    calibration = r.get("calibration") or {}
    if calibration.get("images") is not None:
        images, source = calibration["images"], str(calibration.get("source") or "")  # "N images of <where>"
        text = source if source.startswith(f"{images} images") else \
            f"{images} images" + (f" ({source})" if source else "")
        console.print(f"  calibration       {text}", highlight=False)
    console.print(f"  MACs              {r['baseline']['macs']:,} → {r['final']['macs']:,}")
    size = r.get("size") or {}
    if size.get("shipped"):
        sparsity = r.get("sparsity") or {}
        zeros = f", {100 * sparsity['sparsity']:.1f}% of the weights zero" if sparsity.get("applied") else ""
        budget = "" if size.get("size_budget_bytes") is None else \
            f" (budget {size['size_budget_bytes']:,}: [green]met[/])" if size.get("size_budget_met") else \
            f" (budget {size['size_budget_bytes']:,}: [red]over[/])"
        console.print(f"  size zipped       {size['original']['zip_bytes']:,} → {size['shipped']['zip_bytes']:,} bytes"
                      f"{budget}{zeros}; on disk {size['original']['raw_bytes']:,} → {size['shipped']['raw_bytes']:,}",
                      highlight=False)
    if r.get("artifacts"):
        qat = ((r.get("method") or {}).get("qat") or {}).get("shipped") == "qat"
        console.print("  validated in each runtime (vs the " + ("quantization-aware PyTorch model; other formats vs its "
                      "float form):" if qat else "pruned PyTorch model):"))
        for v in r["artifacts"]:
            latency = f"{v['median_ms']:.3f} ms here" if v.get("median_ms") is not None else "not timed here"
            share = v.get("agreement") if "agreement" in v else v.get("top1_agreement")  # a detector's: mAP
            agreement = "n/a" if share is None else f"{100 * share:.1f}%"
            which = "top-1 agreement" if "agreement" not in v else "agreement"
            diff = "n/a" if v.get("max_abs_diff") is None else f"{v['max_abs_diff']:.1e}"
            console.print(f"    {v['file']:18s} {v['runtime']:12s} max|diff| {diff}  {which} {agreement}  "
                          f"{latency}  " + ("[green]passed[/]" if v["passed"] else "[red]FAILED[/]"), highlight=False)
    for entry in r.get("options_not_used") or []:  # given, but the run's course made them moot: said, not hidden
        console.print(f"  [yellow]not used[/]          {entry['option']}: {entry['reason']}", highlight=False)
    console.print("  files:")
    for name, path in r["files"].items():
        console.print(f"    {name:18s} {path}", highlight=False)
    original = next((path for name, path in r["files"].items() if name.startswith("original.")
                     and not name.endswith(".bin")), None)
    if original is not None:  # the original as the fit measured it, to time against the shipped file
        console.print(f"  compare: edgeprune bench {original} {r['artifact']['file']} --target {t['name']}",
                      highlight=False)


def _sparsity(text: str) -> float:
    """``--sparsity``: a fraction in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.8, got '{text}'") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1), e.g. 0.8 for 80%, got {text}")
    return value


def _sparsity_initial(text: str) -> float:
    """``--sparsity-initial``: a fraction in [0, 1)."""
    return 0.0 if text.strip() in ("0", "0.0") else _sparsity(text)


def _layer_list(text: str) -> tuple[str, ...]:
    """``--keep-float``'s comma-separated layer names."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated layer names, e.g. features.0.1,classifier.1")
    return names
