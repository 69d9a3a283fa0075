"""The result of a fit run: the same facts as ``report.json``, with typed accessors for Python users."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_SCHEMA = "edgeprune.fit-report/1"


@dataclass(frozen=True)
class FitResult:
    """What ``edgeprune.fit`` returns; ``report`` is exactly what was written to ``report.json``.

    >>> result = edgeprune.fit("demo", budget="1ms")             # doctest: +SKIP
    >>> result.final_latency_ms <= result.budget_ms                 # doctest: +SKIP
    True
    """

    report: dict[str, Any]

    @property
    def budget_ms(self) -> float:
        """The latency budget in milliseconds; infinite in a size-only fit (no latency budget)."""
        budget = self.report["budget_ms"]
        return math.inf if budget is None else float(budget)

    @property
    def baseline_latency_ms(self) -> float:
        """Measured median latency of the original model on the target."""
        return float(self.report["baseline"]["latency"]["median_ms"])

    @property
    def final_latency_ms(self) -> float:
        """Measured median latency of the pruned, exported model on the target."""
        return float(self.report["final"]["latency"]["median_ms"])

    @property
    def metric_name(self) -> str:
        """What :attr:`accuracy_before` and :attr:`accuracy_after` measure: ``top-1``, a detector's ``mAP50-95`` or
        a segmenter's ``mIoU``."""
        return str((self.report.get("evaluation") or {}).get("metric", "top-1"))

    @property
    def accuracy_before(self) -> float | None:
        """The original artifact's accuracy on the evaluation data in :attr:`metric_name` (None without labels)."""
        return headline_accuracy(self.report["baseline"])

    @property
    def accuracy_after(self) -> float | None:
        """The pruned artifact's accuracy on the evaluation data in :attr:`metric_name` (None without labels)."""
        return headline_accuracy(self.report["final"])

    @property
    def files(self) -> dict[str, Path]:
        """Files written, by role."""
        return {k: Path(v) for k, v in self.report["files"].items()}

    @property
    def out_dir(self) -> Path:
        """The output directory."""
        return Path(self.report["out_dir"])


#: the headline metric of each task other than classification, as report.json's ``metrics`` names it
_HEADLINE_KEYS = ("map50_95", "miou")


def headline_accuracy(side: dict[str, Any]) -> float | None:
    """A report side's accuracy: top-1, else a detector's mAP50-95 or a segmenter's mIoU; None without labels."""
    value = side.get("top1")
    metrics = side.get("metrics") or {}
    for key in _HEADLINE_KEYS:
        if value is None:
            value = metrics.get(key)
    return None if value is None else float(value)


def budget_words(report: dict[str, Any]) -> str:
    """The latency budget of a fit report in words: ``budget 1.234 ms``, or that a size-only fit had none."""
    budget = report.get("budget_ms")
    return "no latency budget (size-only fit)" if budget is None else f"budget {float(budget):.3f} ms"
