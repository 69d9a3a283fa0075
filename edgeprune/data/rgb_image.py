"""Reading one image file as RGB, its EXIF orientation applied (as Ultralytics' loaders do)."""

from __future__ import annotations

from pathlib import Path

from edgeprune.errors import DataError


def read_rgb_image(path: Path) -> object:
    """``path`` as an RGB PIL image, EXIF orientation applied; an unreadable file raises DataError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {str(exc).splitlines()[0]}") from None
    except ImportError:  # once imported, ultralytics patches Image.open to look for a HEIF plugin on failure
        raise DataError(f"cannot read image {path}: not an image format Pillow can read") from None
