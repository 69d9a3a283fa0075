"""Reading the array headers of an ``.npz`` archive before its arrays, so a hostile header is refused.

An ``.npy`` member starts with a header declaring the array's shape and dtype; ``numpy.load`` allocates that
much memory before reading a byte of data, so a 4 KB file declaring a 286 GiB array ends in a ``MemoryError``
(or worse, the machine swapping). :func:`check_npz_sizes` reads each header with numpy's own format reader
(:mod:`numpy.lib.format`) on the zip member and refuses, naming the file and the size, an array whose
declared size exceeds the bytes the member holds, the memory available, or :data:`MAX_ARRAY_BYTES`.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from edgeprune.errors import DataError

#: the largest array an ``.npz`` dataset may declare, whatever the memory (64 GiB)
MAX_ARRAY_BYTES = 64 * 2**30


@dataclass(frozen=True)
class ArrayHeader:
    """One member's declared array: its name (without ``.npy``), shape, dtype, size in bytes, and the bytes the
    member holds (header included, uncompressed)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int
    member_bytes: int


def available_memory_bytes() -> int | None:
    """The memory the system can give without swapping (Linux ``MemAvailable``; psutil elsewhere), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil absent or unsupported here: only the fixed cap applies
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def read_npz_headers(path: Path, names: tuple[str, ...]) -> list[ArrayHeader]:
    """The declared headers of the members ``names`` (those present) of the archive at ``path``."""
    headers = []
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            for name in names:
                info = members.get(f"{name}.npy")
                if info is None:
                    continue
                with archive.open(info) as member:
                    version = npy_format.read_magic(member)
                    reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
                    shape, _, dtype = reader(member)
                headers.append(ArrayHeader(name, tuple(shape), dtype, math.prod(shape) * dtype.itemsize,
                                           info.file_size))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {path} as an .npz archive: {str(exc).splitlines()[0]}") from None
    return headers


def check_npz_sizes(path: Path, names: tuple[str, ...], limit: int | None = None) -> list[ArrayHeader]:
    """Refuse (:class:`~edgeprune.errors.DataError`) an archive whose arrays ``names`` together declare more
    than ``limit`` bytes (default: the smaller of the available memory and :data:`MAX_ARRAY_BYTES`); returns
    the headers."""
    headers = read_npz_headers(path, names)
    total = sum(h.nbytes for h in headers)
    if limit is None:
        available = available_memory_bytes()
        limit = MAX_ARRAY_BYTES if available is None else min(available, MAX_ARRAY_BYTES)
        where = "the memory available" if available is not None and available < MAX_ARRAY_BYTES else "the cap"
    else:
        where = "the limit"
    if total > limit:
        largest = max(headers, key=lambda h: h.nbytes)
        raise DataError(f"{path} declares {_gib(total)} of arrays ('{largest.name}': {largest.shape} "
                        f"{largest.dtype}), over {where} of {_gib(limit)}: refusing to load it")
    for header in headers:
        if header.nbytes > header.member_bytes:
            raise DataError(f"{path}: array '{header.name}' declares {header.shape} {header.dtype} "
                            f"({_gib(header.nbytes)}) but the archive holds {header.member_bytes} bytes of it: the "
                            "file is truncated or forged")
    return headers


