"""An in-memory detection set: letterboxed uint8 images and, per image, its boxes (xyxy, input pixels) and
classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.errors import DataError


@dataclass(frozen=True, eq=False)
class DetectionDataset:
    """Images ``uint8`` (N, H, W, 3), already letterboxed to the model's input size.

    ``boxes[i]`` is ``float32`` (K_i, 4), xyxy in input pixels; ``classes[i]`` is ``int64`` (K_i,). Both are None
    when the set is unlabelled; an image with no objects has K_i = 0.
    """

    images: np.ndarray
    boxes: list[np.ndarray] | None
    classes: list[np.ndarray] | None
    class_names: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or "detection dataset"
        x = self.images
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise DataError(f"{where}: images must be uint8 with shape (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
        if len(x) == 0:
            raise DataError(f"{where}: the dataset is empty")
        if (self.boxes is None) != (self.classes is None):
            raise DataError(f"{where}: boxes and classes must both be given or both be None")
        if self.boxes is None or self.classes is None:
            return
        if len(self.boxes) != len(x) or len(self.classes) != len(x):
            raise DataError(f"{where}: {len(self.boxes)} box lists and {len(self.classes)} class lists "
                            f"for {len(x)} images")
        for i, (b, c) in enumerate(zip(self.boxes, self.classes)):
            if b.dtype != np.float32 or b.ndim != 2 or b.shape[1] != 4:
                raise DataError(f"{where}: boxes of image {i} must be float32 (K, 4), got {b.dtype} {b.shape}")
            if c.dtype != np.int64 or c.shape != (len(b),):
                raise DataError(f"{where}: classes of image {i} must be int64 ({len(b)},), got {c.dtype} {c.shape}")
            limit = len(self.class_names) if self.class_names else None
            bad = c[(c < 0) | (c >= limit)] if limit is not None else c[c < 0]
            if len(bad):
                allowed = f"0..{limit - 1}" if limit is not None else "non-negative ids"
                raise DataError(f"{where}: image {i} has class id {int(bad[0])}, outside {allowed}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size_hw(self) -> tuple[int, int]:
        """The input size every image was letterboxed to."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def labelled(self) -> bool:
        """Whether the set carries boxes and classes."""
        return self.boxes is not None

    @property
    def num_classes(self) -> int | None:
        """Number of classes from the names, else from the largest class id (None when unlabelled)."""
        if self.class_names:
            return len(self.class_names)
        if self.classes is None:
            return None
        largest = max((int(c.max()) for c in self.classes if len(c)), default=-1)
        return largest + 1

    @property
    def num_objects(self) -> int:
        """Boxes over all images (0 when unlabelled)."""
        return 0 if self.boxes is None else sum(len(b) for b in self.boxes)

    def subset(self, indices: np.ndarray | list[int], source_suffix: str = "") -> DetectionDataset:
        """The images (and their boxes and classes) at ``indices``."""
        idx = [int(i) for i in np.asarray(indices).reshape(-1)]
        boxes = None if self.boxes is None else [self.boxes[i] for i in idx]
        classes = None if self.classes is None else [self.classes[i] for i in idx]
        return DetectionDataset(self.images[idx], boxes, classes, self.class_names, self.source + source_suffix)
