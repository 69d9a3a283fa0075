"""Opening one image file with Pillow, every failure turned into one :class:`~edgeprune.errors.DataError` line.

Pillow's decompression-bomb limit is kept (:data:`PIL.Image.MAX_IMAGE_PIXELS`): a header claiming more than
twice that many pixels (a 20000 x 20000 PNG of a few hundred bytes) is refused by ``Image.open`` before any
pixel is decoded, and the refusal names the file instead of surfacing as an internal error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgeprune.errors import DataError


@contextmanager
def open_image(path: Path) -> Iterator[Any]:
    """``with open_image(path) as img``: a PIL image; a file Pillow cannot read, or refuses as a decompression
    bomb, raises DataError naming ``path`` (failures while decoding inside the block too)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            yield img
    except Image.DecompressionBombError as exc:
        raise DataError(f"refusing image {path}: {str(exc).splitlines()[0]} (Pillow's decompression-bomb "
                        "limit; resize the image)") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {str(exc).splitlines()[0]}") from None
    except ImportError:  # once imported, ultralytics patches Image.open to look for a HEIF plugin on failure
        raise DataError(f"cannot read image {path}: not an image format Pillow can read") from None
