"""Reshapes that rearrange the channel dimension (channel shuffle, head splits, window partitions).

Torch-Pruning models a ``view``/``reshape`` only when it flattens ``(N, C, H, W)`` into a classifier's
``(N, C*H*W)``; any other reshape it treats as an element-wise op, so channel ``i`` before it is coupled to
channel ``i`` after it. That is wrong for a channel shuffle (ShuffleNet's ``view(N, g, C/g, H, W)``,
``transpose``, ``view(N, C, H, W)`` permutes the channels) and for any reshape that splits or merges the
channel dimension, and pruning such a group would silently corrupt the network.

:class:`ReshapeRecorder` watches one forward pass (the one Torch-Pruning traces) and records, for every
reshape's autograd node, the input and output shapes. :func:`keeps_channels` says whether a reshape leaves
the channel dimension (dim 1) whole; the graph freezes every group whose channels pass through one that
does not, and names the construct in the group's reason. The rule is conservative: a reshape that keeps
the channels last (``(B, H, W, C)`` window partitions) is also treated as rearranging, which freezes more
than necessary but never corrupts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

#: the tensor functions and methods that reshape (by ``__name__``)
_RESHAPES = frozenset({"view", "reshape", "flatten", "unflatten", "view_as", "reshape_as"})
#: the functions that concatenate (by ``__name__``)
_CONCATS = frozenset({"cat", "concat", "concatenate"})

#: autograd nodes of matrix products, around which C++ ops make views of their own
_MATMULS = ("AddmmBackward", "MmBackward", "BmmBackward")

Shape = tuple[int, ...]


def keeps_channels(in_shape: Shape, out_shape: Shape, channels: int | None) -> bool:
    """Whether a reshape from ``in_shape`` to ``out_shape`` leaves the ``channels`` dimension whole.

    ``channels`` is the channel count of the reshape's input (from the producing layer). Channels-first
    tensors (``(N, C, ...)``, a convolution's output) keep them when dim 1 keeps its size, with the spatial
    dimensions merged or split (``(N, C, H, W)`` → ``(N, C, H*W)``, ``(N, C)`` ↔ ``(N, C, 1, 1)``), and in the
    flatten into a classifier (``(N, C, H, W)`` → ``(N, C*H*W)``), which Torch-Pruning maps itself.
    Channels-last tensors (``(B, L, C)``, ``(B, H, W, C)``: tokens, a Linear's output) keep them when the last
    dimension keeps its size. A vector alone (a parameter of one value per channel: a layer scale ``[C]`` viewed
    as ``[1, C, 1, 1]``) keeps them whatever singleton dimensions surround it. An unknown channel count keeps
    nothing else.

    >>> keeps_channels((1, 64, 7, 7), (1, 3136), 64)             # flatten before a classifier
    True
    >>> keeps_channels((1, 48, 16, 16), (1, 2, 24, 16, 16), 48)   # channel shuffle
    False
    >>> keeps_channels((4, 49, 288), (4, 49, 3, 3, 32), 288)      # a qkv projection split into heads
    False
    >>> keeps_channels((40,), (1, 40, 1, 1), 40)                  # a layer scale made broadcastable (ConvNeXt)
    True
    """
    if _one_vector(in_shape, out_shape):
        return True  # a per-channel vector ([C] <-> [1, C, 1, 1]): its entries keep their order, nothing moves
    if channels is None or len(in_shape) < 2 or len(out_shape) < 2 or in_shape[0] != out_shape[0]:
        return False
    if len(out_shape) == 2 and out_shape[1] == math.prod(in_shape[1:]):
        return True  # the flatten into a classifier, or (N, C, 1, 1) -> (N, C)
    first, last = in_shape[1] == channels, len(in_shape) > 2 and in_shape[-1] == channels
    keeps_first = out_shape[1] == in_shape[1] or (len(out_shape) == 2 and out_shape[1] == math.prod(in_shape[1:]))
    keeps_last = out_shape[-1] == in_shape[-1]
    if first and last:  # ambiguous: both must hold
        return keeps_first and keeps_last
    if not first and not last:  # the graph's channel count fits neither end (it coupled other widths): dim 1
        return keeps_first
    return (first and keeps_first) or (last and keeps_last)


def _one_vector(in_shape: Shape, out_shape: Shape) -> bool:
    """Whether both shapes hold one vector of the same length, with only singleton dimensions around it."""
    sizes_in = [d for d in in_shape if d != 1]
    sizes_out = [d for d in out_shape if d != 1]
    return len(sizes_in) == 1 and sizes_in == sizes_out


class ReshapeRecorder(TorchFunctionMode):
    """A torch function mode that records ``grad_fn -> (input shape, output shape, op name)`` per reshape.

    Use it around the forward pass whose autograd graph is traced; the keys are that graph's nodes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.shapes: dict[Any, tuple[Shape, Shape, str]] = {}
        #: concatenation node -> the dimension it concatenates along (made non-negative)
        self.concat_dims: dict[Any, int] = {}
        #: concatenation node -> the sizes along that dimension of its inputs that autograd tracks, in order
        self.concat_sizes: dict[Any, list[int]] = {}
        #: nodes whose channel mapping Torch-Pruning could not compute -> what they are
        self.unmapped: dict[Any, str] = {}
        self._verdicts: dict[Any, str | None] = {}

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if (name in _RESHAPES and isinstance(out, torch.Tensor) and out.grad_fn is not None and args
                and isinstance(args[0], torch.Tensor)):
            self.shapes[out.grad_fn] = (tuple(args[0].shape), tuple(out.shape), name)
        elif name in _CONCATS and isinstance(out, torch.Tensor) and out.grad_fn is not None:
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) if kwargs else (args[1] if len(args) > 1 else 0)
            self.concat_dims[out.grad_fn] = int(dim) % out.dim()
            tensors = args[0] if args else (kwargs or {}).get("tensors", ())
            self.concat_sizes[out.grad_fn] = [int(t.shape[int(dim) % out.dim()]) for t in tensors
                                              if isinstance(t, torch.Tensor) and t.grad_fn is not None]
        return out

    def rearranging(self, grad_fn: Any, consumers: Sequence[Any] = (), channels: int | None = None) -> str | None:
        """A description of the reshape behind ``grad_fn`` when it rearranges channels, else None.

        ``channels`` is the input's channel count (see :func:`keeps_channels`). The verdict is computed once
        per node and remembered, so later calls need no arguments. A reshape the recorder did not see was
        made inside a C++ op: the views a matrix product makes around itself (a Linear applied to a token
        tensor folds the leading dimensions and keeps the features) keep channels, any other does not.
        ``consumers`` are the autograd nodes of the ops that read the reshape's output.
        """
        if grad_fn in self._verdicts:
            return self._verdicts[grad_fn]
        seen = self.shapes.get(grad_fn)
        verdict: str | None
        if seen is None:
            neighbours = [f for f, _ in getattr(grad_fn, "next_functions", ()) if f is not None] + list(consumers)
            matmul = any(_name(f).startswith(_MATMULS) for f in neighbours)
            verdict = None if matmul else f"a reshape ({_name(grad_fn)}) of unknown shapes"
        else:
            in_shape, out_shape, name = seen
            verdict = None if keeps_channels(in_shape, out_shape, channels) else \
                f"{name} {list(in_shape)} -> {list(out_shape)}"
        self._verdicts[grad_fn] = verdict
        return verdict


def _name(grad_fn: Any) -> str:
    return grad_fn.name() if hasattr(grad_fn, "name") else type(grad_fn).__name__
