"""The trial cut: a last check that every prunable group can really lose a channel.

Groups come from a traced graph, and a user's model can hold constructs the graph does not see (a custom
module that reshapes by a fixed width, a functional op that assumes divisibility). Before any scoring, one
channel is removed from every prunable group of a copy of the model and the copy runs one forward pass.
When that fails, the groups are bisected to the ones whose removal fails, and each is frozen with a reason
naming the module and the error, so the run goes on with what can be pruned instead of failing later in
the search or the export.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch import nn

from edgeprune.errors import first_line
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.groups import ChannelGroup
from edgeprune.prune.module_errors import ModuleTracker
from edgeprune.prune.surgery import slim_copy

log = logging.getLogger(__name__)


def _trial(model: nn.Module, example: torch.Tensor, expected: tuple[int, ...], groups: Sequence[ChannelGroup],
           frozen_modules: Sequence[str]) -> tuple[str, str | None] | None:
    """Remove the last channel (the last run, for a group cut in runs) of each group in a copy and run it.

    None when that works, else (what failed, the name of the module it failed in when known).
    """
    keep = {g.name: list(range(g.width - g.unit)) for g in groups}
    try:
        slim = slim_copy(model, example, keep, frozen_modules)
    except Exception as exc:
        return f"channel surgery fails ({type(exc).__name__}: {first_line(exc, 200)})", None
    tracker = ModuleTracker(slim)
    try:
        with torch.no_grad():
            out = slim(example)
    except Exception as exc:
        where = tracker.where()
        place = f" in module '{where[0]}' ({where[1]})" if where else ""
        return f"the pruned model fails{place}: {type(exc).__name__}: {first_line(exc, 200)}", where[0] if where else None
    finally:
        tracker.remove()
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape is not None and shape != expected:
        return f"the pruned model's output changes shape ({list(expected)} to {list(shape)})", None
    return None


def _inside(group: ChannelGroup, module: str) -> bool:
    """Whether one of the group's members is ``module`` or lies inside it."""
    return any(m.module == module or m.module.startswith(module + ".") for m in group.members)


def freeze_untrimmable(model: nn.Module, example: torch.Tensor, graph: ModelGraph,
                       frozen_modules: Sequence[str] = ()) -> list[ChannelGroup]:
    """Freeze (in ``graph``) every prunable group that cannot lose a channel; returns the groups frozen.

    One trial covers every group; a model that passes it costs one copy and one forward pass. On a failure,
    the groups with a member inside the module that failed are tried first (usually the culprit, found in one
    or two more trials), else all remaining groups are bisected; the culprits are frozen and the rest tried
    again, until a trial passes.
    """
    pending = [g for g in graph.prunable_groups() if g.width > g.unit]
    if not pending:
        return []
    with torch.no_grad():
        out = model.eval()(example)
    expected = tuple(out.shape) if isinstance(out, torch.Tensor) else ()

    def trial(groups: Sequence[ChannelGroup]) -> tuple[str, str | None] | None:
        return _trial(model, example, expected, groups, frozen_modules)

    frozen: list[ChannelGroup] = []
    failure = trial(pending)
    while failure is not None:
        why, where = failure
        suspects = [g for g in pending if where is not None and _inside(g, where)]
        first = trial(suspects) if suspects and len(suspects) < len(pending) else None
        culprits = _bisect(suspects, first, trial) if first is not None else _bisect(pending, failure, trial)
        for group, reason in culprits:
            frozen.append(graph.freeze(group.name, reason))
        names = {g.name for g, _ in culprits}
        pending = [g for g in pending if g.name not in names]
        failure = trial(pending) if pending else None
    if frozen:
        log.warning("froze %d channel group(s) whose channels cannot be removed: %s", len(frozen),
                    "; ".join(f"{g.name} ({g.frozen_reason})" for g in frozen))
    return frozen


def _bisect(groups: Sequence[ChannelGroup], failure: tuple[str, str | None],
            trial: Callable[[Sequence[ChannelGroup]], tuple[str, str | None] | None]
            ) -> list[tuple[ChannelGroup, str]]:
    """The groups of a failing set whose trial fails alone (halving), each with the reason to freeze it.

    Halves that each pass but fail together are all returned (rather than guessing which one to keep).
    """
    found: list[tuple[ChannelGroup, str]] = []
    pending: list[tuple[list[ChannelGroup], str]] = [(list(groups), failure[0])]
    while pending:
        part, why = pending.pop()
        if len(part) == 1:
            found.append((part[0], f"removing one of its channels breaks the model: {why}"))
            continue
        halves = [part[: len(part) // 2], part[len(part) // 2:]]
        failing = [(h, f[0]) for h, f in ((h, trial(h)) for h in halves) if f is not None]
        if not failing:
            found += [(g, f"removing channels from it together with other groups breaks the model: {why}")
                      for g in part]
        pending += failing
    return found
