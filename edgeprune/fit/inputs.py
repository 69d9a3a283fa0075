"""Resolve a FitConfig's model, preprocessing and data into ready-to-use objects, checking they fit together."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from edgeprune.config import FitConfig
from edgeprune.data.class_folders import LabelNaming, read_class_map
from edgeprune.data.dataset import ImageDataset
from edgeprune.data.digits import load_digits_splits
from edgeprune.data.lazy_folder import LazyImageFolder, open_training_data
from edgeprune.data.loaders import has_class_folders, load_dataset
from edgeprune.data.tensors import calibration_indices, to_model_input
from edgeprune.errors import DataError, InputError
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.models.weights import load_weights
from edgeprune.models.zoo import ModelBundle, build_architecture
from edgeprune.target import Target
from edgeprune.tasks.base import Task
from edgeprune.tasks.classification import ClassificationTask
from edgeprune.train.default_weights import load_default_weights

log = logging.getLogger(__name__)


@dataclass
class FitInputs:
    """Everything a fit run consumes, already validated."""

    bundle: ModelBundle
    preprocessing: Preprocessing
    eval_set: ImageDataset
    #: a classifier's training set: in memory, or a folder too large for it read batch by batch
    train_set: ImageDataset | LazyImageFolder | None
    eval_inputs: torch.Tensor
    calibration: torch.Tensor
    calibration_source: str = ""
    #: what the model's output means (classification, detection, segmentation), from the model
    task: Task = field(default_factory=ClassificationTask)
    #: the task's labels of ``eval_set`` (a detector's boxes, a segmenter's masks); None when unlabelled.
    #: Classifiers' labels stay in ``eval_set.labels``: see :attr:`truth`
    eval_truth: Any = None
    #: the training data in the task's own form when it is not a classifier's (a detector's
    #: :class:`~edgeprune.data.detection_dataset.DetectionDataset`, boxes optional; a segmenter's
    #: :class:`~edgeprune.data.segmentation.SegmentationDataset`, masks optional); None otherwise
    task_train_set: Any = None

    @property
    def truth(self) -> Any:
        """The evaluation images' labels in the task's form (class indices, boxes or masks), or None."""
        return self.eval_set.labels if isinstance(self.task, ClassificationTask) else self.eval_truth

    @property
    def example(self) -> torch.Tensor:
        """One real input image at batch size 1 (used for tracing and export)."""
        return self.calibration[:1]


def resolve_preprocessing(bundle: ModelBundle, config: FitConfig, target: Target) -> Preprocessing:
    """The model's own preprocessing, overridden by ``--input-shape``, ``--mean`` and ``--std``."""
    prep = bundle.preprocessing
    shape = config.input_shape or (prep.input_shape if prep else None) or target.input_shape
    if shape is None:
        raise InputError(f"model '{bundle.spec}' does not say its input size; pass --input-shape C,H,W")
    if len(shape) != 3:
        raise InputError(f"--input-shape needs three values C,H,W, got {','.join(map(str, shape))}")
    channels, height, width = (int(v) for v in shape)
    mean = config.mean or (prep.mean if prep and prep.channels == channels else None) or (0.5,) * channels
    std = config.std or (prep.std if prep and prep.channels == channels else None) or (0.5,) * channels
    try:
        return Preprocessing(height, width, channels, tuple(mean), tuple(std))
    except ValueError as exc:
        raise InputError(f"invalid input specification: {exc}") from None


def _check_classes(dataset: ImageDataset | LazyImageFolder, num_classes: int | None, spec: str) -> None:
    if dataset.labels is None or num_classes is None:
        return
    seen = dataset.num_classes or 0
    if seen > num_classes:
        raise DataError(
            f"{dataset.source} has {seen} classes but model '{spec}' outputs {num_classes}; "
            "pass --num-classes or data that matches the model"
        )


def _check_class_map_used(config: FitConfig) -> None:
    """``--class-map`` is refused in one line when no labelled data it could apply to has class folders."""
    if config.class_map is None:
        return
    named = [p for p in (config.data, config.train_data) if p is not None]
    if not any(has_class_folders(Path(p)) for p in named):
        where = " or ".join(str(p) for p in named) or "the built-in digits"
        raise InputError(f"--class-map maps class folders to class indices, but {where} has no class folders (an "
                         ".npz, or images with no subfolders, which are unlabelled)")


def resolve_inputs(config: FitConfig, target: Target) -> FitInputs:
    """Load the model and data named by ``config`` and check that they fit each other.

    Every check runs before anything expensive: the target's runtime, the weights file, the input shape
    (one forward pass of the untrained architecture), the data and its class count are all checked before
    the demo model is trained on first use.
    """
    class_map = read_class_map(config.class_map) if config.class_map is not None else None
    target.require_runtime()  # exports, local timing and evaluation all need the target's runtime here
    bundle = build_architecture(config.model, config.num_classes)
    if config.weights is not None:
        load_weights(bundle.model, config.weights)
    bundle.model.eval()
    prep = resolve_preprocessing(bundle, config, target)
    width = _output_width(bundle, prep)
    if bundle.num_classes is None:
        bundle = replace(bundle, num_classes=width)
    if class_map is not None and bundle.task != "classification":
        raise InputError(f"--class-map names the class folders of a classifier's data; a {bundle.task} model's "
                         "classes come from its label files")
    if bundle.task == "detection":
        return _resolve_detection_inputs(config, bundle, prep)
    if bundle.task == "segmentation":
        return _resolve_segmentation_inputs(config, bundle, prep)
    _check_class_map_used(config)
    naming = LabelNaming(bundle.num_classes, class_map)
    train_set: ImageDataset | LazyImageFolder | None = None
    if config.data is None:
        if config.model != "demo":
            raise InputError("--data is required for models other than the built-in demo")
        train_set, eval_set = load_digits_splits()
    else:
        eval_set = load_dataset(config.data, (prep.height, prep.width), prep.channels, naming)
    if config.train_data is not None:
        train_set = open_training_data(config.train_data, (prep.height, prep.width), prep.channels,
                                       config.in_memory_mb * 1_000_000, naming)
    for dataset in (eval_set, train_set):
        if dataset is not None:
            _check_classes(dataset, bundle.num_classes, bundle.spec)
    distills = config.distill or config.distill_features  # the original's answers stand in for labels
    if config.finetune_epochs > 0 and train_set is None:
        raise InputError("--finetune-epochs needs training data: pass --train-data DIR_OR_NPZ")
    if config.finetune_epochs > 0 and train_set is not None and train_set.labels is None and not distills:
        raise InputError("--finetune-epochs needs labelled training data, or --distill to learn from the original "
                         f"model's answers: {train_set.source} has no class folders or labels")
    if config.qat_epochs > 0 and (train_set is None or (train_set.labels is None and not (config.distill or config.distill_features))):
        raise InputError("--qat-epochs needs training data (--train-data), labelled unless --distill is given")
    if config.calib_images < 1:
        raise InputError(f"--calib-images must be at least 1, got {config.calib_images}")
    if config.calib_data is not None:
        calib_source = load_dataset(config.calib_data, (prep.height, prep.width), prep.channels)
        described = f"{calib_source.source} (--calib-data)"
    elif train_set is not None:
        calib_source, described = train_set, f"{train_set.source} (the training data)"
    else:  # only --data: calibrate on a held-out part of it, so the accuracy is not measured on those images
        calib_source, eval_set, described = held_out_calibration(eval_set, config.calib_images, config.seed)
    if config.eval_images is not None and config.eval_images < len(eval_set):
        eval_set = eval_set.subset(calibration_indices(len(eval_set), config.eval_images, config.seed))
    if config.weights is None:
        load_default_weights(bundle)  # trains the demo model on first use: only once every input is checked
        bundle.model.eval()
    picked = calibration_indices(len(calib_source), config.calib_images, config.seed)
    calibration = to_model_input(calib_source.subset(picked).images, prep)
    return FitInputs(bundle, prep, eval_set, train_set, to_model_input(eval_set.images, prep), calibration,
                     f"{len(picked)} images of {described}")


class _Subsettable(Protocol):
    """A dataset of any task: its length, its source, and the images (and labels) at some indices."""

    source: str

    def __len__(self) -> int: ...

    def subset(self, indices: np.ndarray) -> Any: ...


_D = TypeVar("_D", bound=_Subsettable)

#: the most of ``--data`` held out for calibration when nothing else is given (the rest measures accuracy)
HELD_OUT_SHARE = 0.2


def held_out_calibration(data: _D, calib_images: int, seed: int) -> tuple[_D, _D, str]:
    """(calibration part, evaluation part, description) of ``data``: a seeded random ``calib_images`` of it, at
    most :data:`HELD_OUT_SHARE` and at least one image; a single image serves both (and the description says so)."""
    n = len(data)
    if n < 2:
        return data, data, f"{data.source} (its only image, also used for the accuracy)"
    count = max(1, min(calib_images, int(n * HELD_OUT_SHARE)))
    order = np.random.default_rng(seed).permutation(n)
    calib, rest = np.sort(order[:count]), np.sort(order[count:])
    return (data.subset(calib), data.subset(rest),
            f"{data.source}, held out from the accuracy ({len(rest)} other images measure it)")


def _output_width(bundle: ModelBundle, prep: Preprocessing) -> int | None:
    return check_forward(bundle.model, bundle.spec, prep.input_shape)


def check_forward(model: torch.nn.Module, spec: str, input_shape: tuple[int, ...]) -> int | None:
    """Run ``model`` (in eval mode) once on zeros of ``input_shape`` (C, H, W) at batch size 1.

    Refuses, with an :class:`~edgeprune.errors.InputError`, a shape the model cannot take (a wrong channel
    count, an image too small for its strides); returns the classifier width when the output is (1, K).

    >>> check_forward(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)), "m", (3, 2, 2))
    5
    """
    with torch.no_grad():
        try:
            out = model(torch.zeros(1, *input_shape))
        except Exception as exc:  # user models fail in arbitrary ways on a wrong shape
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(
                f"model '{spec}' does not accept input of shape {tuple(input_shape)} (C, H, W): {first}"
            ) from None
    return int(out.shape[1]) if isinstance(out, torch.Tensor) and out.dim() == 2 else None


def labels_of(dataset: ImageDataset | None) -> np.ndarray | None:
    """The dataset's labels, or None."""
    return None if dataset is None else dataset.labels


def _resolve_detection_inputs(config: FitConfig, bundle: ModelBundle, prep: Preprocessing) -> FitInputs:
    """A detector's inputs: a YOLO-layout set (boxes optional), letterboxed to the model's input; calibration
    held out of it (or ``--calib-data``), and every recovery that needs a classifier's labels refused."""
    from edgeprune.data.detection import load_detection_dataset
    from edgeprune.tasks.detection import DetectionTask, DetectionTruth

    if config.data is None:
        raise InputError("--data is required for a detector: a YOLO-layout folder (images/, labels/) or data.yaml")
    _refuse_unsupported(config, "detectors")
    train = None
    if config.train_data is not None:
        train = load_detection_dataset(config.train_data, (prep.height, prep.width), split="train")
    if config.finetune_epochs > 0 and (train is None or (train.boxes is None and not config.distill)):
        raise InputError("--finetune-epochs needs training data for a detector: --train-data with boxes (YOLO "
                         "layout or data.yaml), or any images with --distill")
    if config.calib_images < 1:
        raise InputError(f"--calib-images must be at least 1, got {config.calib_images}")
    size = (prep.height, prep.width)
    data = load_detection_dataset(config.data, size)
    if data.boxes is not None and bundle.num_classes is not None:
        seen = max((int(c.max()) + 1 for c in data.classes if len(c)), default=0)
        if seen > bundle.num_classes:
            raise DataError(f"{data.source} has class ids up to {seen - 1} but model '{bundle.spec}' detects "
                            f"{bundle.num_classes} classes; pass --num-classes or data that matches the model")
    if config.calib_data is not None:
        calib = load_detection_dataset(config.calib_data, size)
        described = f"{calib.source} (--calib-data)"
    else:
        calib, data, described = held_out_calibration(data, config.calib_images, config.seed)
    data = _evaluated_part(data, config)
    truth = None if data.boxes is None else DetectionTruth(list(data.boxes), list(data.classes),
                                                          int(bundle.num_classes or 0))
    return _task_inputs(config, bundle, prep, ImageDataset(data.images, None, tuple(data.class_names), data.source),
                        calib.images, described, DetectionTask(), truth, train)


def _resolve_segmentation_inputs(config: FitConfig, bundle: ModelBundle, prep: Preprocessing) -> FitInputs:
    """A segmenter's inputs: ``images/`` with optional ``masks/`` resized to the model's input; calibration held
    out of it (or ``--calib-data``), mask class ids checked against the model's classes, and every recovery that
    needs a classifier's labels refused."""
    from edgeprune.data.segmentation import SegmentationDataset, load_segmentation_dataset
    from edgeprune.tasks.segmentation import SegmentationTask, SegmentationTruth

    if config.data is None:
        raise InputError("--data is required for a segmentation model: a folder with images/ and masks/ "
                         "(or only images)")
    _refuse_unsupported(config, "segmentation models")
    train = None
    if config.train_data is not None:
        train = load_segmentation_dataset(config.train_data, (prep.height, prep.width))
    if config.finetune_epochs > 0 and (train is None or (train.masks is None and not config.distill)):
        raise InputError("--finetune-epochs needs training data for a segmentation model: --train-data with "
                         "images/ and masks/, or any images with --distill")
    if config.calib_images < 1:
        raise InputError(f"--calib-images must be at least 1, got {config.calib_images}")
    size = (prep.height, prep.width)
    data = load_segmentation_dataset(config.data, size)
    largest = data.largest_class_id
    if largest is not None and bundle.num_classes is not None and largest >= bundle.num_classes:
        raise DataError(f"{data.source} has masks with class id {largest} but model '{bundle.spec}' segments "
                        f"{bundle.num_classes} classes (ids 0..{bundle.num_classes - 1}, 255 = not scored); pass "
                        "--num-classes or data that matches the model")
    calib: SegmentationDataset
    if config.calib_data is not None:
        calib = load_segmentation_dataset(config.calib_data, size)
        described = f"{calib.source} (--calib-data)"
    else:  # calibrate on a held-out part, so the accuracy is not measured on those images
        calib, data, described = held_out_calibration(data, config.calib_images, config.seed)
    data = _evaluated_part(data, config)
    truth = None if data.masks is None else SegmentationTruth(data.masks, int(bundle.num_classes or 0))
    return _task_inputs(config, bundle, prep, ImageDataset(data.images, None, (), data.source), calib.images,
                        described, SegmentationTask(), truth, train)


def _refuse_unsupported(config: FitConfig, kind: str) -> None:
    """One line refusing the recovery steps built for classifiers only (``kind``: detectors, segmentation models)."""
    for flag, value in (("--qat-epochs", config.qat_epochs), ("--distill-features", int(config.distill_features))):
        if value > 0:
            raise InputError(f"{flag} is not available for {kind} yet (issue 21): prune without it")


def _evaluated_part(data: _D, config: FitConfig) -> _D:
    """``data`` cut to ``--eval-images`` (a seeded subset), when that is smaller."""
    if config.eval_images is not None and config.eval_images < len(data):
        return data.subset(calibration_indices(len(data), config.eval_images, config.seed))
    return data


def _task_inputs(config: FitConfig, bundle: ModelBundle, prep: Preprocessing, eval_set: ImageDataset,
                 calib_images: np.ndarray, described: str, task: Task, truth: Any, train: Any) -> FitInputs:
    """The :class:`FitInputs` of a model that is not a classifier: its images as an unlabelled set (the task's
    labels in ``truth``), the calibration images picked, and the default weights' warning where there are none."""
    if config.weights is None:
        load_default_weights(bundle)  # says that the model has random weights
    picked = calibration_indices(len(calib_images), config.calib_images, config.seed)
    return FitInputs(bundle, prep, eval_set, None, to_model_input(eval_set.images, prep),
                     to_model_input(calib_images[picked], prep), f"{len(picked)} images of {described}", task,
                     truth, train)
