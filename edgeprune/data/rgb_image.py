"""Reading one image file as RGB, its EXIF orientation applied (as Ultralytics' loaders do)."""

from __future__ import annotations

from pathlib import Path

from edgeprune.data.image_open import open_image


def read_rgb_image(path: Path) -> object:
    """``path`` as an RGB PIL image, EXIF orientation applied; an unreadable file raises DataError."""
    from PIL import ImageOps

    with open_image(path) as img:
        return ImageOps.exif_transpose(img).convert("RGB")
