"""Tasks by name (``ModelBundle.task``)."""

from __future__ import annotations

from edgeprune.tasks.base import Task


def task_named(name: str) -> Task:
    """The task ``name`` (``classification``, ``detection``, ``segmentation``); each loads its metric code on first use."""
    if name == "classification":
        from edgeprune.tasks.classification import ClassificationTask

        return ClassificationTask()
    if name == "detection":
        from edgeprune.tasks.detection import DetectionTask

        return DetectionTask()
    if name == "segmentation":
        from edgeprune.tasks.segmentation import SegmentationTask

        return SegmentationTask()
    raise ValueError(f"unknown task '{name}' (known: classification, detection, segmentation)")


def task_of_spec(spec: str) -> str:
    """The task of the model a ``--model`` spec names (without building it): ``ultralytics:`` YAMLs are
    detectors, torchvision's segmentation models segmenters; everything else is a classifier."""
    if spec.startswith("ultralytics:"):
        return "detection"
    if spec.startswith("torchvision:"):
        import torchvision

        if spec.split(":", 1)[1] in torchvision.models.list_models(module=torchvision.models.segmentation):
            return "segmentation"
    return "classification"
