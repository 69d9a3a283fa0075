"""edgeprune: make a trained PyTorch vision model fit a latency budget measured on the target runtime.

Public API::

    import edgeprune
    result = edgeprune.fit("demo", target="cpu", budget="60%")
    result.final_latency_ms, result.accuracy_before, result.accuracy_after   # measured on the target
"""

from edgeprune._version import __version__
from edgeprune.budget import Budget
from edgeprune.config import FitConfig
from edgeprune.errors import BudgetUnreachableError, EdgepruneError
from edgeprune.pipeline import fit_api as fit
from edgeprune.prune.plan import load_slim_model
from edgeprune.report.fit_result import FitResult
from edgeprune.target import Target, load_target

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
