"""Training-time augmentation for recovery fine-tuning: random horizontal flips and random shifted crops.

A pruned model is fine-tuned for a few epochs on a fixed set of images; seeing each image under a fresh
small shift or mirror each epoch is the standard remedy for memorising them (the CIFAR ResNets were
trained with exactly these two: 4-pixel padding, 32-pixel random crop, random flip; He et al. 2016).

* ``crop`` — pad by 1/8 of each side with zeros, then cut the original size at a random offset (a random
  shift of up to 1/8 of the image). Padding is applied to the model's *normalised* input, so the border
  holds the dataset mean colour rather than black; the difference to padding raw pixels is immaterial
  for training and keeps augmentation independent of the preprocessing.
* ``flip`` — mirror left-right with probability 1/2. Not for tasks whose classes are not mirror-symmetric
  (digits, text, left/right signs): that is why nothing is on by default.

Both draw from the training loop's seeded generator, so a run (and a resumed run) is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgeprune.errors import UnknownNameError

AUGMENTATIONS = ("crop", "flip")


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations a training batch gets."""

    crop: bool = False
    flip: bool = False

    @property
    def active(self) -> bool:
        """Whether any augmentation is on."""
        return self.crop or self.flip

    @property
    def spec(self) -> str:
        """The canonical text form: ``crop,flip``, ``crop``, ``flip`` or ``none``."""
        names = [name for name in AUGMENTATIONS if getattr(self, name)]
        return ",".join(names) or "none"


def parse_augmentation(spec: str | None) -> Augmentation:
    """Parse ``--augment``: ``none`` or a comma-separated subset of ``crop``, ``flip`` (order free)."""
    text = (spec or "none").strip().lower()
    if text in ("", "none"):
        return Augmentation()
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in AUGMENTATIONS:
            raise UnknownNameError("augmentation", name, (*AUGMENTATIONS, "none"))
    return Augmentation(crop="crop" in names, flip="flip" in names)


def shift_padding_px(height: int, width: int) -> int:
    """Padding (and largest shift) of ``crop`` for an image of this size: 1/8 of the shorter side, >= 1."""
    return max(1, min(height, width) // 8)


@dataclass(frozen=True)
class AugmentationDraw:
    """The random choices of one batch: per image, whether it is mirrored and its crop offset (row, col)."""

    mirrored: torch.Tensor | None
    rows: list[int] | None
    cols: list[int] | None

    def rows_at(self, picked: slice) -> "AugmentationDraw":
        """The draws of the images in ``picked`` (a data-parallel rank's share of the batch)."""
        return AugmentationDraw(None if self.mirrored is None else self.mirrored[picked],
                                None if self.rows is None else self.rows[picked],
                                None if self.cols is None else self.cols[picked])


def draw_augmentation(n: int, height: int, width: int, augmentation: Augmentation,
                      generator: torch.Generator) -> AugmentationDraw:
    """Draw the random choices for a batch of ``n`` images (flips first, then crop rows and columns)."""
    mirrored = torch.rand(n, generator=generator) < 0.5 if augmentation.flip else None
    rows = cols = None
    if augmentation.crop:
        pad = shift_padding_px(height, width)
        rows = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
        cols = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    return AugmentationDraw(mirrored, rows, cols)


def apply_augmentation(images: torch.Tensor, draw: AugmentationDraw) -> torch.Tensor:
    """A new (N, C, H, W) batch with ``draw`` applied per image; ``images`` is left unchanged."""
    out = images
    if draw.mirrored is not None:
        out = torch.where(draw.mirrored.to(out.device)[:, None, None, None], out.flip(3), out)
    if draw.rows is not None and draw.cols is not None:
        height, width = images.shape[2:]
        pad = shift_padding_px(height, width)
        padded = F.pad(out, (pad, pad, pad, pad))
        out = torch.stack([padded[i, :, r:r + height, c:c + width]
                           for i, (r, c) in enumerate(zip(draw.rows, draw.cols))])
    return out


def augment_batch(images: torch.Tensor, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """A new (N, C, H, W) batch with ``augmentation`` applied per image; ``images`` is left unchanged."""
    if not augmentation.active or images.dim() != 4:
        return images
    n, _, height, width = images.shape
    return apply_augmentation(images, draw_augmentation(n, height, width, augmentation, generator))
