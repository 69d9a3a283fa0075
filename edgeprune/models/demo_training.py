"""Train the built-in demo model on the bundled digits once, then reuse it from the cache.

The cache lives in ``$EDGEPRUNE_CACHE_DIR`` or ``~/.cache/edgeprune``; the file name carries a recipe
version, so a change of recipe retrains instead of loading stale weights. Training is seeded: the same
machine produces the same weights.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from edgeprune.data.digits import load_digits_splits
from edgeprune.data.tensors import to_model_input
from edgeprune.io_atomic import write_atomic
from edgeprune.models.demo import DEMO_PREPROCESSING, DemoNet
from edgeprune.train.loop import TrainSpec, train_classifier

log = logging.getLogger(__name__)

DEMO_RECIPE = "v1"
DEMO_SEED = 0
DEMO_TRAIN_SPEC = TrainSpec(epochs=8, lr=0.05, batch_size=64, seed=DEMO_SEED)


def cache_dir() -> Path:
    """Where edgeprune keeps data it derived itself (the trained demo model)."""
    env = os.environ.get("EDGEPRUNE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "edgeprune"


def demo_weights_path() -> Path:
    """Path of the cached demo weights for the current recipe."""
    return cache_dir() / f"demo-digits-{DEMO_RECIPE}-seed{DEMO_SEED}.safetensors"


def trained_demo_model() -> DemoNet:
    """The demo model with trained weights, training it first (about a minute on 2 cores) if not cached."""
    model = DemoNet()
    path = demo_weights_path()
    if path.is_file():
        try:
            model.load_state_dict(load_file(str(path)), strict=True)
            model.eval()
            return model
        except Exception as exc:  # a corrupt cache is rebuilt, not fatal
            log.warning("cached demo weights %s are unusable (%s); retraining", path, exc)
    log.info("training the demo model on the bundled digits (first run only; cached in %s)", path.parent)
    torch.manual_seed(DEMO_SEED)
    model = DemoNet()
    train, _ = load_digits_splits()
    assert train.labels is not None
    inputs = to_model_input(train.images, DEMO_PREPROCESSING)
    train_classifier(model, inputs, torch.from_numpy(train.labels), DEMO_TRAIN_SPEC)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_atomic(path, lambda p: save_file(state, str(p), metadata={"recipe": DEMO_RECIPE}))
    model.eval()
    return model
