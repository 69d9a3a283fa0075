"""How a model expects its input: size, channels and normalisation."""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Input specification of an image model.

    Pixels are scaled to [0, 1], resized to ``height`` x ``width``, then normalised per channel with
    ``(x - mean) / std``. ``channels`` is 1 (grayscale) or 3 (RGB).
    """

    height: int
    width: int
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"input size must be positive, got {self.height}x{self.width}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} value(s) each")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) without the batch dimension."""
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, object]:
        """Plain-data form for plans and reports."""
        return {
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }
