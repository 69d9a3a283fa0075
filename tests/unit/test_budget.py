"""edgeprune.budget: parsing and resolving latency budgets."""

from __future__ import annotations

import pytest

from edgeprune.budget import Budget
from edgeprune.errors import BudgetError, EdgepruneError, InputError


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("20ms", 20.0),
        ("1.5 ms", 1.5),
        ("0.02s", 20.0),
        ("500us", 0.5),
        ("500µs", 0.5),
        ("  7 ms  ", 7.0),
        (".5ms", 0.5),
        ("2e1ms", 20.0),
        ("1s", 1000.0),
    ],
)
def test_absolute_budgets_parse_to_milliseconds(text: str, ms: float) -> None:
    budget = Budget.parse(text)
    assert budget.ms == pytest.approx(ms)
    assert budget.fraction is None
    assert not budget.relative
    assert budget.resolve(baseline_ms=123.0) == pytest.approx(ms)  # the baseline is irrelevant


@pytest.mark.parametrize(("text", "fraction", "resolved"), [("60%", 0.6, 6.0), ("100%", 1.0, 10.0), ("12.5 %", 0.125, 1.25)])
def test_relative_budget_resolves_against_baseline(text: str, fraction: float, resolved: float) -> None:
    budget = Budget.parse(text)
    assert budget.relative
    assert budget.ms is None
    assert budget.fraction == pytest.approx(fraction)
    assert budget.resolve(baseline_ms=10.0) == pytest.approx(resolved)


@pytest.mark.parametrize(
    "text", ["20", "-3ms", "fast", "0ms", "0%", "150%", "", "   ", "20 mss", "ms", "-20", "0", "1e400ms", "20 ms 5"]
)
def test_invalid_budgets_raise_budget_error(text: str) -> None:
    with pytest.raises(BudgetError):
        Budget.parse(text)


def test_bare_number_message_suggests_a_unit() -> None:
    with pytest.raises(BudgetError, match=r"no unit.*'20ms'"):
        Budget.parse("20")


def test_budget_error_is_input_error_with_exit_code_2() -> None:
    assert issubclass(BudgetError, InputError)
    assert issubclass(BudgetError, EdgepruneError)
    with pytest.raises(BudgetError) as info:
        Budget.parse("fast")
    assert info.value.exit_code == 2
    assert "fast" in str(info.value)


def test_non_string_budget_is_refused() -> None:
    with pytest.raises(BudgetError, match="no unit"):
        Budget.parse(20)  # type: ignore[arg-type]


def test_parse_passes_a_budget_through() -> None:
    budget = Budget(ms=3.0)
    assert Budget.parse(budget) is budget


@pytest.mark.parametrize(
    "kwargs", [{}, {"ms": 1.0, "fraction": 0.5}, {"ms": -1.0}, {"ms": float("nan")}, {"fraction": 1.5}, {"fraction": 0.0}]
)
def test_direct_construction_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(BudgetError):
        Budget(**kwargs)


def test_str() -> None:
    assert str(Budget.parse("20ms")) == "20 ms"
    assert str(Budget.parse("60%")) == "60% of the baseline"
