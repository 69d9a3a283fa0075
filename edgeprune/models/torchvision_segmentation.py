"""torchvision's semantic segmentation models (``--model torchvision:lraspp_mobilenet_v3_large``), made exportable
and prunable.

torchvision's segmentation models return a dict (``out``, and ``aux`` with an auxiliary head); edgeprune exports,
times and checks one tensor. The model built here is torchvision's own instance whose class is swapped for a
subclass that returns ``out``: the per-class logits (1, classes, H, W) at the input's size. Nothing else changes:
module names and state-dict keys are torchvision's, so a torchvision state dict (``model.state_dict()`` of the
same architecture and class count) loads as it is.

The layers that compute the class logits are the model's outputs: they are frozen, and the graph says so by name
(``edgeprune_frozen_outputs``). Every model is built with ``weights=None, weights_backbone=None,
aux_loss=False``: nothing is downloaded, and weights come from ``--weights``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torchvision.models.segmentation import FCN, LRASPP, DeepLabV3

from edgeprune.errors import ModelLoadError
from edgeprune.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

log = logging.getLogger(__name__)

#: classes when ``--num-classes`` is not given: PASCAL VOC's 20 and background, as torchvision's weights have
DEFAULT_SEGMENTATION_CLASSES = 21
#: the input size when ``--input-shape`` is not given (pixels, square)
DEFAULT_SEGMENTATION_SIZE_PX = 224
SEGMENTATION_PREPROCESSING = Preprocessing(DEFAULT_SEGMENTATION_SIZE_PX, DEFAULT_SEGMENTATION_SIZE_PX, 3,
                                           IMAGENET_MEAN, IMAGENET_STD)


class _LogitsOnly(nn.Module):
    """Mixin: the segmentation model's ``out`` logits (N, classes, H, W) instead of its dict of outputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)["out"]  # type: ignore[misc]


class LRASPPLogits(_LogitsOnly, LRASPP):
    """torchvision's LR-ASPP, returning its ``out`` logits."""


class DeepLabV3Logits(_LogitsOnly, DeepLabV3):
    """torchvision's DeepLabV3, returning its ``out`` logits."""


class FCNLogits(_LogitsOnly, FCN):
    """torchvision's FCN, returning its ``out`` logits."""


#: torchvision's class -> the same class returning one tensor
_LOGITS_CLASSES: dict[type, type] = {LRASPP: LRASPPLogits, DeepLabV3: DeepLabV3Logits, FCN: FCNLogits}


def build_segmentation_model(name: str, num_classes: int | None) -> tuple[nn.Module, Preprocessing, int]:
    """torchvision's segmentation model ``name`` with ``num_classes`` classes (21 when None), untrained, returning
    its ``out`` logits; returns (model in eval mode, preprocessing at 224x224 with ImageNet's mean and std, classes).
    """
    import torchvision

    classes = num_classes or DEFAULT_SEGMENTATION_CLASSES
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": classes}
    if not name.startswith("lraspp"):  # LR-ASPP has no auxiliary head to switch off
        kwargs["aux_loss"] = False
    try:
        model = torchvision.models.get_model(name, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"cannot build torchvision:{name}: {exc}") from None
    logits = _LOGITS_CLASSES.get(type(model))
    if logits is None:
        raise ModelLoadError(f"torchvision:{name} is a {type(model).__name__}, which edgeprune does not wrap yet "
                             f"(known: {', '.join(c.__name__ for c in _LOGITS_CLASSES)})")
    model.__class__ = logits
    model.edgeprune_frozen_outputs = class_output_layers(model)
    model.eval()
    return model, SEGMENTATION_PREPROCESSING, classes


def class_output_layers(model: nn.Module) -> dict[str, str]:
    """The convolutions that produce the class logits (module name -> why it is frozen).

    LR-ASPP adds two: one on the low-level features (``classifier.low_classifier``) and one on the high-level
    ones (``classifier.high_classifier``); DeepLabV3 and FCN end their head in one (``classifier.4``).
    """
    head = model.classifier  # type: ignore[union-attr]
    if hasattr(head, "low_classifier"):
        return {f"classifier.{part}": f"class logits ({where} features) of the LR-ASPP head: the model's output "
                                      "keeps one channel per class"
                for part, where in (("low_classifier", "low-level"), ("high_classifier", "high-level"))}
    last = len(head) - 1
    return {f"classifier.{last}": f"class logits of the {type(head).__name__}: the model's output keeps one channel "
                                  "per class"}
