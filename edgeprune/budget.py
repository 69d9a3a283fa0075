"""Latency budgets: ``"20ms"``, ``"1.5 ms"``, ``"0.02s"``, ``"500us"``, or relative: ``"60%"`` of the baseline.

A relative budget is resolved against the original model's latency *measured on the target in the same
run*, which makes commands such as the demo portable across machines.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from edgeprune.errors import BudgetError

_UNIT_TO_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}
_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_ABSOLUTE = re.compile(rf"^\s*{_NUMBER}\s*(ms|s|us|µs)\s*$")
_RELATIVE = re.compile(rf"^\s*{_NUMBER}\s*%\s*$")


@dataclass(frozen=True)
class Budget:
    """A latency budget: absolute (``ms``) or relative to the measured baseline (``fraction``).

    The latency compared against it is the median of single-inference latency at batch size 1.

    >>> Budget.parse("1.5 ms").ms
    1.5
    >>> Budget.parse("0.02s").ms
    20.0
    >>> Budget.parse("60%").resolve(baseline_ms=10.0)
    6.0
    """

    ms: float | None = None
    fraction: float | None = None

    def __post_init__(self) -> None:
        if (self.ms is None) == (self.fraction is None):
            raise BudgetError("a budget is either absolute (ms) or relative (fraction of the baseline)")
        value = self.ms if self.ms is not None else self.fraction
        assert value is not None
        if not math.isfinite(value) or value <= 0:
            raise BudgetError(f"budget must be a positive, finite number, got {value}")
        if self.fraction is not None and self.fraction > 1:
            raise BudgetError(f"a relative budget must be at most 100% of the baseline, got {100 * self.fraction:g}%")

    @classmethod
    def parse(cls, text: "str | Budget") -> "Budget":
        """Parse a budget with an explicit unit (ms, s, us) or a percentage; a bare number is refused."""
        if isinstance(text, Budget):
            return text
        if not isinstance(text, str):
            raise BudgetError(f"budget {text!r} has no unit; write it as a string with one, e.g. '{text}ms'")
        match = _ABSOLUTE.match(text)
        if match is not None:
            ms = float(match.group(1)) * _UNIT_TO_MS[match.group(2)]
            if not math.isfinite(ms):
                raise BudgetError(f"budget '{text}' is too large to be a latency; write it as e.g. '20ms'")
            if ms <= 0:
                raise BudgetError(f"budget '{text}' must be greater than zero")
            return cls(ms=ms)
        match = _RELATIVE.match(text)
        if match is not None:
            percent = float(match.group(1))
            if not 0 < percent <= 100:
                raise BudgetError(f"budget '{text}' must be a percentage in (0, 100]")
            return cls(fraction=percent / 100.0)
        stripped = text.strip()
        if re.fullmatch(r"[-+]?[0-9]*\.?[0-9]+", stripped):
            if stripped.startswith("-") or float(stripped) <= 0:
                raise BudgetError(f"budget '{text}' must be a positive latency, e.g. '20ms'")
            raise BudgetError(f"budget '{text}' has no unit; write it with one, e.g. '{stripped}ms'")
        raise BudgetError(
            f"cannot read budget '{text}': expected a positive latency with a unit ('20ms', '1.5ms', '0.02s') "
            "or a share of the measured baseline ('60%')"
        )

    @property
    def relative(self) -> bool:
        """Whether the budget is a share of the measured baseline."""
        return self.fraction is not None

    def resolve(self, baseline_ms: float) -> float:
        """The budget in milliseconds, given the baseline latency measured on the target."""
        if self.ms is not None:
            return self.ms
        assert self.fraction is not None
        return self.fraction * baseline_ms

    def __str__(self) -> str:
        return f"{self.ms:g} ms" if self.ms is not None else f"{100 * (self.fraction or 0):g}% of the baseline"
