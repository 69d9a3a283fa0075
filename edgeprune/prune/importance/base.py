"""The importance-criterion interface and its registry (``--importance NAME``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from edgeprune.errors import UnknownNameError
from edgeprune.prune.groups import ChannelGroup


@dataclass
class ScoringContext:
    """What a criterion may look at: the model, and calibration inputs (may be empty for data-free criteria).

    ``labels`` (optional, one class index per calibration image) lets gradient-based criteria such as
    ``taylor`` use ground truth instead of the model's own predictions.
    """

    model: nn.Module
    calibration: torch.Tensor | None = None
    labels: torch.Tensor | None = None


class Importance(Protocol):
    """Scores every channel of a group; higher means more worth keeping."""

    name: ClassVar[str]

    def prepare(self, ctx: ScoringContext) -> None:
        """One-off work before scoring (passes over calibration data)."""
        ...

    def score(self, group: ChannelGroup, ctx: ScoringContext) -> np.ndarray:
        """One non-negative score per channel of ``group`` (length ``group.width``)."""
        ...


_REGISTRY: dict[str, type] = {}


def register_importance(cls: type) -> type:
    """Class decorator adding a criterion to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def get_importance(name: str) -> Importance:
    """A new instance of the criterion called ``name``; an unknown name lists the known ones."""
    cls = _REGISTRY.get(name.lower())
    if cls is None:
        raise UnknownNameError("importance criterion", name, _REGISTRY)
    instance: Importance = cls()
    return instance


def importance_names() -> list[str]:
    """Registered criterion names."""
    return sorted(_REGISTRY)
