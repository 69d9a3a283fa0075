"""Build the generated shapes segmentation set and train LR-ASPP on it (both cached), then print where they are,
the validation mIoU, and a ``fit`` command that prunes the trained model.

    OMP_NUM_THREADS=1 taskset -c 0 python tools/make_shapes_segmenter.py [--epochs N]
"""

from __future__ import annotations

import argparse
import logging
import shlex

from edgeprune.data.shapes_segmentation import SHAPES_SIZE_PX
from edgeprune.train.default_segmenter import (
    DEFAULT_SEGMENTER_RECIPE,
    SEGMENTER_SPEC,
    SegmenterRecipe,
    trained_shapes_segmenter,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=DEFAULT_SEGMENTER_RECIPE.epochs)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEGMENTER_RECIPE.seed)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    recipe = SegmenterRecipe(epochs=args.epochs, seed=args.seed)
    trained = trained_shapes_segmenter(recipe)
    print(f"train set      {trained.train_dir}")
    print(f"val set        {trained.val_dir}")
    print(f"weights        {trained.weights}")
    print(f"classes        {trained.num_classes}")
    print(f"training time  {trained.train_seconds:.0f} s")
    print(f"val mIoU       {trained.val_miou:.4f}")
    print(f"val pixel acc  {trained.val_pixel_accuracy:.4f}")
    command = ["edgeprune", "fit", "--model", SEGMENTER_SPEC, "--weights", str(trained.weights), "--data",
               str(trained.val_dir), "--num-classes", str(trained.num_classes), "--input-shape",
               f"3,{SHAPES_SIZE_PX},{SHAPES_SIZE_PX}", "--target", "cpu", "--budget", "60%",
               "--export", "onnx,openvino,tflite", "--out", "edgeprune-out/shapes-segmenter"]
    print("prune it with   " + shlex.join(command))


if __name__ == "__main__":
    main()
