"""Where the training loop's batches come from: tensors already in memory, or files read by DataLoader workers.

The loop draws one seeded order of the images per epoch and cuts it into batches itself (so a run, a resumed
run and a data-parallel run see the same batches); a source only turns a list of indices into model input and
labels. :class:`TensorImages` indexes tensors; :class:`FolderImages` reads a
:class:`~edgeprune.data.lazy_folder.LazyImageFolder` through a :class:`torch.utils.data.DataLoader` whose worker
processes read and resize the files of the coming batches while the model trains, and converts each batch to
model input (scale, normalise) as it arrives.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch

from edgeprune.data.lazy_folder import LazyImageFolder
from edgeprune.data.tensors import to_model_input
from edgeprune.models.preprocessing import Preprocessing

Batch = tuple[torch.Tensor, "torch.Tensor | None"]


class TrainingImages(Protocol):
    """A training set the loop can batch: its size and the (inputs, labels) of lists of indices, in order."""

    def __len__(self) -> int: ...

    def batches(self, index_lists: Sequence[torch.Tensor]) -> Iterator[Batch]: ...


class TensorImages:
    """Model inputs (N, C, H, W) and optional labels (N, ...) held in memory."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.inputs)

    def batches(self, index_lists: Sequence[torch.Tensor]) -> Iterator[Batch]:
        """The inputs and labels at each list of indices."""
        for idx in index_lists:
            yield self.inputs[idx], None if self.labels is None else self.labels[idx]


class InMemoryImages:
    """uint8 pixels (N, H, W, C) in memory with optional labels, converted to model input once, on first use.

    What a data-parallel run broadcasts is the uint8 pixels (a quarter of the float inputs' size); each rank
    converts them itself.
    """

    def __init__(self, pixels: np.ndarray, labels: torch.Tensor | None, preprocessing: Preprocessing) -> None:
        self.pixels, self.labels, self.preprocessing = pixels, labels, preprocessing
        self._inputs: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.pixels)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_inputs": None}

    def batches(self, index_lists: Sequence[torch.Tensor]) -> Iterator[Batch]:
        """The inputs and labels at each list of indices."""
        if self._inputs is None:
            self._inputs = to_model_input(self.pixels, self.preprocessing)
        return TensorImages(self._inputs, self.labels).batches(index_lists)


def _stack_pixels(items: list[np.ndarray]) -> np.ndarray:
    return np.stack(items)


class FolderImages:
    """A lazily read folder, batched by a DataLoader with ``workers`` processes (0: read in this process)."""

    def __init__(self, folder: LazyImageFolder, preprocessing: Preprocessing, workers: int) -> None:
        self.folder, self.preprocessing, self.workers = folder, preprocessing, workers
        self.labels = None if folder.labels is None else torch.from_numpy(folder.labels)

    def __len__(self) -> int:
        return len(self.folder)

    def batches(self, index_lists: Sequence[torch.Tensor]) -> Iterator[Batch]:
        """Each list's images read (in parallel, a few batches ahead) and converted to model input."""
        lists = [idx.tolist() for idx in index_lists]
        loader = torch.utils.data.DataLoader(self.folder, batch_sampler=lists, num_workers=self.workers,
                                             collate_fn=_stack_pixels, prefetch_factor=2 if self.workers else None)
        for idx, pixels in zip(index_lists, loader):
            yield to_model_input(pixels, self.preprocessing), None if self.labels is None else self.labels[idx]
