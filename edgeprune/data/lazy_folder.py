"""An ImageFolder read lazily: the file list and labels in memory, each image read when it is asked for.

For training sets larger than memory (an ImageNet-sized folder of 1.2 million images is 180 GB as uint8 at
224 px): a :class:`torch.utils.data.DataLoader` with worker processes reads the files of each batch
(:mod:`edgeprune.train.batches`), and the small parts a fit needs in memory (calibration images) are read as
an :class:`~edgeprune.data.dataset.ImageDataset` by :meth:`LazyImageFolder.subset`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgeprune.data.class_folders import LabelNaming
from edgeprune.data.dataset import ImageDataset
from edgeprune.data.loaders import list_image_folder, load_dataset, read_image

log = logging.getLogger(__name__)


class LazyImageFolder:
    """``root/<class>/<image>`` as a map-style dataset: ``self[i]`` is image ``i`` as uint8 (H, W, C).

    Picklable (a list of paths), so DataLoader workers and data-parallel ranks each read their own files.
    """

    def __init__(self, root: Path, size_hw: tuple[int, int], channels: int, naming: LabelNaming | None = None) -> None:
        listing = list_image_folder(root, naming)
        self.files = [str(f) for f, _ in listing.entries]
        self.labels = np.array([c for _, c in listing.entries], dtype=np.int64) if listing.labelled else None
        self.class_names, self.source, self.labels_from = listing.class_names, str(root), listing.labels_from
        self.size_hw, self.channels = size_hw, channels
        log.info("indexed %d images under %s (read lazily)", len(self.files), root)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> np.ndarray:
        return read_image(Path(self.files[index]), self.size_hw, self.channels)

    @property
    def num_classes(self) -> int | None:
        """Number of classes implied by the subfolders' names or the labels (None when unlabelled)."""
        if self.class_names:
            return len(self.class_names)
        return None if self.labels is None else int(self.labels.max()) + 1

    @property
    def decoded_bytes(self) -> int:
        """What the whole set would take in memory as uint8 pixels."""
        return len(self) * self.size_hw[0] * self.size_hw[1] * self.channels

    def subset(self, indices: np.ndarray, source_suffix: str = "") -> ImageDataset:
        """The images (and labels) at ``indices``, read into memory."""
        pixels = np.empty((len(indices), *self.size_hw, self.channels), dtype=np.uint8)
        for row, index in enumerate(indices):
            pixels[row] = self[int(index)]
        labels = None if self.labels is None else self.labels[indices]
        return ImageDataset(pixels, labels, self.class_names, self.source + source_suffix, self.labels_from)


#: training folders whose pixels would take more than this in memory are read lazily (``--in-memory-mb``)
IN_MEMORY_LIMIT_BYTES = 2048 * 1_000_000


def open_training_data(spec: str | Path, size_hw: tuple[int, int], channels: int,
                       in_memory_limit_bytes: int = IN_MEMORY_LIMIT_BYTES,
                       naming: LabelNaming | None = None) -> ImageDataset | LazyImageFolder:
    """A training set: in memory when its pixels fit in ``in_memory_limit_bytes`` (or it is an ``.npz``),
    else a folder indexed and read lazily, batch by batch (``naming``: how its folder names become labels)."""
    path = Path(spec)
    if path.is_dir():
        lazy = LazyImageFolder(path, size_hw, channels, naming)
        if lazy.decoded_bytes > in_memory_limit_bytes:
            log.info("%s: %d images take %.1f MB decoded, over the in-memory limit of %.1f MB: read per batch",
                     path, len(lazy), lazy.decoded_bytes / 1e6, in_memory_limit_bytes / 1e6)
            return lazy
        return lazy.subset(np.arange(len(lazy)))
    return load_dataset(path, size_hw, channels, naming)
