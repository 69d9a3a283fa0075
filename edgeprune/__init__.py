"""edgeprune: make a trained PyTorch vision model fit a latency budget measured on the target runtime.

Public API::

    import edgeprune
    result = edgeprune.fit("demo", target="cpu", budget="60%")
    result.final_latency_ms, result.accuracy_before, result.accuracy_after   # measured on the target

Importing ``edgeprune`` (or ``edgeprune.agent``) loads no deep-learning framework: ``fit`` loads the
pipeline on first call, and ``load_slim_model`` and ``FitResult`` are imported when first used, so the
on-device agent runs where only a runtime is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeprune._version import __version__
from edgeprune.budget import Budget
from edgeprune.config import FitConfig
from edgeprune.errors import BudgetUnreachableError, EdgepruneError
from edgeprune.fit import fit
from edgeprune.target import Target, load_target

if TYPE_CHECKING:
    from edgeprune.prune.plan import load_slim_model
    from edgeprune.report.fit_result import FitResult

#: public names that need torch, and the module each comes from (imported on first use)
_LAZY = {"load_slim_model": "edgeprune.prune.plan", "FitResult": "edgeprune.report.fit_result"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'edgeprune' has no attribute '{name}'")


__all__ = [
    "Budget",
    "BudgetUnreachableError",
    "EdgepruneError",
    "FitConfig",
    "FitResult",
    "Target",
    "__version__",
    "fit",
    "load_slim_model",
    "load_target",
]
