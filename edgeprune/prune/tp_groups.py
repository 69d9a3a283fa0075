"""Torch-Pruning's group building, made polynomial, bounded in time and able to stop at frozen modules.

Torch-Pruning (1.6) builds a group by walking its dependency graph from a root layer's channels and pushes a
node again each time it arrives with an index list it has not seen *as a whole*. Where channels pass through
slices and concatenations that reach the same node along several paths (ReXNet's partial residual
``cat([x[:, :c] + shortcut, x[:, c:]])``), each path gives a different list, and the number of lists doubles
with every such block: 3 blocks took 0.04 s, 8 did not finish in a minute, ``rexnet_100`` ran for 24 minutes.

:func:`build_group` walks the same graph with the same index mappings but remembers, per (node, pruning
function), the (index, root index) pairs it has already propagated, and pushes only the new ones. Every index
mapping Torch-Pruning has maps each index on its own, so the result is the same set of indices, found once
each. The group also keeps every (index, root index) pair of every item (``item.edgeprune_pairs``): Torch-Pruning's
own merge keeps one root index per index, which hides which root channels a layer's channel couples
(GhostNet's concatenation of a layer and a depthwise copy of it).

:class:`GroupBudget` is the time guard around it: a deadline checked while walking, a log line at least
every ``PROGRESS_EVERY_S`` seconds, and modules frozen by request (``--freeze``) at which the walk stops (every
group that reaches them is frozen anyway, so what lies beyond them is traced from its own root).

With :mod:`edgeprune.prune.graph`, :mod:`edgeprune.prune.tp_mappings` and :mod:`edgeprune.prune.grouped_conv`,
the only modules that import ``torch_pruning``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch_pruning as tp
from torch import nn

from edgeprune.errors import ModelConstructError
from edgeprune.timing import monotonic_s

log = logging.getLogger(__name__)

#: seconds between two progress lines while groups are built
PROGRESS_EVERY_S = 30.0
#: seconds group building may take (``EDGEPRUNE_GROUP_TIMEOUT_S`` overrides it): minutes more than any model
#: edgeprune has met needs (``rexnet_100``: 2 s, ConvNeXt-Tiny: 3 s on one core)
GROUP_TIMEOUT_S = 600.0
#: how many propagation steps run between two looks at the clock
_STEPS_PER_CHECK = 2048


def group_timeout_s() -> float:
    """The group-building deadline: ``EDGEPRUNE_GROUP_TIMEOUT_S`` when set to a positive number, else
    :data:`GROUP_TIMEOUT_S`."""
    text = os.environ.get("EDGEPRUNE_GROUP_TIMEOUT_S", "")
    try:
        value = float(text)
    except ValueError:
        return GROUP_TIMEOUT_S
    return value if value > 0 else GROUP_TIMEOUT_S


@dataclass
class GroupBudget:
    """The deadline and progress of one graph's group building.

    Attributes:
        timeout_s: seconds group building may take in all.
        stop_at: modules the walk does not go beyond (frozen by request).
        names: module -> its name in the model (to name the root being traced).
        started: when building started (:func:`edgeprune.timing.monotonic_s`).
        root: the root layer whose group is being built (named in the timeout's message).
        done, total: roots traced so far, and how many there are.
    """

    timeout_s: float
    stop_at: Collection[nn.Module] = ()
    names: Mapping[nn.Module, str] = field(default_factory=dict)
    started: float = field(default_factory=monotonic_s)
    root: str = ""
    done: int = 0
    total: int = 0
    _last_report: float = field(default_factory=monotonic_s)
    _constructs: set[str] = field(default_factory=set)

    def check(self) -> None:
        """Log progress every ``PROGRESS_EVERY_S`` s; raise :class:`ModelConstructError` past the deadline."""
        now = monotonic_s()
        if now - self._last_report >= PROGRESS_EVERY_S:
            self._last_report = now
            log.info("building channel groups: %d of %d layers traced in %.0f s (now %s)", self.done, self.total,
                     now - self.started, self.root or "?")
        if now - self.started > self.timeout_s:
            through = f" through {', '.join(sorted(self._constructs))}" if self._constructs else ""
            raise ModelConstructError(
                f"building the channel groups did not finish in {self.timeout_s:.0f} s: tracing the channels of "
                f"{self.root or 'the model'}{through} ({self.done} of {self.total} layers traced); leave that part "
                f"whole with --freeze {self.root or 'MODULE'}, or allow more time with EDGEPRUNE_GROUP_TIMEOUT_S",
                module=self.root or None)

    def saw(self, node: Any) -> None:
        """Note the kind of functional op ``node`` is, for the timeout's message."""
        kind = {tp.ops.OPTYPE.SLICE: "slices", tp.ops.OPTYPE.CONCAT: "concatenations",
                tp.ops.OPTYPE.SPLIT: "splits", tp.ops.OPTYPE.RESHAPE: "reshapes"}.get(node.type)
        if kind:
            self._constructs.add(kind)


def build_group(dg: Any, module: nn.Module, pruning_fn: Any, idxs: Sequence[int],
                budget: GroupBudget | None = None) -> Any:
    """``dg.get_pruning_group(module, pruning_fn, idxs)``, each (index, root index) pair propagated once.

    Returns a Torch-Pruning ``Group`` as its own method does (items merged per target and pruning function, plain
    ``idxs`` and ``root_idxs``), each item also carrying ``edgeprune_pairs``: every (index, root index) pair.
    """
    if module not in dg.module2node:
        raise ValueError(f"Module {module} is not in the dependency graph.")
    if isinstance(module, tp.ops.TORCH_CONV) and module.groups == module.out_channels and module.out_channels > 1:
        pruning_fn = tp.pruner.function.prune_depthwise_conv_out_channels
    hybrid = tp._helpers._HybridIndex
    start = [hybrid(idx=int(i), root_idx=int(i)) for i in ([idxs] if isinstance(idxs, int) else idxs)]
    tp.dependency.index_mapping.update_index_mapping(dg)
    root_node = dg.module2node[module]
    root = tp.dependency.Dependency(pruning_fn, pruning_fn, source=root_node, target=root_node)
    found: dict[tuple[Any, Any], tuple[Any, list[Any], set[Any]]] = {}

    def add(dep: Any, indices: list[Any]) -> list[Any]:
        key = (dep.target, dep.handler)
        if key not in found:
            found[key] = (dep, [], set())
        _, kept, seen = found[key]
        fresh = [i for i in indices if i not in seen]
        seen.update(fresh)
        kept.extend(fresh)
        return fresh

    stack = [(root, add(root, start))]
    stop_at = budget.stop_at if budget is not None else ()
    steps = 0
    if budget is not None:
        budget.root = budget.names.get(module, type(module).__name__)
        budget.check()
    while stack:
        dep, indices = stack.pop()
        node, fn = dep.target, dep.handler
        if budget is not None:
            budget.saw(node)
            steps += 1
            if steps % _STEPS_PER_CHECK == 0:
                budget.check()
        if node.module in stop_at and dep is not root:
            continue  # frozen by request: the groups that reach it are frozen, what lies beyond has its own root
        for new_dep in node.dependencies:
            if not new_dep.is_triggered_by(fn):
                continue
            mapped = indices
            for mapping in new_dep.index_mapping:
                if mapping is not None:
                    mapped = mapping(mapped)
            if mapped:
                fresh = add(new_dep, list(mapped))
                if fresh:
                    stack.append((new_dep, fresh))
    if budget is not None:
        budget.done += 1
    return _merged(dg, found)


def _merged(dg: Any, found: dict[tuple[Any, Any], tuple[Any, list[Any], set[Any]]]) -> Any:
    """The group Torch-Pruning would return: one item per (target, pruning function), indices in first-seen order
    without repeats (the first root index kept, as Torch-Pruning does), every pair in ``edgeprune_pairs``."""
    group = tp.dependency.Group()
    ignored = getattr(dg, "ignored_params", ())
    for dep, pairs, _ in found.values():
        if isinstance(dep.target.module, nn.Parameter) and any(dep.target.module is p for p in ignored):
            continue
        first: dict[int, int] = {}
        for pair in pairs:
            first.setdefault(int(pair.idx), int(pair.root_idx))
        item = tp._helpers.GroupItem(dep=dep, idxs=list(first))
        item.root_idxs = list(first.values())
        item.edgeprune_pairs = [(int(p.idx), int(p.root_idx)) for p in pairs]
        group._group.append(item)
    group._DG = dg
    return group


def install_group_builder() -> None:
    """Make Torch-Pruning's ``get_pruning_group`` use :func:`build_group` in edgeprune's graphs (those carrying
    ``_edgeprune_budget``); other graphs keep Torch-Pruning's own method. Installed once."""
    original = tp.DependencyGraph.get_pruning_group
    if getattr(original, "edgeprune_builder", False):
        return

    def get_pruning_group(self: Any, module: nn.Module, pruning_fn: Any, idxs: Sequence[int]) -> Any:
        budget = getattr(self, "_edgeprune_budget", None)
        if budget is None:
            return original(self, module, pruning_fn, idxs)
        return build_group(self, module, pruning_fn, idxs, budget)

    get_pruning_group.edgeprune_builder = True  # type: ignore[attr-defined]
    tp.DependencyGraph.get_pruning_group = get_pruning_group
