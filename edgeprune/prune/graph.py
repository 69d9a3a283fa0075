"""Channel groups from Torch-Pruning's dependency graph, and physical channel removal.

With :mod:`edgeprune.prune.tp_mappings` (which index mappings Torch-Pruning may compute), this is the only
module that imports ``torch_pruning``. It traces the model once, turns Torch-Pruning's
groups into edgeprune :class:`~edgeprune.prune.groups.ChannelGroup` records, and freezes (with a warning
that names it) every group edgeprune cannot prune safely:

* the classifier's output (pruning it would change the model's meaning);
* groups whose members have different widths: Torch-Pruning treats ops it does not understand as
  element-wise, which can couple a 16-channel layer to a 32-channel one; removing "channel i" from such a
  group would corrupt the network.

Channel padding (the option-A shortcut of CIFAR ResNets) is taught to the graph rather than frozen:
modules with ``channel_padding = True`` (attributes ``in_channels``, ``out_channels``, ``pad_front``) put
input channel ``i`` at output channel ``pad_front + i`` and zeros elsewhere. Torch-Pruning is given a
pruner that keeps their input and output sides independent, which splits the residual stream into one
Torch-Pruning group per stage; this module then merges channels across stages through the padding
offset. Stage s's residual channels form one edgeprune group together with the channels of later stages
they are padded into; the channels a stage adds (the zero-padded ones) form another. Because kept
channels keep their order, the coupled channels stay contiguous after pruning and the shortcut remains a
plain zero-pad with a smaller ``pad_front``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from edgeprune.errors import ModelLoadError
from edgeprune.prune.coupled_channels import coupled_components, indices_by_component, partition_components
from edgeprune.prune.grouped_conv import (
    channels_per_group,
    install_whole_group_pruner,
    order_in_runs,
    whole_group_unit,
)
from edgeprune.prune.groups import ChannelGroup, GroupMember
from edgeprune.prune.reshapes import ReshapeRecorder
from edgeprune.prune.tp_groups import PROGRESS_EVERY_S, GroupBudget, group_timeout_s, install_group_builder
from edgeprune.prune.tp_mappings import install_mapping_filters, split_description
from edgeprune.prune.tp_warnings import torch_pruning_warnings
from edgeprune.timing import monotonic_s

log = logging.getLogger(__name__)

install_mapping_filters()
install_group_builder()

_OUT_HANDLERS = {"prune_out_channels"}
_IN_HANDLERS = {"prune_in_channels"}


class _ChannelPaddingPruner(tp.pruner.function.BasePruningFunc):
    """Torch-Pruning pruner for zero-padding modules: input and output sides are pruned independently."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        layer.pad_front -= sum(1 for i in idxs if i < layer.pad_front)
        layer.out_channels -= len(set(idxs))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        layer.in_channels -= len(set(idxs))
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.out_channels)

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.in_channels)


def channel_dim_size(module: nn.Module, dim: str) -> int | None:
    """Size of a layer's output (``dim="out"``) or input (``"in"``) channel dimension; None for other layers."""
    if isinstance(module, nn.Conv2d):
        return module.out_channels if dim == "out" else module.in_channels
    if isinstance(module, nn.Linear):
        return module.out_features if dim == "out" else module.in_features
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features
    return None


def find_classifier(model: nn.Module, example_input: torch.Tensor) -> str | None:
    """Name of the layer that produces the model's output classes (last Linear/Conv2d of that width)."""
    with torch.no_grad():
        out = model(example_input)
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or getattr(model, "edgeprune_frozen_outputs", None):
        return None  # a model that names its output layers (a detector) has no classifier to guess
    found = None
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)) and channel_dim_size(module, "out") == out.shape[1]:
            found = name
    return found


def _after_concatenation(items: Sequence[Any]) -> set[tuple[Any, Any]]:
    """The (node, pruning function) pairs of a group that its channels reach only through a channel concatenation
    or slice (a layer's input and output sides are told apart: a root's own input side is not "direct").

    Such a layer may be wider than the group (a DenseNet layer reads every earlier layer's features, an
    Inception join reads four branches) or narrower (the inputs of GhostNet's concatenation, the layers before
    ReXNet's slices); Torch-Pruning maps the group's channels to their part of it. Every other layer of a group
    must be exactly as wide as the group: one that is not was coupled by an op the graph does not model, and
    the group is frozen.
    """
    def key(node: Any, fn: Any) -> tuple[Any, Any]:
        return node, fn

    edges: dict[tuple[Any, Any], list[tuple[Any, Any]]] = defaultdict(list)
    for item in items:
        edges[key(item.dep.source, item.dep.trigger)].append(key(item.dep.target, item.dep.handler))
    root = key(items[0].dep.target, items[0].dep.handler)
    direct, frontier = {root}, [root]
    while frontier:  # the (node, side) pairs reached without passing through a concatenation or a slice
        here = frontier.pop()
        for nxt in edges[here]:
            node = nxt[0]
            mapped = node.type == tp.ops.OPTYPE.CONCAT or (node.type == tp.ops.OPTYPE.SLICE
                                                           and _slice_bound(node.grad_fn) is not None)
            if nxt not in direct and not mapped:
                direct.add(nxt)
                frontier.append(nxt)
    return {key(item.dep.target, item.dep.handler) for item in items} - direct


def _pairs(item: Any) -> list[tuple[int, int]]:
    """An item's (index, root channel) pairs: all of them from :func:`~edgeprune.prune.tp_groups.build_group`."""
    pairs = getattr(item, "edgeprune_pairs", None)
    return list(pairs) if pairs is not None else [(int(i), int(r)) for i, r in zip(item.idxs, item.root_idxs)]


def _output_side(item: Any) -> bool:
    """Whether an item's indices are in its node's output channels (a layer's output side, or a functional op)."""
    return item.dep.handler.__name__ not in _IN_HANDLERS or not isinstance(item.dep.target.module, (nn.Conv2d, nn.Linear))


def _slice_bound(grad_fn: Any) -> tuple[int, str] | None:
    """For a slice of the channel dimension: the channels before its last fixed bound, and a description.

    The model's code fixes a slice's bounds (``x[:, :self.in_channels]``), so after pruning they must still fall
    between the same channels: no channel before a bound may go. A bound at or past the end (``x[:, c:]``,
    GhostNet's ``out[:, :self.out_chs]`` of a concatenation no wider) stays at the end however many channels
    go. Returns None for a slice of another dimension, which leaves channels whole.
    """
    sizes = tuple(getattr(grad_fn, "_saved_self_sym_sizes", ()) or ())
    dim = getattr(grad_fn, "_saved_dim", None)
    if dim is None or not sizes or (len(sizes) == 4 and dim != 1) or (len(sizes) == 3 and dim != 2):
        return None  # Torch-Pruning maps channels through these as through an element-wise op
    size = int(sizes[dim])
    start, end, step = int(grad_fn._saved_start), int(grad_fn._saved_end), int(grad_fn._saved_step)
    start = max(0, start + size if start < 0 else start)
    end = min(size, end + size if end < 0 else end)
    text = f"a slice [{start}:{'' if end >= size else end}{f':{step}' if step != 1 else ''}] of {size} channels"
    if step != 1:
        return size, text
    return (end if end < size else start), text


@dataclass
class _TpGroup:
    """Part of one Torch-Pruning group: its root (for pruning), its channels and its members in edgeprune's terms.

    ``channels[c]`` lists the root's channels that edgeprune's channel ``c`` of this part stands for (more than
    one where the model copies a channel, as GhostNet's depthwise "cheap" half does); members are aligned with
    ``channels``. ``key`` names the part (the root's name for the first part).
    """

    key: str
    root: str
    module: nn.Module
    handler: object
    channels: list[tuple[int, ...]]
    members: list[GroupMember]
    frozen_reason: str

    @property
    def width(self) -> int:
        """Channels of this part."""
        return len(self.channels)


class ModelGraph:
    """The channel groups of one model instance, and the operation that removes channels from it.

    Building the groups is bounded in time (``timeout_s``, default :data:`GROUP_TIMEOUT_S` or the environment's
    ``EDGEPRUNE_GROUP_TIMEOUT_S``) and logs its progress while it runs; past the deadline it raises a
    :class:`~edgeprune.errors.ModelConstructError` naming the layer being traced and ``--freeze``.

    >>> graph = ModelGraph(model, torch.randn(1, 3, 32, 32))       # doctest: +SKIP
    >>> [g.name for g in graph.prunable_groups()][:2]                # doctest: +SKIP
    ['conv1', 'layer1.0.conv1']
    """

    def __init__(
        self,
        model: nn.Module,
        example_input: torch.Tensor,
        frozen_modules: Sequence[str] = (),
        warn_frozen: bool = True,
        timeout_s: float | None = None,
    ) -> None:
        self.model = model
        self._name_of = {m: n for n, m in model.named_modules()}
        modules = dict(model.named_modules())
        unknown = [n for n in frozen_modules if n not in modules]
        if unknown:
            raise ModelLoadError(f"cannot freeze unknown module(s): {', '.join(sorted(unknown))}")
        self._frozen = tuple(frozen_modules)
        self.classifier = find_classifier(model, example_input)
        # layers whose outputs are the model's outputs (a detection head), named by the model's adapter
        self._outputs: dict[str, str] = dict(getattr(model, "edgeprune_frozen_outputs", None) or {})
        padding_types = {type(m) for m in model.modules() if getattr(m, "channel_padding", False)}
        self._reshapes = ReshapeRecorder()
        self._timeout_s = group_timeout_s() if timeout_s is None else timeout_s
        self._name_taken: set[str] = set()  # keys given to the parts of Torch-Pruning groups

        def forward(module: nn.Module, x: torch.Tensor) -> Any:
            with self._reshapes:
                return module(x)

        self._dg = tp.DependencyGraph()
        install_whole_group_pruner(self._dg)  # grouped convolutions lose whole groups (edgeprune.prune.grouped_conv)
        self._dg._edgeprune_reshapes = self._reshapes  # read by the mapping filters (edgeprune.prune.tp_mappings)
        try:
            with torch.enable_grad(), torch_pruning_warnings():
                self._dg.build_dependency(
                    model,
                    example_inputs=example_input,
                    forward_fn=forward,
                    customized_pruners={t: _ChannelPaddingPruner() for t in padding_types},
                )
        except Exception as exc:  # tracing failures come in many types; report them as one
            raise ModelLoadError(
                f"cannot trace the model's channel dependencies ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "the usual cause is an op that reshapes or splits the channel dimension (a channel shuffle, "
                "chunk or split, as in ShuffleNet), which edgeprune does not prune yet") from None
        budget = self._budget(stop_at={m for n, m in modules.items() if self._is_frozen(n)})
        self._dg._edgeprune_budget = budget  # read by edgeprune.prune.tp_groups' group building
        roots = (nn.Conv2d, nn.Linear)
        budget.total = sum(isinstance(m, roots) for m in self._dg.module2node)
        with torch_pruning_warnings():
            tp_groups = [part for t in self._dg.get_all_groups(root_module_types=list(roots))
                         for part in self._record(t)]
        if monotonic_s() - budget.started > PROGRESS_EVERY_S:
            log.info("built %d channel groups in %.0f s", len(tp_groups), monotonic_s() - budget.started)
        self._tp_by_key = {g.key: g for g in tp_groups}
        # For each edgeprune group: its channels as (part key, position in that part) per part.
        self._parts: dict[str, list[tuple[str, list[int]]]] = {}
        self.groups: list[ChannelGroup] = self._merge_linked(tp_groups, modules)
        # The classifier's output is frozen by design; anything else frozen deserves a warning.
        frozen = [g for g in self.groups if not g.prunable and g.name != self.classifier]
        if frozen and warn_frozen:
            log.warning(
                "froze %d channel group(s) that cannot be pruned safely: %s",
                len(frozen),
                "; ".join(f"{g.name} ({g.frozen_reason})" for g in frozen),
            )

    # -- building -----------------------------------------------------------------------------------
    def _budget(self, stop_at: Collection[nn.Module] = ()) -> GroupBudget:
        return GroupBudget(self._timeout_s, stop_at=stop_at, names=self._name_of)

    def _is_frozen(self, name: str) -> bool:
        """Whether module ``name`` is, or lies inside, a module frozen by request."""
        return any(name == f or name.startswith(f + ".") for f in self._frozen)

    def _record(self, tp_group: object) -> list[_TpGroup]:
        """The parts of one Torch-Pruning group (see :mod:`edgeprune.prune.coupled_channels`), each with the
        reason it is frozen, if any."""
        items = list(tp_group)  # type: ignore[call-overload]
        root_dep = items[0].dep
        root_name = self._name_of.get(root_dep.target.module)
        if root_name is None or root_dep.handler.__name__ not in _OUT_HANDLERS:
            return []
        width = len(items[0].idxs)
        pairs = [_pairs(item) for item in items]
        joined = _after_concatenation(items)
        mismatched: list[str] = []
        entries: list[tuple[int, str, str, bool]] = []  # (item, module name, dim, a Linear's flattened input)
        for k, item in enumerate(items):
            module = item.dep.target.module
            name = self._name_of.get(module)
            handler = item.dep.handler.__name__
            dim = "out" if handler in _OUT_HANDLERS else "in" if handler in _IN_HANDLERS else None
            if name is None or dim is None:
                continue  # functional ops (add, cat, flatten) carry no weights
            size = channel_dim_size(module, dim)
            flat_in = dim == "in" and isinstance(module, nn.Linear)
            if not flat_in and size is not None and any(i >= size for i, _ in pairs[k]):
                mismatched.append(f"{name}:{dim}={size}")
            elif not flat_in and (item.dep.target, item.dep.handler) not in joined and size is not None \
                    and size != width:
                mismatched.append(f"{name}:{dim}={size}")
            elif not flat_in and (item.dep.target, item.dep.handler) not in joined and len(item.idxs) != width:
                mismatched.append(f"{name}:{dim} ({len(item.idxs)} of {width} channels)")
            entries.append((k, name, dim, flat_in))
        components = coupled_components(width, pairs)
        by_component = [indices_by_component(components, p) for p in pairs]
        node_reasons = self._node_reasons(items, components, by_component)

        def reason(component: int) -> str:
            return next((text for reached, text in node_reasons if component in reached), "")

        parts = partition_components(len(components), by_component, reason)
        mismatch = (f"couples layers of different widths ({', '.join(mismatched[:3])}"
                    f"{', ...' if len(mismatched) > 3 else ''}) through an op the dependency graph does not model"
                    if mismatched else "")
        result: list[_TpGroup] = []
        for part in parts:
            members = self._part_members(items, entries, by_component, part)
            channels = [components[c] for c in part]
            key = root_name if len(parts) == 1 else self._part_key(root_name, members, channels)
            frozen = self._whole_reason(members) or reason(part[0]) or mismatch
            result.append(_TpGroup(key, root_name, root_dep.target.module, root_dep.handler, channels, members,
                                   frozen))
        return result

    def _node_reasons(self, items: Sequence[Any], components: Sequence[tuple[int, ...]],
                      by_component: Sequence[dict[int, list[int]]]) -> list[tuple[set[int], str]]:
        """Per functional op that keeps channels from being pruned: the components reaching it, and why (reshapes
        first, then ops Torch-Pruning cannot map, splits and slices)."""
        by_kind: dict[str, list[tuple[set[int], str]]] = {"reshape": [], "unmapped": [], "split": [], "slice": []}
        for k, item in enumerate(items):
            node = item.dep.target
            text, kind = "", ""
            if node.type == tp.ops.OPTYPE.RESHAPE and (arranged := self._reshapes.rearranging(node.grad_fn)):
                kind, text = "reshape", (f"its channels pass through a reshape that rearranges them ({arranged}; a channel shuffle, "
                        "a head split or a window partition): edgeprune prunes only channels that stay whole")
            elif node.grad_fn in self._reshapes.unmapped:
                kind, text = "unmapped", (f"its channels pass through {self._reshapes.unmapped[node.grad_fn]}: edgeprune prunes only "
                        "channels whose path through the model it can follow")
            elif node.type == tp.ops.OPTYPE.SPLIT:
                kind, text = "split", (f"its channels are split ({split_description(node.grad_fn)}): the model's code fixes the "
                        "split sizes, so edgeprune prunes the channels after the split, not before it")
            if text:
                by_kind[kind].append((set(by_component[k]), text))
            elif node.type == tp.ops.OPTYPE.SLICE and (bound := _slice_bound(node.grad_fn)) is not None:
                limit, what = bound
                before = {c for j, other in enumerate(items) if other.dep.target in node.inputs and _output_side(other)
                          for c, idxs in by_component[j].items() if idxs[0] < limit}
                if before:
                    by_kind["slice"].append((before, f"its channels lie before a bound of {what}, which the model's code fixes "
                                            "(a partial residual, as in ReXNet): edgeprune prunes only the "
                                            "channels after a slice's last bound"))
        return [reason for kind in by_kind.values() for reason in kind]

    def _part_members(self, items: Sequence[Any], entries: Sequence[tuple[int, str, str, bool]],
                      by_component: Sequence[dict[int, list[int]]], part: Sequence[int]) -> list[GroupMember]:
        """The members of one part, aligned with its channels: a layer that holds each channel ``n`` times (a
        concatenation of a channel with its copy, SPPF's pooled copies) is ``n`` members; a Linear reading a
        flattened map keeps one member with every feature of each channel, as Torch-Pruning lists them."""
        members: list[GroupMember] = []
        for k, name, dim, flat_in in entries:
            if part[0] not in by_component[k]:
                continue
            per_channel = [by_component[k][c] for c in part]
            kind = type(items[k].dep.target.module).__name__
            if flat_in and len(per_channel[0]) > 1:
                members.append(GroupMember(name, kind, dim, tuple(i for idxs in per_channel for i in idxs)))
                continue
            for copy in range(len(per_channel[0])):
                members.append(GroupMember(name, kind, dim, tuple(idxs[copy] for idxs in per_channel)))
        return members

    def _part_key(self, root: str, members: Sequence[GroupMember], part: Sequence[tuple[int, ...]]) -> str:
        """A name for one part of a group split in several: its first producer whose output channels are all in
        it, else the root's name (once), else the root's name with the part's first root channel."""
        for m in members:
            if m.dim == "out" and channel_dim_size(self._module(m.module), "out") == len(part) \
                    and m.module not in self._name_taken:
                self._name_taken.add(m.module)
                return m.module
        name = root if root not in self._name_taken else f"{root}@{part[0][0]}"
        self._name_taken.add(name)
        return name

    def _whole_reason(self, members: Sequence[GroupMember]) -> str:
        """Why a part whose channels live in ``members`` must stay whole, whatever functional ops it meets."""
        touched = {m.module for m in members}
        grouped = sorted(n for n in touched if channels_per_group(self._module(n)) > 1
                         and not whole_group_unit(self._module(n)))
        outputs = sorted(m.module for m in members if m.module in self._outputs and m.dim == "out")
        if any(m.module == self.classifier and m.dim == "out" for m in members):
            return f"output classes of the classifier {self.classifier}"
        if outputs:
            return f"{outputs[0]}: {self._outputs[outputs[0]]}"
        if attention := sorted(n for n in touched if isinstance(self._module(n), nn.MultiheadAttention)):
            return (f"the embedding width of attention {attention[0]} (heads x head size, reshaped by the model): "
                    "edgeprune prunes the MLP widths of attention blocks, not the width attention works in")
        if grouped:
            conv = self._module(grouped[0])
            return (f"grouped convolution {grouped[0]} ({conv.groups} groups of {channels_per_group(conv)} input "
                    f"channels, {conv.out_channels} outputs): edgeprune removes whole groups only from grouped "
                    "convolutions with as many outputs as inputs")
        if frozen := sorted(n for n in touched if self._is_frozen(n)):
            return "contains " + ", ".join(frozen) + ", frozen by request"
        return ""

    def _module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)

    def _merge_linked(self, tp_groups: list[_TpGroup], modules: dict[str, nn.Module]) -> list[ChannelGroup]:
        """Union channels of Torch-Pruning groups linked through a module; build edgeprune groups.

        Two kinds of module link the channels on their input side to those on their output side: a padding
        module (input channel ``i`` is output channel ``pad_front + i``) and a grouped convolution pruned in
        whole groups (input channel ``i`` goes with output channel ``i``: both leave with their group). The
        units merged are the parts of Torch-Pruning groups (:meth:`_record`), named by their keys.
        """
        parent: dict[tuple[str, int], tuple[str, int]] = {}

        def find(x: tuple[str, int]) -> tuple[str, int]:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def offset(module: nn.Module) -> int | None:
            if getattr(module, "channel_padding", False):
                return int(module.pad_front)  # type: ignore[arg-type]
            return 0 if whole_group_unit(module) else None

        sides: dict[str, dict[str, tuple[str, dict[int, int]]]] = defaultdict(dict)
        for g in tp_groups:
            for m in g.members:
                if offset(modules[m.module]) is not None:
                    sides[m.module][m.dim] = (g.key, {idx: j for j, idx in enumerate(m.indices)})
        for name, side in sides.items():
            if "in" not in side or "out" not in side:
                continue
            (in_root, in_pos), (out_root, out_pos) = side["in"], side["out"]
            shift = offset(modules[name])
            assert shift is not None
            for in_idx, j in in_pos.items():
                k = out_pos.get(shift + in_idx)
                if k is not None:
                    parent[find((in_root, j))] = find((out_root, k))
        by_component: dict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)
        order = {g.key: i for i, g in enumerate(tp_groups)}
        for g in tp_groups:
            for j in range(g.width):
                by_component[find((g.key, j))].append((g.key, j))
        # Channels spanning the same Torch-Pruning groups form one edgeprune group.
        classes: dict[tuple[str, ...], list[list[tuple[str, int]]]] = defaultdict(list)
        for channels in by_component.values():
            channels.sort(key=lambda c: (order[c[0]], c[1]))
            classes[tuple(sorted({r for r, _ in channels}, key=order.__getitem__))].append(channels)
        groups: list[ChannelGroup] = []
        for roots, channel_sets in sorted(classes.items(), key=lambda kv: order[kv[0][0]]):
            channel_sets.sort(key=lambda cs: cs[0][1])
            convs = [(root, m) for root in roots for m in self._tp_by_key[root].members
                     if whole_group_unit(modules[m.module])]
            unit, unit_problem = order_in_runs(convs, channel_sets, modules)
            index_in = [{r: j for r, j in cs} for cs in channel_sets]
            members: list[GroupMember] = []
            for root in roots:
                positions = [ix[root] for ix in index_in]
                members += [
                    GroupMember(m.module, m.kind, m.dim, tuple(m.indices[p] for p in positions if p < len(m.indices)))
                    for m in self._tp_by_key[root].members
                ]
                self._parts.setdefault(roots[0], []).append((root, positions))
            reasons = [self._tp_by_key[r].frozen_reason for r in roots if self._tp_by_key[r].frozen_reason]
            reasons += [unit_problem] if unit_problem else []
            groups.append(
                ChannelGroup(
                    name=roots[0],
                    width=len(channel_sets),
                    members=tuple(members),
                    prunable=not reasons,
                    frozen_reason=reasons[0] if reasons else "",
                    module_names=tuple(sorted({m.module for m in members})),
                    unit=unit,
                )
            )
        return groups

    # -- queries and surgery ----------------------------------------------------------------------
    def freeze(self, name: str, reason: str) -> ChannelGroup:
        """Mark group ``name`` frozen with ``reason`` (a check outside the graph found it cannot be pruned)."""
        for i, group in enumerate(self.groups):
            if group.name == name:
                self.groups[i] = replace(group, prunable=False, frozen_reason=reason)
                return self.groups[i]
        raise KeyError(name)

    def prunable_groups(self) -> list[ChannelGroup]:
        """Groups that may lose channels."""
        return [g for g in self.groups if g.prunable]

    def remove_channels(self, keep: Mapping[str, Sequence[int]]) -> None:
        """Physically remove, from each named group, every channel not listed in ``keep[group]``.

        Indices are group channel positions (0..width-1). Groups not in ``keep`` are left whole.
        """
        by_name = {g.name: g for g in self.groups}
        removal: dict[str, set[int]] = defaultdict(set)
        for name, kept in keep.items():
            group = by_name.get(name)
            if group is None or not group.prunable:
                raise ValueError(f"group '{name}' is unknown or frozen")
            kept_set = {int(i) for i in kept}
            if not kept_set or not kept_set <= set(range(group.width)):
                raise ValueError(f"group '{name}': keep indices must be a non-empty subset of 0..{group.width - 1}")
            if group.unit > 1 and any({c // group.unit * group.unit + k for k in range(group.unit)} - kept_set
                                      for c in kept_set):
                raise ValueError(f"group '{name}' goes in whole runs of {group.unit} channels (a grouped "
                                 "convolution's groups): keep whole runs")
            for key, positions in self._parts[name]:
                part = self._tp_by_key[key]
                removal[part.root].update(r for c in range(group.width) if c not in kept_set
                                          for r in part.channels[positions[c]])
        roots = {g.root: g for g in self._tp_by_key.values()}
        self._dg._edgeprune_budget = self._budget()  # a deadline of its own, nothing skipped
        with torch_pruning_warnings():
            for root, idxs in removal.items():
                if idxs:
                    tp_group = roots[root]
                    self._dg.get_pruning_group(tp_group.module, tp_group.handler, idxs=sorted(idxs)).prune()


def count_macs_and_params(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """Multiply-accumulate operations of one forward pass at the example's shape, and parameter count."""
    was_training = model.training
    model.eval()
    with torch_pruning_warnings():
        macs, params = tp.utils.count_ops_and_params(model, example_input)
    model.train(was_training)
    return int(macs), int(params)
