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
