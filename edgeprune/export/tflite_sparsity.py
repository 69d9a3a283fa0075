"""Sparse 1x1-convolution weights in a ``.tflite`` file, written only where XNNPACK's sparse path applies.

XNNPACK runs a float model's **1x1 convolutions as sparse matrix products** (Elsen et al., "Fast Sparse
ConvNets", 2020) when all of these hold; otherwise zero weights only shrink the file, they do not make it faster:

1. **A hint.** The TFLite XNNPACK delegate sets ``XNN_FLAG_HINT_SPARSE_INFERENCE`` on a partition only when one
   of its nodes reads a constant float tensor **stored sparse** (tensor ``SparsityParameters``) through a
   ``DENSIFY`` op. That is the layout TF's converter writes with ``Optimize.EXPERIMENTAL_SPARSITY``; litert-torch
   writes dense weights, so :func:`write_sparse_tflite` rewrites the flatbuffer.
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

:func:`check_sparse_rules` says per layer which of these hold (:class:`SparseRules`), :func:`write_sparse_tflite`
writes the sparse file only when they do (and converts litert-torch's ``SAME``-padded depthwise convolutions to
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

from edgeprune.errors import InputError, MissingRuntimeError

#: XNNPACK switches a cluster to sparse inference when more than this share of its 1x1 weights is zero
MIN_CLUSTER_SPARSITY = 2.0 / 3.0
#: a 1x1 weight is stored sparse only from this share of zeros on (CSR with 16-bit indices: 6 bytes per non-zero
#: against 4 per dense weight, so below 1/3 zeros the file would grow)
MIN_STORED_SPARSITY = 1.0 / 3.0

# TFLite builtin operator codes (schema.fbs); named here so the rules read without the generated schema
_CONV_2D, _DEPTHWISE, _PAD, _MEAN, _SUM, _ADD, _MUL, _DENSIFY = 3, 4, 34, 40, 74, 0, 18, 124
_UNARY = {19: "RELU", 21: "RELU6", 20: "RELU_N1_TO_1", 117: "HARD_SWISH", 14: "LOGISTIC", 28: "TANH",
          101: "ABS", 59: "NEG", 111: "ELU", 98: "LEAKY_RELU"}
_PADDING_SAME = 0

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


@dataclass(frozen=True)
class SparseWrite:
    """What :func:`write_sparse_tflite` did: the rules it checked, and the file it wrote (None when they fail)."""

    rules: SparseRules
    path: Path | None
    sparse_tensors: int
    dense_bytes: int
    sparse_bytes: int

    @property
    def written(self) -> bool:
        """Whether a sparse file was written."""
        return self.path is not None


# ---------------------------------------------------------------------------------------------------------------
# reading and writing the flatbuffer


def _schema() -> tuple[Any, Any]:
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError:
        raise MissingRuntimeError("LiteRT", "tflite") from None
    return schema, flatbuffer_utils


def _read(path: Path) -> Any:
    _, fbu = _schema()
    try:
        return fbu.read_model(str(path))
    except Exception as exc:  # a truncated or foreign file: the reader raises many types
        raise InputError(f"cannot read {path} as a TFLite flatbuffer: {exc}") from None


def _opcode(model: Any, op: Any) -> int:
    _, fbu = _schema()
    return int(fbu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]))


def _tensor_name(tensor: Any) -> str:
    name = tensor.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")


def _const(model: Any, graph: Any, index: int) -> np.ndarray | None:
    """A constant tensor's values (float32 or int32), or None for an activation / a sparse-stored tensor."""
    if index < 0:
        return None
    tensor = graph.tensors[index]
    if tensor.sparsity is not None:
        return None
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    dtype = {0: np.float32, 2: np.int32, 4: np.int64}.get(int(tensor.type))
    if dtype is None:
        return None
    return np.frombuffer(bytes(np.asarray(data, dtype=np.uint8)), dtype=dtype).reshape(tuple(tensor.shape))


def _weight_of(model: Any, graph: Any, op: Any) -> tuple[np.ndarray | None, int]:
    """The filter of a (depthwise) convolution: constant, or the constant behind a DENSIFY."""
    index = op.inputs[1]
    value = _const(model, graph, index)
    if value is not None:
        return value, index
    producers = _producers(graph)
    if index in producers:
        producer = graph.operators[producers[index]]
        if _opcode(model, producer) == _DENSIFY:
            return _densified(graph.tensors[producer.inputs[0]], model), index
    return None, index


def _densified(tensor: Any, model: Any) -> np.ndarray:
    """The dense values of a tensor stored with :func:`_csr_parameters`' layout (dense dims, CSR last)."""
    shape = tuple(int(v) for v in tensor.shape)
    values = np.frombuffer(bytes(np.asarray(model.buffers[tensor.buffer].data, dtype=np.uint8)), dtype=np.float32)
    last = tensor.sparsity.dimMetadata[-1]
    segments = np.asarray(last.arraySegments.values, dtype=np.int64)
    indices = np.asarray(last.arrayIndices.values, dtype=np.int64)
    dense = np.zeros((int(np.prod(shape[:-1])), shape[-1]), dtype=np.float32)
    for row in range(dense.shape[0]):
        dense[row, indices[segments[row]:segments[row + 1]]] = values[segments[row]:segments[row + 1]]
    return dense.reshape(shape)


def _producers(graph: Any) -> dict[int, int]:
    return {t: i for i, op in enumerate(graph.operators) for t in op.outputs}


def _consumers(graph: Any) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, op in enumerate(graph.operators):
        for t in op.inputs:
            if t >= 0:
                out.setdefault(t, []).append(i)
    return out


# ---------------------------------------------------------------------------------------------------------------
# the rules


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
    if _opcode(model, op) != _PAD or len(consumers.get(op.outputs[0], [])) != 1:
        return None
    pads = _const(model, graph, op.inputs[1])
    if pads is None or pads.shape != (4, 2) or pads[0].any() or pads[3].any():
        return None
    return int(pads[1, 0]), int(pads[1, 1]), int(pads[2, 0]), int(pads[2, 1])


def _classify(model: Any, graph: Any) -> list[_Node]:
    producers, consumers = _producers(graph), _consumers(graph)
    nodes = []
    for i, op in enumerate(graph.operators):
        code = _opcode(model, op)
        node = _Node(i, code)
        nodes.append(node)
        if code in (_CONV_2D, _DEPTHWISE):
            _classify_conv(model, graph, op, node, producers, consumers)
        elif code in (_ADD, _MUL):
            shapes = [tuple(graph.tensors[t].shape) for t in op.inputs]
            statics = [_const(model, graph, t) for t in op.inputs]
            if any(len(s) != 4 for s in shapes):
                node.why_not = "an add/multiply on tensors that are not 4-D"
            elif any(v is not None and sum(d != 1 for d in v.shape) > 1 for v in statics):
                node.why_not = "an add/multiply with a constant that is not a scalar or a vector"
            else:
                node.inner, node.kind = True, "elementwise"
        elif code in _UNARY:
            if len(graph.tensors[op.inputs[0]].shape) == 4:
                node.inner, node.kind = True, "unary"
            else:
                node.why_not = f"{_UNARY[code]} on a tensor that is not 4-D"
        elif code in (_MEAN, _SUM):
            if len(graph.tensors[op.inputs[0]].shape) == 4:
                node.inner = node.exit = True
                node.kind = "mean"
            else:
                node.why_not = "a reduction over a tensor that is not 4-D"
        elif code in (_DENSIFY,):
            node.kind = "densify"
        elif code == _PAD and _fusable_pad(model, graph, i, consumers) is not None:
            consumer = graph.operators[consumers[op.outputs[0]][0]]
            if _opcode(model, consumer) in (_CONV_2D, _DEPTHWISE) and consumer.builtinOptions.padding != _PADDING_SAME:
                node.kind = "fused-pad"  # XNNPACK folds it into the convolution that follows
            else:
                node.why_not = "a PAD XNNPACK cannot fold into a convolution"
        else:
            node.why_not = f"{_op_name(code)}, which XNNPACK cannot run in NCHW layout"
    return nodes


def _op_name(code: int) -> str:
    schema, _ = _schema()
    for name, value in vars(schema.BuiltinOperator).items():
        if value == code and not name.startswith("_"):
            return name
    return f"op {code}"


def _classify_conv(model: Any, graph: Any, op: Any, node: _Node, producers: dict[int, int],
                   consumers: dict[int, list[int]]) -> None:
    opts = op.builtinOptions
    weight_shape = tuple(int(v) for v in graph.tensors[op.inputs[1]].shape)
    if int(graph.tensors[op.inputs[0]].type) not in (0, 1):  # FLOAT32, FLOAT16
        node.kind = "conv1x1" if node.code == _CONV_2D and weight_shape[1:3] == (1, 1) else (
            "conv" if node.code == _CONV_2D else "depthwise")
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
        if fused is not None and opts.padding != _PADDING_SAME:
            pad, node.pad_fused = fused, source
    same = opts.padding == _PADDING_SAME
    if node.code == _CONV_2D:
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
    producers, consumers = _producers(graph), _consumers(graph)
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


def _rules(model: Any, rewritten: int = 0) -> SparseRules:
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
            weight, index = _weight_of(model, graph, op)
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
        layers.append(LayerVerdict(node.index, node.kind, _tensor_name(tensor),
                                   tuple(int(v) for v in tensor.shape), sparsity, qualifies, reason))
    return SparseRules(tuple(layers), tuple(sorted(chosen)), cluster_sparsity, tuple(graph_problems), rewritten,
                       tuple(notes))


def check_sparse_rules(path: Path | str, explicit_padding: bool = True) -> SparseRules:
    """Which convolutions of the ``.tflite`` file at ``path`` XNNPACK would run sparse, and why the others not.

    ``explicit_padding`` checks the file as :func:`write_sparse_tflite` would write it, with ``SAME``-padded
    depthwise convolutions turned into ``PAD`` + ``VALID``; pass False to check the file exactly as it is. The
    CPU rule (:func:`edgeprune.export.sparse_cpu.sparse_kernels_on_cpu`) is separate: these are the graph and sparsity rules.
    """
    model = _read(Path(path))
    rewritten = _explicit_padding(model) if explicit_padding else 0
    return _rules(model, rewritten)


# ---------------------------------------------------------------------------------------------------------------
# rewriting


def _operator_code_index(model: Any, code: int) -> int:
    schema, fbu = _schema()
    for i, opcode in enumerate(model.operatorCodes):
        if fbu.get_builtin_code_from_operator_code(opcode) == code:
            return i
    new = schema.OperatorCodeT()
    new.builtinCode = code
    new.deprecatedBuiltinCode = min(code, 127)
    new.version = 1
    model.operatorCodes.append(new)
    return len(model.operatorCodes) - 1


def _add_buffer(model: Any, data: bytes) -> int:
    schema, _ = _schema()
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8).copy() if data else None
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def _add_tensor(model: Any, graph: Any, name: str, shape: tuple[int, ...], tensor_type: int, data: bytes) -> int:
    schema, _ = _schema()
    tensor = schema.TensorT()
    tensor.name = name
    tensor.shape = np.asarray(shape, dtype=np.int32)
    tensor.type = tensor_type
    tensor.buffer = _add_buffer(model, data)
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _explicit_padding(model: Any) -> int:
    """Turn every stride-1 ``SAME``-padded 3x3/5x5 depthwise convolution into PAD + VALID (same numbers: SAME at
    stride 1 pads k//2 on each side); XNNPACK fuses the PAD back as explicit padding. Returns how many."""
    schema, _ = _schema()
    graph = model.subgraphs[0]
    pad_code = None
    new_ops, count = [], 0
    for op in graph.operators:
        opts = op.builtinOptions
        if _opcode(model, op) == _DEPTHWISE and opts.padding == _PADDING_SAME and (opts.strideH, opts.strideW) == (1, 1) \
                and (opts.dilationHFactor, opts.dilationWFactor) == (1, 1):
            k = int(graph.tensors[op.inputs[1]].shape[1])
            if k == int(graph.tensors[op.inputs[1]].shape[2]) and k in (3, 5):
                source = graph.tensors[op.inputs[0]]
                n, h, w, c = (int(v) for v in source.shape)
                p = k // 2
                pads = np.array([[0, 0], [p, p], [p, p], [0, 0]], dtype=np.int32)
                pads_t = _add_tensor(model, graph, f"{_tensor_name(source)}/sparse_pad/paddings", (4, 2), 2,
                                     pads.tobytes())
                padded = _add_tensor(model, graph, f"{_tensor_name(source)}/sparse_pad", (n, h + 2 * p, w + 2 * p, c),
                                     int(source.type), b"")
                pad_code = _operator_code_index(model, _PAD) if pad_code is None else pad_code
                pad = schema.OperatorT()
                pad.opcodeIndex = pad_code
                pad.inputs = np.array([op.inputs[0], pads_t], dtype=np.int32)
                pad.outputs = np.array([padded], dtype=np.int32)
                pad.builtinOptionsType = schema.BuiltinOptions.PadOptions
                pad.builtinOptions = schema.PadOptionsT()
                new_ops.append(pad)
                op.inputs = np.array([padded, *list(op.inputs)[1:]], dtype=np.int32)
                opts.padding = 1  # VALID
                count += 1
        new_ops.append(op)
    graph.operators = new_ops
    return count


def _csr_parameters(weight: np.ndarray) -> tuple[Any, bytes]:
    """SparsityParameters for a [O, 1, 1, I] filter (dims 0-2 dense, dim 3 CSR: a row of non-zeros per output
    channel, the layout TF's converter writes for random sparsity) and the non-zero values."""
    schema, _ = _schema()
    rows = weight.reshape(-1, weight.shape[-1])
    mask = rows != 0
    segments = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    indices = np.nonzero(mask)[1]
    params = schema.SparsityParametersT()
    params.traversalOrder = np.arange(weight.ndim, dtype=np.int32)
    params.dimMetadata = []
    for dim in weight.shape[:-1]:
        meta = schema.DimensionMetadataT()
        meta.format = schema.DimensionType.DENSE
        meta.denseSize = int(dim)
        params.dimMetadata.append(meta)
    meta = schema.DimensionMetadataT()
    meta.format = schema.DimensionType.SPARSE_CSR
    meta.arraySegmentsType, meta.arraySegments = _index_vector(segments)
    meta.arrayIndicesType, meta.arrayIndices = _index_vector(indices)
    params.dimMetadata.append(meta)
    return params, rows[mask].astype(np.float32).tobytes()


def _index_vector(values: np.ndarray) -> tuple[int, Any]:
    schema, _ = _schema()
    top = int(values.max()) if values.size else 0
    if top < 2**8:
        vector, kind, dtype = schema.Uint8VectorT(), schema.SparseIndexVector.Uint8Vector, np.uint8
    elif top < 2**16:
        vector, kind, dtype = schema.Uint16VectorT(), schema.SparseIndexVector.Uint16Vector, np.uint16
    else:
        vector, kind, dtype = schema.Int32VectorT(), schema.SparseIndexVector.Int32Vector, np.int32
    vector.values = values.astype(dtype)
    return kind, vector


def _sparsify(model: Any, rules: SparseRules) -> int:
    """Store each qualifying 1x1 filter with at least :data:`MIN_STORED_SPARSITY` zeros sparse, behind a DENSIFY."""
    schema, _ = _schema()
    graph = model.subgraphs[0]
    densify_code = _operator_code_index(model, _DENSIFY)
    chosen = {la.op_index for la in rules.qualifying if la.sparsity >= MIN_STORED_SPARSITY}
    new_ops, count = [], 0
    for i, op in enumerate(graph.operators):
        if i in chosen:
            index = op.inputs[1]
            dense = graph.tensors[index]
            weight = _const(model, graph, index)
            # a filter with no non-zero left stays dense: its CSR values would be an empty buffer, which LiteRT
            # does not read as a constant (DENSIFY then fails to load)
            if weight is not None and int(dense.type) == 0 and np.count_nonzero(weight) > 0:
                params, values = _csr_parameters(weight)
                sparse = _add_tensor(model, graph, f"{_tensor_name(dense)}/sparse", tuple(weight.shape), 0, values)
                graph.tensors[sparse].sparsity = params
                if sum(t.buffer == dense.buffer for t in graph.tensors) == 1:
                    model.buffers[dense.buffer].data = None  # drop the dense copy (no other tensor shares it)
                dense.buffer = _add_buffer(model, b"")  # now the DENSIFY's output, not a constant
                densify = schema.OperatorT()
                densify.opcodeIndex = densify_code
                densify.inputs = np.array([sparse], dtype=np.int32)
                densify.outputs = np.array([index], dtype=np.int32)
                densify.builtinOptionsType = schema.BuiltinOptions.DensifyOptions
                densify.builtinOptions = schema.DensifyOptionsT()
                new_ops.append(densify)
                count += 1
        new_ops.append(op)
    graph.operators = new_ops
    return count


def write_sparse_tflite(dense_path: Path | str, out_path: Path | str) -> SparseWrite:
    """Write ``out_path``: the dense ``.tflite`` at ``dense_path`` with its qualifying 1x1 filters stored sparse.

    The rules (:func:`check_sparse_rules`, on the file with explicit padding) are checked first; **nothing is
    written** when no 1x1 convolution qualifies (``SparseWrite.written`` is False and ``rules`` says why). When
    they hold, ``SAME``-padded depthwise convolutions become PAD + VALID, and each qualifying 1x1 filter with at
    least :data:`MIN_STORED_SPARSITY` zeros is stored in CSR form (``SparsityParameters``) and fed to its
    convolution through a ``DENSIFY`` op, the hint that makes XNNPACK consider sparse inference. The outputs are
    the dense file's (same weights, same arithmetic order up to the runtime's kernels).
    """
    dense_path, out_path = Path(dense_path), Path(out_path)
    _, fbu = _schema()
    model = _read(dense_path)
    rewritten = _explicit_padding(model)
    rules = _rules(model, rewritten)
    dense_bytes = dense_path.stat().st_size
    if not rules.holds:
        return SparseWrite(rules, None, 0, dense_bytes, 0)
    count = _sparsify(model, rules)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fbu.write_model(model, str(out_path))
    return SparseWrite(rules, out_path, count, dense_bytes, out_path.stat().st_size)
