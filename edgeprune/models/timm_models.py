"""timm's models by name (``--model timm:NAME``), built offline with random weights; weights come only from
``--weights``.

``timm.create_model(NAME, pretrained=False)`` builds the architecture without touching the network; the
Hugging Face hub client is also put offline (``HF_HUB_OFFLINE=1``) before timm is first imported, so nothing
timm does at build time can fetch. A name may carry a pretrained tag (``resnet18.a1_in1k``): the tag picks the
pretrained configuration, hence the input size, mean and std edgeprune feeds the model, not weights.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from torch import nn

from edgeprune.errors import ModelLoadError, closest_name
from edgeprune.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

log = logging.getLogger(__name__)

#: how a user finds timm's names (printed when a name is unknown)
FIND_NAMES = ("Find timm's names with: python -c \"import timm; print(timm.list_models('*mobile*'))\" (the pattern "
              "narrows the list; timm.list_pretrained() gives names with a pretrained tag, e.g. "
              "mobilenetv3_small_100.lamb_in1k)")


def configure_hub_offline() -> None:
    """Put the Hugging Face hub client offline (``HF_HUB_OFFLINE=1``) for the coming ``import timm``.

    The variable is read when ``huggingface_hub`` is first imported; where it is already loaded, its constant is
    set too, so that nothing timm does afterwards in this process can reach the network.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and not getattr(constants, "HF_HUB_OFFLINE", True):
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


def _import_timm() -> Any:
    configure_hub_offline()
    try:
        import timm
    except ImportError:
        raise ModelLoadError("--model timm:... needs the timm package: pip install 'edgeprune[timm]'") from None
    return timm


def _check_name(timm: Any, name: str) -> None:
    """Refuse, in one line, a name timm does not know (an architecture, or a pretrained tag of one)."""
    architecture, _, tag = name.partition(".")
    known = timm.list_models()
    if architecture not in known:
        close = closest_name(architecture, known)
        hint = f" Did you mean '{close}'?" if close else ""
        raise ModelLoadError(f"unknown timm model '{name}'.{hint} {FIND_NAMES}")
    tagged = timm.list_pretrained(f"{architecture}.*")
    if tag and name not in tagged:
        tags = ", ".join(sorted(n.partition(".")[2] for n in tagged)) or "none"
        raise ModelLoadError(f"timm model '{architecture}' has no pretrained tag '{tag}' (its tags: {tags})")


def _preprocessing(model: nn.Module, name: str) -> Preprocessing:
    """Input size, mean and std from the model's pretrained configuration (ImageNet's 224 px when it has none)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    channels, height, width = tuple(cfg.get("input_size", (3, 224, 224)))
    mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in cfg.get("std", IMAGENET_STD))
    try:
        return Preprocessing(int(height), int(width), int(channels), mean, std)
    except ValueError as exc:
        raise ModelLoadError(f"timm model '{name}' has an input configuration edgeprune cannot use: {exc}") from None


def build_timm(name: str, num_classes: int | None) -> tuple[nn.Module, Preprocessing, int]:
    """``timm.create_model(name, pretrained=False)`` with ``num_classes`` outputs (timm's default when None);
    returns (model, preprocessing from its pretrained configuration, class count)."""
    timm = _import_timm()
    _check_name(timm, name)
    kwargs: dict[str, Any] = {"pretrained": False}
    if num_classes:
        kwargs["num_classes"] = num_classes
    try:
        model = timm.create_model(name, **kwargs)
    except Exception as exc:  # timm raises RuntimeError, ValueError, TypeError ... on arguments a model refuses
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"cannot build timm model '{name}': {first}") from None
    classes = int(getattr(model, "num_classes", 0) or num_classes or 1000)
    return model, _preprocessing(model, name), classes
