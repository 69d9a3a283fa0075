"""Channel groups from Torch-Pruning's dependency graph, and physical channel removal.

This is the only module that imports ``torch_pruning``. It traces the model once, turns each of
Torch-Pruning's groups into an edgeprune :class:`~edgeprune.prune.groups.ChannelGroup`, and freezes
(with a warning that names it) every group edgeprune cannot prune safely:

* the classifier's output (pruning it would change the model's meaning);
* groups whose members have different widths: Torch-Pruning treats ops it does not understand, such as
  the option-A zero-padding shortcut of CIFAR ResNets, as element-wise, which couples a 16-channel stage
  to a 32-channel one. Removing "channel i" from such a group would corrupt the network.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn

from edgeprune.errors import ModelLoadError
from edgeprune.prune.groups import ChannelGroup, GroupMember

log = logging.getLogger(__name__)

_OUT_HANDLERS = {"prune_out_channels"}
_IN_HANDLERS = {"prune_in_channels"}


def _channel_dim_size(module: nn.Module, dim: str) -> int | None:
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
    if not isinstance(out, torch.Tensor) or out.dim() < 2:
        return None
    n_out = out.shape[1]
    found = None
    for name, module in model.named_modules():
        if _channel_dim_size(module, "out") == n_out and isinstance(module, (nn.Linear, nn.Conv2d)):
            found = name
    return found


class ModelGraph:
    """The channel groups of one model instance, and the operation that removes channels from it.

    >>> graph = ModelGraph(model, torch.randn(1, 3, 32, 32))       # doctest: +SKIP
    >>> [g.name for g in graph.prunable_groups()][:2]                # doctest: +SKIP
    ['layer1.0.conv1', 'layer1.1.conv1']
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
        classifier = find_classifier(model, example_input)
        self.classifier = classifier
        ignored_names = set(frozen_modules)
        unknown = [n for n in ignored_names if n not in modules]
        if unknown:
            raise ModelLoadError(f"cannot freeze unknown module(s): {', '.join(sorted(unknown))}")
        try:
            with torch.enable_grad():
                self._dg = tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
        except Exception as exc:  # tracing failures come in many types; report them as one
            raise ModelLoadError(f"cannot trace the model's channel dependencies: {exc}") from None
        self._roots: dict[str, tuple[nn.Module, object]] = {}
        self.groups: list[ChannelGroup] = []
        for tp_group in self._dg.get_all_groups(root_module_types=[nn.Conv2d, nn.Linear]):
            group = self._to_record(tp_group, ignored_names, classifier)
            if group is not None:
                self.groups.append(group)
        # The classifier's output is frozen by design; anything else frozen deserves a warning.
        frozen = [g for g in self.groups if not g.prunable and g.name != classifier]
        if frozen and warn_frozen:
            log.warning(
                "froze %d channel group(s) that cannot be pruned safely: %s",
                len(frozen),
                "; ".join(f"{g.name} ({g.frozen_reason})" for g in frozen),
            )

    def _to_record(self, tp_group: object, ignored: set[str], classifier: str | None) -> ChannelGroup | None:
        items = list(tp_group)  # type: ignore[call-overload]
        root_dep = items[0].dep
        root_module = root_dep.target.module
        root_name = self._name_of.get(root_module)
        if root_name is None or root_dep.handler.__name__ not in _OUT_HANDLERS:
            return None
        width = len(items[0].idxs)
        members: list[GroupMember] = []
        mismatched: list[str] = []
        for item in items:
            module = item.dep.target.module
            name = self._name_of.get(module)
            handler = item.dep.handler.__name__
            if name is None or not isinstance(module, nn.Module):
                continue  # functional ops (add, cat, flatten) carry no weights
            dim = "out" if handler in _OUT_HANDLERS else "in" if handler in _IN_HANDLERS else None
            if dim is None:
                continue
            size = _channel_dim_size(module, dim)
            indices = tuple(int(i) for i in item.idxs)
            if size is not None and size != width and not (dim == "in" and isinstance(module, nn.Linear)):
                mismatched.append(f"{name}:{dim}={size}")
            members.append(GroupMember(name, type(module).__name__, dim, indices))
        self._roots[root_name] = (root_module, root_dep.handler)
        reason = ""
        touched = {m.module for m in members}
        if any(m.module == classifier and m.dim == "out" for m in members):
            reason = f"output classes of the classifier {classifier}"
        elif touched & ignored:
            reason = "contains " + ", ".join(sorted(touched & ignored)) + ", frozen by request"
        elif mismatched:
            reason = (
                f"couples layers of different widths ({', '.join(mismatched[:3])}"
                f"{', ...' if len(mismatched) > 3 else ''}) through an op the dependency graph does not model"
            )
        return ChannelGroup(
            name=root_name,
            width=width,
            members=tuple(members),
            prunable=not reason,
            frozen_reason=reason,
            module_names=tuple(sorted(touched)),
        )

    def prunable_groups(self) -> list[ChannelGroup]:
        """Groups that may lose channels."""
        return [g for g in self.groups if g.prunable]

    def remove_channels(self, keep: Mapping[str, Sequence[int]]) -> None:
        """Physically remove, from each named group, every channel not listed in ``keep[group]``.

        Indices are group channel positions (0..width-1). Groups not in ``keep`` are left whole.
        """
        by_name = {g.name: g for g in self.groups}
        for name, kept in keep.items():
            group = by_name.get(name)
            if group is None or not group.prunable:
                raise ValueError(f"group '{name}' is unknown or frozen")
            kept_set = set(int(i) for i in kept)
            if not kept_set or not kept_set <= set(range(group.width)):
                raise ValueError(f"group '{name}': keep indices must be a non-empty subset of 0..{group.width - 1}")
            remove = [i for i in range(group.width) if i not in kept_set]
            if not remove:
                continue
            module, handler = self._roots[name]
            self._dg.get_pruning_group(module, handler, idxs=remove).prune()


def count_macs_and_params(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """Multiply-accumulate operations of one forward pass at the example's shape, and parameter count."""
    was_training = model.training
    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, example_input)
    model.train(was_training)
    return int(macs), int(params)
