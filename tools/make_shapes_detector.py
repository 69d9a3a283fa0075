"""Build edgeprune's test detector: the synthetic shapes set and YOLOv8n trained on it (cached; about 7 minutes on
one core the first time), then print where they are and the validation mAP.

    OMP_NUM_THREADS=1 taskset -c 1 python tools/make_shapes_detector.py
    edgeprune fit --model ultralytics:yolov8n.yaml --weights <weights> --data <val data> ...

``--rescore`` evaluates the cached weights on the val split again instead of reading the mAP saved with them.
"""

from __future__ import annotations

import argparse
import logging

import torch

from edgeprune.data.detection import load_detection_dataset
from edgeprune.tasks.detection_predict import evaluate_detector
from edgeprune.train.default_detector import (
    SHAPES_SPEC,
    detector_metadata,
    load_shapes_detector,
    shapes_dataset_dir,
    trained_shapes_detector,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rescore", action="store_true", help="evaluate the weights on the val split again")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    torch.set_num_threads(1)
    root = shapes_dataset_dir()
    weights = trained_shapes_detector()
    meta = detector_metadata(weights)
    map50, map50_95 = meta.get("val_map50", "?"), meta.get("val_map50_95", "?")
    if args.rescore:
        size = (SHAPES_SPEC.size_px, SHAPES_SPEC.size_px)
        score = evaluate_detector(load_shapes_detector(weights), load_detection_dataset(root, size, split="val"))
        map50, map50_95 = f"{score.map50:.4f}", f"{score.map50_95:.4f}"
    print(f"data.yaml:      {root / 'data.yaml'}")
    print(f"val data:       {root / 'val'}")
    print(f"weights:        {weights}")
    print(f"model:          ultralytics:{meta.get('model', 'yolov8n.yaml')} (nc={len(meta.get('classes', '').split(','))}, "
          f"input {meta.get('input_hw', '?').replace(',', 'x')})")
    print(f"training:       {meta.get('epochs', '?')} epochs, {meta.get('train_seconds', '?')} s")
    print(f"val mAP50:      {map50}")
    print(f"val mAP50-95:   {map50_95}")


if __name__ == "__main__":
    main()
