"""The ``fit`` pipeline: one run, stage by stage, from a trained model to a measured, shipped artifact.

1. :mod:`~edgeprune.fit.inputs` resolves the model, its weights, preprocessing and data, and checks that
   they fit together before any work is done.
2. :mod:`~edgeprune.fit.run` finds the channel groups and scores them, measures the original on the target,
   and, with ``--prune-blocks``, lets :mod:`~edgeprune.fit.depth` remove whole residual blocks first.
3. An allocation strategy from :mod:`edgeprune.fit.loop` proposes widths (the latency-table search, or one
   uniform keep ratio); every candidate is exported and measured on the target, and a miss recalibrates the
   strategy (the closed loop, also in :mod:`~edgeprune.fit.run`).
4. :mod:`~edgeprune.fit.recover` restores accuracy: least-squares reconstruction, batch-norm statistics,
   fine-tuning with rewinding and distillation; the recovered model's latency is confirmed again.
5. :mod:`~edgeprune.fit.finish` evaluates both artifacts in the target's runtime, and
   :mod:`~edgeprune.fit.artifacts` exports and validates every runtime's artifact; plan, weights, reports
   and plots go into the output directory (:mod:`~edgeprune.fit.outputs`) by atomic renames.

:mod:`~edgeprune.fit.pipeline` wires the stages together; :mod:`~edgeprune.fit.resume` journals
measurements and fine-tune checkpoints so that ``--resume`` continues an interrupted run.

This package's ``__init__`` imports nothing heavy: ``edgeprune.fit`` (the attribute of the top-level
package) is the :func:`fit` function below, which loads the pipeline on first call. Reach the stage modules
with ``from edgeprune.fit.run import FitRun``; ``import edgeprune.fit.run as m`` does not work, because
the name ``edgeprune.fit`` is the function.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeprune.report.fit_result import FitResult


def fit(model: str = "demo", data: str | Path | None = None, target: str = "cpu", budget: str | None = "2ms",
        **options: Any) -> FitResult | None:
    """Python API mirroring ``edgeprune fit``: ``edgeprune.fit("demo", target="cpu", budget="1ms")``.

    Keyword options are the fields of :class:`~edgeprune.config.FitConfig` (``weights``, ``out``,
    ``finetune_epochs`` ...). Returns the :class:`~edgeprune.report.fit_result.FitResult` with the measured
    latencies and accuracies; raises :class:`~edgeprune.errors.BudgetUnreachableError` when no candidate
    meets the budget. ``budget=None`` with ``size_budget`` or ``sparsity`` is a size-only fit (no latency budget:
    no channel is pruned, the latency is measured and reported). Under torchrun (data-parallel fine-tuning),
    ranks other than 0 return None.
    """
    from edgeprune.fit.pipeline import fit_api

    return fit_api(model, data, target, budget, **options)


__all__ = ["fit"]
