"""Letterboxing as Ultralytics does it for validation: scale to fit the input keeping the aspect ratio, then pad
the rest with grey (114) evenly on both sides; boxes follow the same scale and offset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the grey Ultralytics pads with
PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxGeometry:
    """How an image of ``source_hw`` maps into ``size_hw``: ``x_in = x_src * scale + left`` (same for y)."""

    source_hw: tuple[int, int]
    size_hw: tuple[int, int]
    scale: float
    resized_hw: tuple[int, int]
    top_px: int
    left_px: int

    def boxes_to_input(self, boxes_xyxy_px: np.ndarray) -> np.ndarray:
        """Boxes (K, 4) xyxy in source pixels to input pixels, clipped to the resized image."""
        out = np.asarray(boxes_xyxy_px, dtype=np.float32).reshape(-1, 4) * np.float32(self.scale)
        out[:, [0, 2]] += self.left_px
        out[:, [1, 3]] += self.top_px
        h, w = self.resized_hw
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], self.left_px, self.left_px + w)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], self.top_px, self.top_px + h)
        return out


def letterbox_geometry(source_hw: tuple[int, int], size_hw: tuple[int, int]) -> LetterboxGeometry:
    """The scale and padding that fit ``source_hw`` into ``size_hw`` (Ultralytics' ``LetterBox(center=True)``)."""
    src_h, src_w = source_hw
    h, w = size_hw
    scale = min(h / src_h, w / src_w)
    new_h, new_w = min(h, max(1, round(src_h * scale))), min(w, max(1, round(src_w * scale)))
    dh, dw = (h - new_h) / 2, (w - new_w) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    return LetterboxGeometry((src_h, src_w), (h, w), scale, (new_h, new_w), max(0, top), max(0, left))


def letterbox_image(img: object, size_hw: tuple[int, int]) -> tuple[np.ndarray, LetterboxGeometry]:
    """An RGB PIL image letterboxed to ``size_hw``: uint8 (H, W, 3) and the geometry that maps its boxes."""
    from PIL import Image

    src_w, src_h = img.size  # type: ignore[attr-defined]
    geometry = letterbox_geometry((src_h, src_w), size_hw)
    new_h, new_w = geometry.resized_hw
    if (new_h, new_w) != (src_h, src_w):
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)  # type: ignore[attr-defined]
    canvas = np.full((size_hw[0], size_hw[1], 3), PAD_VALUE, dtype=np.uint8)
    top, left = geometry.top_px, geometry.left_px
    canvas[top:top + new_h, left:left + new_w] = np.asarray(img, dtype=np.uint8).reshape(new_h, new_w, 3)
    return canvas, geometry
