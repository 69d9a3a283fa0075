"""What the user asked for is done, or refused in one line: never skipped in silence.

Two kinds of check:

* :func:`refuse_options_without_effect`, before any work: an option that cannot change this run given the other
  options (``--finetune-lr`` without ``--finetune-epochs``, a sparsity schedule without a fine-tune to run it in,
  ``--search-headroom`` in a fit with no latency search ...) is refused with one line naming what it needs
  (exit code 2). "Given" means set to something other than its default: passing a default explicitly changes
  nothing and is not refused.
* :class:`SkippedOptions`, during the run: an option that the run's own course made moot (``--finetune-epochs``
  when nothing was pruned and no weights were zeroed: there is nothing to recover) is said in a warning when it
  happens and listed in ``report.json``'s ``options_not_used`` with the reason.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from edgeprune.config import FitConfig
from edgeprune.errors import InputError

log = logging.getLogger(__name__)

#: options that only shape a fine-tune: field name → the flag
FINETUNE_OPTIONS = {
    "finetune_lr": "--finetune-lr", "finetune_schedule": "--finetune-schedule", "finetune_augment": "--augment",
    "distill": "--distill", "distill_features": "--distill-features", "train_nproc": "--train-nproc",
    "data_workers": "--data-workers",
}
#: options that only shape the gradual weight pruning a fine-tune runs
SCHEDULE_OPTIONS = {
    "sparsity_schedule": "--sparsity-schedule", "sparsity_initial": "--sparsity-initial",
    "sparsity_begin_step": "--sparsity-begin-step", "sparsity_end_step": "--sparsity-end-step",
    "sparsity_frequency": "--sparsity-frequency",
}
#: options that only shape the latency search (a fit with --budget)
SEARCH_OPTIONS = {
    "importance": "--importance", "allocation": "--allocation", "table_dir": "--table-dir", "steps": "--steps",
    "max_rounds": "--max-rounds", "search_headroom": "--search-headroom", "prune_blocks": "--prune-blocks",
}


def _defaults() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(FitConfig):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
    return values


def given(config: FitConfig) -> set[str]:
    """The fields of ``config`` set to something other than their defaults."""
    defaults = _defaults()
    return {name for name, default in defaults.items() if getattr(config, name) != default}


def refuse_options_without_effect(config: FitConfig) -> None:
    """Raise :class:`InputError` (one line) for the first option that cannot change this run."""
    chosen = given(config)
    finetunes = config.finetune_epochs > 0 or config.qat_epochs > 0
    for name, flag in FINETUNE_OPTIONS.items():
        if name in chosen and not finetunes:
            raise InputError(f"{flag} shapes a fine-tune, and this run has none: add --finetune-epochs N (or "
                             f"--qat-epochs N), or leave {flag} out")
    weight_pruning = config.sparsity is not None or config.size_budget is not None
    for name, flag in SCHEDULE_OPTIONS.items():
        if name in chosen and not weight_pruning:
            raise InputError(f"{flag} shapes weight pruning, and this run has none: add --sparsity F or "
                             f"--size-budget SIZE, or leave {flag} out")
        if name in chosen and config.finetune_epochs == 0:
            raise InputError(f"{flag} is the schedule of weight pruning during a fine-tune; without "
                             "--finetune-epochs the weights are pruned in one shot: add --finetune-epochs N, or "
                             f"leave {flag} out")
    if "sparsity_scope" in chosen and not weight_pruning:
        raise InputError("--sparsity-scope shapes weight pruning, and this run has none: add --sparsity F or "
                         "--size-budget SIZE, or leave it out")
    if config.budget is None:
        for name, flag in SEARCH_OPTIONS.items():
            if name in chosen:
                raise InputError(f"{flag} shapes the latency search, and a size-only fit (no --budget) has none: "
                                 f"add --budget, or leave {flag} out")
    if "table_dir" in chosen and config.allocation == "uniform":
        raise InputError("--table-dir keeps the latency tables of --allocation latency; --allocation uniform uses "
                         "none: leave one of them out")
    if "class_map" in chosen and config.data is None and config.train_data is None:
        raise InputError("--class-map maps the class folders of --data or --train-data, and neither is given: add "
                         "--data DIR, or leave --class-map out")
    if "device_token" in chosen and not config.device:
        raise InputError("--device-token is the agent's token, and no --device is given: add --device URL, or leave "
                         "--device-token out")


@dataclass
class SkippedOptions:
    """Options the run's course made moot, each said when it happens and kept for ``report.json``."""

    entries: list[dict[str, str]] = field(default_factory=list)

    def skip(self, flag: str, reason: str) -> None:
        """Log that ``flag`` was given but had no effect, and why."""
        log.warning("%s was given but not used: %s", flag, reason)
        self.entries.append({"option": flag, "reason": reason})

    def to_list(self) -> list[dict[str, str]]:
        """``report.json``'s ``options_not_used``."""
        return list(self.entries)


def moot_options(config: FitConfig, *, finetuned: bool, pruned: bool, scored: bool,
                 why_unpruned: str) -> list[dict[str, str]]:
    """The options given that the run's course made moot, each logged as a warning; ``report.json``'s
    ``options_not_used``.

    ``finetuned``: a fine-tune ran (recovery or gradual weight pruning); ``pruned``: channels or blocks were
    removed; ``scored``: channel importance was computed; ``why_unpruned``: why nothing was removed, in words.
    """
    chosen = given(config)
    skipped = SkippedOptions()
    if config.finetune_epochs > 0 and not finetuned:
        skipped.skip("--finetune-epochs", f"nothing was pruned and no weight was zeroed ({why_unpruned}), so there "
                     "was nothing to recover; the model ships as measured, not fine-tuned")
    if not pruned:
        for name, flag in (("reconstruct", "--reconstruct"), ("bn_recalibrate", "--bn-recalibrate")):
            if name in chosen and getattr(config, name):
                skipped.skip(flag, f"nothing was pruned ({why_unpruned}), so there was no layer to refit")
        if config.prune_blocks:
            skipped.skip("--prune-blocks", f"no block had to go ({why_unpruned})")
    if not scored and "importance" in chosen:
        skipped.skip("--importance", f"no channel had to be scored ({why_unpruned})")
    return skipped.to_list()
