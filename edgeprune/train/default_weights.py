"""The weights a model has without ``--weights``: the built-in demo model is trained on the bundled digits
once, then reused from the cache; any other model keeps its random initialisation, with a warning.

The cache lives in ``$EDGEPRUNE_CACHE_DIR`` or ``~/.cache/edgeprune``; the file name carries a recipe
version, so a change of recipe retrains instead of loading stale weights. Training is seeded: the same
machine produces the same weights.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from edgeprune.cache import cache_dir
from edgeprune.data.digits import load_digits_splits
from edgeprune.data.tensors import to_model_input
from edgeprune.io_atomic import write_atomic
from edgeprune.models.demo import DEMO_PREPROCESSING, DemoNet
from edgeprune.models.weights import load_weights
from edgeprune.models.zoo import ModelBundle, build_architecture
from edgeprune.train.loop import TrainSpec, train_classifier

log = logging.getLogger(__name__)

DEMO_RECIPE = "v1"
DEMO_SEED = 0
DEMO_TRAIN_SPEC = TrainSpec(epochs=8, lr=0.05, batch_size=64, seed=DEMO_SEED)


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
    train_classifier(model, inputs, torch.from_numpy(train.labels), DEMO_TRAIN_SPEC, data_parallel=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_atomic(path, lambda p: save_file(state, str(p), metadata={"recipe": DEMO_RECIPE}))
    model.eval()
    return model


def load_model(spec: str, weights: str | Path | None = None, num_classes: int | None = None) -> ModelBundle:
    """Build ``spec`` and load ``weights`` into it (required for every model except ``demo``).

    >>> bundle = load_model("cifar-resnet20", "resnet20.th")        # doctest: +SKIP
    """
    bundle = build_architecture(spec, num_classes)
    if weights is not None:
        load_weights(bundle.model, weights)
    else:
        load_default_weights(bundle)
    bundle.model.eval()
    return bundle


def load_default_weights(bundle: ModelBundle) -> None:
    """Give ``bundle`` the weights it has when no ``--weights`` is passed, in place.

    ``demo`` gets the trained demo model (trained on first use: about a minute, so callers check every
    other input first); any other model keeps its random initialisation, with a warning.
    """
    if bundle.spec == "demo":
        bundle.model = trained_demo_model()
    else:
        log.warning("no --weights given for model '%s': it has random weights", bundle.spec)
