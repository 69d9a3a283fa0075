"""Top-1 of ``tp-exact`` at one fixed uniform ratio, without fine-tuning (accuracy only, nothing timed).

    python tools/bench/tp_accuracy_at_ratio.py --ratio 0.62548828125

Used where a Torch-Pruning no-fine-tune cell could not be timed at the baseline's speed: the ratio comes from the
fine-tuned cell of the same budget (whose bisection measured it), and this gives the accuracy that architecture
has before fine-tuning, with the same batch-norm re-estimation on the same calibration images as the cells.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parents[1]))
sys.path.insert(0, str(BENCH))

from provenance import provenance  # noqa: E402
from pruning_cells import DATA, VALIDATION, WEIGHTS  # noqa: E402
from pruning_data import default_cache_dir, prepare_train_npz  # noqa: E402
from pruning_tp import tp_prune  # noqa: E402

from edgeprune.config import FitConfig  # noqa: E402
from edgeprune.data.loaders import load_npz  # noqa: E402
from edgeprune.data.tensors import calibration_indices, to_model_input  # noqa: E402
from edgeprune.prune.bn_recalibration import recalibrate_batchnorm  # noqa: E402
from edgeprune.prune.graph import find_classifier  # noqa: E402
from edgeprune.train.default_weights import load_model  # noqa: E402


def main() -> None:
    """Prune, re-estimate batch norm, print the top-1 on the lossless test subset and the validation split."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratio", type=float, required=True)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    bundle = load_model("cifar-resnet56", WEIGHTS / "resnet56-4bfd9763.th")
    prep = bundle.preprocessing
    assert prep is not None
    train = load_npz(prepare_train_npz(DATA / "cifar10_train_jpegbytes.npz", 0, args.seed,
                                       args.cache_dir or default_cache_dir(), exclude_npz=VALIDATION))
    calib = to_model_input(train.images[calibration_indices(len(train), FitConfig.calib_images, args.seed)], prep)
    model, example = bundle.model.eval(), calib[:1]
    slim = tp_prune(model, example, args.ratio, 8, find_classifier(model, example), "tp-exact")
    recalibrate_batchnorm(slim, calib)
    slim.eval()
    result: dict[str, object] = {"ratio": args.ratio, "evaluated_in": "PyTorch", "provenance": provenance()}
    for name, path in (("top1_lossless_test", DATA / "cifar10_test_lossless_first1017.npz"),
                       ("top1_validation", VALIDATION)):
        data = load_npz(path)
        x = to_model_input(data.images, prep)
        with torch.no_grad():
            pred = torch.cat([slim(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]).numpy()
        result[name] = float((pred == data.labels).mean())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
