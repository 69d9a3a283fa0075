"""Reading and editing a ``.tflite`` flatbuffer with LiteRT's generated schema.

The helpers the sparse-path rules (:mod:`edgeprune.runtimes.litert.sparsity`) and the sparse writer
(:mod:`edgeprune.runtimes.litert.sparse_writer`) share: constants and the weights behind a ``DENSIFY``, each tensor's
producer and consumers, new buffers, tensors and operator codes, and the one graph edit both need
(:func:`pad_depthwise_explicitly`: ``SAME``-padded depthwise convolutions as ``PAD`` + ``VALID``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import InputError, MissingRuntimeError

#: TFLite builtin operator codes (schema.fbs), named so that the rules read without the generated schema
CONV_2D, DEPTHWISE, PAD, MEAN, SUM, ADD, MUL, DENSIFY = 3, 4, 34, 40, 74, 0, 18, 124
UNARY_OPS = {19: "RELU", 21: "RELU6", 20: "RELU_N1_TO_1", 117: "HARD_SWISH", 14: "LOGISTIC", 28: "TANH",
          101: "ABS", 59: "NEG", 111: "ELU", 98: "LEAKY_RELU"}
PADDING_SAME = 0


def schema_modules() -> tuple[Any, Any]:
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError:
        raise MissingRuntimeError("LiteRT", "tflite") from None
    return schema, flatbuffer_utils


def read_model(path: Path) -> Any:
    _, fbu = schema_modules()
    try:
        return fbu.read_model(str(path))
    except Exception as exc:  # a truncated or foreign file: the reader raises many types
        raise InputError(f"cannot read {path} as a TFLite flatbuffer: {exc}") from None


def opcode_of(model: Any, op: Any) -> int:
    _, fbu = schema_modules()
    return int(fbu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]))


def tensor_name(tensor: Any) -> str:
    name = tensor.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")


def constant_of(model: Any, graph: Any, index: int) -> np.ndarray | None:
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


def weight_of(model: Any, graph: Any, op: Any) -> tuple[np.ndarray | None, int]:
    """The filter of a (depthwise) convolution: constant, or the constant behind a DENSIFY."""
    index = op.inputs[1]
    value = constant_of(model, graph, index)
    if value is not None:
        return value, index
    producers = producer_index(graph)
    if index in producers:
        producer = graph.operators[producers[index]]
        if opcode_of(model, producer) == DENSIFY:
            return densified(graph.tensors[producer.inputs[0]], model), index
    return None, index


def densified(tensor: Any, model: Any) -> np.ndarray:
    """The dense values of a tensor stored with :func:`~edgeprune.runtimes.litert.sparse_writer.csr_parameters`' layout (dense dims, CSR last)."""
    shape = tuple(int(v) for v in tensor.shape)
    values = np.frombuffer(bytes(np.asarray(model.buffers[tensor.buffer].data, dtype=np.uint8)), dtype=np.float32)
    last = tensor.sparsity.dimMetadata[-1]
    segments = np.asarray(last.arraySegments.values, dtype=np.int64)
    indices = np.asarray(last.arrayIndices.values, dtype=np.int64)
    dense = np.zeros((int(np.prod(shape[:-1])), shape[-1]), dtype=np.float32)
    for row in range(dense.shape[0]):
        dense[row, indices[segments[row]:segments[row + 1]]] = values[segments[row]:segments[row + 1]]
    return dense.reshape(shape)


def producer_index(graph: Any) -> dict[int, int]:
    return {t: i for i, op in enumerate(graph.operators) for t in op.outputs}


def consumer_index(graph: Any) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, op in enumerate(graph.operators):
        for t in op.inputs:
            if t >= 0:
                out.setdefault(t, []).append(i)
    return out


def operator_code_index(model: Any, code: int) -> int:
    schema, fbu = schema_modules()
    for i, opcode in enumerate(model.operatorCodes):
        if fbu.get_builtin_code_from_operator_code(opcode) == code:
            return i
    new = schema.OperatorCodeT()
    new.builtinCode = code
    new.deprecatedBuiltinCode = min(code, 127)
    new.version = 1
    model.operatorCodes.append(new)
    return len(model.operatorCodes) - 1


def add_buffer(model: Any, data: bytes) -> int:
    schema, _ = schema_modules()
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8).copy() if data else None
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def add_tensor(model: Any, graph: Any, name: str, shape: tuple[int, ...], tensor_type: int, data: bytes) -> int:
    schema, _ = schema_modules()
    tensor = schema.TensorT()
    tensor.name = name
    tensor.shape = np.asarray(shape, dtype=np.int32)
    tensor.type = tensor_type
    tensor.buffer = add_buffer(model, data)
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def pad_depthwise_explicitly(model: Any) -> int:
    """Turn every stride-1 ``SAME``-padded 3x3/5x5 depthwise convolution into PAD + VALID (same numbers: SAME at
    stride 1 pads k//2 on each side); XNNPACK fuses the PAD back as explicit padding. Returns how many."""
    schema, _ = schema_modules()
    graph = model.subgraphs[0]
    pad_code = None
    new_ops, count = [], 0
    for op in graph.operators:
        opts = op.builtinOptions
        if opcode_of(model, op) == DEPTHWISE and opts.padding == PADDING_SAME and (opts.strideH, opts.strideW) == (1, 1) \
                and (opts.dilationHFactor, opts.dilationWFactor) == (1, 1):
            k = int(graph.tensors[op.inputs[1]].shape[1])
            if k == int(graph.tensors[op.inputs[1]].shape[2]) and k in (3, 5):
                source = graph.tensors[op.inputs[0]]
                n, h, w, c = (int(v) for v in source.shape)
                p = k // 2
                pads = np.array([[0, 0], [p, p], [p, p], [0, 0]], dtype=np.int32)
                pads_t = add_tensor(model, graph, f"{tensor_name(source)}/sparse_pad/paddings", (4, 2), 2,
                                     pads.tobytes())
                padded = add_tensor(model, graph, f"{tensor_name(source)}/sparse_pad", (n, h + 2 * p, w + 2 * p, c),
                                     int(source.type), b"")
                pad_code = operator_code_index(model, PAD) if pad_code is None else pad_code
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

