"""The precision of each compute layer of an ncnn model, read back from its ``.param`` and ``.bin``.

* A convolution or inner product with ``8=int8_scale_term`` non-zero is int8: ncnn quantizes its input with the
  stored ``bottom_blob_int8_scales`` and its weights are stored in int8 (``ncnn2int8``'s output).
* Otherwise it computes in fp32 (edgeprune's session switches off ncnn's fp16/bf16 options). The weights'
  storage is read from the ``.bin``: each weight array starts with a 4-byte tag, 0 for fp32, ``0x01306B47`` for
  fp16 (pnnx's default ``fp16=1``), ``0x000D4B38`` for int8. The ``.bin`` holds the weighted layers' arrays in
  layer order with no index, so it is walked layer by layer for the kinds whose layout is known here; past a
  weighted layer of another kind the storage is no longer read and is reported as ``float``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgeprune.runtimes.base import LayerPrecision
from edgeprune.runtimes.ncnn.param import COMPUTE_TYPES, Layer, bin_path, read_param

_TAGS = {0: "fp32", 0x01306B47: "fp16", 0x000D4B38: "int8"}
_WEIGHTED_CONV = frozenset({
    "Convolution", "ConvolutionDepthWise", "Convolution1D", "Convolution3D", "ConvolutionDepthWise1D",
    "ConvolutionDepthWise3D", "Deconvolution", "DeconvolutionDepthWise", "Deconvolution1D", "Deconvolution3D",
    "DeconvolutionDepthWise1D", "DeconvolutionDepthWise3D", "InnerProduct",
})
#: layer kinds that read nothing from the ``.bin`` (enough for pnnx's CNN exports; others stop the walk)
_WEIGHTLESS = frozenset({
    "Input", "Split", "ReLU", "Clip", "Sigmoid", "TanH", "Swish", "HardSwish", "HardSigmoid", "Mish", "GELU", "ELU",
    "BinaryOp", "UnaryOp", "Eltwise", "Pooling", "Concat", "Slice", "Reshape", "Flatten", "Permute", "Softmax",
    "Interp", "Crop", "Padding", "Dropout", "Noop", "Squeeze", "ExpandDims", "Reduction", "ShuffleChannel",
    "PixelShuffle", "Reorg", "Tile", "Flip", "Erf", "Exp", "Log", "Power", "Threshold", "AbsVal", "Sum",
})
_INT8 = "int8"


def layer_precisions(path: Path) -> list[LayerPrecision]:
    """The compute layers of the ncnn model at ``path`` (its ``.param``; the ``.bin`` beside it), in file order."""
    graph = read_param(Path(path))
    storage = _weight_storage(graph.layers, bin_path(Path(path)))
    layers = []
    for layer in graph.layers:
        if layer.type not in COMPUTE_TYPES:
            continue
        if layer.param_int(8) != 0:
            layers.append(LayerPrecision(layer.name, layer.type, _INT8, _INT8))
        else:
            layers.append(LayerPrecision(layer.name, layer.type, storage.get(layer.name, "float"), "fp32"))
    return layers


def _weight_storage(layers: list[Layer], weights: Path) -> dict[str, str]:
    """``{layer name: fp32 | fp16 | int8}`` for the weighted layers the ``.bin`` walk reaches."""
    try:
        data = weights.read_bytes()
    except OSError:
        return {}
    return {layer.name: kind for layer, kind, _ in walk_weights(layers, data)}


def weight_tensors(path: Path) -> list[tuple[np.ndarray, int]]:
    """Each compute layer's stored weight array the ``.bin`` walk reaches, as stored (fp32, fp16 or int8), with
    zero point 0 (ncnn's int8 weights are symmetric)."""
    graph = read_param(Path(path))
    data = bin_path(Path(path)).read_bytes()
    return [(values, 0) for _, _, values in walk_weights(graph.layers, data)]


_DTYPES = {"fp32": np.float32, "fp16": np.float16, "int8": np.int8}


def walk_weights(layers: list[Layer], data: bytes) -> Iterator[tuple[Layer, str, np.ndarray]]:
    """The weighted compute layers in ``.bin`` order, each with its storage kind and its weight array (flat)."""
    offset = 0
    for layer in layers:
        if layer.type in _WEIGHTLESS:
            continue
        if layer.type not in _WEIGHTED_CONV:
            if layer.type == "BatchNorm":
                offset += 4 * 4 * layer.param_int(0)
                continue
            return  # a weighted layer whose layout is not known here: stop reading
        if offset + 4 > len(data):
            return
        tag = struct.unpack_from("<I", data, offset)[0]
        kind = _TAGS.get(tag)
        if kind is None:
            return
        count = layer.param_int(6)
        size = {"fp32": 4 * count, "fp16": 2 * count, "int8": count}[kind]
        if offset + 4 + size > len(data):
            return
        values = np.frombuffer(data, dtype=_DTYPES[kind], count=count, offset=offset + 4)
        yield layer, kind, values.reshape(layer.param_int(0), -1) if layer.param_int(0) else values
        offset += 4 + (size + 3) // 4 * 4
        if layer.param_int(5):  # bias_term: raw fp32, no tag
            offset += 4 * layer.param_int(0)
        if layer.param_int(8) != 0:
            return  # int8 scales follow, laid out per kind: stop reading
