"""The precision of each compute layer of a ``.pte``, read back from the file.

A ``.pte`` is an ExecuTorch program flatbuffer (``ET12``) whose ``forward`` plan calls delegates and portable
kernels. Each XNNPACK delegate's payload is an XNNPACK graph flatbuffer (``XN01``, behind an ``XH00`` header)
that lists its nodes with the datatypes of their tensors, so the reading is per layer, faithful to what runs:

* a convolution, depthwise convolution or fully connected node of a delegate is one layer; its weights are int8
  when the filter tensor is ``qint8``/``qcint8`` (``qcint4``/``qbint4`` read ``int4``), its activations int8
  when the input tensor is ``qint8``/``quint8``, ``qdint8`` (dynamically quantized) reads ``int8 dynamic``;
* a convolution or matrix product left to portable kernels is one layer, computed in float (``fp32``).

Names are ``xnnpack<d>/<kind>_<n>`` (``xnnpack0/conv2d_3``: the third compute node of the first delegate, in
execution order; ``dwconv2d``, ``linear`` likewise) and ``portable/<op>_<n>``. The file keeps no module paths
(ExecuTorch puts them in an ETRecord beside the program), so a layer is named by position, not by
``nn.Module``. Reading uses executorch's own program deserializer and its bundled ``flatc`` with the XNNPACK
schema shipped in the wheel.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edgeprune.errors import InputError, first_line
from edgeprune.runtimes.base import LayerPrecision

#: XNNPACK graph node kinds that compute, and the op type a layer list gives them
XNNPACK_COMPUTE = {"XNNConv2d": "conv2d", "XNNDepthwiseConv2d": "dwconv2d", "XNNFullyConnected": "linear",
                   "XNNConvTranspose2d": "conv_transpose2d", "XNNBatchMatrixMultiply": "bmm"}
#: portable kernels that compute (``aten::convolution.out`` → ``convolution``)
PORTABLE_COMPUTE = frozenset({"convolution", "linear", "addmm", "mm", "bmm", "matmul"})
_DATATYPES = {"xnn_datatype_fp32": "fp32", "xnn_datatype_fp16": "fp16", "xnn_datatype_bf16": "bf16",
              "xnn_datatype_qint8": "int8", "xnn_datatype_quint8": "int8", "xnn_datatype_qcint8": "int8",
              "xnn_datatype_qdint8": "int8 dynamic", "xnn_datatype_qpint8": "int8 dynamic",
              "xnn_datatype_qcint4": "int4", "xnn_datatype_qbint4": "int4"}
_NON_FINITE = re.compile(r"(?<=[:\[,\s])(-?)(inf|nan)\b")


def layer_precisions(path: Path) -> list[LayerPrecision]:
    """The compute layers of the ``.pte`` at ``path``, in execution order, with their precisions."""
    data = Path(path).read_bytes()
    try:
        from executorch.exir._serialize._program import _extract_delegate_payload, deserialize_pte_binary

        plan = deserialize_pte_binary(data).program.execution_plan[0]
    except Exception as exc:
        raise InputError(f"{path} is not a readable ExecuTorch program: {first_line(exc, 200)}") from None
    layers: list[LayerPrecision] = []
    portable_count: dict[str, int] = {}
    xnnpack_index = 0
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            kind = type(args).__name__
            if kind == "DelegateCall":
                delegate = plan.delegates[args.delegate_index]
                if "xnnpack" not in delegate.id.lower():
                    continue
                payload = _extract_delegate_payload(data, "xnnpack", xnnpack_index)
                layers += _xnnpack_layers(payload, f"xnnpack{xnnpack_index}") if payload else []
                xnnpack_index += 1
            elif kind == "KernelCall":
                op = plan.operators[args.op_index].name.split("::")[-1]
                if op in PORTABLE_COMPUTE:
                    portable_count[op] = portable_count.get(op, 0) + 1
                    layers.append(LayerPrecision(f"portable/{op}_{portable_count[op]}", op, "fp32", "fp32"))
    return layers


#: numpy element type of each XNNPACK datatype a weight is stored in
_WEIGHT_DTYPES = {"xnn_datatype_fp32": "float32", "xnn_datatype_fp16": "float16", "xnn_datatype_qint8": "int8",
                  "xnn_datatype_qcint8": "int8", "xnn_datatype_quint8": "uint8"}


def weight_tensors(path: Path) -> list[tuple[Any, Any]]:
    """Each XNNPACK compute node's weight (filter) tensor as the program stores it (fp32, or int8 for a quantized
    program), with its zero point (0: the XNNPACK quantizer's weights are symmetric), read from the program's
    named data through the delegate graph's constant table. Weights of layers left to portable kernels are not
    read (they live in the program's own constant buffer)."""
    import numpy as np

    data = Path(path).read_bytes()
    try:
        from executorch.exir._serialize._program import _extract_delegate_payload, deserialize_pte_binary

        pte = deserialize_pte_binary(data)
    except Exception as exc:
        raise InputError(f"{path} is not a readable ExecuTorch program: {first_line(exc, 200)}") from None
    named = pte.named_data
    out: list[tuple[Any, Any]] = []
    for index in range(sum("xnnpack" in d.id.lower() for d in pte.program.execution_plan[0].delegates)):
        payload = _extract_delegate_payload(data, "xnnpack", index)
        if not payload:
            continue
        graph = xnnpack_graph(payload)
        values, constants = graph.get("xvalues", []), graph.get("constant_data", [])
        for node in graph.get("xnodes", []):
            if node.get("xnode_union_type") not in XNNPACK_COMPUTE:
                continue
            fields = node.get("xnode_union", {})
            weight_id = int(fields.get("filter_id", fields.get("input2_id", -1)))
            value = values[weight_id].get("xvalue_union", {}) if 0 <= weight_id < len(values) else {}
            tensor = value.get("tensor_value", value)
            dtype = _WEIGHT_DTYPES.get(tensor.get("datatype", ""))
            buffer_index = int(tensor.get("constant_buffer_idx", 0))
            if dtype is None or not 0 < buffer_index < len(constants) or named is None:
                continue
            entry = named.pte_data.get(constants[buffer_index].get("named_key", ""))
            if entry is None:
                continue
            array = np.frombuffer(named.buffers[entry.buffer_index], dtype=dtype)
            dims = [int(d) for d in tensor.get("dims", [])]
            out.append((array.reshape(dims) if int(np.prod(dims)) == array.size else array, 0))
    return out


def _xnnpack_layers(payload: bytes, prefix: str) -> list[LayerPrecision]:
    """The compute nodes of one XNNPACK delegate payload."""
    graph = xnnpack_graph(payload)
    values = graph.get("xvalues", [])

    def precision(value_id: int) -> str:
        union = values[value_id].get("xvalue_union", {}) if 0 <= value_id < len(values) else {}
        datatype = union.get("datatype") or union.get("tensor_value", {}).get("datatype", "")
        return _DATATYPES.get(datatype, str(datatype).removeprefix("xnn_datatype_"))

    layers = []
    counts: dict[str, int] = {}
    for node in graph.get("xnodes", []):
        op = XNNPACK_COMPUTE.get(node.get("xnode_union_type", ""))
        if op is None:
            continue
        fields = node.get("xnode_union", {})
        counts[op] = counts.get(op, 0) + 1
        weight_id = fields.get("filter_id", fields.get("input2_id", -1))
        layers.append(LayerPrecision(f"{prefix}/{op}_{counts[op]}", op, precision(int(weight_id)),
                                     precision(int(fields.get("input1_id", -1)))))
    return layers


def xnnpack_graph(payload: bytes) -> dict[str, Any]:
    """An XNNPACK delegate payload (``XH00`` header + ``XN01`` flatbuffer + constants) as JSON-like data, by
    executorch's bundled ``flatc`` and the XNNPACK schema in the wheel (defaults written out)."""
    import executorch.backends.xnnpack.serialization as serialization
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
    from executorch.exir._serialize._flatbuffer import _get_flatc_path

    header = XNNHeader.from_bytes(payload[:XNNHeader.EXPECTED_LENGTH])
    flatbuffer = payload[header.flatbuffer_offset:header.flatbuffer_offset + header.flatbuffer_size]
    schema = Path(next(iter(serialization.__path__))) / "schema.fbs"
    with tempfile.TemporaryDirectory(prefix="edgeprune-xnn-") as tmp:
        (Path(tmp) / "graph.bin").write_bytes(flatbuffer)
        try:
            subprocess.run([_get_flatc_path(), "--json", "--strict-json", "--defaults-json", "--raw-binary",
                            "-o", tmp, str(schema), "--", "graph.bin"], cwd=tmp, check=True,
                           capture_output=True, timeout=60)
        except (subprocess.SubprocessError, OSError) as exc:
            raise InputError(f"cannot read an XNNPACK delegate graph: {first_line(exc, 200)}") from None
        text = (Path(tmp) / "graph.json").read_text()
    # flatc writes inf/nan (a clamp's open bounds) bare, which JSON does not allow
    text = _NON_FINITE.sub(lambda m: f"{m.group(1)}{'Infinity' if m.group(2) == 'inf' else 'NaN'}", text)
    return dict(json.loads(text))
