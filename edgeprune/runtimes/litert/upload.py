"""The agent's structural check of an uploaded TFLite file: FlatBuffer identifier ``TFL3`` and a bounds-checked
root table, read from a memory map (cheap: it runs in the agent's server process)."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from edgeprune.errors import InputError


def check_tflite(path: Path) -> None:
    """Refuse (415) anything that is not structurally a TFLite FlatBuffer: identifier ``TFL3`` at bytes 4..8,
    root table and vtable in bounds, schema version 3, at least one subgraph."""
    size = path.stat().st_size
    if size < 24:
        raise InputError(f"not a TFLite model: {size} bytes is too short")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[4:8] != b"TFL3":
            raise InputError("not a TFLite model: no 'TFL3' FlatBuffer identifier at bytes 4-8")

        def u16(at: int) -> int:
            if not 0 <= at <= size - 2:
                raise InputError("not a valid TFLite model: offset out of bounds")
            return int(struct.unpack_from("<H", buf, at)[0])

        def u32(at: int) -> int:
            if not 0 <= at <= size - 4:
                raise InputError("not a valid TFLite model: offset out of bounds")
            return int(struct.unpack_from("<I", buf, at)[0])

        root = u32(0)
        vtable = root - struct.unpack_from("<i", buf, root)[0] if 8 <= root <= size - 4 else -1
        vt_len, table_len = u16(vtable), u16(vtable + 2)
        if vt_len < 4 or vt_len % 2 or vtable + vt_len > size or root + table_len > size:
            raise InputError("not a valid TFLite model: malformed root table")

        def field_at(index: int) -> int:
            slot = 4 + 2 * index
            offset = u16(vtable + slot) if slot + 2 <= vt_len else 0
            if offset >= max(table_len, 1):
                raise InputError("not a valid TFLite model: field outside its table")
            return root + offset if offset else 0

        version_at = field_at(0)
        if not version_at or u32(version_at) != 3:
            raise InputError("not a valid TFLite model: schema version is not 3")
        for index, name, required in ((2, "subgraphs", True), (4, "buffers", False)):
            at = field_at(index)
            if not at:
                if required:
                    raise InputError(f"not a valid TFLite model: no {name}")
                continue
            vector = at + u32(at)
            count = u32(vector)
            if vector + 4 + 4 * count > size or (required and count == 0):
                raise InputError(f"not a valid TFLite model: malformed {name} vector")
