"""Fine-tuning throughput on one process, two data-parallel processes, and a GPU when there is one.

The recipe is the cifar-resnet56 recovery fine-tune of docs/benchmarks.md (SGD, batch 64, rewind schedule,
distillation from the original at T = 4, weight 0.9, crop + flip augmentation) on the lossless CIFAR-10
training subset (random images of the same shape when ../shared is absent: throughput does not depend on
the pixels). Every mode trains the same ``--images`` for two epochs in a fresh process (or pair of processes,
launched by torch.distributed.run) and the second epoch is timed, so start-up and the first epoch's warm-up
are left out. Modes, timed interleaved in rounds (A, B, C, A, B, C ...) so that a change in the machine's
speed hits every mode alike:

* ``1proc-1thread``: one process pinned to core 0, one thread (what ``fit`` does on one core);
* ``2proc-ddp``: two processes (gloo), each pinned to its own core with one thread, each training half of
  every batch (``torchrun --nproc-per-node 2``, ``fit --train-nproc 2``);
* ``1proc-2threads``: one process with two threads on both cores (the fair baseline for two cores);
* ``cuda``: one process on the first GPU with mixed precision (only where PyTorch sees one).

    python tools/bench/scale_out.py --images 1024 --rounds 3      # writes docs/benchmarks.md's section
    python tools/bench/scale_out.py --render-only

On a machine with a GPU, a second results file keeps that machine's rows apart (its CPU is another CPU, so
its rows are never mixed with this table's; each machine's ratios are to its own ``1proc-1thread``):

    python tools/bench/scale_out.py --modes 1proc-1thread,2proc-ddp,cuda --results docs/figures/scale-out/throughput-gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "bench"))
sys.path.insert(0, str(REPO))

from docs_section import write_section  # noqa: E402
from provenance import provenance  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
TRAIN = SHARED / "cifar10" / "cifar10_train_lossless_subset5085.npz"
WEIGHTS = SHARED / "models" / "cifar10" / "akamaster_resnet" / "resnet56-4bfd9763.th"
RESULTS = REPO / "docs" / "figures" / "scale-out" / "throughput.json"
GPU_RESULTS = RESULTS.with_name("throughput-gpu.json")
MODES = ("1proc-1thread", "2proc-ddp", "1proc-2threads", "cuda")
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## Scale-out: fine-tuning throughput on 1 vs 2 processes"
EPOCHS = 2


def _worker(images: int, device_name: str, threads: int, result: Path) -> None:
    """One training run (a rank of it under torch.distributed.run); rank 0 writes its epoch times."""
    import numpy as np
    import torch

    from edgeprune.data.tensors import to_model_input
    from edgeprune.models.preprocessing import Preprocessing
    from edgeprune.models.weights import load_weights
    from edgeprune.models.zoo import build_architecture
    from edgeprune.train import distributed
    from edgeprune.train.batches import InMemoryImages
    from edgeprune.train.distill import DistillationLoss
    from edgeprune.train.loop import TrainSpec, serve_training_jobs, train_classifier

    rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_name == "cpu" and threads == 1:
        os.sched_setaffinity(0, {rank % os.cpu_count()})
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    group = distributed.start(device) if distributed.launched_by_torchrun() else None
    if group is not None and not group.leads:
        serve_training_jobs()
        distributed.stop()
        return
    bundle = build_architecture("cifar-resnet56", None)
    weights = "random"
    if WEIGHTS.is_file():
        load_weights(bundle.model, WEIGHTS)
        weights = WEIGHTS.name
    if TRAIN.is_file():
        with np.load(TRAIN) as archive:
            x, y = archive["x"][:images], archive["y"][:images].astype(np.int64)
        source = f"{TRAIN.name}, first {len(x)}"
    else:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, images)
        source = f"{images} random images"
    prep = bundle.preprocessing or Preprocessing(32, 32, 3, (0.5,) * 3, (0.5,) * 3)
    to_model_input(x[:2], prep)  # import-time work out of the timing
    teacher = bundle.model.eval()
    student = build_architecture("cifar-resnet56", None).model
    student.load_state_dict(teacher.state_dict())
    spec = TrainSpec(epochs=EPOCHS, lr=0.01, batch_size=64, seed=0, schedule="rewind", augment="crop,flip")
    marks = [time.perf_counter()]
    train_classifier(student, InMemoryImages(x, torch.from_numpy(y), prep), None, spec,
                     loss_fn=DistillationLoss(teacher, 4.0, 0.9), device=device,
                     on_epoch=lambda _e, _l: marks.append(time.perf_counter()))
    if group is not None:
        distributed.broadcast(None)
        distributed.stop()
    result.write_text(json.dumps({"epoch_seconds": [b - a for a, b in zip(marks, marks[1:])], "images": len(x),
                                  "weights": weights, "source": source}))


def _run_mode(mode: str, images: int, tmp: Path) -> dict[str, Any]:
    result = tmp / f"{mode}.json"
    result.unlink(missing_ok=True)
    here = [sys.executable, str(Path(__file__).resolve()), "--worker", "--images", str(images), "--result",
            str(result)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    if mode == "1proc-1thread":
        command = [*here, "--device", "cpu", "--threads", "1"]
    elif mode == "1proc-2threads":
        command, env["OMP_NUM_THREADS"] = [*here, "--device", "cpu", "--threads", "2"], "2"
    elif mode == "2proc-ddp":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   *here[1:], "--device", "cpu", "--threads", "1"]
    else:
        command = [*here, "--device", "cuda", "--threads", "1"]
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(result.read_text())


def run(images: int, rounds: int, modes: list[str] | None = None) -> dict[str, Any]:
    """Every mode ``rounds`` times, interleaved; the timed (second) epoch's images per second.

    ``modes`` defaults to the three CPU modes plus ``cuda`` where PyTorch sees a GPU; ``1proc-1thread`` is always
    run (every ratio is to it).
    """
    import tempfile

    import torch

    if modes is None:
        modes = list(MODES[:3]) + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in modes and not torch.cuda.is_available():
        raise SystemExit("--modes names cuda but PyTorch sees no GPU here")
    modes = ["1proc-1thread"] + [m for m in modes if m != "1proc-1thread"]
    per_round: list[dict[str, float]] = []
    meta: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(rounds):
            speeds = {}
            for mode in modes:
                out = _run_mode(mode, images, Path(tmp))
                speeds[mode] = out["images"] / out["epoch_seconds"][-1]
                meta = {"weights": out["weights"], "source": out["source"], "images": out["images"]}
                print(f"round {index + 1}/{rounds} {mode}: {speeds[mode]:.1f} images/s", flush=True)
            per_round.append(speeds)
    return {"modes": modes, "rounds": per_round, **meta, "provenance": provenance(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def render(data: dict[str, Any], gpu_data: dict[str, Any] | None = None) -> list[str]:
    """The docs section: median throughput per mode, and each mode's median per-round ratio to one process;
    then, from ``gpu_data``, the same table for the machine with a GPU."""
    lines = [HEADING, "", *_table(data, "")]
    if gpu_data is not None:
        lines += ["### On a machine with a GPU", "",
                  "Another machine, so none of its figures compares with the table above; its ratios are to its own "
                  "one-process, one-thread run, timed interleaved with the GPU run.", "", *_table(gpu_data, " --modes "
                  + ",".join(gpu_data["modes"]) + " --results docs/figures/scale-out/throughput-gpu.json")]
    return lines


def _table(data: dict[str, Any], reproduce_options: str) -> list[str]:
    modes, rounds = data["modes"], data["rounds"]
    machine = data["provenance"]["machine"]
    lines = [f"The cifar-resnet56 recovery fine-tune (SGD, batch 64, rewind, distillation T = 4, crop + flip) on "
             f"{data['source']} images ({data['weights']} weights), images per second in the second of two epochs; "
             f"{len(rounds)} rounds, modes interleaved in each. Ratios are the median of the per-round ratios to "
             f"`1proc-1thread`. Scaling efficiency = speedup / cores used. Machine: {machine.get('cpu', '?')}, "
             f"{machine.get('logical_cores', '?')} logical cores; commit {data['provenance']['commit'].split()[0][:16]}.",
             "", "| mode | cores | images/s (median) | speedup vs 1 process | scaling efficiency |",
             "|---|---:|---:|---:|---:|"]
    cores = {"1proc-1thread": 1, "2proc-ddp": 2, "1proc-2threads": 2, "cuda": 0}
    for mode in modes:
        speeds = [r[mode] for r in rounds]
        ratio = statistics.median(r[mode] / r["1proc-1thread"] for r in rounds)
        used = cores[mode]
        efficiency = f"{100 * ratio / used:.0f}%" if used else "n/a (GPU)"
        lines.append(f"| `{mode}` | {used or 'GPU'} | {statistics.median(speeds):.1f} | {ratio:.2f}x | {efficiency} |")
    if "cuda" not in modes:
        lines += ["", "No GPU here: `--train-device cuda` (mixed precision) was not measured by this run."]
    else:
        per_round = [r["cuda"] / r["1proc-1thread"] for r in rounds]
        torch_version = data["provenance"].get("versions", {}).get("torch", "?")
        lines += ["", f"GPU: {data['gpu']} (PyTorch {torch_version}); `cuda` is one process on it with mixed precision "
                  "(float16 autocast and a gradient scaler), the CPU only feeding it. Per-round ratios "
                  f"{min(per_round):.1f}x to {max(per_round):.1f}x. The recipe's batch of 64 on "
                  f"{data['images']} images is {-(-data['images'] // 64)} steps an epoch, far from what keeps such a "
                  "GPU busy; larger batches (another recipe) were not measured."]
    results = "throughput-gpu.json" if reproduce_options else "throughput.json"
    lines += ["", f"Reproduce: `python tools/bench/scale_out.py --images {data['images']} --rounds {len(rounds)}"
              f"{reproduce_options}` (results in `docs/figures/scale-out/{results}`; `--render-only` rewrites this "
              "section from them).", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--modes", help=f"comma-separated, from {', '.join(MODES)} (default: the CPU modes, and cuda "
                        "where PyTorch sees a GPU)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where this run's figures are written")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.images, args.device, args.threads, args.result)
        return 0
    if not args.render_only:
        modes = args.modes.split(",") if args.modes else None
        if modes and set(modes) - set(MODES):
            parser.error(f"unknown modes: {', '.join(sorted(set(modes) - set(MODES)))}")
        data = run(args.images, args.rounds, modes)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(data, indent=1))
    gpu_data = json.loads(GPU_RESULTS.read_text()) if GPU_RESULTS.is_file() else None
    write_section(DOC, HEADING, render(json.loads(RESULTS.read_text()), gpu_data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
