"""The prunable model seen as a list of kernels: each Conv2d/Linear with its shape and the groups that set
its input and output widths.

A candidate (one width per channel group) then maps to concrete per-layer shapes, which the latency
table looks up. Batch norm and activations are folded into their convolution by every runtime edgeprune
targets, so a "layer" here is a fused kernel: conv (+BN) (+activation) (+residual add).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from edgeprune.prune.grouped_conv import whole_group_unit
from edgeprune.prune.groups import ChannelGroup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerSignature:
    """Everything about a kernel except its widths: the key under which latency tables store timings.

    ``kind`` is ``"conv"`` (dense, or grouped with a fixed group count), ``"gconv"`` (grouped, pruned in whole
    groups: the group count follows the width), ``"dwconv"`` (depthwise: groups == channels) or ``"linear"``.
    ``height``/``width`` are the input's spatial size; ``groups`` is the group count of a ``conv``, the
    channels per group of a ``gconv``, and 1 for the others (a depthwise conv's group count follows the width). ``residual_add``
    marks a conv whose output (after its batch norm) is added to a residual stream: the runtimes fuse that
    add into the kernel (OpenVINO's eltwise post-op, ONNX Runtime's NCHWc ``Sum``), so it is probed with it.
    """

    kind: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    height: int
    width: int
    bias: bool
    groups: int = 1
    residual_add: bool = False

    @property
    def diagonal(self) -> bool:
        """Whether the kernel's input and output channels are the same channels (depthwise, and grouped convs
        cut in whole groups): only equal widths are probed, and the width is read from one side."""
        return self.kind in ("dwconv", "gconv")

    def conv_groups(self, cin: int) -> int:
        """The group count of this kernel with ``cin`` input channels."""
        if self.kind == "dwconv":
            return cin
        if self.kind == "gconv":
            return max(1, cin // self.groups)
        return self.groups

    def key(self) -> str:
        """Stable text key, e.g. ``conv|k3x3|s1x1|p1x1|d1x1|32x32|b0|g1`` (``|add`` appended for a fused add)."""
        k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
        return (
            f"{self.kind}|k{k[0]}x{k[1]}|s{s[0]}x{s[1]}|p{p[0]}x{p[1]}|d{d[0]}x{d[1]}|"
            f"{self.height}x{self.width}|b{int(self.bias)}|g{self.groups}" + ("|add" if self.residual_add else "")
        )

    @classmethod
    def from_key(cls, key: str) -> "LayerSignature":
        """Inverse of :meth:`key`."""
        parts = key.split("|")
        residual_add = parts[-1] == "add"
        kind, k, s, p, d, hw, b, g = parts[:8]

        def pair(text: str) -> tuple[int, int]:
            a, c = text[1:].split("x")
            return int(a), int(c)

        h, w = hw.split("x")
        return cls(kind, pair(k), pair(s), pair(p), pair(d), int(h), int(w), b == "b1", int(g[1:]), residual_add)


@dataclass(frozen=True)
class Layer:
    """One kernel of the model.

    A side's width is its fixed channels (in no prunable group) plus the current width of every group that
    owns channels on that side; a residual-stream layer of a CIFAR ResNet's third stage, for instance, sums
    three groups (the channels of stage 1, and those added by stages 2 and 3).

    Attributes:
        name: module name.
        signature: shape-independent key.
        in_channels, out_channels: original widths.
        in_groups, out_groups: groups owning channels on each side, with their original widths.
    """

    name: str
    signature: LayerSignature
    in_channels: int
    out_channels: int
    in_groups: tuple[tuple[str, int], ...]
    out_groups: tuple[tuple[str, int], ...]

    def _side(self, total: int, parts: tuple[tuple[str, int], ...], group_widths: Mapping[str, int]) -> int:
        return total - sum(w for _, w in parts) + sum(group_widths.get(g, w) for g, w in parts)

    def widths(self, group_widths: Mapping[str, int]) -> tuple[int, int]:
        """(cin, cout) of this layer in a candidate; groups not in ``group_widths`` keep their width."""
        cin = self._side(self.in_channels, self.in_groups, group_widths)
        cout = self._side(self.out_channels, self.out_groups, group_widths)
        if self.signature.diagonal:  # in and out channels of a depthwise conv are the same channels
            cin = cout = cout if self.out_groups else cin
        return cin, cout

    @property
    def groups(self) -> set[str]:
        """Names of every group this layer's widths depend on."""
        return {g for g, _ in self.in_groups} | {g for g, _ in self.out_groups}


def _pair(value: object) -> tuple[int, int]:
    """(h, w) from any form a conv attribute takes in real modules: int, tuple, list, torch.Size, tensor."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (tuple, list, torch.Size)):
        if not value:
            raise ValueError("empty size attribute")
        return int(value[0]), int(value[-1])
    return int(value), int(value)  # type: ignore[call-overload]


def _padding(conv: nn.Conv2d) -> tuple[int, int]:
    """The conv's (h, w) zero padding; ``"same"`` is resolved (front side), ``"valid"`` is (0, 0)."""
    if conv.padding == "same":
        k, d = _pair(conv.kernel_size), _pair(conv.dilation)
        return d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2
    if isinstance(conv.padding, str):
        return 0, 0
    return _pair(conv.padding)


_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__,
         torch.Tensor.__radd__, operator.add, operator.iadd}


class _AddWatcher(TorchFunctionMode):
    """Sees every tensor addition of one forward pass and notes the conv that made its later operand."""

    def __init__(self, made_by: dict[int, tuple[int, str, torch.Tensor]]) -> None:
        super().__init__()
        self.made_by = made_by
        self.residual: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in _ADDS:
            makers = [self.made_by[id(a)] for a in args[:2] if isinstance(a, torch.Tensor) and id(a) in self.made_by]
            if makers:  # the operand computed last is the branch the runtime fuses the add into
                self.residual.add(max(makers, key=lambda m: m[0])[1])
        return func(*args, **(kwargs or {}))


def residual_add_convs(model: nn.Module, example: torch.Tensor) -> set[str]:
    """Names of the Conv2d modules whose output, directly or through one batch norm, is an operand of an add.

    Of an add's two operands, the one computed last (the residual branch, not the skip) is the one a runtime
    fuses the add into, so only its conv is named. Found by running the model once and watching its additions.
    """
    made_by: dict[int, tuple[int, str, torch.Tensor]] = {}  # tensor id -> (order, conv name, tensor kept alive)
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            def on_conv(_m: nn.Module, _a: tuple, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    made_by[id(out)] = (len(made_by), name, out)

            hooks.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.BatchNorm2d):
            def on_bn(_m: nn.Module, args: tuple, out: object) -> None:
                source = made_by.get(id(args[0])) if args and isinstance(args[0], torch.Tensor) else None
                if source is not None and isinstance(out, torch.Tensor):
                    made_by[id(out)] = (len(made_by), source[1], out)

            hooks.append(module.register_forward_hook(on_bn))
    watcher = _AddWatcher(made_by)
    try:
        with torch.no_grad(), watcher:
            model(example)
    except Exception as exc:  # noqa: BLE001 - a model the watcher upsets is profiled without fused adds
        log.warning("could not trace the model's residual additions (%s); its kernels are probed without them",
                    exc)
        return set()
    finally:
        for h in hooks:
            h.remove()
    return watcher.residual


def extract_layers(model: nn.Module, example: torch.Tensor, groups: list[ChannelGroup]) -> list[Layer]:
    """All Conv2d and Linear kernels of ``model`` at the example's input size, in execution order."""
    owned: dict[tuple[str, str], dict[str, set[int]]] = {}
    for group in groups:
        if not group.prunable:
            continue
        for member in group.members:
            owned.setdefault((member.module, member.dim), {}).setdefault(group.name, set()).update(member.indices)
    # a group whose channels a side holds n times (a channel concatenated with its copy: GhostNet, SPPF) counts
    # n times there; a Linear reading a flattened map counts once, as before
    widths = {g.name: g.width for g in groups}
    all_modules = dict(model.named_modules())
    sides: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for side, by_group in owned.items():
        for name, indices in by_group.items():
            flattened = side[1] == "in" and isinstance(all_modules.get(side[0]), nn.Linear)
            copies = 1 if flattened else max(1, len(indices) // widths[name])
            sides.setdefault(side, []).extend([(name, widths[name])] * copies)
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):

            def hook(mod: nn.Module, args: tuple, _out: object, name: str = name) -> None:
                if name not in shapes:
                    shapes[name] = tuple(args[0].shape)
                    order.append(name)

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()
            model(example)
    finally:
        for h in hooks:
            h.remove()
    modules = dict(model.named_modules())
    residual = residual_add_convs(model, example)
    layers: list[Layer] = []
    for name in order:
        module = modules[name]
        shape = shapes[name]
        if isinstance(module, nn.Conv2d):
            depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
            unit = whole_group_unit(module)
            signature = LayerSignature(
                "dwconv" if depthwise else "gconv" if unit else "conv",
                _pair(module.kernel_size),
                _pair(module.stride),
                _padding(module),
                _pair(module.dilation),
                int(shape[2]),
                int(shape[3]),
                module.bias is not None,
                1 if depthwise else unit or int(module.groups),
                name in residual,
            )
            cin, cout = module.in_channels, module.out_channels
        else:
            assert isinstance(module, nn.Linear)
            signature = LayerSignature("linear", (1, 1), (1, 1), (0, 0), (1, 1), 1, 1, module.bias is not None)
            cin, cout = module.in_features, module.out_features
        layers.append(Layer(name, signature, cin, cout, tuple(sides.get((name, "in"), [])),
                            tuple(sides.get((name, "out"), []))))
    return layers
