"""Running out of measured rounds inside the search is a budget message, never an internal error (issue 19).

The search (uniform: no latency table to build) is made to run out on its first call (the run's own handling is what is tested; the demo model,
real ONNX Runtime timings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import edgeprune
from edgeprune.errors import BudgetUnreachableError
from edgeprune.fit.loop.base import RoundsExhausted
from edgeprune.fit.loop.uniform import UniformBisection


def test_rounds_exhausted_inside_the_search_is_a_budget_message(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_rounds(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RoundsExhausted()

    monkeypatch.setattr(UniformBisection, "first", out_of_rounds)
    with pytest.raises(BudgetUnreachableError, match=r"within 12 measured rounds \(raise --max-rounds"):
        edgeprune.fit("demo", target="cpu", budget="50%", out=tmp_path / "out", allocation="uniform", precision="fp32")
