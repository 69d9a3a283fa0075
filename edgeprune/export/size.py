"""The size of an artifact as shipped, and the zeros its weights carry, read back from the file.

Size is given two ways: the bytes on disk (every file of the artifact: ``model.xml`` and ``model.bin`` for
OpenVINO) and the bytes of a zip archive of those files with standard deflate compression, which is how
the pruning tutorials measure "smaller" (TF-MOT's and PyTorch's: unstructured zeros stay in a dense tensor,
so only a compressor sees them). Size budgets (``--size-budget``) are judged on the compressed bytes.

Zeros are counted in the weights of the compute layers as the file stores them: float weights equal to 0, or
integer weights equal to their zero point (they dequantize to exactly 0; an INT8 quantizer that keeps the
zeros stores them so).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: the deflate level of the measurement: zlib's default, as ``zipfile.ZIP_DEFLATED`` and ``zip`` use
DEFLATE_LEVEL = 6


@dataclass(frozen=True)
class ArtifactSize:
    """Bytes on disk and bytes zipped (deflate) of one artifact's files."""

    raw_bytes: int
    zip_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """For report.json."""
        return asdict(self)


def artifact_size(paths: Sequence[Path]) -> ArtifactSize:
    """The size of the files ``paths`` (one artifact), raw and as one zip archive with deflate."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=DEFLATE_LEVEL) as archive:
        for path in paths:
            archive.write(path, arcname=Path(path).name)
    return ArtifactSize(sum(Path(p).stat().st_size for p in paths), len(buffer.getvalue()))


def format_bytes(n: float) -> str:
    """``1234567`` → ``'1.23 MB'`` (decimal units, as size budgets are written).

    >>> format_bytes(1234567)
    '1.23 MB'
    >>> format_bytes(999)
    '999 B'
    """
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class WeightZeros:
    """Zeros among the compute layers' weights of an artifact, as stored in the file."""

    params: int
    zeros: int
    #: weight tensors by their storage type (``float32``, ``int8`` ...)
    dtypes: tuple[str, ...]

    @property
    def sparsity(self) -> float:
        """The share of the weights that are zero."""
        return self.zeros / max(self.params, 1)

    def to_dict(self) -> dict[str, Any]:
        """For report.json."""
        return {"params": self.params, "zeros": self.zeros, "sparsity": self.sparsity, "dtypes": list(self.dtypes)}


def weight_zeros(path: Path, fmt: str) -> WeightZeros:
    """Zeros in the weights of the artifact at ``path`` (``onnx``, ``openvino`` or ``tflite``)."""
    tensors = {"onnx": _onnx_weights, "openvino": _openvino_weights, "tflite": _tflite_weights}[fmt](Path(path))
    params = zeros = 0
    dtypes: set[str] = set()
    for values, zero_point in tensors:
        params += values.size
        zeros += int(np.count_nonzero(values == zero_point))
        dtypes.add(str(values.dtype))
    return WeightZeros(params, zeros, tuple(sorted(dtypes)))


def _broadcast_zero_point(values: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    if zero_point.size <= 1:
        return zero_point.reshape(())
    shape = [1] * values.ndim
    shape[axis] = zero_point.size
    return zero_point.reshape(shape)


#: ONNX compute ops and which input holds the weight
_ONNX_WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


def _onnx_weights(path: Path) -> list[tuple[np.ndarray, Any]]:
    """Each compute node's weight initializer (through ``DequantizeLinear`` for QDQ), with its zero point."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    out: list[tuple[np.ndarray, Any]] = []
    seen: set[str] = set()
    for node in model.graph.node:
        index = _ONNX_WEIGHT_INPUT.get(node.op_type)
        if index is None or len(node.input) <= index:
            continue
        name = node.input[index]
        producer = producers.get(name)
        zero_point: Any = 0
        if producer is not None and producer.op_type == "DequantizeLinear" and producer.input[0] in inits:
            name = producer.input[0]
            values = numpy_helper.to_array(inits[name])
            axis = next((a.i for a in producer.attribute if a.name == "axis"), 1)
            if len(producer.input) > 2 and producer.input[2] in inits:
                zp = numpy_helper.to_array(inits[producer.input[2]])
                zero_point = _broadcast_zero_point(values, zp, axis if axis >= 0 else values.ndim + axis)
        elif name in inits:
            values = numpy_helper.to_array(inits[name])
        else:
            continue
        if name in seen or values.ndim < 2:
            continue
        seen.add(name)
        out.append((values, zero_point))
    return out


_TFLITE_COMPUTE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"})


def _tflite_weights(path: Path) -> list[tuple[np.ndarray, Any]]:
    """Each compute op's weight tensor (input 1; input 1 of TRANSPOSE_CONV is its output shape, so input 1 is
    skipped there for the constant among its inputs), with its zero points."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    out: list[tuple[np.ndarray, Any]] = []
    seen: set[int] = set()
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the interpreter's only op listing
        if op["op_name"] not in _TFLITE_COMPUTE:
            continue
        for index in op["inputs"][1:]:
            detail = details.get(int(index))
            if detail is None or int(index) in seen or len(detail["shape"]) < 2:
                continue
            try:
                values = interpreter.get_tensor(int(index))
            except ValueError:  # not a constant
                continue
            seen.add(int(index))
            q = detail.get("quantization_parameters") or {}
            zp = np.asarray(q.get("zero_points", []))
            axis = int(q.get("quantized_dimension", 0))
            zero_point = _broadcast_zero_point(values, zp, axis) if zp.size else 0
            out.append((values, zero_point))
            break
    return out


_OPENVINO_COMPUTE = frozenset({"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"})
_OPENVINO_PASS = frozenset({"Convert", "Reshape", "Multiply", "Subtract", "Transpose", "Unsqueeze"})


def _openvino_weights(path: Path) -> list[tuple[np.ndarray, Any]]:
    """Each compute op's weight constant (followed up through Convert, Subtract of a zero point, Multiply by a
    scale, Reshape), with the zero point a Subtract on that path removes."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    out: list[tuple[np.ndarray, Any]] = []
    seen: set[str] = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() not in _OPENVINO_COMPUTE:
            continue
        node = op.input_value(1).get_node()
        zero_point: Any = 0
        for _ in range(6):
            kind = node.get_type_name()
            if kind == "Constant" or kind not in _OPENVINO_PASS:
                break
            if kind == "Subtract":
                other = node.input_value(1).get_node()
                if other.get_type_name() == "Convert":
                    other = other.input_value(0).get_node()
                if other.get_type_name() == "Constant":
                    zero_point = other.get_data()
            node = node.input_value(0).get_node()
        if node.get_type_name() != "Constant" or node.get_friendly_name() in seen:
            continue
        values = node.get_data()
        if values.ndim < 2:
            continue
        seen.add(node.get_friendly_name())
        if isinstance(zero_point, np.ndarray) and zero_point.size > 1 and zero_point.ndim != values.ndim:
            zero_point = zero_point.reshape(zero_point.shape + (1,) * (values.ndim - zero_point.ndim))
        out.append((values, zero_point))
    return out
