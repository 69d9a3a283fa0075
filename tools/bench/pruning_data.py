"""Data for the pruning benchmark: a decoded, class-balanced CIFAR-10 training subset, and ONNX evaluation.

``../shared/data/cifar10/cifar10_train_jpegbytes.npz`` stores the 50,000 training images as raw JPEG bytes,
which edgeprune's ``.npz`` loader cannot read (it wants ``x`` (N, H, W, C) uint8 and ``y`` (N,)). The
benchmark decodes a seeded, class-balanced subset once and caches it as such an ``.npz``, so it can be
passed to ``edgeprune.fit(train_data=...)`` and to the Torch-Pruning baseline's fine-tune alike.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
import torch

from edgeprune.data.loaders import load_npz
from edgeprune.data.tensors import to_model_input
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.models.zoo import ModelBundle
from edgeprune.runtimes.base import Artifact
from edgeprune.target import Target
from edgeprune.train.default_weights import load_model
from edgeprune.validate.accuracy import evaluate_session

log = logging.getLogger("pruning_bench.data")

BENCH_DIR = Path(__file__).resolve().parent


def default_cache_dir() -> Path:
    """``$EDGEPRUNE_CACHE_DIR/bench-data`` when that variable is set, else ``tools/bench/.cache``."""
    env = os.environ.get("EDGEPRUNE_CACHE_DIR")
    return Path(env) / "bench-data" if env else BENCH_DIR / ".cache"


def balanced_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Seeded subset of ``count`` indices with (as nearly as possible) the same number per class, sorted.

    The remainder of ``count / classes`` goes to the lowest class ids; a class with too few images gives
    all it has.
    """
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    base, extra = divmod(count, len(classes))
    chosen: list[np.ndarray] = []
    for k, c in enumerate(classes):
        pool = np.flatnonzero(labels == c)
        take = min(len(pool), base + (1 if k < extra else 0))
        chosen.append(rng.choice(pool, size=take, replace=False))
    return np.sort(np.concatenate(chosen))


def decode_jpeg_subset(jpegbytes_npz: Path, count: int, seed: int,
                       exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a class-balanced subset of the JPEG-bytes archive: x uint8 (N,H,W,3), y int64 (N,), indices.

    ``exclude``: training indices never drawn (the validation split); ``count`` 0 then takes every other image.
    """
    from PIL import Image

    archive = dict(np.load(jpegbytes_npz, allow_pickle=False))  # load once: indexing np.load re-reads
    buffer, offsets, labels = archive["jpeg"], archive["offsets"], archive["y"].astype(np.int64)
    if exclude is not None:
        idx = np.setdiff1d(np.arange(len(labels)), exclude)
        if count:
            idx = idx[balanced_indices(labels[idx], count, seed)]
    else:
        idx = balanced_indices(labels, count, seed)
    images = []
    for i in idx:
        with Image.open(io.BytesIO(buffer[offsets[i]:offsets[i + 1]].tobytes())) as img:
            images.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
    return np.stack(images), labels[idx], idx


def prepare_train_npz(jpegbytes_npz: Path, count: int, seed: int, cache_dir: Path,
                      exclude_npz: Path | None = None) -> Path:
    """Path of the cached decoded training subset (``x``, ``y``, ``index``), decoding it on first use.

    ``exclude_npz``: an ``.npz`` whose ``index`` lists training images kept out (the validation split);
    with ``count`` 0 every other training image is decoded.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    exclude = None
    name = f"cifar10_train_jpeg_n{count}_seed{seed}.npz"
    if exclude_npz is not None:
        exclude = np.load(exclude_npz)["index"].astype(np.int64)
        name = f"cifar10_train_jpeg_n{count or 'all'}_seed{seed}_minus_{exclude_npz.stem}.npz"
    path = cache_dir / name
    if path.exists():
        return path
    log.info("decoding %s training images from %s (seed %d%s)", count or "all remaining", jpegbytes_npz, seed,
             f", {len(exclude)} held out" if exclude is not None else "")
    x, y, index = decode_jpeg_subset(jpegbytes_npz, count, seed, exclude)
    partial = path.with_name(path.stem + f".partial-{os.getpid()}.npz")
    np.savez(partial, x=x, y=y, index=index)
    partial.replace(path)
    log.info("cached %s (%d images, %s per class)", path, len(y), np.bincount(y).tolist())
    return path


def evaluate_onnx(backend: object, artifact: Artifact, target: Target, data_npz: Path, prep: Preprocessing,
                  limit: int | None = None) -> tuple[float, int]:
    """Top-1 of an exported artifact on an ``.npz`` test set (first ``limit`` images), in the target runtime."""
    data = load_npz(data_npz)
    images, labels = data.images, data.labels
    if labels is None:
        raise ValueError(f"{data_npz} has no labels")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    session = backend.load(artifact, target)  # type: ignore[attr-defined]
    result = evaluate_session(session, artifact.input_name, to_model_input(images, prep), labels)
    return float(result.top1 or 0.0), result.images


def load_original(model: str, weights: Path, lossless: Path) -> tuple[ModelBundle, torch.Tensor]:
    """The benchmark's original model and its one-image example input (the first lossless test image)."""
    bundle = load_model(model, weights)
    assert bundle.preprocessing is not None
    return bundle, to_model_input(load_npz(lossless).images[:1], bundle.preprocessing)
