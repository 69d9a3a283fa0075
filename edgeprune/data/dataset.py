"""An in-memory labelled image set: uint8 pixels (N, H, W, C) and optional integer labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.errors import DataError


@dataclass(frozen=True)
class ImageDataset:
    """Images as ``uint8`` (N, H, W, C) with C in {1, 3}; labels ``int64`` (N,) or None.

    All images share one size; loaders resize files to the model's input size when they read them.
    """

    images: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...] = ()
    source: str = ""
    #: how the labels were made, for messages (e.g. "3 folders named by class index -> that index")
    labels_from: str = ""

    def __post_init__(self) -> None:
        x = self.images
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise DataError(
                f"{self.source or 'dataset'}: images must be uint8 with shape (N, H, W, C) and C in {{1, 3}}, "
                f"got {x.dtype} {tuple(x.shape)}"
            )
        if len(x) == 0:
            raise DataError(f"{self.source or 'dataset'}: the dataset is empty")
        if self.labels is not None:
            if self.labels.shape != (len(x),):
                raise DataError(
                    f"{self.source or 'dataset'}: {len(self.labels)} labels for {len(x)} images"
                )
            if self.labels.min() < 0:
                raise DataError(f"{self.source or 'dataset'}: labels must be non-negative integers")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int | None:
        """Number of classes implied by names or labels (None when unlabelled)."""
        if self.class_names:
            return len(self.class_names)
        if self.labels is None:
            return None
        return int(self.labels.max()) + 1

    def subset(self, indices: np.ndarray, source_suffix: str = "") -> "ImageDataset":
        """The images (and labels) at ``indices``."""
        labels = None if self.labels is None else self.labels[indices]
        return ImageDataset(self.images[indices], labels, self.class_names, self.source + source_suffix,
                            self.labels_from)


def split_dataset(dataset: ImageDataset, fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Split into (first, rest) with ``fraction`` of the images in ``first``, stratified by label when labelled."""
    rng = np.random.default_rng(seed)
    n = len(dataset)
    if dataset.labels is None:
        order = rng.permutation(n)
        cut = max(1, min(n - 1, int(round(n * fraction))))
        first, rest = order[:cut], order[cut:]
    else:
        first_list, rest_list = [], []
        for cls in np.unique(dataset.labels):
            idx = rng.permutation(np.flatnonzero(dataset.labels == cls))
            cut = int(round(len(idx) * fraction))
            first_list.append(idx[:cut])
            rest_list.append(idx[cut:])
        first, rest = np.sort(np.concatenate(first_list)), np.sort(np.concatenate(rest_list))
    if len(first) == 0 or len(rest) == 0:
        raise DataError(f"{dataset.source}: too few images ({n}) to split")
    return dataset.subset(first, "[split-a]"), dataset.subset(rest, "[split-b]")
