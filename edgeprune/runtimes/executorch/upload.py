"""A cheap structural check of an uploaded ``.pte`` before the runtime loads it (no torch, no executorch).

A ``.pte`` is an ExecuTorch program flatbuffer: a root offset at bytes 0..4, the file identifier ``ET12`` at
bytes 4..8 (``schema/program.fbs`` of executorch 1.x), optionally followed by an extended header ``eh00`` at
bytes 8..12 that gives the flatbuffer's size and where the segments (delegate payloads, constants) start.
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgeprune.errors import InputError

#: the program flatbuffer's file identifier (``file_identifier`` in executorch's ``schema/program.fbs``)
PTE_IDENTIFIER = b"ET12"
#: the extended header's magic, right after the identifier when present
EXTENDED_HEADER_MAGIC = b"eh00"
#: the smallest and largest ``.pte`` accepted (the largest: a generous edge model)
MIN_BYTES = 40
MAX_BYTES = 2 << 30


def check_upload(path: Path) -> None:
    """Raise :class:`InputError` (one line) unless ``path`` is structurally an ExecuTorch program."""
    size = Path(path).stat().st_size
    if size < MIN_BYTES:
        raise InputError(f"not an ExecuTorch program: {size} bytes is too short")
    if size > MAX_BYTES:
        raise InputError(f"not accepted as an ExecuTorch program: {size} bytes is over {MAX_BYTES}")
    with open(path, "rb") as f:
        head = f.read(40)
    if head[4:8] != PTE_IDENTIFIER:
        raise InputError(f"not an ExecuTorch program: no '{PTE_IDENTIFIER.decode()}' identifier at bytes 4-8")
    root = struct.unpack_from("<I", head, 0)[0]
    if not 8 <= root <= size - 4:
        raise InputError("not a valid ExecuTorch program: the root table offset is out of bounds")
    if head[8:12] == EXTENDED_HEADER_MAGIC:
        header_length, program_size, segment_offset = struct.unpack_from("<IQQ", head, 12)
        if header_length < 24 or not 0 < program_size <= size or segment_offset > size or \
                (segment_offset and segment_offset < program_size):
            raise InputError("not a valid ExecuTorch program: its extended header's sizes do not fit the file")
        segment_bytes = struct.unpack_from("<Q", head, 32)[0] if header_length >= 32 else 0
        if segment_offset + segment_bytes > size:
            raise InputError(f"not a valid ExecuTorch program: truncated ({size} bytes, its header says "
                             f"{segment_offset + segment_bytes})")
