"""Validate a model file in its own runtime: output parity with a reference, accuracy, measured latency.

``validate_artifact`` loads any ``.onnx`` / ``.xml`` / ``.tflite`` (see :mod:`edgeprune.validate.runners`),
runs it on validation data (an ImageFolder or ``.npz``; seeded random inputs of its input shape when there is
none), compares it with a reference (a PyTorch model or another artifact) under the limits of
:mod:`edgeprune.validate.tolerances`, scores accuracy when the data has labels, and times it with the target's
threads and precision. A failed check raises :class:`~edgeprune.errors.ValidationFailedError` (exit code 3)
whose message names the artifact and each failing figure with its limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from edgeprune.errors import InputError, ValidationFailedError
from edgeprune.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from edgeprune.quantize.layers import layer_precisions, summarise
from edgeprune.target import Target
from edgeprune.tasks.base import Task
from edgeprune.tasks.classification import ClassificationTask
from edgeprune.tasks.registry import task_named, task_of_spec
from edgeprune.timing import TimingSpec
from edgeprune.validate.bench import paired_against
from edgeprune.validate.runners import LoadedArtifact, TorchRunner, load_artifact
from edgeprune.validate.tolerances import min_agreement, tolerance_for

if TYPE_CHECKING:
    from edgeprune.agent.client import AgentClient

log = logging.getLogger(__name__)

RESULT_SCHEMA = "edgeprune.validation/1"
#: random inputs used when no data is given
RANDOM_INPUTS = 32


@dataclass(frozen=True)
class ModelInputs:
    """Images already in the model's input form (NCHW, normalised), e.g. the ones a fit run evaluated on.

    Attributes:
        images: N x C x H x W float32.
        labels: N class indices (a detector: its :class:`~edgeprune.tasks.detection.DetectionTruth`; a segmenter:
            its :class:`~edgeprune.tasks.segmentation.SegmentationTruth`), or None.
        source: what the images are, for the report.
        task: the model's task; None for a classifier.
    """

    images: np.ndarray
    labels: Any
    source: str
    #: how the outputs are decoded and scored (None: a classifier); ``labels`` are in its form
    task: Task | None = None


@dataclass(frozen=True)
class Check:
    """One pass/fail figure: ``value`` compared with ``limit`` (``<=`` for at-most limits, else ``>=``)."""

    name: str
    value: float
    limit: float
    at_most: bool

    @property
    def passed(self) -> bool:
        """Whether the value is within the limit (NaN never is)."""
        if not np.isfinite(self.value):
            return False
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def describe(self) -> str:
        """``top1_agreement_fraction 0.5000 < limit 0.99``."""
        op = (">" if self.at_most else "<") if not self.passed else ("<=" if self.at_most else ">=")
        return f"{self.name} {self.value:.4g} {op} limit {self.limit:.4g}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "value": float(self.value), "limit": self.limit,
                "comparison": "at_most" if self.at_most else "at_least", "passed": self.passed}


@dataclass
class ValidationResult:
    """What validation found; :meth:`to_dict` is JSON-ready and every figure's key names its unit."""

    artifact: str
    format: str
    sidecar_verified: bool
    runtime: dict[str, Any]
    input: dict[str, Any]
    data: dict[str, Any]
    reference: str | None
    parity: dict[str, Any] | None
    accuracy: dict[str, Any] | None
    latency: dict[str, Any] | None
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(c.passed for c in self.checks)

    def failure_message(self) -> str:
        """One line naming the artifact and each failing figure with its limit ("" when all passed)."""
        failed = [c.describe() for c in self.checks if not c.passed]
        if not failed:
            return ""
        return f"artifact {self.artifact} failed validation ({self.runtime['precision']}): {'; '.join(failed)}"

    def raise_for_failure(self) -> None:
        """Raise :class:`~edgeprune.errors.ValidationFailedError` when a check failed."""
        if not self.passed:
            raise ValidationFailedError(self.failure_message())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, schema :data:`RESULT_SCHEMA`."""
        return {"schema": RESULT_SCHEMA, "artifact": self.artifact, "format": self.format, "passed": self.passed,
                "sidecar_verified": self.sidecar_verified, "runtime": self.runtime, "input": self.input,
                "data": self.data, "reference": self.reference, "parity": self.parity, "accuracy": self.accuracy,
                "latency": self.latency, "checks": [c.to_dict() for c in self.checks]}


def _preprocessing(loaded: LoadedArtifact, given: Preprocessing | None,
                   reference_prep: Preprocessing | None) -> Preprocessing:
    """Normalisation for image data: given > the artifact's sidecar > the reference's plan > ImageNet's."""
    _, c, h, w = loaded.nchw_shape
    spec = loaded.sidecar.input if loaded.sidecar is not None else None
    if given is not None:
        mean, std = given.mean, given.std
    elif spec is not None and spec.mean is not None and spec.std is not None:
        mean, std = spec.mean, spec.std
    elif reference_prep is not None:
        mean, std = reference_prep.mean, reference_prep.std
    else:
        log.warning("the input normalisation of %s is unknown; using ImageNet's mean and std (pass --mean/--std)",
                    loaded.path.name)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if c == 3 else ((0.5,), (0.5,))
    if len(mean) != c or len(std) != c:
        raise InputError(f"mean/std have {len(mean)}/{len(std)} values but {loaded.path.name} takes {c} channel(s)")
    return Preprocessing(h, w, c, tuple(mean), tuple(std))


def _inputs(loaded: LoadedArtifact, data: str | Path | ModelInputs | None, images: int | None, seed: int,
            prep: Preprocessing | None, reference_prep: Preprocessing | None, task: Task | None = None,
            class_map: str | Path | None = None) -> tuple[np.ndarray, Any, str, str]:
    """(NCHW float32 inputs, labels in ``task``'s form or None, source description, how the labels were made)."""
    if isinstance(data, ModelInputs):
        from edgeprune.data.tensors import calibration_indices

        chosen = np.arange(len(data.images)) if images is None or images >= len(data.images) else \
            np.asarray(calibration_indices(len(data.images), images, seed))
        labels = (data.task or ClassificationTask()).subset_truth(data.labels, chosen)
        return np.asarray(data.images, dtype=np.float32)[chosen], labels, data.source, ""
    if data is None:
        n = images or RANDOM_INPUTS
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, *loaded.nchw_shape[1:])).astype(np.float32), None, "random normal inputs", ""
    from edgeprune.data.class_folders import LabelNaming, read_class_map
    from edgeprune.data.loaders import load_dataset
    from edgeprune.data.tensors import calibration_indices, to_model_input

    chosen = _preprocessing(loaded, prep, reference_prep)
    if task is not None and task.name == "detection":
        return (*_detection_inputs(loaded, data, images, seed, chosen), "")
    if task is not None and task.name == "segmentation":
        return (*_segmentation_inputs(loaded, data, images, seed, chosen), "")
    naming = LabelNaming(_classes(loaded), read_class_map(class_map) if class_map is not None else None)
    dataset = load_dataset(data, (chosen.height, chosen.width), chosen.channels, naming)
    if images is not None and images < len(dataset):
        dataset = dataset.subset(calibration_indices(len(dataset), images, seed), f"[{images} images]")
    return to_model_input(dataset.images, chosen).numpy(), dataset.labels, dataset.source, dataset.labels_from


def _label_check(top1: float, images: int, outputs: list[np.ndarray], labels_from: str) -> dict[str, Any] | None:
    """:func:`~edgeprune.data.label_check.label_check` of a classifier's top-1 (``validate`` warns when it is
    ``suspect``)."""
    from edgeprune.data.label_check import label_check

    width = np.asarray(outputs[0]).shape[-1] if outputs else None
    return label_check(top1, images, None if width is None else int(width), labels_from, who="the model")


def _classes(loaded: LoadedArtifact) -> int | None:
    """A classifier artifact's class count (its output's width for one image of zeros); None for other outputs."""
    out = np.asarray(loaded.run(np.zeros((1, *loaded.nchw_shape[1:]), np.float32)))
    return int(out.shape[1]) if out.ndim == 2 else None


def _detection_inputs(loaded: LoadedArtifact, data: str | Path, images: int | None, seed: int, prep: Preprocessing
                      ) -> tuple[np.ndarray, Any, str]:
    """A detector's data (YOLO layout, data.yaml or COCO JSON), letterboxed; labels as boxes when it has them."""
    from edgeprune.data.detection import load_detection_dataset
    from edgeprune.data.tensors import calibration_indices, to_model_input
    from edgeprune.tasks.detection import DetectionTruth

    dataset = load_detection_dataset(data, (prep.height, prep.width))
    if images is not None and images < len(dataset):
        dataset = dataset.subset(calibration_indices(len(dataset), images, seed), f"[{images} images]")
    classes = int(loaded.run(np.zeros((1, *loaded.nchw_shape[1:]), np.float32)).shape[1]) - 4  # (1, 4 + nc, A)
    truth = None if dataset.boxes is None else DetectionTruth(list(dataset.boxes), list(dataset.classes), classes)
    return to_model_input(dataset.images, prep).numpy(), truth, dataset.source


def _segmentation_inputs(loaded: LoadedArtifact, data: str | Path, images: int | None, seed: int,
                         prep: Preprocessing) -> tuple[np.ndarray, Any, str]:
    """A segmenter's data (``images/`` with optional ``masks/``), resized to the input; labels as masks."""
    from edgeprune.data.segmentation import load_segmentation_dataset
    from edgeprune.data.tensors import calibration_indices, to_model_input
    from edgeprune.tasks.segmentation import SegmentationTruth

    dataset = load_segmentation_dataset(data, (prep.height, prep.width))
    if images is not None and images < len(dataset):
        dataset = dataset.subset(calibration_indices(len(dataset), images, seed), f"[{images} images]")
    classes = int(loaded.run(np.zeros((1, *loaded.nchw_shape[1:]), np.float32)).shape[1])  # (1, classes, H, W)
    truth = None if dataset.masks is None else SegmentationTruth(dataset.masks, classes)
    return to_model_input(dataset.images, prep).numpy(), truth, dataset.source


def _reference(reference: nn.Module | str | Path | None, target: Target, allow_factory: str | None = None
               ) -> tuple[TorchRunner | LoadedArtifact | None, Preprocessing | None, str | None]:
    """(runner, its plan's preprocessing, its plan's model spec): the last two only for an edgeprune output."""
    if reference is None:
        return None, None, None
    if isinstance(reference, nn.Module):
        return TorchRunner(reference), None, None
    from edgeprune.export.slim_source import is_slim_source, load_slim_source

    path = Path(reference)
    if is_slim_source(path):
        source = load_slim_source(path, allow_factory=allow_factory)
        return (TorchRunner(source.model, f"slim PyTorch model from {source.plan_path}"), source.preprocessing,
                source.plan.model_spec)
    if not path.exists():
        raise InputError(f"reference {path} not found: give an artifact file, an edgeprune output folder or plan.json")
    return load_artifact(path, target), None, None


#: how each task's parity agreement is described in the result (``agreement_metric``)
_AGREEMENT_METRIC = {"classification": "top-1", "detection": "mAP50-95 against the reference's boxes",
                     "segmentation": "pixel agreement: the share of pixels whose class is the reference's"}


def _parity(name: str, outputs: list[np.ndarray], expected: list[np.ndarray], task: Task) -> dict[str, Any]:
    if outputs[0].shape != expected[0].shape:
        raise ValidationFailedError(f"artifact {name} failed validation: output shape {list(outputs[0].shape)} differs from the reference's "
                                    f"{list(expected[0].shape)}")
    diff = max(float(np.abs(o.astype(np.float64) - e).max()) for o, e in zip(outputs, expected))
    scale = max(float(np.abs(e).max()) for e in expected)
    agree = task.agreement([task.decode(o) for o in outputs], [task.decode(e) for e in expected])
    key = "top1_agreement_fraction" if isinstance(task, ClassificationTask) else "agreement_fraction"
    return {"max_abs_diff_output_units": diff, "output_scale_output_units": scale,
            "max_abs_diff_relative": diff / max(1.0, scale), key: agree,
            "agreement_metric": _AGREEMENT_METRIC.get(task.name, task.agreement_name), "images_count": len(outputs)}


def validate_artifact(
    path: str | Path,
    target: Target,
    *,
    data: str | Path | ModelInputs | None = None,
    reference: nn.Module | str | Path | None = None,
    min_accuracy: float | None = None,
    images: int | None = None,
    preprocessing: Preprocessing | None = None,
    timing: TimingSpec | None = None,
    measure: bool = True,
    device: AgentClient | None = None,
    allow_factory: str | None = None,
    seed: int = 0,
    raise_on_failure: bool = True,
    class_map: str | Path | None = None,
) -> ValidationResult:
    """Validate the model file at ``path`` in its runtime with ``target``'s threads and precision.

    Args:
        path: ``.onnx``, ``.xml`` (``.bin`` beside it) or ``.tflite``, written by edgeprune or not.
        target: threads and precision to run with (a format of another runtime runs on that runtime's CPU
            in fp32: :func:`~edgeprune.export.formats.runtime_target`).
        data: ImageFolder directory or ``.npz``, or :class:`ModelInputs`; None: seeded random inputs of the
            artifact's input shape (enough for a float model's parity, not for a quantized one's, whose
            activation ranges were calibrated on real images).
        reference: PyTorch model, or the path of another artifact, an edgeprune output folder or plan.json.
        min_accuracy: smallest acceptable accuracy in the task's headline metric (top-1; a detector's
            mAP50-95; a segmenter's mIoU), which needs labelled data.
        images: evaluate a seeded subset of this many images (or this many random inputs).
        preprocessing: normalisation for ``data`` (default: the sidecar's, else the reference plan's).
        timing: how to time it (default :class:`TimingSpec`); ``measure=False`` skips timing.
        device: an agent to time it on (:mod:`edgeprune.validate.on_device`) instead of this machine.
        allow_factory: the model factory a reference folder's plan may name (it is imported and run).
        raise_on_failure: raise :class:`~edgeprune.errors.ValidationFailedError` when a check fails, rather
            than returning a result whose ``passed`` is False.
        class_map: a file saying which class index each class folder of ``data`` is
            (:func:`~edgeprune.data.class_folders.read_class_map`); None: by the folder names.

    >>> validate_artifact("out/model.onnx", load_target("cpu"), reference="out")   # doctest: +SKIP
    """
    if min_accuracy is not None and not 0.0 <= min_accuracy <= 1.0:
        raise InputError(f"min accuracy must be a fraction between 0 and 1, got {min_accuracy}")
    if class_map is not None and (data is None or isinstance(data, ModelInputs)):
        raise InputError("--class-map names the class folders of --data: pass --data with class folders")
    loaded = load_artifact(path, target)
    ref, ref_prep, ref_spec = _reference(reference, target, allow_factory)
    if isinstance(ref, LoadedArtifact) and ref.nchw_shape != loaded.nchw_shape:
        raise InputError(f"reference {ref.path.name} takes input {list(ref.nchw_shape)} (NCHW) but "
                         f"{loaded.path.name} takes {list(loaded.nchw_shape)}")
    # the model's task: from the fit's own inputs, else from the reference plan's model (a detector's spec)
    task = (data.task if isinstance(data, ModelInputs) else None) or task_named(task_of_spec(ref_spec or ""))
    x, labels, source, labels_from = _inputs(loaded, data, images, seed, preprocessing, ref_prep, task, class_map)
    if min_accuracy is not None and labels is None:
        raise InputError("a minimum accuracy needs labelled data: pass --data with class folders or an .npz with 'y'")
    outputs = [loaded.run(x[i : i + 1]) for i in range(len(x))]
    checks = [Check("nonfinite_outputs_count", float(sum(int((~np.isfinite(o)).sum()) for o in outputs)), 0.0, True)]
    parity = None
    if ref is not None:
        parity = _parity(str(loaded.path), outputs, [ref.run(x[i : i + 1]) for i in range(len(x))], task)
        limits = tolerance_for(loaded.precision, ref.precision)
        key = "top1_agreement_fraction" if isinstance(task, ClassificationTask) else "agreement_fraction"
        agreement_limit = min_agreement(task.name, loaded.precision, ref.precision)
        parity["limits"] = {"max_abs_diff_relative": limits.max_abs_diff_relative, key: agreement_limit}
        checks += [Check("max_abs_diff_relative", parity["max_abs_diff_relative"], limits.max_abs_diff_relative, True),
                   Check(key, parity[key], agreement_limit, False)]
    accuracy = None
    if labels is not None:
        score = task.score([task.decode(o) for o in outputs], labels)
        accuracy = {f"{k}_fraction" if k != "top1" else "top1_accuracy_fraction": v for k, v in score.metrics.items()}
        accuracy.update({"metric": task.metric_name, "images_count": len(x), "min_accuracy_fraction": min_accuracy})
        if isinstance(task, ClassificationTask) and not isinstance(data, ModelInputs):  # a fit checks its own
            accuracy["label_check"] = _label_check(score.headline, len(x), outputs, labels_from)
        if min_accuracy is not None:
            name = "top1_accuracy_fraction" if isinstance(task, ClassificationTask) else f"{task.metric_key}_fraction"
            checks.append(Check(name, score.headline, min_accuracy, False))
    latency = None
    if measure and device is not None:
        from edgeprune.validate.on_device import latency_on_device

        latency = latency_on_device(loaded, ref if isinstance(ref, LoadedArtifact) else None, device,
                                    (timing or TimingSpec()).min_seconds)
    elif measure:
        stats = loaded.session.time(loaded.feed(x[:1]), timing or TimingSpec())
        latency = {"source": "measured-local", "backend": loaded.target.runtime,
                   "runtime_version": loaded.runtime_version, "device": loaded.target.device,
                   "threads": loaded.target.threads, "precision": loaded.precision, "batch_size": 1,
                   "median_ms": stats.median_ms, "p90_ms": stats.p90_ms, "mean_ms": stats.mean_ms,
                   "min_ms": stats.min_ms, "cv_fraction": stats.cv, "runs_count": stats.runs, "noisy": stats.noisy}
        if isinstance(ref, LoadedArtifact):  # timed against the reference artifact in alternating rounds
            paired = paired_against(ref, loaded, (timing or TimingSpec()).min_seconds, x[:1], x[:1])
            latency["paired_with_reference"] = paired.to_dict()
    result = ValidationResult(
        artifact=str(loaded.path), format=loaded.format, sidecar_verified=loaded.sidecar is not None,
        runtime={"name": loaded.target.runtime, "version": loaded.runtime_version, "device": loaded.target.device,
                 "threads": loaded.target.threads, "precision": loaded.precision, "target": loaded.target.name,
                 "layer_precision": summarise(layer_precisions(loaded.path, loaded.format))},
        input={"name": loaded.input_name, "shape": list(loaded.input_shape), "layout": loaded.layout},
        data={"source": source, "images_count": len(x), "labelled": labels is not None},
        reference=None if ref is None else ref.describe(), parity=parity, accuracy=accuracy, latency=latency,
        checks=checks)
    if raise_on_failure:
        result.raise_for_failure()
    return result
