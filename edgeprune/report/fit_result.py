"""The result of a fit run: the same facts as ``report.json``, with typed accessors for Python users."""

from __future__ import annotations

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
        """The latency budget in milliseconds."""
        return float(self.report["budget_ms"])

    @property
    def baseline_latency_ms(self) -> float:
        """Measured median latency of the original model on the target."""
        return float(self.report["baseline"]["latency"]["median_ms"])

    @property
    def final_latency_ms(self) -> float:
        """Measured median latency of the pruned, exported model on the target."""
        return float(self.report["final"]["latency"]["median_ms"])

    @property
    def accuracy_before(self) -> float | None:
        """Top-1 of the original model's artifact on the evaluation data (None without labels)."""
        value = self.report["baseline"]["top1"]
        return None if value is None else float(value)

    @property
    def accuracy_after(self) -> float | None:
        """Top-1 of the pruned artifact on the evaluation data (None without labels)."""
        value = self.report["final"]["top1"]
        return None if value is None else float(value)

    @property
    def files(self) -> dict[str, Path]:
        """Files written, by role."""
        return {k: Path(v) for k, v in self.report["files"].items()}

    @property
    def out_dir(self) -> Path:
        """The output directory."""
        return Path(self.report["out_dir"])
