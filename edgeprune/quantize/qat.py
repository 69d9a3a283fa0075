"""Quantization-aware models by NNCF's PyTorch quantization, and their INT8 artifacts for ONNX Runtime and OpenVINO.

:func:`prepare_qat` folds every convolution's batch norm into it, then ``nncf.quantize`` inserts fake-quantize
operations calibrated on the calibration images with the preset the post-training path uses (``PERFORMANCE``:
symmetric int8 weights with one scale per output channel, symmetric int8 activations). The result is an
``nn.Module`` that trains like any other: the forward pass rounds weights and activations to the INT8 grid,
the backward pass goes straight through the rounding.

Batch norms are folded first because ONNX Runtime runs a QDQ convolution as an integer kernel (``QLinearConv``)
only when its dequantized weight feeds the convolution and the convolution's output goes straight into the
next quantize step; a batch norm left between them keeps the convolution in float (measured: ONNX Runtime 1.32
ran the unfolded demo with nine float ``Conv`` kernels, the folded one with nine ``QLinearConv``). ONNX
Runtime's own post-training quantizer folds them too (``quant_pre_process``).

Export: :func:`export_qat_onnx` writes the fake-quantize operations as ``QuantizeLinear``/``DequantizeLinear``
pairs (NNCF's ``ONNX_QUANTIZE_DEQUANTIZE_PAIRS`` export mode, through PyTorch's TorchScript exporter: the dynamo
exporter cannot trace NNCF's quantizers); :func:`export_qat_openvino` writes them as OpenVINO ``FakeQuantize``
operations (NNCF's ``FAKE_QUANTIZE`` mode, read by OpenVINO's ONNX frontend, which maps NNCF's custom op onto
its own), the form NNCF's post-training quantization gives the IR.

:func:`float_form` puts the trained weights back into the un-folded architecture: the float model the INT8
artifact was quantized from, which ``model.safetensors`` holds and artifacts are checked against.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.errors import InputError, first_line
from edgeprune.quantize.backend import MAX_CALIBRATION_IMAGES
from edgeprune.runtimes.base import Artifact, Backend
from edgeprune.runtimes.onnx_export import INPUT_NAME, OUTPUT_NAME
from edgeprune.runtimes.table import RUNTIME_FACTS, facts_of

log = logging.getLogger(__name__)

#: the largest relative output change that folding batch norms may cause (float rounding only)
FOLD_TOLERANCE = 1e-4

#: ONNX opset of the QAT export (per-channel QuantizeLinear needs 13)
QAT_OPSET = 17


def check_qat_runtime(runtime: str, target_name: str) -> None:
    """Refuse quantization-aware fine-tuning for a runtime whose INT8 files cannot come from NNCF's QAT export."""
    facts = facts_of(runtime)
    if not facts.qat:
        capable = " and ".join(f.title for f in RUNTIME_FACTS if f.qat)
        raise InputError(f"--qat-epochs: target '{target_name}' runs {facts.title}, whose quantizer here has no "
                         f"quantization-aware training path (implemented for {capable}); drop --qat-epochs")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NNCF's and the exporters' progress bars, notes and warnings kept out of the terminal."""
    levels = {name: logging.getLogger(name).level for name in ("nncf", "torch.utils.cpp_extension", "torch.onnx")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(convolution, batch norm) module names where the batch norm (affine, with running statistics) reads the
    convolution's output directly, found by running ``example`` through ``model``."""
    produced: dict[int, str] = {}
    pairs: list[tuple[str, str]] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(
                lambda _m, _i, out, name=name: produced.__setitem__(id(out), name)))
        elif isinstance(module, nn.BatchNorm2d) and module.affine and module.track_running_stats:
            hooks.append(module.register_forward_hook(
                lambda _m, inp, _o, name=name: pairs.append((produced.get(id(inp[0]), ""), name))))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return [(conv, bn) for conv, bn in pairs if conv]


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def fold_batchnorm(model: nn.Module, example: torch.Tensor, check: torch.Tensor
                   ) -> tuple[nn.Module, list[tuple[str, str]]]:
    """A copy of ``model`` (eval mode) with each convolution's batch norm folded into it (the norm becomes an
    ``nn.Identity``), and the folded pairs; refuses (InputError) a model whose outputs on ``check`` change:
    a convolution whose output is also read elsewhere cannot be folded."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    reference = model.eval()
    folded = copy.deepcopy(reference)
    pairs = conv_bn_pairs(folded, example)
    for conv, bn in pairs:
        _set(folded, conv, fuse_conv_bn_eval(folded.get_submodule(conv), folded.get_submodule(bn)))
        _set(folded, bn, nn.Identity())
    with torch.no_grad():
        want, got = reference(check), folded(check)
    change = float((want - got).abs().max()) / max(1.0, float(want.abs().max()))
    if change > FOLD_TOLERANCE:
        raise InputError(f"folding batch norms into convolutions changed the model's outputs by {change:.2g} of "
                         "their scale (a convolution's output is also read elsewhere); quantization-aware "
                         "fine-tuning needs them folded")
    return folded, pairs


class QatRoot(nn.Module):
    """The model NNCF wraps: ``model`` as the one child of a plain module (NNCF adds a hook-storage child to the
    module it wraps, which an ``nn.Sequential`` root would call in its forward pass)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped model's output."""
        return self.model(x)


#: the prefix :class:`QatRoot` puts on the wrapped model's state-dict keys
ROOT_PREFIX = "model."


def ignored_scope(float_layers: tuple[str, ...]) -> Any:
    """NNCF's scope of the layers left in float (module paths, as mixed precision names them): NNCF names a
    PyTorch operation by its module path in slashes, then the function and its call index (``stage1/conv1/conv2d/0``)."""
    import nncf

    return nncf.IgnoredScope(patterns=[rf"^{re.escape((ROOT_PREFIX + layer).replace('.', '/'))}/[A-Za-z_0-9]+/\d+$"
                                       for layer in float_layers], validate=False)


def prepare_qat(model: nn.Module, example: torch.Tensor, calibration: torch.Tensor,
                float_layers: tuple[str, ...] = ()) -> tuple[nn.Module, list[tuple[str, str]]]:
    """The quantization-aware form of ``model`` (batch norms folded, NNCF fake-quantize operations calibrated
    on up to :data:`MAX_CALIBRATION_IMAGES` of ``calibration``, ``float_layers`` left in float as the PTQ
    artifact leaves them) and the folded (conv, batch norm) pairs."""
    with _quiet():
        import nncf
    if len(calibration) == 0:
        raise InputError("quantization-aware fine-tuning needs calibration images (--calib-images)")
    images = calibration[:MAX_CALIBRATION_IMAGES]
    folded, pairs = fold_batchnorm(model, example, images[:16])
    batches = [images[i:i + 1] for i in range(len(images))]
    try:
        with _quiet():
            quantized = nncf.quantize(QatRoot(folded), nncf.Dataset(batches), subset_size=len(batches),
                                      preset=nncf.QuantizationPreset.PERFORMANCE,
                                      ignored_scope=ignored_scope(float_layers) if float_layers else None)
    except Exception as exc:  # NNCF raises many types on a graph it cannot handle
        raise InputError(f"NNCF cannot quantize the model for quantization-aware fine-tuning: "
                         f"{type(exc).__name__}: {first_line(exc, 200)}") from None
    log.debug("NNCF quantization-aware model: %d batch norms folded, calibrated on %d images", len(pairs),
              len(batches))
    return quantized.eval(), pairs


def _export(qat: nn.Module, example: torch.Tensor, path: Path, qdq: bool) -> None:
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    mode = QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS if qdq else QuantizerExportMode.FAKE_QUANTIZE
    quantizers = [m for m in qat.modules() if isinstance(m, BaseQuantizer)]
    if not quantizers:
        raise InputError("the quantization-aware model holds no quantizers to export")
    was_training = qat.training
    qat.eval()
    try:
        for quantizer in quantizers:
            quantizer.set_export_mode(mode)
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):
            torch.onnx.export(qat, (example,), str(path), dynamo=False, opset_version=QAT_OPSET,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    except InputError:
        raise
    except Exception as exc:  # the exporter raises many types
        raise InputError(f"export of the quantization-aware model failed: {type(exc).__name__}: "
                         f"{first_line(exc, 200)}") from None
    finally:
        for quantizer in quantizers:
            quantizer.set_export_mode(QuantizerExportMode.FAKE_QUANTIZE)
        qat.train(was_training)


def export_qat(qat: nn.Module, example: torch.Tensor, path: Path, backend: Backend) -> Artifact:
    """The INT8 artifact of ``backend``'s runtime from the quantization-aware model: NNCF's ONNX export in the
    mode the runtime reads (QDQ pairs, or FakeQuantize operations), made into the runtime's file by its backend."""
    mode = getattr(backend, "qat_onnx_mode", None)
    if mode is None:
        check_qat_runtime(backend.name, backend.name)
    with tempfile.TemporaryDirectory(prefix="edgeprune-qat-") as tmp:
        onnx_path = Path(tmp) / "qat.onnx"
        _export(qat, example, onnx_path, qdq=mode == "qdq")
        return backend.artifact_from_qat_onnx(onnx_path, Path(path), tuple(example.shape))


def float_form(qat: nn.Module, architecture: nn.Module, pairs: list[tuple[str, str]]) -> nn.Module:
    """``architecture`` (un-folded, as the plan rebuilds it) carrying the quantization-aware model's trained
    float weights: each folded convolution's weight and bias go back into the convolution and its batch norm
    (which becomes the identity plus the bias: scale 1, mean 0, variance 1 - eps), so the copy computes what
    the QAT model computes without its fake-quantize steps."""
    state = {k[len(ROOT_PREFIX):]: v for k, v in qat.state_dict().items() if k.startswith(ROOT_PREFIX)}
    result = copy.deepcopy(architecture).eval()
    folded_convs, folded_bns = dict(pairs), {bn for _, bn in pairs}
    with torch.no_grad():
        for name, module in result.named_modules():
            if name in folded_convs:
                module.weight.copy_(state[f"{name}.weight"])
                bias = state.get(f"{name}.bias")
                if module.bias is not None:
                    module.bias.zero_()
                bn = result.get_submodule(folded_convs[name])
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias if bias is not None else torch.zeros_like(bn.bias))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            elif name not in folded_bns:  # every other module's own weights and buffers, as trained
                prefix = f"{name}." if name else ""
                for key, value in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
                    if prefix + key in state:
                        value.copy_(state[prefix + key])
    return result

