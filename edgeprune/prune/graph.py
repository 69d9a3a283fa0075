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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from edgeprune.errors import ModelLoadError
from edgeprune.prune.grouped_conv import (
    channels_per_group,
    install_whole_group_pruner,
    order_in_runs,
    whole_group_unit,
)
from edgeprune.prune.groups import ChannelGroup, GroupMember
from edgeprune.prune.reshapes import ReshapeRecorder
from edgeprune.prune.tp_mappings import install_mapping_filters, split_description

log = logging.getLogger(__name__)

install_mapping_filters()

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


def _after_concatenation(items: Sequence[Any]) -> set[Any]:
    """The Torch-Pruning nodes of a group that its channels reach only through a channel concatenation.

    Such a layer is wider than the group (a DenseNet layer reads every earlier layer's features, an Inception
    join reads four branches); Torch-Pruning maps the group's channels to their slice of it. Every other
    layer of a group must be exactly as wide as the group: one that is not was coupled by an op the graph
    does not model, and the group is frozen.
    """
    edges: dict[Any, list[Any]] = defaultdict(list)
    for item in items:
        edges[item.dep.source].append(item.dep.target)
    root = items[0].dep.target
    direct, frontier = {root}, [root]
    while frontier:  # the nodes reached without passing through a concatenation
        node = frontier.pop()
        for nxt in edges[node]:
            if nxt not in direct and nxt.type != tp.ops.OPTYPE.CONCAT:
                direct.add(nxt)
                frontier.append(nxt)
    return {item.dep.target for item in items} - direct


@dataclass
class _TpGroup:
    """One Torch-Pruning group: its root (for pruning) and its members in edgeprune's terms."""

    root: str
    module: nn.Module
    handler: object
    width: int
    members: list[GroupMember]
    frozen_reason: str


class ModelGraph:
    """The channel groups of one model instance, and the operation that removes channels from it.

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
    ) -> None:
        self.model = model
        self._name_of = {m: n for n, m in model.named_modules()}
        modules = dict(model.named_modules())
        unknown = [n for n in frozen_modules if n not in modules]
        if unknown:
            raise ModelLoadError(f"cannot freeze unknown module(s): {', '.join(sorted(unknown))}")
        self.classifier = find_classifier(model, example_input)
        # layers whose outputs are the model's outputs (a detection head), named by the model's adapter
        self._outputs: dict[str, str] = dict(getattr(model, "edgeprune_frozen_outputs", None) or {})
        padding_types = {type(m) for m in model.modules() if getattr(m, "channel_padding", False)}
        self._reshapes = ReshapeRecorder()

        def forward(module: nn.Module, x: torch.Tensor) -> Any:
            with self._reshapes:
                return module(x)

        self._dg = tp.DependencyGraph()
        install_whole_group_pruner(self._dg)  # grouped convolutions lose whole groups (edgeprune.prune.grouped_conv)
        self._dg._edgeprune_reshapes = self._reshapes  # read by the mapping filters (edgeprune.prune.tp_mappings)
        try:
            with torch.enable_grad():
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
        tp_groups = [
            g
            for g in (self._record(t, set(frozen_modules)) for t in self._dg.get_all_groups(
                root_module_types=[nn.Conv2d, nn.Linear]))
            if g is not None
        ]
        self._tp_by_root = {g.root: g for g in tp_groups}
        # For each edgeprune group: its channels as (Torch-Pruning root, channel index) per part.
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
    def _record(self, tp_group: object, ignored: set[str]) -> _TpGroup | None:
        items = list(tp_group)  # type: ignore[call-overload]
        root_dep = items[0].dep
        root_name = self._name_of.get(root_dep.target.module)
        if root_name is None or root_dep.handler.__name__ not in _OUT_HANDLERS:
            return None
        width = len(items[0].idxs)
        members: list[GroupMember] = []
        mismatched: list[str] = []
        repeated: list[str] = []  # layers that read the group's channels several times (SPPF's pooled copies)
        joined = _after_concatenation(items)
        for item in items:
            module = item.dep.target.module
            name = self._name_of.get(module)
            handler = item.dep.handler.__name__
            dim = "out" if handler in _OUT_HANDLERS else "in" if handler in _IN_HANDLERS else None
            if name is None or dim is None:
                continue  # functional ops (add, cat, flatten) carry no weights
            size = channel_dim_size(module, dim)
            if item.dep.target in joined and size is not None and size > width \
                    and len(item.idxs) == width and all(int(i) < size for i in item.idxs):
                pass  # a layer after a concatenation: the group's channels are a slice of its channels
            elif (item.dep.target in joined and size is not None and len(item.idxs) > width
                  and len(item.idxs) % width == 0):
                repeated.append(f"{name} reads each of the {width} channels {len(item.idxs) // width} times")
            elif size is not None and size != width and not (dim == "in" and isinstance(module, nn.Linear)):
                mismatched.append(f"{name}:{dim}={size}")
            elif len(item.idxs) != width and not (dim == "in" and isinstance(module, nn.Linear)):
                mismatched.append(f"{name}:{dim} ({len(item.idxs)} of {width} channels)")
            members.append(GroupMember(name, type(module).__name__, dim, tuple(int(i) for i in item.idxs)))
        touched = {m.module for m in members}
        reshaped = next((r for r in (self._reshapes.rearranging(t.grad_fn) for t in (item.dep.target for item in items)
                                     if t.type == tp.ops.OPTYPE.RESHAPE) if r), None)
        split = next((split_description(item.dep.target.grad_fn) for item in items
                      if item.dep.target.type == tp.ops.OPTYPE.SPLIT), None)
        unmapped = next((self._reshapes.unmapped[t.grad_fn] for t in (item.dep.target for item in items)
                         if t.grad_fn in self._reshapes.unmapped), None)
        grouped = sorted(n for n in touched if channels_per_group(self._module(n)) > 1
                         and not whole_group_unit(self._module(n)))
        reason = ""
        outputs = sorted(m.module for m in members if m.module in self._outputs and m.dim == "out")
        if any(m.module == self.classifier and m.dim == "out" for m in members):
            reason = f"output classes of the classifier {self.classifier}"
        elif outputs:
            reason = f"{outputs[0]}: {self._outputs[outputs[0]]}"
        elif attention := sorted(n for n in touched if isinstance(self._module(n), nn.MultiheadAttention)):
            reason = (f"the embedding width of attention {attention[0]} (heads x head size, reshaped by the model): "
                      "edgeprune prunes the MLP widths of attention blocks, not the width attention works in")
        elif grouped:
            conv = self._module(grouped[0])
            reason = (f"grouped convolution {grouped[0]} ({conv.groups} groups of {channels_per_group(conv)} input "
                      f"channels, {conv.out_channels} outputs): edgeprune removes whole groups only from grouped "
                      "convolutions with as many outputs as inputs")
        elif touched & ignored:
            reason = "contains " + ", ".join(sorted(touched & ignored)) + ", frozen by request"
        elif reshaped:
            reason = (f"its channels pass through a reshape that rearranges them ({reshaped}; a channel shuffle, "
                      "a head split or a window partition): edgeprune prunes only channels that stay whole")
        elif unmapped:
            reason = (f"its channels pass through {unmapped}: edgeprune prunes only channels whose path through "
                      "the model it can follow")
        elif split:
            reason = (f"its channels are split ({split}): the model's code fixes the split sizes, so edgeprune "
                      "prunes the channels after the split, not before it")
        elif repeated:
            reason = (f"its channels are concatenated more than once ({repeated[0]}: a spatial pyramid pooling, or a "
                      "residual stream concatenated before and after its block): edgeprune keeps such channels whole")
        elif mismatched:
            reason = (
                f"couples layers of different widths ({', '.join(mismatched[:3])}"
                f"{', ...' if len(mismatched) > 3 else ''}) through an op the dependency graph does not model"
            )
        return _TpGroup(root_name, root_dep.target.module, root_dep.handler, width, members, reason)

    def _module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)

    def _merge_linked(self, tp_groups: list[_TpGroup], modules: dict[str, nn.Module]) -> list[ChannelGroup]:
        """Union channels of Torch-Pruning groups linked through a module; build edgeprune groups.

        Two kinds of module link the channels on their input side to those on their output side: a padding
        module (input channel ``i`` is output channel ``pad_front + i``) and a grouped convolution pruned in
        whole groups (input channel ``i`` goes with output channel ``i``: both leave with their group).
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
                    sides[m.module][m.dim] = (g.root, {idx: j for j, idx in enumerate(m.indices)})
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
        order = {g.root: i for i, g in enumerate(tp_groups)}
        for g in tp_groups:
            for j in range(g.width):
                by_component[find((g.root, j))].append((g.root, j))
        # Channels spanning the same Torch-Pruning groups form one edgeprune group.
        classes: dict[tuple[str, ...], list[list[tuple[str, int]]]] = defaultdict(list)
        for channels in by_component.values():
            channels.sort(key=lambda c: (order[c[0]], c[1]))
            classes[tuple(sorted({r for r, _ in channels}, key=order.__getitem__))].append(channels)
        groups: list[ChannelGroup] = []
        for roots, channel_sets in sorted(classes.items(), key=lambda kv: order[kv[0][0]]):
            channel_sets.sort(key=lambda cs: cs[0][1])
            convs = [(root, m) for root in roots for m in self._tp_by_root[root].members
                     if whole_group_unit(modules[m.module])]
            unit, unit_problem = order_in_runs(convs, channel_sets, modules)
            index_in = [{r: j for r, j in cs} for cs in channel_sets]
            members: list[GroupMember] = []
            for root in roots:
                positions = [ix[root] for ix in index_in]
                members += [
                    GroupMember(m.module, m.kind, m.dim, tuple(m.indices[p] for p in positions if p < len(m.indices)))
                    for m in self._tp_by_root[root].members
                ]
                self._parts.setdefault(roots[0], []).append((root, positions))
            reasons = [self._tp_by_root[r].frozen_reason for r in roots if self._tp_by_root[r].frozen_reason]
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
            for root, positions in self._parts[name]:
                removal[root].update(positions[c] for c in range(group.width) if c not in kept_set)
        for root, idxs in removal.items():
            if idxs:
                tp_group = self._tp_by_root[root]
                self._dg.get_pruning_group(tp_group.module, tp_group.handler, idxs=sorted(idxs)).prune()


def count_macs_and_params(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """Multiply-accumulate operations of one forward pass at the example's shape, and parameter count."""
    was_training = model.training
    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, example_input)
    model.train(was_training)
    return int(macs), int(params)
