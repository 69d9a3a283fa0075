"""Writing a ``.tflite`` file whose qualifying 1x1 filters are stored sparse, for XNNPACK's sparse path.

:func:`write_sparse_tflite` checks the rules (:mod:`edgeprune.runtimes.litert.sparsity`) and writes nothing when no
1x1 convolution qualifies; otherwise each qualifying filter with at least :data:`MIN_STORED_SPARSITY` zeros is
stored in CSR form (``SparsityParameters``, the layout TF's converter writes with ``EXPERIMENTAL_SPARSITY``) and fed
to its convolution through a ``DENSIFY`` op, the hint that makes XNNPACK consider sparse inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.runtimes.litert.flatbuffer import (
    DENSIFY,
    add_buffer,
    add_tensor,
    constant_of,
    operator_code_index,
    pad_depthwise_explicitly,
    read_model,
    schema_modules,
    tensor_name,
)
from edgeprune.runtimes.litert.sparsity import MIN_STORED_SPARSITY, SparseRules, rules_of


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


def csr_parameters(weight: np.ndarray) -> tuple[Any, bytes]:
    """SparsityParameters for a [O, 1, 1, I] filter (dims 0-2 dense, dim 3 CSR: a row of non-zeros per output
    channel, the layout TF's converter writes for random sparsity) and the non-zero values."""
    schema, _ = schema_modules()
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
    schema, _ = schema_modules()
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
    schema, _ = schema_modules()
    graph = model.subgraphs[0]
    densify_code = operator_code_index(model, DENSIFY)
    chosen = {la.op_index for la in rules.qualifying if la.sparsity >= MIN_STORED_SPARSITY}
    new_ops, count = [], 0
    for i, op in enumerate(graph.operators):
        if i in chosen:
            index = op.inputs[1]
            dense = graph.tensors[index]
            weight = constant_of(model, graph, index)
            # a filter with no non-zero left stays dense: its CSR values would be an empty buffer, which LiteRT
            # does not read as a constant (DENSIFY then fails to load)
            if weight is not None and int(dense.type) == 0 and np.count_nonzero(weight) > 0:
                params, values = csr_parameters(weight)
                sparse = add_tensor(model, graph, f"{tensor_name(dense)}/sparse", tuple(weight.shape), 0, values)
                graph.tensors[sparse].sparsity = params
                if sum(t.buffer == dense.buffer for t in graph.tensors) == 1:
                    model.buffers[dense.buffer].data = None  # drop the dense copy (no other tensor shares it)
                dense.buffer = add_buffer(model, b"")  # now the DENSIFY's output, not a constant
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
    _, fbu = schema_modules()
    model = read_model(dense_path)
    rewritten = pad_depthwise_explicitly(model)
    rules = rules_of(model, rewritten)
    dense_bytes = dense_path.stat().st_size
    if not rules.holds:
        return SparseWrite(rules, None, 0, dense_bytes, 0)
    count = _sparsify(model, rules)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fbu.write_model(model, str(out_path))
    return SparseWrite(rules, out_path, count, dense_bytes, out_path.stat().st_size)
