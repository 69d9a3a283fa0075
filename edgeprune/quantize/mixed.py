"""Mixed precision: the layers an INT8 model keeps in float, chosen by measured quantization error.

A model whose INT8 form changes too many predictions is often hurt by a few layers (a first convolution, a
projection whose activations have outliers, the classifier). Keeping those few in float recovers most of the
agreement and keeps most of the speed. Which ones is measured, never assumed, on the artifact the runtime's own
quantizer writes (after the per-layer sensitivity analysis of AIMET's QuantAnalyzer, "quantization disabled per
layer", and NNCF's accuracy-control ranking; written here from their descriptions):

1. the model quantized whole is compared with the float model on a set of images: top-1 agreement and the mean
   KL divergence of the output distribution, KL(float || int8), in nats;
2. **sensitivity**: each compute layer in turn is kept in float and everything else quantized; the layer's
   sensitivity is the KL it removes;
3. **greedy**: layers are tried most sensitive first, each kept in float only if the cumulative set's measured KL
   drops (quantization errors do not add up: keeping a second layer in float can raise the error), until the
   agreement reaches the target or :data:`MAX_FLOAT_SHARE` of the layers are float.

The result is a set of layer names (PyTorch module paths, see :mod:`edgeprune.runtimes.onnx_labels`); the
search's candidates keep the same layers in float, so the latency of the mixed model is measured like any other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeprune.progress import progress_bar

log = logging.getLogger(__name__)

#: at most this share of the compute layers stay in float (at least one): past it, the model is mostly float
MAX_FLOAT_SHARE = 0.10
#: the greedy step tries at most this many times the number of layers it may keep
MAX_TRIALS_PER_FLOAT_LAYER = 3
#: images the per-layer sensitivity is measured on (each layer's trial runs them once through an artifact)
SENSITIVITY_IMAGES = 64


@dataclass(frozen=True)
class QuantizationError:
    """How far a quantized artifact's outputs are from the float model's on a set of images."""

    agreement: float  # share of images on which both predict the same class
    kl_nats: float  # mean KL(float || quantized) of the softmax outputs
    images: int


#: the measured error of the model quantized with the given layers kept in float
ErrorOf = Callable[[tuple[str, ...]], QuantizationError]


@dataclass(frozen=True)
class MixedPrecision:
    """The float layers chosen, with the measurements that chose them."""

    float_layers: tuple[str, ...]
    error: QuantizationError  # with ``float_layers`` in float, on the agreement images
    int8_error: QuantizationError  # everything quantized, on the agreement images
    layers: int  # compute layers considered
    sensitivity: list[tuple[str, float]] = field(default_factory=list)  # (layer, KL removed), most sensitive first
    steps: list[dict[str, Any]] = field(default_factory=list)  # the greedy trail

    def meets(self, min_agreement: float) -> bool:
        """Whether the chosen set reaches ``min_agreement``."""
        return self.error.agreement >= min_agreement

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """For the report: the set, both errors, the ``top`` most sensitive layers and the greedy trail."""
        return {"float_layers": list(self.float_layers), "layers": self.layers,
                "agreement": self.error.agreement, "kl_nats": self.error.kl_nats,
                "int8_agreement": self.int8_error.agreement, "int8_kl_nats": self.int8_error.kl_nats,
                "images": self.error.images, "sensitivity_images": SENSITIVITY_IMAGES,
                "most_sensitive": [{"layer": name, "kl_removed_nats": gain} for name, gain in self.sensitivity[:top]],
                "steps": self.steps, "max_float_share": MAX_FLOAT_SHARE,
                "method": "per-layer sensitivity (KL removed when the layer alone stays float), then greedy: a layer "
                          "is kept float only when the measured KL of the set drops, until the agreement target"}


def max_float_layers(layers: int) -> int:
    """How many of ``layers`` compute layers may stay in float."""
    return max(1, math.floor(MAX_FLOAT_SHARE * layers))


def choose_float_layers(layers: Sequence[str], sensitivity_error: ErrorOf, agreement_error: ErrorOf,
                        min_agreement: float) -> MixedPrecision:
    """The smallest set of ``layers`` (in measured order) to keep in float so that the quantized model agrees with
    the float model on at least ``min_agreement`` of the images.

    ``sensitivity_error`` measures on the few sensitivity images (one call per layer), ``agreement_error`` on the
    agreement images (one call per greedy step). When no set within :func:`max_float_layers` reaches the target,
    the best one measured is returned; :meth:`MixedPrecision.meets` says so.
    """
    whole = sensitivity_error(())
    gains: list[tuple[str, float]] = []
    with progress_bar("per-layer quantization error", len(layers)) as advance:
        for name in layers:
            gains.append((name, whole.kl_nats - sensitivity_error((name,)).kl_nats))
            advance(1)
    gains.sort(key=lambda item: -item[1])
    int8_error = best = agreement_error(())
    chosen: tuple[str, ...] = ()
    steps: list[dict[str, Any]] = []
    limit = max_float_layers(len(layers))
    for name, gain in gains[:limit * MAX_TRIALS_PER_FLOAT_LAYER]:
        if best.agreement >= min_agreement or len(chosen) >= limit or gain <= 0:
            break
        trial = agreement_error((*chosen, name))
        kept = trial.kl_nats < best.kl_nats
        steps.append({"layer": name, "kept_float": kept, "agreement": trial.agreement, "kl_nats": trial.kl_nats})
        if kept:
            chosen, best = (*chosen, name), trial
    log.info("mixed precision: %d of %d layers kept in float %s: agreement %.1f%% -> %.1f%%, KL %.4f -> %.4f nats",
             len(chosen), len(layers), list(chosen), 100 * int8_error.agreement, 100 * best.agreement,
             int8_error.kl_nats, best.kl_nats)
    return MixedPrecision(chosen, best, int8_error, len(layers), gains, steps)
