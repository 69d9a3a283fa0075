"""An exported PyTorch program lowered to XNNPACK and serialised as a ``.pte``, with what stayed outside the delegate.

The XNNPACK partitioner takes every node it supports; the rest runs on ExecuTorch's portable kernels, which are
far slower for convolutions and matrix products. :func:`lower_to_pte` counts both and warns, in one line, when a
compute op stayed outside the delegate (the usual reason a ``.pte`` is slow).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeprune.errors import InputError, MissingRuntimeError, first_line
from edgeprune.io_atomic import write_atomic
from edgeprune.runtimes.native_output import quiet_native_output

#: the name a session accepts its single input under (a ``.pte`` keeps no input names); as the ONNX export's
INPUT_NAME = "input"

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: edge-dialect ops that compute (what a layer list names); one of these outside the delegate is slow
COMPUTE_OPS = frozenset({"convolution", "linear", "addmm", "mm", "bmm", "matmul", "conv2d", "_convolution"})
#: the loggers ExecuTorch's lowering writes to (partitioner notes, pass warnings)
_NOISY = ("executorch", "torchao")


@dataclass
class DelegationSummary:
    """How much of a lowered program XNNPACK runs.

    Attributes:
        delegates: number of XNNPACK delegate calls (one per connected delegated region).
        delegated_nodes: edge-dialect ops inside the delegates.
        portable_ops: ops left to ExecuTorch's portable kernels, by name (``{"mean.dim": 1}``).
    """

    delegates: int = 0
    delegated_nodes: int = 0
    portable_ops: Counter[str] = field(default_factory=Counter)

    @property
    def portable_compute_ops(self) -> list[str]:
        """The compute ops (convolution, linear, matrix products) that stayed outside the delegate."""
        return sorted(op for op in self.portable_ops if op.split(".")[0] in COMPUTE_OPS)

    def describe(self) -> str:
        """One line: ``12 nodes in 1 XNNPACK delegate, 1 op on portable kernels (mean.dim)``."""
        portable = sum(self.portable_ops.values())
        names = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(self.portable_ops.items()))
        return (f"{self.delegated_nodes} nodes in {self.delegates} XNNPACK delegate(s), {portable} op(s) on "
                f"portable kernels" + (f" ({names})" if names else ""))


def import_executorch_export() -> tuple[Any, Any]:
    """``(to_edge_transform_and_lower, XnnpackPartitioner)``, or :class:`MissingRuntimeError`."""
    try:
        with quiet_native_output():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower
    except ImportError:
        raise MissingRuntimeError("ExecuTorch", "executorch") from None
    return to_edge_transform_and_lower, XnnpackPartitioner


def summarise_delegation(edge_program: Any) -> DelegationSummary:
    """Count delegated and portable ops of a lowered ``EdgeProgramManager``'s ``forward``."""
    summary = DelegationSummary()
    graph_module = edge_program.exported_program().graph_module
    for node in graph_module.graph.nodes:
        if node.op == "get_attr" and str(node.target).startswith("lowered_module"):
            lowered = getattr(graph_module, str(node.target))
            summary.delegates += 1
            summary.delegated_nodes += sum(1 for n in lowered.original_module.graph.nodes
                                           if n.op == "call_function" and "getitem" not in str(n.target))
        elif node.op == "call_function" and "executorch_call_delegate" not in str(node.target) \
                and "getitem" not in str(node.target):
            summary.portable_ops[_op_name(node.target)] += 1
    return summary


def _op_name(target: Any) -> str:
    """``aten.mean.dim`` → ``mean.dim``."""
    name = str(getattr(target, "__name__", target))
    for prefix in ("aten.", "aten::"):
        name = name.split(prefix, 1)[-1]
    return name


def lower_to_pte(exported: Any, path: Path) -> DelegationSummary:
    """Lower ``exported`` (a ``torch.export.ExportedProgram``) to XNNPACK, write the program atomically to
    ``path`` and return what was delegated. Errors become one :class:`InputError` line."""
    to_edge_transform_and_lower, partitioner = import_executorch_export()
    try:
        with quiet_native_output(), _quiet_loggers():
            edge = to_edge_transform_and_lower(exported, partitioner=[partitioner()])
            summary = summarise_delegation(edge)
            buffer = edge.to_executorch().buffer
    except Exception as exc:  # the lowering raises many types; the user needs one line
        raise InputError(f"ExecuTorch lowering failed: {first_line(exc, 300)}") from None
    write_atomic(path, lambda tmp: tmp.write_bytes(buffer))
    log.debug("ExecuTorch: %s", summary.describe())
    if summary.portable_compute_ops:
        log.warning("ExecuTorch: %s stayed outside the XNNPACK delegate and runs on slow portable kernels",
                    ", ".join(summary.portable_compute_ops))
    return summary


def export_program(model: nn.Module, example: torch.Tensor, set_eval: bool = True) -> Any:
    """``torch.export.export`` of ``model`` in eval mode at the example's shape (the model's mode restored);
    ``set_eval=False`` for a graph PT2E converted, whose mode cannot be switched."""
    import torch

    was_training = model.training
    if set_eval:
        model.eval()
    try:
        with quiet_native_output(), _quiet_loggers():
            return torch.export.export(model, (example,))
    except Exception as exc:
        raise InputError(f"torch.export failed on the model: {first_line(exc, 300)}") from None
    finally:
        if set_eval:
            model.train(was_training)


class _quiet_loggers:  # noqa: N801 - used as a context manager, reads like one
    """ExecuTorch's and torchao's Python loggers raised to ERROR for the duration."""

    def __enter__(self) -> None:
        self._levels = {name: logging.getLogger(name).level for name in _NOISY}
        for name in _NOISY:
            logging.getLogger(name).setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
