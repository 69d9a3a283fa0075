"""XNNPACK's sparse-path rules: which 1x1 convolutions of a ``.tflite`` file it would run sparse, and why not.

XNNPACK runs a float model's **1x1 convolutions as sparse matrix products** (Elsen et al., "Fast Sparse
ConvNets", 2020) when all of these hold; otherwise zero weights only shrink the file, they do not make it faster:

1. **A hint.** The TFLite XNNPACK delegate sets ``XNN_FLAG_HINT_SPARSE_INFERENCE`` on a partition only when one
   of its nodes reads a constant float tensor **stored sparse** (tensor ``SparsityParameters``) through a
   ``DENSIFY`` op. That is the layout TF's converter writes with ``Optimize.EXPERIMENTAL_SPARSITY``; litert-torch
   writes dense weights, so :mod:`edgeprune.runtimes.litert.sparse_writer` rewrites the flatbuffer.
2. **An NCHW cluster.** ``xnn_subgraph_rewrite_for_nchw`` looks for a connected group of nodes it can run in
   channels-first layout: entered by a 3x3 stride-2 convolution on 3 input channels with explicit padding 1
   (the first layer of MobileNets), left through a global mean (``MEAN`` over H and W), and inside only 1x1
   convolutions (stride 1, no padding, no groups), depthwise 3x3/5x5 convolutions with explicit padding (not
   TensorFlow ``SAME`` padding), 4-D adds and multiplies and 4-D unary ops. Every value inside must be
   consumed only inside; a zero ``PAD`` feeding a convolution is fused into it first.
3. **Enough zeros.** Over all the cluster's 1x1 convolutions together, more than 2/3 of the weights are zero.
4. **A CPU that has the kernels on.** XNNPACK enables its channels-first (sparse) kernels on Arm always, and on
   x86 only **without AVX** ("on processors with AVX ISA dense inference is expected to be faster than sparse",
   ``xnn_is_chw_compatible_config``). On a desktop or server x86 CPU the sparse file runs the dense kernels.

:func:`check_sparse_rules` says per layer which of these hold (:class:`SparseRules`),
:func:`~edgeprune.runtimes.litert.sparse_writer.write_sparse_tflite` writes the sparse file only when they do (and converts litert-torch's ``SAME``-padded depthwise convolutions to
``PAD`` + ``VALID``, which XNNPACK fuses back into one explicitly padded convolution, so they stop breaking the
cluster), and :func:`edgeprune.export.sparse_cpu.sparse_kernels_on_cpu` answers rule 4 for a CPU. The rules mirror XNNPACK's
``src/subgraph.c`` (``xnn_check_nchw_compatibility``, ``xnn_subgraph_rewrite_for_nchw``) as of 2025; they are a
model of the runtime, and only a paired timing (:mod:`edgeprune.validate.sparse_speedup`) says the path ran.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.runtimes.litert.flatbuffer import (
    ADD,
    CONV_2D,
    DENSIFY,
    DEPTHWISE,
    MEAN,
    MUL,
    PAD,
    PADDING_SAME,
    SUM,
    UNARY_OPS,
    constant_of,
    consumer_index,
    opcode_of,
    pad_depthwise_explicitly,
    producer_index,
    read_model,
    schema_modules,
    tensor_name,
    weight_of,
)

#: XNNPACK switches a cluster to sparse inference when more than this share of its 1x1 weights is zero
MIN_CLUSTER_SPARSITY = 2.0 / 3.0
#: a 1x1 weight is stored sparse only from this share of zeros on (CSR with 16-bit indices: 6 bytes per non-zero
#: against 4 per dense weight, so below 1/3 zeros the file would grow)
MIN_STORED_SPARSITY = 1.0 / 3.0

#: the verdicts of :class:`LayerVerdict` a report prints
QUALIFIES = "runs sparse"


@dataclass(frozen=True)
class LayerVerdict:
    """One convolution of the file: where it is, what it is, and whether XNNPACK would run it sparse."""

    op_index: int
    kind: str  # "conv1x1", "conv3x3s2c3" (the entry), "conv", "depthwise"
    weight_name: str
    shape: tuple[int, ...]
    sparsity: float
    qualifies: bool
    reason: str  # QUALIFIES, or why not

    def to_dict(self) -> dict[str, Any]:
        """Plain data for report.json."""
        return {"op_index": self.op_index, "kind": self.kind, "weight": self.weight_name, "shape": list(self.shape),
                "sparsity": round(self.sparsity, 4), "qualifies": self.qualifies, "reason": self.reason}


@dataclass(frozen=True)
class SparseRules:
    """The verdict on a whole file: per-layer :class:`LayerVerdict`, the NCHW cluster found (if any) and its
    aggregate 1x1 sparsity, and whether the sparse path applies (:attr:`holds`) with the reasons it does not."""

    layers: tuple[LayerVerdict, ...]
    cluster_ops: tuple[int, ...]
    cluster_sparsity: float
    graph_problems: tuple[str, ...]
    same_padding_rewritten: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def holds(self) -> bool:
        """Whether at least one 1x1 convolution runs sparse under the graph and sparsity rules."""
        return any(layer.qualifies for layer in self.layers)

    @property
    def qualifying(self) -> tuple[LayerVerdict, ...]:
        """The layers XNNPACK would run sparse."""
        return tuple(layer for layer in self.layers if layer.qualifies)

    def summary(self) -> str:
        """One line for a report."""
        convs = [la for la in self.layers if la.kind == "conv1x1"]
        if self.holds:
            return (f"{len(self.qualifying)}/{len(convs)} 1x1 convolutions qualify for XNNPACK's sparse path "
                    f"(cluster of {len(self.cluster_ops)} ops, {100 * self.cluster_sparsity:.1f}% zeros in its "
                    "1x1 weights)")
        why = "; ".join(self.graph_problems) or "no 1x1 convolution qualifies"
        return f"XNNPACK's sparse path does not apply: {why}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for report.json."""
        return {"holds": self.holds, "summary": self.summary(), "cluster_ops": list(self.cluster_ops),
                "cluster_sparsity": round(self.cluster_sparsity, 4), "graph_problems": list(self.graph_problems),
                "same_padding_rewritten": self.same_padding_rewritten, "notes": list(self.notes),
                "layers": [la.to_dict() for la in self.layers]}


@dataclass
class _Node:
    index: int
    code: int
    entry: bool = False  # NHWC -> NCHW (the 3x3 s2 conv on 3 channels)
    inner: bool = False  # runs in NCHW
    exit: bool = False  # NCHW -> NHWC (global mean)
    why_not: str = ""
    kind: str = ""
    pad_fused: int | None = None  # the PAD op XNNPACK fuses into this conv


def _fusable_pad(model: Any, graph: Any, op_index: int, consumers: dict[int, list[int]]) -> tuple[int, ...] | None:
    """The (top, bottom, left, right) padding of a zero, spatial-only PAD whose output has one consumer."""
    op = graph.operators[op_index]
    if opcode_of(model, op) != PAD or len(consumers.get(op.outputs[0], [])) != 1:
        return None
    pads = constant_of(model, graph, op.inputs[1])
    if pads is None or pads.shape != (4, 2) or pads[0].any() or pads[3].any():
        return None
    return int(pads[1, 0]), int(pads[1, 1]), int(pads[2, 0]), int(pads[2, 1])


def _classify(model: Any, graph: Any) -> list[_Node]:
    producers, consumers = producer_index(graph), consumer_index(graph)
    nodes = []
    for i, op in enumerate(graph.operators):
        code = opcode_of(model, op)
        node = _Node(i, code)
        nodes.append(node)
        if code in (CONV_2D, DEPTHWISE):
            _classify_conv(model, graph, op, node, producers, consumers)
        elif code in (ADD, MUL):
            shapes = [tuple(graph.tensors[t].shape) for t in op.inputs]
            statics = [constant_of(model, graph, t) for t in op.inputs]
            if any(len(s) != 4 for s in shapes):
                node.why_not = "an add/multiply on tensors that are not 4-D"
            elif any(v is not None and sum(d != 1 for d in v.shape) > 1 for v in statics):
                node.why_not = "an add/multiply with a constant that is not a scalar or a vector"
            else:
                node.inner, node.kind = True, "elementwise"
        elif code in UNARY_OPS:
            if len(graph.tensors[op.inputs[0]].shape) == 4:
                node.inner, node.kind = True, "unary"
            else:
                node.why_not = f"{UNARY_OPS[code]} on a tensor that is not 4-D"
        elif code in (MEAN, SUM):
            if len(graph.tensors[op.inputs[0]].shape) == 4:
                node.inner = node.exit = True
                node.kind = "mean"
            else:
                node.why_not = "a reduction over a tensor that is not 4-D"
        elif code in (DENSIFY,):
            node.kind = "densify"
        elif code == PAD and _fusable_pad(model, graph, i, consumers) is not None:
            consumer = graph.operators[consumers[op.outputs[0]][0]]
            if opcode_of(model, consumer) in (CONV_2D, DEPTHWISE) and consumer.builtinOptions.padding != PADDING_SAME:
                node.kind = "fused-pad"  # XNNPACK folds it into the convolution that follows
            else:
                node.why_not = "a PAD XNNPACK cannot fold into a convolution"
        else:
            node.why_not = f"{_op_name(code)}, which XNNPACK cannot run in NCHW layout"
    return nodes


def _op_name(code: int) -> str:
    schema, _ = schema_modules()
    for name, value in vars(schema.BuiltinOperator).items():
        if value == code and not name.startswith("_"):
            return name
    return f"op {code}"


def _classify_conv(model: Any, graph: Any, op: Any, node: _Node, producers: dict[int, int],
                   consumers: dict[int, list[int]]) -> None:
    opts = op.builtinOptions
    weight_shape = tuple(int(v) for v in graph.tensors[op.inputs[1]].shape)
    if int(graph.tensors[op.inputs[0]].type) not in (0, 1):  # FLOAT32, FLOAT16
        node.kind = "conv1x1" if node.code == CONV_2D and weight_shape[1:3] == (1, 1) else (
            "conv" if node.code == CONV_2D else "depthwise")
        node.why_not = "a quantized convolution (XNNPACK's NCHW path is floating-point only)"
        return
    in_channels = int(graph.tensors[op.inputs[0]].shape[-1])
    kh, kw = weight_shape[1], weight_shape[2]
    stride = (opts.strideH, opts.strideW)
    dilated = (opts.dilationHFactor, opts.dilationWFactor) != (1, 1)
    pad = (0, 0, 0, 0)
    source = producers.get(op.inputs[0])
    if source is not None:
        fused = _fusable_pad(model, graph, source, consumers)
        if fused is not None and opts.padding != PADDING_SAME:
            pad, node.pad_fused = fused, source
    same = opts.padding == PADDING_SAME
    if node.code == CONV_2D:
        groups = in_channels // max(weight_shape[3], 1)
        if (kh, kw) == (1, 1):
            node.kind = "conv1x1"
            if groups != 1:
                node.why_not = f"a grouped 1x1 convolution ({groups} groups)"
            elif dilated or stride != (1, 1) or any(pad):
                node.why_not = "a 1x1 convolution with stride, dilation or padding"
            else:
                node.inner = True
            return
        node.kind = "conv3x3s2c3" if (kh, kw) == (3, 3) and stride == (2, 2) and in_channels == 3 else "conv"
        if node.kind != "conv3x3s2c3" or groups != 1 or dilated:
            node.why_not = (f"a {kh}x{kw} stride-{stride[0]} convolution on {in_channels} channels "
                            "(only 1x1 and the 3x3 stride-2 entry on 3 channels run in NCHW)")
        elif same or pad != (1, 1, 1, 1):
            node.why_not = "the 3x3 stride-2 entry convolution needs explicit padding 1 on each side" + (
                " (it has TensorFlow SAME padding)" if same else f" (it has {pad})")
        else:
            node.entry = True
        return
    node.kind = "depthwise"
    k = kh
    multiplier = weight_shape[3] // max(in_channels, 1)
    if dilated or kh != kw or k not in (3, 5) or stride[0] != stride[1] or stride[0] not in (1, 2) or multiplier != 1:
        node.why_not = f"a {kh}x{kw} stride-{stride[0]} depthwise convolution (NCHW takes 3x3/5x5, stride 1/2)"
    elif same:
        node.why_not = "a depthwise convolution with TensorFlow SAME padding (NCHW needs explicit padding)"
    elif pad != (k // 2,) * 4:
        node.why_not = f"a {k}x{k} depthwise convolution with padding {pad}, not {k // 2} on each side"
    else:
        node.inner = True


def _clusters(graph: Any, nodes: list[_Node], statics: set[int]) -> list[tuple[set[int], list[str]]]:
    """Connected groups of NCHW-capable ops, with the reasons each cannot run in NCHW (empty: it can)."""
    producers, consumers = producer_index(graph), consumer_index(graph)
    capable = {n.index for n in nodes if n.inner or n.entry}
    outputs = set(graph.outputs)

    def link(i: int) -> Iterable[int]:
        op = graph.operators[i]
        for t in op.inputs:
            p = producers.get(t)
            if p is not None and nodes[p].kind == "fused-pad":
                p = producers.get(graph.operators[p].inputs[0])
            if p is not None and p in capable and not nodes[i].entry:
                yield p
        for t in op.outputs:
            for c in consumers.get(t, []):
                if nodes[c].kind == "fused-pad":
                    c = consumers[graph.operators[c].outputs[0]][0]
                if c in capable and not nodes[i].exit and not nodes[c].entry:
                    yield c

    seen: set[int] = set()
    found = []
    for start in sorted(capable):
        if start in seen:
            continue
        group, todo = set(), [start]
        while todo:
            i = todo.pop()
            if i in group:
                continue
            group.add(i)
            todo.extend(j for j in link(i) if j not in group)
        seen |= group
        found.append((group, _cluster_problems(graph, nodes, group, producers, consumers, outputs, statics)))
    return found


def _cluster_problems(graph: Any, nodes: list[_Node], group: set[int], producers: dict[int, int],
                      consumers: dict[int, list[int]], outputs: set[int], statics: set[int]) -> list[str]:
    problems = []  # the ops that cut the part first: they say what to change
    for i in sorted(group):
        node, op = nodes[i], graph.operators[i]
        if not node.entry:
            for t in op.inputs:
                if t < 0 or t in statics:
                    continue
                p = producers.get(t)
                if p is not None and nodes[p].kind in ("fused-pad", "densify"):
                    if nodes[p].kind == "densify":
                        continue
                    p = producers.get(graph.operators[p].inputs[0])
                if p is None:
                    problems.append(f"op {i} reads the graph input directly")
                elif p not in group:
                    problems.append(f"op {i} ({node.kind}) is fed by op {p}: {nodes[p].why_not or nodes[p].kind}")
        if not node.exit:
            for t in op.outputs:
                if t in outputs:
                    problems.append(f"op {i} ({node.kind}) writes a graph output in NCHW")
                for c in consumers.get(t, []):
                    if nodes[c].kind == "fused-pad":
                        c = consumers[graph.operators[c].outputs[0]][0]
                    if c not in group:
                        problems.append(f"op {i} ({node.kind}) feeds op {c}: {nodes[c].why_not or nodes[c].kind}")
    if not any(nodes[i].exit for i in group):
        problems.append("no global MEAN ends the NCHW part (XNNPACK leaves NCHW only through a global mean)")
    if not any(nodes[i].entry for i in group):
        problems.append("no 3x3 stride-2 convolution on 3 channels with padding 1 starts the NCHW part")
    return list(dict.fromkeys(problems))


def rules_of(model: Any, rewritten: int = 0) -> SparseRules:
    graph = model.subgraphs[0]
    statics = {t for t, tn in enumerate(graph.tensors) if tn.buffer < len(model.buffers)
               and model.buffers[tn.buffer].data is not None and len(model.buffers[tn.buffer].data) > 0}
    nodes = _classify(model, graph)
    clusters = _clusters(graph, nodes, statics)
    notes = []
    if len(model.subgraphs) > 1:
        notes.append(f"only the first of {len(model.subgraphs)} subgraphs is checked")
    good = [g for g, problems in clusters if not problems]
    bad = {i: problems for g, problems in clusters if problems for i in g}
    stats = {}
    for node in nodes:
        if node.kind in ("conv1x1", "conv", "conv3x3s2c3", "depthwise"):
            op = graph.operators[node.index]
            weight, index = weight_of(model, graph, op)
            sparsity = float(np.mean(weight == 0)) if weight is not None else 0.0
            stats[node.index] = (weight, index, sparsity)
    cluster_sparsity, chosen, graph_problems = 0.0, set(), []
    for group in good:
        weights = [stats[i][0] for i in group if nodes[i].kind == "conv1x1" and stats[i][0] is not None]
        total = sum(w.size for w in weights)
        zeros = sum(int(np.sum(w == 0)) for w in weights)
        share = zeros / total if total else 0.0
        if total and zeros * 3 > total * 2 and len(group) > len(chosen):
            chosen, cluster_sparsity = group, share
        elif not chosen:
            cluster_sparsity = max(cluster_sparsity, share)
    if not good:
        graph_problems = list(dict.fromkeys(p for _, problems in clusters for p in problems))[:6]
        if not clusters:
            graph_problems = ["no op the NCHW path can run"]
    elif not chosen:
        graph_problems = [f"the NCHW part's 1x1 convolutions are {100 * cluster_sparsity:.1f}% zeros; XNNPACK "
                          f"needs more than {100 * MIN_CLUSTER_SPARSITY:.1f}%"]
    layers = []
    for node in nodes:
        if node.index not in stats:
            continue
        weight, index, sparsity = stats[node.index]
        tensor = graph.tensors[index]
        if node.kind != "conv1x1":
            reason = ("the entry of the NCHW part; only 1x1 convolutions run sparse" if node.entry else
                      "runs in NCHW, dense; only 1x1 convolutions run sparse" if node.inner and node.index in chosen
                      else f"not a 1x1 convolution ({node.why_not or node.kind})")
            qualifies = False
        elif node.why_not:
            reason, qualifies = f"not NCHW-compatible: {node.why_not}", False
        elif node.index in bad:
            reason, qualifies = f"its NCHW part is broken: {bad[node.index][0]}", False
        elif node.index not in chosen:
            reason = (f"its NCHW part's 1x1 weights are {100 * cluster_sparsity:.1f}% zeros, not more than 2/3"
                      if good else "not in an NCHW part")
            qualifies = False
        else:
            reason, qualifies = QUALIFIES, True
        layers.append(LayerVerdict(node.index, node.kind, tensor_name(tensor),
                                   tuple(int(v) for v in tensor.shape), sparsity, qualifies, reason))
    return SparseRules(tuple(layers), tuple(sorted(chosen)), cluster_sparsity, tuple(graph_problems), rewritten,
                       tuple(notes))


def check_sparse_rules(path: Path | str, explicit_padding: bool = True) -> SparseRules:
    """Which convolutions of the ``.tflite`` file at ``path`` XNNPACK would run sparse, and why the others not.

    ``explicit_padding`` checks the file as :func:`write_sparse_tflite` would write it, with ``SAME``-padded
    depthwise convolutions turned into ``PAD`` + ``VALID``; pass False to check the file exactly as it is. The
    CPU rule (:func:`edgeprune.export.sparse_cpu.sparse_kernels_on_cpu`) is separate: these are the graph and sparsity rules.
    """
    model = read_model(Path(path))
    rewritten = pad_depthwise_explicitly(model) if explicit_padding else 0
    return rules_of(model, rewritten)

