"""PyTorch module paths for the nodes of an ONNX file that edgeprune exported (torch's dynamo exporter records
each node's module scopes in ``pkg.torch.onnx.name_scopes``), so that reports and per-layer choices can name
layers as the user's code does (``features.2.conv.3``) instead of ``node_Conv_819``.

A convolution exported with its batch norm folded in carries the batch norm's path (the exporter's fusion keeps
the later node's scope); a fused activation is labelled with the convolution it follows.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ONNX ops that ONNX Runtime / OpenVINO fuse into the convolution before them
_ACTIVATIONS = frozenset({"Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu"})
#: suffixes runtimes append to an ONNX tensor name when they rewrite the node producing it
_RUNTIME_SUFFIXES = ("_nchwc",)
#: ONNX Runtime names a node it fuses from a quantized (QDQ) pattern after the pattern's node plus ``_token_<n>``
_FUSION_TOKEN = re.compile(r"_token_\d+$")


def module_of(node: Any) -> str | None:
    """The deepest module path in a node's ``pkg.torch.onnx.name_scopes`` (set by the dynamo exporter)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            modules = [s for s in scopes[:-1] if s]  # the last entry is the op itself
            return str(modules[-1]) if modules else None
    return None


def onnx_module_labels(path: Path) -> dict[str, str]:
    """Best-effort map from the names a runtime gives an ONNX model's nodes to PyTorch module paths.

    Covers the ONNX node names, their output tensor names (ORT names rewritten nodes after their output,
    plus ``_nchwc``), and looks through fused activations to the convolution they follow. Returns ``{}``
    when the file has no exporter metadata or cannot be read.
    """
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # a label is a nicety: never fail the report for it
        log.debug("no module labels from %s: %s", path, exc)
        return {}
    producer = {out: node for node in graph.node for out in node.output}
    labels: dict[str, str] = {}
    for node in graph.node:
        source = node
        if node.op_type in _ACTIVATIONS and node.input and node.input[0] in producer:
            previous = producer[node.input[0]]
            if previous.op_type in ("Conv", "Gemm", "MatMul"):
                source = previous
        module = module_of(source) or module_of(node)
        if module is None:
            continue
        for name in (node.name, *node.output):
            labels[name] = module
            for suffix in _RUNTIME_SUFFIXES:
                labels[name + suffix] = module
    return labels


def label_of(labels: Mapping[str, str], runtime_name: str) -> str | None:
    """The module path for a node name a runtime's profiler reports, as :func:`onnx_module_labels` maps them.

    Also tries the names runtimes derive from an ONNX node's: OpenVINO's ``<onnx node>/WithoutBiases`` and ONNX
    Runtime's ``<onnx node>_token_<n>`` (a QLinearConv fused from a quantized Conv's QDQ pattern).

    >>> label_of({"node_Conv_7": "stem.0"}, "node_Conv_7_token_3")
    'stem.0'
    """
    for name in (runtime_name, runtime_name.split("/")[0], _FUSION_TOKEN.sub("", runtime_name)):
        if name in labels:
            return labels[name]
    return None


#: ONNX ops that compute: the layers a per-layer choice (mixed precision) names
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def compute_layers(path: Path) -> dict[str, str]:
    """The compute nodes of the ONNX file at ``path`` in graph order, as ``{node name: layer label}``: the module
    path where the exporter recorded one, else the node's own name. Two nodes of one module (rare) share a label."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    labels = onnx_module_labels(path)
    return {node.name: labels.get(node.name, node.name) for node in graph.node if node.op_type in COMPUTE_OPS}


def module_nodes(path: Path, modules: Collection[str]) -> list[str]:
    """The names of the ONNX file's nodes, of every kind, that belong to one of ``modules`` (exact module paths,
    as :func:`onnx_module_labels` labels them), in graph order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    labels = onnx_module_labels(path)
    return [node.name for node in graph.node if labels.get(node.name) in modules]
