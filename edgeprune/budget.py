"""Latency budgets: parse ``"20ms"``, ``"1.5 ms"``, ``"0.02s"``, ``"500us"`` into a :class:`Budget`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from edgeprune.errors import BudgetError

_UNIT_TO_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|us|µs)\s*$")


@dataclass(frozen=True)
class Budget:
    """A latency budget in milliseconds (median latency of one inference at batch size 1).

    >>> Budget.parse("1.5 ms").ms
    1.5
    >>> Budget.parse("0.02s").ms
    20.0
    """

    ms: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.ms) or self.ms <= 0:
            raise BudgetError(f"budget must be a positive latency, got {self.ms} ms")

    @classmethod
    def parse(cls, text: "str | float | Budget") -> "Budget":
        """Parse a budget with an explicit unit (ms, s or us); a bare number is refused."""
        if isinstance(text, Budget):
            return text
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            raise BudgetError(
                f"budget {text!r} has no unit; write it with one, e.g. '{text}ms'"
            )
        if not isinstance(text, str):
            raise BudgetError(f"budget must be a string like '20ms', got {type(text).__name__}")
        match = _PATTERN.match(text)
        if match is None:
            stripped = text.strip()
            if re.fullmatch(r"[0-9]*\.?[0-9]+", stripped):
                raise BudgetError(f"budget '{text}' has no unit; write it with one, e.g. '{stripped}ms'")
            raise BudgetError(
                f"cannot read budget '{text}': expected a positive number with a unit, e.g. '20ms', '1.5ms', '0.02s'"
            )
        value, unit = float(match.group(1)), match.group(2)
        ms = value * _UNIT_TO_MS[unit]
        if ms <= 0:
            raise BudgetError(f"budget '{text}' must be greater than zero")
        return cls(ms)

    def __str__(self) -> str:
        return f"{self.ms:g} ms"
