"""Tasks by name (``ModelBundle.task``)."""

from __future__ import annotations

from edgeprune.tasks.base import Task


def task_named(name: str) -> Task:
    """The task ``name`` (``classification``, ``detection``); detection loads its metric code on first use."""
    if name == "classification":
        from edgeprune.tasks.classification import ClassificationTask

        return ClassificationTask()
    if name == "detection":
        from edgeprune.tasks.detection import DetectionTask

        return DetectionTask()
    raise ValueError(f"unknown task '{name}' (known: classification, detection)")


def task_of_spec(spec: str) -> str:
    """The task of the model a ``--model`` spec names (without building it): ``ultralytics:`` YAMLs are
    detectors; everything else is a classifier."""
    return "detection" if spec.startswith("ultralytics:") else "classification"
