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


#: size units: decimal (kB, MB, as disk and network sizes are given) and binary (KiB, MiB); case-insensitive
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(rf"^\s*{_NUMBER}\s*([kmg]i?b|b)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SizeBudget:
    """A size budget on the shipped artifact's bytes after standard compression (zip, deflate): absolute
    (``bytes``; ``2MB`` = 2,000,000 bytes, ``2MiB`` = 2,097,152) or a share of the original model's artifact,
    compressed the same way (``fraction``; ``40%``).

    >>> SizeBudget.parse("2MB").bytes
    2000000
    >>> SizeBudget.parse("1.5 KiB").bytes
    1536
    >>> SizeBudget.parse("40%").resolve(original_bytes=1000)
    400
    """

    bytes: int | None = None
    fraction: float | None = None

    def __post_init__(self) -> None:
        if (self.bytes is None) == (self.fraction is None):
            raise BudgetError("a size budget is either absolute (bytes) or relative (a share of the original)")
        if self.bytes is not None and self.bytes <= 0:
            raise BudgetError(f"size budget must be positive, got {self.bytes} bytes")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise BudgetError(f"a relative size budget must be in (0, 100%], got {100 * self.fraction:g}%")

    @classmethod
    def parse(cls, text: "str | SizeBudget") -> "SizeBudget":
        """Parse ``2MB``, ``500kB``, ``1.5MiB``, ``300000B`` or ``40%``; a bare number is refused."""
        if isinstance(text, SizeBudget):
            return text
        if not isinstance(text, str):
            raise BudgetError(f"size budget {text!r} has no unit; write it as a string with one, e.g. '2MB'")
        match = _SIZE.match(text)
        if match is not None:
            value = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
            if not math.isfinite(value) or value < 1:
                raise BudgetError(f"size budget '{text}' must be at least one byte")
            return cls(bytes=int(value))
        match = _RELATIVE.match(text)
        if match is not None:
            percent = float(match.group(1))
            if not 0 < percent <= 100:
                raise BudgetError(f"size budget '{text}' must be a percentage in (0, 100]")
            return cls(fraction=percent / 100.0)
        stripped = text.strip()
        if re.fullmatch(r"[-+]?[0-9]*\.?[0-9]+", stripped):
            raise BudgetError(f"size budget '{text}' has no unit; write it with one, e.g. '{stripped}MB' "
                              "(kB/MB/GB = 1000-based, KiB/MiB/GiB = 1024-based, B = bytes)")
        raise BudgetError(
            f"cannot read size budget '{text}': expected a size with a unit ('2MB', '500kB', '1.5MiB'; kB/MB are "
            "1000-based, KiB/MiB 1024-based) or a share of the original artifact's compressed size ('40%')"
        )

    @property
    def relative(self) -> bool:
        """Whether the budget is a share of the original artifact's compressed size."""
        return self.fraction is not None

    def resolve(self, original_bytes: int) -> int:
        """The budget in compressed bytes, given the original artifact's compressed size."""
        if self.bytes is not None:
            return self.bytes
        assert self.fraction is not None
        return int(self.fraction * original_bytes)

    def __str__(self) -> str:
        if self.bytes is not None:
            return f"{self.bytes:,} bytes compressed"
        return f"{100 * (self.fraction or 0):g}% of the original artifact's compressed size"
