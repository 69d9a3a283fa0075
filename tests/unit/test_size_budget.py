"""--size-budget parsing: decimal and binary units, shares of the original, one clear line for the rest."""

from __future__ import annotations

import pytest

from edgeprune.budget import SizeBudget
from edgeprune.errors import BudgetError


@pytest.mark.parametrize(("text", "expected"), [("2MB", 2_000_000), ("2 mb", 2_000_000), ("500kB", 500_000),
                                                ("1.5MiB", 1_572_864), ("64KiB", 65_536), ("1200B", 1200),
                                                ("0.001GB", 1_000_000)])
def test_absolute_sizes(text: str, expected: int) -> None:
    assert SizeBudget.parse(text).bytes == expected


def test_relative_size_resolves_against_the_original() -> None:
    budget = SizeBudget.parse("40%")
    assert budget.relative and budget.resolve(original_bytes=2_500_000) == 1_000_000


@pytest.mark.parametrize(("text", "message"), [("2", "has no unit"), ("2 parsecs", "cannot read size budget"),
                                               ("0MB", "at least one byte"), ("150%", r"\(0, 100\]"),
                                               ("-3MB", "cannot read"), ("0%", r"\(0, 100\]")])
def test_bad_size_budgets_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(BudgetError, match=message) as info:
        SizeBudget.parse(text)
    assert "\n" not in str(info.value)
