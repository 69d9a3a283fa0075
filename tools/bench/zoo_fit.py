"""The zoo's full-fit rows (``python tools/bench/zoo.py --fit``): ``edgeprune fit`` on every family, as a user runs it.

Each model runs the real command in its own process, with a timeout:

    edgeprune fit --model torchvision:NAME --input-shape 3,R,R --data IMAGES --target cpu --budget 70% --out DIR

with random weights (nothing is fetched), no fine-tuning and the default importance. The row reads the exit code
and ``report.json``: ``shipped`` (exit 0: the artifact's paired latency met the budget and it passed validation in
ONNX Runtime), ``budget`` (exit 2 with the budget message: nothing edgeprune may build met it), ``refused``
(another exit 2: edgeprune's own one-line refusal), ``failed`` (exit 1 internal error, exit 3 validation failure,
a timeout). Speedups are the paired ratios fit reports (timed interleaved with the original in the same run).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
SAMPLES = Path(os.environ.get("EDGEPRUNE_SHARED_DATA", REPO.parent / "shared" / "data")) / "samples" / "imagenet_foolbox"

log = logging.getLogger("zoo")


@dataclass
class FitRow:
    """One model's full fit."""

    family: str
    model: str
    resolution: int
    status: str = "failed"  # shipped | budget | refused | failed
    exit_code: int | None = None
    detail: str = ""
    baseline_ms: float | None = None
    final_ms: float | None = None
    speedup: float | None = None
    speedup_low: float | None = None
    speedup_high: float | None = None
    budget_ms: float | None = None
    mac_reduction: float | None = None
    parity_relative: float | None = None
    groups_prunable: int = 0
    groups_frozen: int = 0
    seconds: float = 0.0
    stage_seconds: dict | None = None
    commit: str | None = None  # the code the row ran on, where a table merges rows of several runs


def noise_images(folder: Path, count: int = 16, size: int = 160) -> Path:
    """``count`` random RGB images in ``folder`` (unlabelled), when no real images are at hand."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"noise_{i:02d}.png")
    return folder


def fit_model(family: str, name: str, resolution: int, budget: str, data: Path, timeout_s: float,
              work: Path) -> FitRow:
    """Run ``edgeprune fit`` on ``name`` (``torchvision:name``, or a full spec such as ``timm:ghostnet_100``) and
    read its outcome."""
    row = FitRow(family, name, resolution)
    out = work / name.replace(":", "-")
    spec = name if ":" in name else f"torchvision:{name}"
    command = [str(Path(sys.executable).with_name("edgeprune")), "-q", "fit", "--model", spec,
               "--input-shape", f"3,{resolution},{resolution}", "--data", str(data), "--target", "cpu",
               "--budget", budget, "--precision", "fp32", "--out", str(out), "--force",
               "--min-agreement", "0"]  # the benchmark measures accuracy itself: no accuracy guard
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "COLUMNS": "400"})
    except subprocess.TimeoutExpired:
        row.seconds = time.perf_counter() - start
        row.detail = f"did not finish in {timeout_s:.0f} s"
        return row
    row.seconds = time.perf_counter() - start
    row.exit_code = done.returncode
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    row.detail = (errors[-1] if errors else done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")[:400]
    report = out / "report.json"
    if done.returncode == 0 and report.exists():
        r = json.loads(report.read_text())
        row.status = "shipped"
        row.detail = ""
        row.baseline_ms = r["baseline"]["latency"]["median_ms"]
        row.final_ms = r["final"]["latency"]["median_ms"]
        row.speedup = r.get("speedup_measured")
        row.speedup_low, row.speedup_high = (r.get("speedup_interval") or [None, None])[:2]
        row.budget_ms = r.get("budget_ms")
        row.mac_reduction = r.get("mac_reduction")
        row.parity_relative = max((a.get("max_abs_diff_relative") or 0.0) for a in r.get("artifacts", [{}]))
        row.groups_prunable = sum(1 for _ in r.get("groups", []))
        row.groups_frozen = len(r.get("frozen_groups", []))
        row.stage_seconds = {k: round(v, 1) for k, v in r.get("timings_s", {}).items()}
    elif done.returncode == 2:
        row.status = "budget" if "budget" in row.detail and "cannot be met" in row.detail or \
            "was not met" in row.detail else "refused"
    shutil.rmtree(out, ignore_errors=True)
    log.info("%-20s %-8s exit %s %s (%.0f s)", name, row.status, row.exit_code,
             f"{row.speedup:.2f}x" if row.speedup else row.detail[:120], row.seconds)
    return row


def _command() -> str:
    return "python tools/bench/zoo.py --fit" + "".join(f" {a}" for a in sys.argv[1:] if a != "--fit")


def render(rows: list[FitRow], command: str, wall_s: float, data_note: str, commit: str | None = None) -> str:
    """docs/zoo-fit.md from the rows (``commit``: the code the rows ran on, when not this checkout's)."""
    from provenance import provenance

    from edgeprune.environment import machine_info, package_versions

    env, versions = machine_info(), package_versions()
    commit = commit or provenance().get("commit", "?")
    families = sorted({r.family for r in rows})
    shipped = sorted({r.family for r in rows if r.status == "shipped"})
    lines = [
        "# Model zoo: `edgeprune fit` on torchvision's classifiers", "",
        f"`{command}` on {env.get('cpu', '?')}, {wall_s / 60:.1f} min; torch {versions.get('torch', '?')}, "
        f"torchvision {versions.get('torchvision', '?')}, onnxruntime {versions.get('onnxruntime', '?')}; "
        f"commit {commit}.", "",
        f"Each row is the real command, `edgeprune fit --model torchvision:NAME --input-shape 3,R,R --data IMAGES "
        f"--target cpu --budget 70%`, in its own process: random weights, no fine-tuning, the default importance, "
        f"{data_note}. `shipped` = exit 0: the artifact's latency, timed paired with the original in the same run, "
        "met the budget, and it passed validation in ONNX Runtime (parity with the pruned PyTorch model). "
        "`budget` = exit 2 with the budget message; `refused` = another exit 2 (edgeprune's own line); `failed` = "
        "anything else. With random weights there is no accuracy to report; the agreement and parity checks run.", "",
        f"**{len(shipped)} of {len(families)} families ship a validated artifact that meets the budget; "
        f"{sum(r.status == 'budget' for r in rows)} budget misses, {sum(r.status == 'refused' for r in rows)} "
        f"refused, {sum(r.status == 'failed' for r in rows)} failed.**", "",
        "| family | model | px | status | baseline ms | final ms | speedup (paired, 90% interval) | MACs fewer | "
        "parity | groups kept whole | wall time | code | detail |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        def f(v: float | None, spec: str) -> str:
            return "–" if v is None else format(v, spec)
        speed = f"{r.speedup:.2f}× [{r.speedup_low:.2f}, {r.speedup_high:.2f}]" if r.speedup and r.speedup_low else \
            f(r.speedup, ".2f")
        lines.append(f"| {r.family} | `{r.model}` | {r.resolution} | {r.status} | {f(r.baseline_ms, '.2f')} | "
                     f"{f(r.final_ms, '.2f')} | {speed} | {f(r.mac_reduction, '.2f')}× | {f(r.parity_relative, '.0e')} | "
                     f"{r.groups_frozen} | {r.seconds / 60:.1f} min | {r.commit or commit} | "
                     f"{r.detail.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def render_partial(json_path: Path, doc: Path, families: dict[str, tuple[str, ...]]) -> None:
    """Write the table from the rows a stopped run saved (``partial``); families it did not reach are listed."""
    saved = json.loads(json_path.read_text())
    rows = [FitRow(**r) for r in saved["rows"]]
    done = {r.family for r in rows}
    note = ", ".join(f for f in families if f not in done)
    commit = saved.get("environment", {}).get("provenance", {}).get("commit")
    text = render(rows, saved.get("command", "python tools/bench/zoo.py --fit"), saved.get("wall_s", sum(
        r.seconds for r in rows)), saved.get("data_note", "unlabelled images"), commit)
    if note:
        text += f"\nNot run (the run was stopped before reaching them): {note}.\n"
    doc.write_text(text, encoding="utf-8")


def main(args: argparse.Namespace, families: dict[str, tuple[str, ...]], resolution_of: dict[str, int]) -> None:
    """Run the full fit for the selected families and write the table and the rows."""
    from provenance import provenance

    from edgeprune.environment import machine_info, package_versions
    from edgeprune.io_atomic import write_json_atomic

    if args.render_partial:
        render_partial(args.json, args.doc, families)
        return

    work = Path(tempfile.mkdtemp(prefix="zoo-fit-"))
    if args.data is not None:
        data, data_note = args.data, f"images from `{args.data}`"
    elif SAMPLES.is_dir():
        data, data_note = SAMPLES, "the 20 unlabelled ImageNet sample images of `../shared/data/samples`"
    else:
        data, data_note = noise_images(work / "images"), "16 generated noise images (no ../shared data here)"
    start = time.perf_counter()
    rows: list[FitRow] = []
    for family in args.families:
        for name in families[family][:1] if args.first_only else families[family]:
            rows.append(fit_model(family, name, resolution_of[name], args.budget, data, args.timeout, work))
            args.json.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.json, {"rows": [asdict(r) for r in rows], "partial": True, "data_note": data_note,
                                          "command": _command(), "wall_s": time.perf_counter() - start,
                                          "environment": {**machine_info(), "versions": package_versions(),
                                                          "provenance": provenance()}})  # progress
    wall = time.perf_counter() - start
    command = _command()
    args.doc.write_text(render(rows, command, wall, data_note), encoding="utf-8")
    write_json_atomic(args.json, {"rows": [asdict(r) for r in rows], "wall_s": wall, "command": command,
                                  "data": str(data), "environment": {**machine_info(), "versions": package_versions(),
                                                                     "provenance": provenance()},
                                  "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    shutil.rmtree(work, ignore_errors=True)
    log.info("wrote %s and %s", args.doc, args.json)
