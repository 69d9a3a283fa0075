"""A real trained detector to test detection with: Ultralytics' YOLOv8n (``yolov8n.yaml``, 4 classes) trained
from scratch on edgeprune's synthetic shapes set, once, then reused from the cache.

Like the demo model (``default_weights``), both the dataset folder and the weights live in ``cache_dir()`` under
names that carry a recipe version, so a change of recipe regenerates and retrains instead of reusing stale files.
Training is seeded (the same machine and thread count give the same weights) and takes about 7 minutes on one
CPU core. The weights are a safetensors state dict of a plain ``DetectionModel("yolov8n.yaml", nc=4)``; their
metadata records the recipe, the input size and the mAP reached on the validation split.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from edgeprune.cache import cache_dir
from edgeprune.data.detection import load_detection_dataset
from edgeprune.data.shapes_detection import SHAPES_CLASSES, ShapesSpec, write_shapes_dataset
from edgeprune.io_atomic import write_atomic
from edgeprune.models.ultralytics_env import configure_ultralytics_offline
from edgeprune.tasks.detection_predict import evaluate_detector
from edgeprune.timing import monotonic_s
from edgeprune.train.detector_loop import DetectorTrainSpec, train_detector

log = logging.getLogger(__name__)

#: the architecture, as ``--model ultralytics:yolov8n.yaml`` names it
SHAPES_MODEL_YAML = "yolov8n.yaml"
#: bump when the dataset generator changes what it draws
SHAPES_DATASET_VERSION = "v1"
#: bump when the training recipe (or the dataset) changes
DETECTOR_RECIPE = "v1"
SHAPES_SPEC = ShapesSpec(size_px=160, train_images=600, val_images=200, seed=0)
DETECTOR_TRAIN_SPEC = DetectorTrainSpec(epochs=50, batch_size=16, optimizer="adamw", lr=0.002, seed=0)


def _variant(*specs: object) -> str:
    """'' for the default recipe, else a short hash of the specs (another recipe gets its own cache entry)."""
    if specs == (SHAPES_SPEC,) or specs == (SHAPES_SPEC, DETECTOR_TRAIN_SPEC):
        return ""
    text = json.dumps([asdict(s) for s in specs], sort_keys=True)  # type: ignore[call-overload]
    return "-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def shapes_dataset_dir(spec: ShapesSpec = SHAPES_SPEC) -> Path:
    """The shapes dataset's folder (``data.yaml``, ``train/``, ``val/``), generated first if absent (seconds)."""
    root = cache_dir() / f"detection-shapes-{SHAPES_DATASET_VERSION}{_variant(spec)}"
    write_shapes_dataset(root, spec)
    return root


def shapes_detector_path(shapes: ShapesSpec = SHAPES_SPEC, train: DetectorTrainSpec = DETECTOR_TRAIN_SPEC) -> Path:
    """Where the trained detector's weights are cached for this recipe."""
    name = f"yolov8n-shapes-{DETECTOR_RECIPE}-seed{train.seed}{_variant(shapes, train)}.safetensors"
    return cache_dir() / name


def build_shapes_detector(num_classes: int = len(SHAPES_CLASSES)) -> nn.Module:
    """An untrained ``DetectionModel("yolov8n.yaml", nc=num_classes)`` (Ultralytics kept offline)."""
    configure_ultralytics_offline()
    from ultralytics.nn.tasks import DetectionModel

    ultralytics_log = logging.getLogger("ultralytics")  # it logs "Overriding model.yaml nc=80" on stdout
    level = ultralytics_log.level
    ultralytics_log.setLevel(logging.WARNING)
    try:
        return DetectionModel(SHAPES_MODEL_YAML, nc=num_classes, verbose=False)
    finally:
        ultralytics_log.setLevel(level)


def load_shapes_detector(path: Path | None = None) -> nn.Module:
    """The trained shapes detector in eval mode (trained first if not cached)."""
    model = build_shapes_detector()
    model.load_state_dict(load_file(str(path or trained_shapes_detector())), strict=True)
    return model.eval()


def detector_metadata(path: Path) -> dict[str, str]:
    """The metadata saved with a detector's weights: recipe, input size, classes, val mAP, training time."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _usable(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        build_shapes_detector().load_state_dict(load_file(str(path)), strict=True)
    except Exception as exc:  # a corrupt cache is rebuilt, not fatal
        log.warning("cached detector weights %s are unusable (%s); retraining", path, exc)
        return False
    return True


def trained_shapes_detector(shapes: ShapesSpec = SHAPES_SPEC, train: DetectorTrainSpec = DETECTOR_TRAIN_SPEC) -> Path:
    """The trained detector's safetensors weights, training it first (about 7 minutes on one core) if not cached.

    >>> weights = trained_shapes_detector()                              # doctest: +SKIP
    >>> detector_metadata(weights)["val_map50_95"]                       # doctest: +SKIP
    """
    path = shapes_detector_path(shapes, train)
    if _usable(path):
        return path
    data_yaml = shapes_dataset_dir(shapes) / "data.yaml"
    size_hw = (shapes.size_px, shapes.size_px)
    train_set = load_detection_dataset(data_yaml, size_hw, split="train")
    val_set = load_detection_dataset(data_yaml, size_hw, split="val")
    log.info("training %s on the shapes set (first run only; cached in %s)", SHAPES_MODEL_YAML, path.parent)
    torch.manual_seed(train.seed)
    model = build_shapes_detector(len(SHAPES_CLASSES))
    started = monotonic_s()
    losses = train_detector(model, train_set, train, description="training the shapes detector")
    seconds = monotonic_s() - started
    score = evaluate_detector(model, val_set)
    log.info("shapes detector: val mAP50 %.3f, mAP50-95 %.3f after %d epochs (%.0f s)", score.map50,
             score.map50_95, train.epochs, seconds)
    metadata = {"recipe": DETECTOR_RECIPE, "model": SHAPES_MODEL_YAML, "input_hw": f"{shapes.size_px},{shapes.size_px}",
                "classes": ",".join(SHAPES_CLASSES), "dataset": str(data_yaml), "epochs": str(train.epochs),
                "final_loss": f"{losses[-1]:.4f}" if losses else "", "train_seconds": f"{seconds:.1f}",
                "val_map50": f"{score.map50:.4f}", "val_map50_95": f"{score.map50_95:.4f}"}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_atomic(path, lambda p: save_file(state, str(p), metadata=metadata))
    return path
