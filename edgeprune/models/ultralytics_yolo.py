"""YOLO detectors built from Ultralytics model YAMLs (``--model ultralytics:yolov8n.yaml``), made prunable.

The model is Ultralytics' own ``DetectionModel`` in export mode: one output (1, 4 + classes, anchors) of boxes
(centre x, centre y, width, height in input pixels) and per-class sigmoid scores, with no NMS in the graph: the
same tensor Ultralytics' ONNX export produces, and what every runtime's artifact is checked against.

Two rewrites make its channels prunable, both exact (the outputs are unchanged):

* **C2f, C3k2 and C2PSA** compute one convolution and split its output in two halves (``chunk`` or ``split``);
  the split sizes are fixed in the module's code, so pruning that convolution would misplace the split. Its two
  halves become two convolutions (``cv1a``, ``cv1b``) whose outputs are concatenated where the halves were
  used, as Torch-Pruning's YOLOv8 example does; each half is then a channel group of its own.
* The Detect head's last convolutions (box distribution and class scores) are the model's outputs: they are
  frozen, and the graph says so by name (``edgeprune_frozen_outputs``).

Weights are a state dict of the unmodified ``DetectionModel`` (Ultralytics' layout): ``cv1`` tensors are split
into the two halves on loading (``edgeprune_adapt_state_dict``). A user's Ultralytics checkpoint (``best.pt``)
is a pickle; edgeprune does not unpickle it (see docs/models.md for the one-line conversion).

Nothing is downloaded: Ultralytics runs offline, with its settings in edgeprune's cache
(:func:`~edgeprune.models.ultralytics_env.configure_ultralytics_offline`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.errors import ModelLoadError
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.models.ultralytics_env import configure_ultralytics_offline

log = logging.getLogger(__name__)

#: the input size YOLO models are trained and exported at by default (pixels, square)
DEFAULT_YOLO_SIZE_PX = 640
#: YOLO models take RGB scaled to [0, 1] with no further normalisation
YOLO_MEAN = (0.0, 0.0, 0.0)
YOLO_STD = (1.0, 1.0, 1.0)
_SPLIT_SUFFIXES = ("cv1a", "cv1b")


def _import_detection_model() -> Any:
    configure_ultralytics_offline()
    try:
        from ultralytics.nn.tasks import DetectionModel
    except ImportError:
        raise ModelLoadError(
            "--model ultralytics:... needs the ultralytics package: pip install 'edgeprune[yolo]'") from None
    return DetectionModel


def build_yolo(config: str, num_classes: int | None) -> tuple[nn.Module, Preprocessing, int]:
    """``DetectionModel(config)`` with ``num_classes`` classes (the YAML's count when None), rewritten for
    pruning and set to export mode; returns (model, preprocessing at 640x640, class count).

    ``config`` is a YAML the package ships (``yolov8n.yaml``, ``yolo11s.yaml``: the scale letter picks the
    size) or the path of a user's YAML.
    """
    detection_model = _import_detection_model()
    if config.endswith((".pt", ".pth")):
        raise ModelLoadError(f"ultralytics:{config} is a checkpoint, not a model YAML: pass the YAML as --model "
                             "and the weights as --weights (see docs/models.md for converting a .pt checkpoint)")
    if not config.endswith((".yaml", ".yml")):
        raise ModelLoadError(f"ultralytics:{config}: expected a model YAML such as ultralytics:yolov8n.yaml")
    if ("/" in config or os.sep in config) and not Path(config).is_file():
        raise ModelLoadError(f"model YAML {config} not found")
    try:
        model = detection_model(config, nc=num_classes, verbose=False) if num_classes else \
            detection_model(config, verbose=False)
    except FileNotFoundError:
        raise ModelLoadError(f"ultralytics has no model YAML '{config}' (examples: yolov8n.yaml, yolo11n.yaml, "
                             "or the path of your own)") from None
    except Exception as exc:  # a malformed user YAML fails anywhere inside Ultralytics' parser
        raise ModelLoadError(f"cannot build ultralytics:{config}: {type(exc).__name__}: {exc}") from None
    head = model.model[-1]
    if type(head).__name__ != "Detect":
        raise ModelLoadError(f"ultralytics:{config} ends in {type(head).__name__}; edgeprune prunes detection "
                             "models (a Detect head) from Ultralytics so far")
    if getattr(head, "end2end", False):
        raise ModelLoadError(f"ultralytics:{config} has an end-to-end (NMS-free) head, which edgeprune does not "
                             "export yet; use a YOLOv8 or YOLO11 YAML")
    split_stem_convolutions(model)
    head.register_forward_hook(_forget_anchors)
    head.export = True
    head.format = "onnx"
    model.edgeprune_frozen_outputs = detect_output_layers(model)
    # INT8 keeps the box decoding float: boxes in pixels and class probabilities in 0..1 leave in one tensor, and
    # one scale for both rounds every probability to 0 (measured: 0% agreement with the float model's boxes)
    model.edgeprune_float_modules = (f"model.{len(model.model) - 1}", f"model.{len(model.model) - 1}.dfl",
                                     f"model.{len(model.model) - 1}.dfl.conv")
    model.edgeprune_adapt_state_dict = adapt_state_dict
    model.eval()
    size = DEFAULT_YOLO_SIZE_PX
    return model, Preprocessing(size, size, 3, YOLO_MEAN, YOLO_STD), int(head.nc)


_NO_ANCHORS = torch.empty(0)


def _forget_anchors(head: nn.Module, _inputs: Any, _output: Any) -> None:
    """After every forward, drop the anchors the Detect head caches for its input size.

    The head keeps them between calls; an ONNX export (traced with fake tensors) would leave fake anchors there,
    which a later deep copy of the model (every pruned candidate is one) cannot copy. Anchors computed on real
    tensors are kept: a TorchScript trace (ncnn's export through pnnx) then takes them as constants, where
    recomputing them would trace ``arange``/``meshgrid``, which ncnn has no layers for.
    """
    if type(head.anchors) is torch.Tensor and type(head.strides) is torch.Tensor:
        return
    head.shape = None
    head.anchors = head.strides = _NO_ANCHORS


def detect_output_layers(model: nn.Module) -> dict[str, str]:
    """The Detect head's last convolutions (module name -> why it is frozen): their channels are outputs."""
    head_index = len(model.model) - 1  # type: ignore[arg-type]
    head = model.model[-1]  # type: ignore[index]
    frozen: dict[str, str] = {}
    for branch, what in (("cv2", "box distribution"), ("cv3", "class scores")):
        for level, seq in enumerate(getattr(head, branch)):
            name = f"model.{head_index}.{branch}.{level}.{len(seq) - 1}"
            frozen[name] = f"{what} output of the Detect head (level {level}): the model's outputs keep their width"
    return frozen


class _SplitStem(nn.Module):
    """A module whose first convolution's two output halves are separate convolutions ``cv1a`` and ``cv1b``;
    ``cv2`` and ``m`` (and Ultralytics' routing attributes) are the original's."""

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        self.cv1a, self.cv1b = _halves(original.cv1)
        self.cv2, self.m = original.cv2, original.m
        _copy_routing(original, self)


class SplitStemC2f(_SplitStem):
    """C2f / C3k2 with its first convolution split (the same outputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1a(x), self.cv1b(x)]
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SplitStemC2PSA(_SplitStem):
    """C2PSA with its first convolution split (the same outputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(torch.cat((self.cv1a(x), self.m(self.cv1b(x))), 1))


_REWRITES = {"C2f": SplitStemC2f, "C3k2": SplitStemC2f, "C2PSA": SplitStemC2PSA}


def split_stem_convolutions(model: nn.Module) -> int:
    """Replace, in place, every C2f / C3k2 / C2PSA of ``model.model`` by its split-stem form; returns how many.

    A module of another type that splits its channels with fixed sizes is left as it is; the channel graph
    freezes the channels it splits, and says so.
    """
    layers = model.model  # type: ignore[union-attr]
    count = 0
    for index, layer in enumerate(layers):
        rewrite = _REWRITES.get(type(layer).__name__)
        if rewrite is not None:
            layers[index] = rewrite(layer)
            count += 1
    return count


def _halves(conv_block: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Two copies of an Ultralytics ``Conv`` (conv, bn, act), holding its first and second half of outputs."""
    import copy

    conv, bn = conv_block.conv, conv_block.bn
    half = conv.out_channels // 2
    parts = []
    for lo, hi in ((0, half), (half, conv.out_channels)):
        part = copy.deepcopy(conv_block)
        part.conv = nn.Conv2d(conv.in_channels, hi - lo, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
                              conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
        part.bn = nn.BatchNorm2d(hi - lo, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        with torch.no_grad():
            part.conv.weight.copy_(conv.weight[lo:hi])
            if conv.bias is not None:
                part.conv.bias.copy_(conv.bias[lo:hi])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(part.bn, name).copy_(getattr(bn, name)[lo:hi])
            part.bn.num_batches_tracked.copy_(bn.num_batches_tracked)
        parts.append(part)
    return parts[0], parts[1]


def _copy_routing(source: nn.Module, dest: nn.Module) -> None:
    """Ultralytics' graph bookkeeping (``f``: where the input comes from, ``i``: index, ``type``, ``np``)."""
    for attr in ("f", "i", "type", "np"):
        if hasattr(source, attr):
            setattr(dest, attr, getattr(source, attr))


_CV1 = re.compile(r"^(.*)\.cv1\.(conv\.weight|conv\.bias|bn\.weight|bn\.bias|bn\.running_mean|bn\.running_var|"
                  r"bn\.num_batches_tracked)$")


def adapt_state_dict(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
                     ) -> dict[str, torch.Tensor]:
    """``state`` (Ultralytics' layout) in the split-stem layout of ``expected``: every ``X.cv1.*`` tensor whose
    module was split becomes ``X.cv1a.*`` (first half of the outputs) and ``X.cv1b.*`` (second half).

    A state already in the split-stem layout (a pruned model's own weights) is returned unchanged.
    """
    adapted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        match = _CV1.match(key)
        first = f"{match.group(1)}.cv1a.{match.group(2)}" if match else ""
        if match is None or first not in expected:
            adapted[key] = tensor
            continue
        second = f"{match.group(1)}.cv1b.{match.group(2)}"
        if tensor.dim() == 0:  # num_batches_tracked
            adapted[first], adapted[second] = tensor, tensor.clone()
            continue
        half = expected[first].shape[0]
        adapted[first], adapted[second] = tensor[:half].clone(), tensor[half:].clone()
    return adapted
