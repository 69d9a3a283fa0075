"""Resolve a model specification into a PyTorch module with its preprocessing.

Specifications:

* ``demo`` — the built-in digits model (trained on first use, then cached);
* ``cifar-resnetN`` — CIFAR ResNet of depth N = 6n+2 (20, 32, 44, 56, 110 ...), 32x32 RGB;
* ``torchvision:NAME`` — any torchvision classification architecture, 224x224 RGB, or a semantic segmentation
  one (``lraspp_mobilenet_v3_large``, ``deeplabv3_mobilenet_v3_large`` ...: per-pixel class logits, 21 classes
  unless ``--num-classes`` says otherwise);
* ``timm:NAME`` — a timm model (``mobilenetv3_small_100``, ``resnet18.a1_in1k``: a pretrained tag picks the input
  size, mean and std), built offline with random weights (the ``[timm]`` extra);
* ``ultralytics:YAML`` — a YOLO detector from an Ultralytics model YAML (``yolov8n.yaml``, ``yolo11s.yaml`` or a
  user's file), 640x640 RGB (the ``[yolo]`` extra);
* ``package.module:function`` — a user factory returning an ``nn.Module`` (the only form that runs a user's code:
  :func:`is_factory_spec`).

Weights come from ``--weights`` (state dict or safetensors), loaded with ``weights_only=True``.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgeprune.errors import ModelLoadError, UnknownNameError
from edgeprune.models.cifar_resnet import CifarResNet, parse_cifar_resnet_depth
from edgeprune.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

log = logging.getLogger(__name__)

CIFAR_PREPROCESSING = Preprocessing(32, 32, 3, IMAGENET_MEAN, IMAGENET_STD)
IMAGENET_PREPROCESSING = Preprocessing(224, 224, 3, IMAGENET_MEAN, IMAGENET_STD)
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: prefixes of the library models edgeprune builds itself (``torchvision:NAME``): they name no user code
LIBRARY_PREFIXES = ("torchvision:", "timm:", "ultralytics:")


@dataclass
class ModelBundle:
    """A model ready for pruning.

    Attributes:
        model: the module, in eval mode.
        spec: the specification it was built from (recorded in plans so the architecture can be rebuilt).
        preprocessing: input size and normalisation; None when the model does not carry one.
        num_classes: classifier outputs (or a detector's classes), when known.
        build_kwargs: keyword arguments passed to the constructor (recorded in plans).
        task: what the model's output means: ``classification`` (class logits), ``detection`` (a YOLO
            output: boxes and class scores per anchor) or ``segmentation`` (class logits per pixel).
    """

    model: nn.Module
    spec: str
    preprocessing: Preprocessing | None
    num_classes: int | None = None
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"


def builtin_model_names() -> list[str]:
    """Examples of built-in names (CIFAR ResNets accept any depth 6n+2)."""
    return ["demo", "cifar-resnet20", "cifar-resnet32", "cifar-resnet44", "cifar-resnet56", "cifar-resnet110"]


def is_factory_spec(spec: str) -> bool:
    """Whether ``spec`` names a user's factory (``package.module:function``), which building would import and run.

    ``torchvision:NAME``, ``timm:NAME`` and ``ultralytics:YAML`` are built by edgeprune from the library, never
    imported as a module, so they are not factories.

    >>> is_factory_spec("mypkg.nets:build"), is_factory_spec("torchvision:resnet18"), is_factory_spec("timm:ghostnet_100")
    (True, False, False)
    """
    return bool(_FACTORY.match(spec)) and not spec.startswith(LIBRARY_PREFIXES)


def build_architecture(spec: str, num_classes: int | None = None) -> ModelBundle:
    """Build the architecture named by ``spec`` with freshly initialised weights."""
    if spec == "demo":
        from edgeprune.models.demo import DEMO_PREPROCESSING, DemoNet

        return ModelBundle(DemoNet(), spec, DEMO_PREPROCESSING, 10)
    depth = parse_cifar_resnet_depth(spec)
    if depth is not None:
        classes = num_classes or 10
        try:
            model: nn.Module = CifarResNet(depth, classes)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from None
        return ModelBundle(model, spec, CIFAR_PREPROCESSING, classes, {"num_classes": classes})
    if spec.startswith("torchvision:"):
        return _torchvision(spec, num_classes)
    if spec.startswith("timm:"):
        from edgeprune.models.timm_models import build_timm

        model, prep, classes = build_timm(spec.split(":", 1)[1], num_classes)
        return ModelBundle(model, spec, prep, classes, {"num_classes": classes})
    if spec.startswith("ultralytics:"):
        from edgeprune.models.ultralytics_yolo import build_yolo

        model, prep, classes = build_yolo(spec.split(":", 1)[1], num_classes)
        return ModelBundle(model, spec, prep, classes, {"num_classes": classes}, task="detection")
    if is_factory_spec(spec):
        return _user_factory(spec, num_classes)
    raise UnknownNameError("model", spec, builtin_model_names() + ["torchvision:NAME", "timm:NAME", "ultralytics:YAML",
                                                            "package.module:function"])


def _torchvision(spec: str, num_classes: int | None) -> ModelBundle:
    import torchvision

    name = spec.split(":", 1)[1]
    segmenters = torchvision.models.list_models(module=torchvision.models.segmentation)
    if name in segmenters:
        from edgeprune.models.torchvision_segmentation import build_segmentation_model

        model, prep, classes = build_segmentation_model(name, num_classes)
        return ModelBundle(model, spec, prep, classes, {"num_classes": classes}, task="segmentation")
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise UnknownNameError("torchvision model", name, [*available, *segmenters])
    kwargs: dict[str, Any] = {"weights": None}
    if num_classes:
        kwargs["num_classes"] = num_classes
    model = torchvision.models.get_model(name, **kwargs)
    classes = num_classes or 1000
    return ModelBundle(model, spec, IMAGENET_PREPROCESSING, classes, {"num_classes": classes})


def _user_factory(spec: str, num_classes: int | None) -> ModelBundle:
    module_name, func_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # user code may fail on import in any way (SyntaxError, RuntimeError ...)
        raise ModelLoadError(
            f"cannot import module '{module_name}' for model '{spec}': {type(exc).__name__}: {exc}"
        ) from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise ModelLoadError(f"'{func_name}' is not a callable in module '{module_name}'")
    kwargs: dict[str, Any] = {"num_classes": num_classes} if num_classes else {}
    try:
        model = factory(**kwargs)
    except Exception as exc:  # user code: any failure becomes one line
        raise ModelLoadError(f"model factory '{spec}' failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"model factory '{spec}' returned {type(model).__name__}, not a torch.nn.Module")
    prep = getattr(model, "edgeprune_preprocessing", None)
    return ModelBundle(model, spec, prep if isinstance(prep, Preprocessing) else None, num_classes, kwargs)
