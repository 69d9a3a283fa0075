"""Single-kernel probe models: one fused kernel (conv + bias + ReLU, or a linear layer) at given widths.

Timing a probe on the target's runtime gives the cost of that kernel at those widths. For runtimes that
read ONNX (ONNX Runtime, OpenVINO) the probe is written directly with ``onnx.helper``, which takes
milliseconds; for the others it is a tiny PyTorch module exported by the backend (about a second each for
LiteRT), so their grids are coarser.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgeprune.latency.layers import LayerSignature

PROBE_INPUT = "input"
_OPSET = 17


def probe_input_shape(sig: LayerSignature, cin: int) -> tuple[int, ...]:
    """Input shape of a probe (batch 1)."""
    return (1, cin) if sig.kind == "linear" else (1, cin, sig.height, sig.width)


def conv_output_hw(sig: LayerSignature) -> tuple[int, int]:
    """A conv probe's output height and width."""
    out_h = (sig.height + 2 * sig.padding[0] - sig.dilation[0] * (sig.kernel[0] - 1) - 1) // sig.stride[0] + 1
    out_w = (sig.width + 2 * sig.padding[1] - sig.dilation[1] * (sig.kernel[1] - 1) - 1) // sig.stride[1] + 1
    return out_h, out_w


def _weights(shape: tuple[int, ...], seed: int) -> np.ndarray:
    # Values well away from zero: denormal weights or activations would distort timings.
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.05, 0.15, size=shape) * rng.choice([-1.0, 1.0], size=shape)).astype(np.float32)


def probe_onnx(sig: LayerSignature, cin: int, cout: int) -> onnx.ModelProto:
    """An ONNX model holding one fused kernel: Conv(+bias)+Relu, or Gemm for linear layers."""
    x = helper.make_tensor_value_info(PROBE_INPUT, TensorProto.FLOAT, list(probe_input_shape(sig, cin)))
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    if sig.kind == "linear":
        inits.append(numpy_helper.from_array(_weights((cout, cin), 0), "W"))
        inputs = [PROBE_INPUT, "W"]
        if sig.bias:
            inits.append(numpy_helper.from_array(_weights((cout,), 1), "B"))
            inputs.append("B")
        nodes.append(helper.make_node("Gemm", inputs, ["output"], transB=1))
        out_shape = [1, cout]
    else:
        groups = sig.conv_groups(cin)
        if sig.diagonal:
            cout = cin
        inits.append(numpy_helper.from_array(_weights((cout, cin // groups, *sig.kernel), 0), "W"))
        inputs = [PROBE_INPUT, "W"]
        # Batch norm folds into a bias, so every fused conv kernel has one.
        inits.append(numpy_helper.from_array(_weights((cout,), 1), "B"))
        inputs.append("B")
        nodes.append(
            helper.make_node(
                "Conv", inputs, ["conv"], kernel_shape=list(sig.kernel), strides=list(sig.stride),
                pads=[sig.padding[0], sig.padding[1], sig.padding[0], sig.padding[1]],
                dilations=list(sig.dilation), group=groups,
            )
        )
        out_shape = [1, cout, *conv_output_hw(sig)]
        if sig.residual_add:  # the residual stream, as a tensor the kernel reads: the add fuses into the conv
            inits.append(numpy_helper.from_array(_weights(tuple(out_shape), 2), "R"))
            nodes.append(helper.make_node("Add", ["conv", "R"], ["sum"]))
        nodes.append(helper.make_node("Relu", ["sum" if sig.residual_add else "conv"], ["output"]))
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph(nodes, "edgeprune_probe", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="edgeprune")
    model.ir_version = 8
    return model


#: Signature key of the empty probe (a ReLU on one value): the runtime's fixed cost of one inference call,
#: which every probe pays and which is subtracted from kernel timings.
EMPTY_PROBE_KEY = "empty"


def empty_probe_onnx() -> onnx.ModelProto:
    """An ONNX model doing almost nothing (ReLU of one value)."""
    x = helper.make_tensor_value_info(PROBE_INPUT, TensorProto.FLOAT, [1, 1])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1])
    graph = helper.make_graph([helper.make_node("Relu", [PROBE_INPUT], ["output"])], "edgeprune_empty", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="edgeprune")
    model.ir_version = 8
    return model


class EmptyProbeModule(nn.Module):
    """PyTorch form of the empty probe."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class ProbeModule(nn.Module):
    """The PyTorch form of a probe, for backends that convert from PyTorch (LiteRT)."""

    def __init__(self, sig: LayerSignature, cin: int, cout: int) -> None:
        super().__init__()
        self.layer: nn.Module
        if sig.kind == "linear":
            self.layer = nn.Linear(cin, cout, bias=sig.bias)
        else:
            groups = sig.conv_groups(cin)
            self.layer = nn.Conv2d(cin, cin if sig.diagonal else cout, sig.kernel, sig.stride,
                                   sig.padding, sig.dilation, groups=groups, bias=True)
        with torch.no_grad():
            self.layer.weight.copy_(torch.from_numpy(_weights(tuple(self.layer.weight.shape), 0)))
            if self.layer.bias is not None:
                self.layer.bias.copy_(torch.from_numpy(_weights(tuple(self.layer.bias.shape), 1)))
        self.relu = sig.kind != "linear"
        residual = None
        if sig.residual_add and sig.kind != "linear":
            shape = (1, cin if sig.diagonal else cout, *conv_output_hw(sig))
            residual = torch.from_numpy(_weights(shape, 2))
        self.residual: torch.Tensor | None
        self.register_buffer("residual", residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x)
        if self.residual is not None:
            y = y + self.residual
        return torch.relu(y) if self.relu else y
