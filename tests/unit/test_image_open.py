"""edgeprune.data.image_open: Pillow's decompression-bomb limit is kept and its refusal is one DataError line."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from edgeprune.data.loaders import read_image
from edgeprune.data.rgb_image import read_rgb_image
from edgeprune.data.segmentation import read_mask
from edgeprune.errors import DataError


def forged_png(path: Path, width: int, height: int) -> Path:
    """A 1x1 PNG whose header claims ``width`` x ``height`` pixels (the CRC fixed, so Pillow believes it)."""
    Image.new("L", (1, 1)).save(path)
    png = bytearray(path.read_bytes())
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    path.write_bytes(bytes(png))
    return path


@pytest.mark.parametrize("read", [read_rgb_image, lambda p: read_image(p, (32, 32), 3), read_mask])
def test_a_png_claiming_20000_squared_pixels_is_refused_in_one_line(tmp_path: Path, read) -> None:  # type: ignore[no-untyped-def]
    path = forged_png(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(DataError) as error:
        read(path)
    message = str(error.value)
    assert message.startswith(f"refusing image {path}: Image size (400000000 pixels) exceeds limit") and "\n" not in message
    assert Image.MAX_IMAGE_PIXELS == 89478485  # Pillow's own limit, not raised or removed


def test_an_ordinary_image_still_reads(tmp_path: Path) -> None:
    Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "ok.png")
    assert read_image(tmp_path / "ok.png", (32, 32), 3).shape == (32, 32, 3)
