"""INT8 for ncnn: not available from pip, so refused in one line.

ncnn's post-training quantization is two C++ tools from an ncnn source build, ``ncnn2table`` (calibration:
activation scales from images, KL/ACIQ/EQ) and ``ncnn2int8`` (weights to int8, scales written into the
``.param``/``.bin``). Neither the ``ncnn`` wheel (the Python bindings) nor the ``pnnx`` wheel (the converter,
which has no int8 option) ships them, and no maintained PyPI or Debian package does (checked for this runtime's
addition: see facts.md). edgeprune does not write its own quantizer, so :func:`export_int8` refuses.
:func:`is_quantized` still reads any ncnn file, so an int8 model quantized elsewhere is recognised.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.runtimes.ncnn.param import COMPUTE_TYPES, ParamError, read_param

if TYPE_CHECKING:
    pass

NO_INT8_MESSAGE = ("ncnn INT8 needs ncnn2table and ncnn2int8 from an ncnn source build; no pip package ships "
                   "them, so edgeprune does not quantize for ncnn (use --precision fp32)")


def is_quantized(path: Path) -> bool:
    """Whether any convolution or inner product of the ncnn model at ``path`` has ``int8_scale_term`` set."""
    try:
        graph = read_param(Path(path))
    except (OSError, ParamError):
        return False
    return any(layer.type in COMPUTE_TYPES and layer.param_int(8) != 0 for layer in graph.layers)
