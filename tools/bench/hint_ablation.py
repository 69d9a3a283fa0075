"""Feature hints on a channel-pruned model: one architecture, fine-tuned with and without the hints.

    python tools/bench/hint_ablation.py                 # two fits, one per core, about 36 min
    python tools/bench/hint_ablation.py --render-only   # the docs section from the saved results

The recipe probes measured the hints (``fit --distill-features``) on a depth-pruned resnet56, whose stage outputs
keep every channel. Channel pruning thins the residual stream, so there each stage's output is fitted to the
original's kept channels only. Whether that helps cannot be read off the two ``lasso`` pruning cells: on the
measured ``cpu`` target each fit's closed loop lands on its own widths (the hinted cell kept 47.8% of the
channels, the other 52.2%), so they differ in architecture as well as in recipe.

Here both arms run ``edgeprune fit --importance lasso`` on the ``rpi4`` target, whose latencies come from the
shipped profile: the search is deterministic, so both prune to the same plan (the script checks that their
``plan.json`` files are identical and stops otherwise). The latencies are predicted, not measured, and play no
part in the comparison; it is about the fine-tune only: the fit recipe (four distillation epochs over the 50,000
JPEG-decoded training images, seed 0), with ``--distill`` in one arm and ``--distill-features`` in the other.
Each arm's exported model is evaluated in LiteRT on the lossless test subset and on the JPEG test set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from provenance import provenance  # noqa: E402
from pruning_cells import DATA, WEIGHTS  # noqa: E402
from pruning_data import default_cache_dir, evaluate_onnx, prepare_train_npz  # noqa: E402
from pruning_report import _pct, sampling_error_points, write_section  # noqa: E402

from edgeprune.environment import machine_info, package_versions  # noqa: E402
from edgeprune.io_atomic import write_json_atomic  # noqa: E402
from edgeprune.runtimes import get_backend  # noqa: E402
from edgeprune.runtimes.base import Artifact  # noqa: E402
from edgeprune.target import load_target  # noqa: E402
from edgeprune.train.default_weights import load_model  # noqa: E402

log = logging.getLogger("hint_ablation")

BEGIN, END = "<!-- hint-ablation:begin -->", "<!-- hint-ablation:end -->"
HEADING = "## Feature hints on a channel-pruned model"
#: arm name → the fit option that selects its distillation loss
ARMS = {"distill": "--distill", "distill-features": "--distill-features"}
TARGET, BUDGET, EPOCHS, SEED = "rpi4", "45%", 4, 0


def fit_command(arm: str, out: Path, train_npz: Path) -> list[str]:
    """The ``edgeprune fit`` command line of one arm."""
    return [sys.executable, "-m", "edgeprune", "fit", "--model", "cifar-resnet56",
            "--weights", str(WEIGHTS / "resnet56-4bfd9763.th"),
            "--data", str(DATA / "cifar10_test_lossless_first1017.npz"),
            "--train-data", str(train_npz), "--target", TARGET, "--budget", BUDGET, "--precision", "fp32", "--importance", "lasso",
            "--finetune-epochs", str(EPOCHS), ARMS[arm], "--seed", str(SEED), "--out", str(out), "--force",
            "--min-agreement", "0"]  # the benchmark measures accuracy itself: no accuracy guard


def run_arms(work: Path, train_npz: Path) -> None:
    """Both fits at once, each pinned to its own core where the platform allows it."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    procs = []
    for index, arm in enumerate(ARMS):
        pin = {cores[index % len(cores)]} if cores else None
        command = fit_command(arm, work / arm, train_npz)
        log.info("arm %s: %s", arm, " ".join(command))
        with (work / f"{arm}.log").open("w", encoding="utf-8") as log_file:  # the child keeps its own handle
            procs.append((arm, subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=(lambda pin=pin: os.sched_setaffinity(0, pin)) if pin else None)))
    for arm, proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"arm {arm} failed (exit {proc.returncode}); see {work / arm}.log")


def evaluate_arm(out: Path) -> dict[str, Any]:
    """One arm's fit report figures (lossless top-1 included) and its exported model's JPEG top-1, in the target
    runtime."""
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    art = report["artifact"]
    artifact = Artifact(Path(art["file"]), art["format"], art["input_name"], tuple(art["input_shape"]))
    target = load_target(TARGET)
    backend = get_backend(target)
    prep = load_model("cifar-resnet56", WEIGHTS / "resnet56-4bfd9763.th").preprocessing
    assert prep is not None
    top1_jpeg, n_jpeg = evaluate_onnx(backend, artifact, target, DATA / "cifar10_test_jpeg.npz", prep)
    # fit already evaluated the exported model on the lossless subset (its --data), in the same runtime
    return {"top1_lossless": report["final"]["top1"], "lossless_images": report["evaluation"]["images"],
            "top1_jpeg": top1_jpeg,
            "jpeg_images": n_jpeg, "macs": report["final"]["macs"], "finetune": report["finetune"]}


def render(results: dict[str, Any]) -> str:
    """The docs section (with its markers) from the saved results."""
    arms = results["arms"]
    rows = [f"| `--{arm}` | {_pct(r['top1_lossless'])} | {_pct(r['top1_jpeg'])} | {r['macs'] / 1e6:.1f} M | "
            f"{r['finetune']['seconds'] / 60:.1f} min |" for arm, r in arms.items()]
    base, hints = arms["distill"], arms["distill-features"]
    lossless_se = sampling_error_points(base["top1_lossless"], base["lossless_images"])
    jpeg_se = sampling_error_points(base["top1_jpeg"], base["jpeg_images"])
    hinted = hints["finetune"]["feature_hints"]
    indexed = hinted.get("matched_by_kept_channels") or []
    return "\n".join([
        BEGIN, "",
        f"cifar-resnet56, `edgeprune fit --importance lasso --target {results['target']} --budget {results['budget']} "
        f"--finetune-epochs {results['epochs']} --seed {results['seed']}` with `--distill` or `--distill-features`; "
        "training images: the 50,000 JPEG-decoded CIFAR-10 training images. Both arms pruned to the same plan "
        f"(identical `plan.json`, {base['macs'] / 1e6:.1f} M MACs); hints at weight {hinted['weight']:g} on "
        f"{', '.join(hinted['stages'])}, of which {', '.join(indexed) or 'none'} matched through the kept channels "
        "(their outputs were channel-pruned). The target's "
        "latencies are predicted from its shipped profile and play no part here. Top-1 of each exported model in "
        f"LiteRT. Reproduce: `python tools/bench/hint_ablation.py` (two fits, one per core), then `--render-only`.", "",
        "| fine-tune loss | top-1 lossless | top-1 JPEG | MACs | fine-tune time |", "|---|---|---|---|---|", *rows, "",
        f"Hints minus no hints: {100 * (hints['top1_lossless'] - base['top1_lossless']):+.2f} points lossless "
        f"(one sampling error ±{lossless_se:.2f}), {100 * (hints['top1_jpeg'] - base['top1_jpeg']):+.2f} points on "
        f"the JPEG test set (±{jpeg_se:.2f}).", "", END])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=default_cache_dir() / "hint-ablation", help="the arms' fit outputs")
    p.add_argument("--evaluate-only", action="store_true", help="evaluate the arms already in --work")
    p.add_argument("--render-only", action="store_true", help="render docs from the saved results")
    p.add_argument("--results", type=Path, default=REPO / "docs" / "figures" / "hint-ablation" / "results.json")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.render_only:
        if not args.evaluate_only:
            args.work.mkdir(parents=True, exist_ok=True)
            train_npz = prepare_train_npz(DATA / "cifar10_train_jpegbytes.npz", 50_000, SEED, default_cache_dir())
            run_arms(args.work, train_npz)
        plans = {arm: (args.work / arm / "plan.json").read_bytes() for arm in ARMS}
        if len(set(plans.values())) != 1:
            raise SystemExit("the arms pruned to different plans: their comparison would not isolate the hints")
        results = {"target": TARGET, "budget": BUDGET, "epochs": EPOCHS, "seed": SEED,
                   "arms": {arm: evaluate_arm(args.work / arm) for arm in ARMS},
                   "environment": {**machine_info(), "versions": package_versions()}, "provenance": provenance(),
                   "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        args.results.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.results, results)
        log.info("wrote %s", args.results)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    write_section(args.doc, render(results), BEGIN, END, HEADING)
    log.info("wrote %s", args.doc)


if __name__ == "__main__":
    main()
