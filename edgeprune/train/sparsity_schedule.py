"""Sparsity schedules for gradual weight pruning during a fine-tune, as TF-MOT defines them.

:class:`PolynomialDecay` is TF-MOT's ``tfmot.sparsity.keras.PolynomialDecay`` (Zhu & Gupta 2017, "To prune, or not
to prune"): at step ``t`` the target sparsity is

    s_t = s_f + (s_i - s_f) * (1 - p) ** power,   p = clip((t - begin_step) / (end_step - begin_step), 0, 1)

(``power`` 3 by default), and the masks are updated when ``begin_step <= t <= end_step`` and
``(t - begin_step) % frequency == 0``. :class:`ConstantSparsity` is ``tfmot.sparsity.keras.ConstantSparsity``: the
same update rule at one sparsity (``end_step = -1``: until the end of training). One addition to TF-MOT's rule:
``end_step`` itself is always an update step, so the final sparsity is reached even when ``end_step - begin_step``
is not a multiple of ``frequency`` (TF-MOT would stop at the last multiple, short of it).

:class:`GradualPruning` is the fine-tune loop's ``on_step`` callback: after optimiser step ``t`` it updates the
masks when the schedule says so. Between updates the masks stay on the weights (``torch.nn.utils.prune``'s
forward pre-hook multiplies them in on every forward pass, :mod:`edgeprune.prune.sparsity`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from torch import nn

from edgeprune.prune.sparsity import WeightMasks

log = logging.getLogger(__name__)

SPARSITY_SCHEDULES = ("constant", "polynomial")
#: TF-MOT's default update frequency (steps)
TFMOT_FREQUENCY = 100


def _check_sparsity(value: float, name: str) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _in_range(step: int, begin: int, end: int, frequency: int) -> bool:
    """TF-MOT's ``_should_prune_in_step`` (``end < 0``: no end), plus ``step == end``."""
    if step < begin or (end >= 0 and step > end):
        return False
    return (step - begin) % frequency == 0 or step == end


class SparsitySchedule(Protocol):
    """Which steps update the masks, and the sparsity they are updated to."""

    def sparsity(self, step: int) -> float: ...

    def should_prune(self, step: int) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PolynomialDecay:
    """TF-MOT's polynomial-decay schedule (see the module's docstring for the formula)."""

    initial_sparsity: float
    final_sparsity: float
    begin_step: int
    end_step: int
    power: float = 3.0
    frequency: int = TFMOT_FREQUENCY

    def __post_init__(self) -> None:
        _check_sparsity(self.initial_sparsity, "initial sparsity")
        _check_sparsity(self.final_sparsity, "final sparsity")
        if self.begin_step < 0:
            raise ValueError(f"begin step must be >= 0, got {self.begin_step}")
        if self.end_step <= self.begin_step:
            raise ValueError(f"end step ({self.end_step}) must be after the begin step ({self.begin_step})")
        if self.frequency <= 0:
            raise ValueError(f"frequency must be > 0, got {self.frequency}")

    def sparsity(self, step: int) -> float:
        """The target sparsity at ``step``."""
        p = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - p) ** self.power

    def should_prune(self, step: int) -> bool:
        """Whether the masks are updated at ``step``."""
        return _in_range(step, self.begin_step, self.end_step, self.frequency)

    def to_dict(self) -> dict[str, Any]:
        """For the report."""
        return {"schedule": "polynomial", **asdict(self)}


@dataclass(frozen=True)
class ConstantSparsity:
    """TF-MOT's constant schedule: ``target_sparsity`` at every update step from ``begin_step``."""

    target_sparsity: float
    begin_step: int = 0
    end_step: int = -1
    frequency: int = TFMOT_FREQUENCY

    def __post_init__(self) -> None:
        _check_sparsity(self.target_sparsity, "target sparsity")
        if self.begin_step < 0 or self.frequency <= 0 or (self.end_step != -1 and self.end_step < self.begin_step):
            raise ValueError(f"invalid steps: begin {self.begin_step}, end {self.end_step}, "
                             f"frequency {self.frequency}")

    def sparsity(self, step: int) -> float:
        """The target sparsity (the same at every step)."""
        return self.target_sparsity

    def should_prune(self, step: int) -> bool:
        """Whether the masks are updated at ``step``."""
        return _in_range(step, self.begin_step, self.end_step, self.frequency)

    def to_dict(self) -> dict[str, Any]:
        """For the report."""
        return {"schedule": "constant", **asdict(self)}


def default_steps(total_steps: int, begin_step: int | None = None, end_step: int | None = None,
                  frequency: int | None = None) -> tuple[int, int, int]:
    """(begin, end, frequency) for a fine-tune of ``total_steps`` optimiser steps, where not given.

    Begin at step 0; end after three quarters of the fine-tune, so that the last quarter recovers at the final
    sparsity (Zhu & Gupta end pruning before the learning rate is small); update every 100 steps as TF-MOT
    does, or more often when that would give fewer than 10 updates (a short fine-tune).
    """
    begin = 0 if begin_step is None else begin_step
    end = max(begin + 1, round(0.75 * total_steps)) if end_step is None else end_step
    freq = frequency if frequency is not None else max(1, min(TFMOT_FREQUENCY, (end - begin) // 10))
    return begin, end, freq


class GradualPruning:
    """The fine-tune's ``on_step`` callback: masks updated where ``schedule`` says, logged as they go."""

    def __init__(self, masks: WeightMasks, schedule: SparsitySchedule) -> None:
        self.masks, self.schedule = masks, schedule
        self.history: list[tuple[int, float]] = []

    def start(self) -> None:
        """Install the masks at step 0's sparsity (the schedule's first update, before the first step)."""
        first = self.schedule.sparsity(0) if self.schedule.should_prune(0) else 0.0
        self.masks.apply(first)
        self.history.append((0, first))

    def __call__(self, model: nn.Module, step: int) -> None:
        if self.schedule.should_prune(step):
            target = self.schedule.sparsity(step)
            self.masks.apply(target)
            self.history.append((step, target))
            log.debug("step %d: weight sparsity %.3f", step, target)
