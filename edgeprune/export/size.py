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
    """Zeros in the weights of the artifact at ``path`` in format ``fmt``, read by the format's runtime."""
    from edgeprune.runtimes import backend_for_format

    tensors = backend_for_format(fmt).weight_tensors(Path(path))
    params = zeros = 0
    dtypes: set[str] = set()
    for values, zero_point in tensors:
        params += values.size
        zeros += int(np.count_nonzero(values == zero_point))
        dtypes.add(str(values.dtype))
    return WeightZeros(params, zeros, tuple(sorted(dtypes)))
