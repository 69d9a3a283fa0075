"""Least-squares refit of the layers that read pruned channels (He, Zhang, Sun 2017, the "W" step).

After channels are removed, every consumer of a pruned group has lost some inputs. He et al. refit such
a layer's remaining weights so that, fed with the *pruned* network's own inputs to that layer, it
reproduces the *original* network's output of the layer:

    min_W || X_slim W^T - Y_original ||^2

Both sides are sampled at the same output positions of the same calibration images
(:mod:`edgeprune.prune.activations`; positions are seeded per layer name). Layers are refitted in execution
order, each from a fresh forward pass of the slim model, so a later layer's inputs already come from the
refitted earlier ones and the refit also absorbs the error accumulated upstream.

Details and deviations:

* The target is the output before the bias; the bias is kept. For layers normalised by a following
  batch norm this matches the pre-normalisation response, so the norm's statistics stay valid.
* A layer whose own output channels were pruned too is fitted to the original output of its kept
  channels only.
* Solved through the normal equations in float64 with a small ridge term ``ridge * mean(diag(X^T X))``
  for stability (He et al. use plain least squares; AIMET uses sklearn ``LinearRegression``).
* A layer with fewer sampled positions than unknowns (``S < in * K``) because the calibration images are few
  (not because ``max_positions`` capped them: there the ridge term keeps the solve stable) is not refitted: the solve would reproduce those positions exactly and generalise to
  nothing else (issue 35: 4 images refitted 31 layers of a MobileNetV2 that then agreed with the original on
  none of its images). It is returned with ``applied=False`` and its counts, so the caller can say so.
* The refit is kept only if it lowers the sampled relative error; the before/after errors are returned.
* Layers that the sampler does not support (grouped/depthwise convolutions), that run more than once per
  forward pass, or whose forward is not a plain conv/affine map are skipped with a log message.
* Works for any selection criterion: only the kept channels (``keep``) matter. Only weights change, so
  the slim model's structure, and hence its latency, is untouched.
* Cost: one pass of the original model, then per refitted layer one pass of the slim model over the
  calibration images, stopped right after that layer (about 2.6 s for the 55 layers of a ResNet-56 at
  50% channels with 64 32x32 images on 2 CPU cores; it grows linearly with the number of images).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from edgeprune.progress import Advance, counted, heartbeat, progress_bar
from edgeprune.prune.activations import (
    DEFAULT_MAX_POSITIONS,
    LayerSamples,
    collect_layer_samples,
    execution_order,
    is_supported_layer,
)
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.groups import ChannelGroup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerReconstruction:
    """Relative error ``||X W^T - Y|| / ||Y||`` of one layer on the sampled positions, before and after."""

    layer: str
    error_before: float
    error_after: float
    samples: int
    unknowns: int
    applied: bool


def _kept_outputs(name: str, out_size: int, pruned: Sequence[ChannelGroup], keep: Mapping[str, Sequence[int]]
                  ) -> list[int]:
    removed: set[int] = set()
    for group in pruned:
        kept = {int(i) for i in keep[group.name]}
        for m in group.members:
            if m.module == name and m.dim == "out":
                removed.update(m.indices[c] for c in range(group.width) if c not in kept)
    return [i for i in range(out_size) if i not in removed]


def _relative_error(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float((pred - target).norm() / target.norm().clamp_min(1e-12))


def least_squares_weights(x: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """``argmin_W ||x W^T - y||^2 + r ||W||^2`` with ``r = ridge * mean(diag(x^T x))``; returns ``(out, in)``."""
    xd, yd = x.double(), y.double()
    gram = xd.T @ xd
    reg = ridge * float(gram.diagonal().mean()) if gram.numel() else 0.0
    gram.diagonal().add_(max(reg, 1e-12))
    return torch.linalg.solve(gram, xd.T @ yd).T.float()


def reconstruct_consumers(
    original: nn.Module,
    slim: nn.Module,
    example: torch.Tensor,
    calibration: torch.Tensor,
    keep: Mapping[str, Sequence[int]],
    groups: Sequence[ChannelGroup] | None = None,
    max_positions: int = DEFAULT_MAX_POSITIONS,
    ridge: float = 1e-4,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, LayerReconstruction]:
    """Refit, in place in ``slim``, every Conv2d/Linear consumer of a group that lost channels.

    Args:
        original: the unpruned model (not modified).
        slim: ``slim_copy(original, example, keep)``; its consumer weights are overwritten.
        example: an example input (used to find execution order, and the groups if not given).
        calibration: ``(N, ...)`` model inputs the fit uses.
        keep: group name -> kept channel indices, as given to ``slim_copy``.
        groups: the original's channel groups (default: traced from ``original``).
        max_positions: sampled output positions per layer.
        ridge: relative ridge term of the least-squares solve.
        seed: position sampling seed.
        batch_size: images per forward pass.

    Returns:
        layer name -> :class:`LayerReconstruction`, in execution order.
    """
    if groups is None:
        groups = ModelGraph(original, example, warn_frozen=False).groups
    by_name = {g.name: g for g in groups}
    unknown = [n for n in keep if n not in by_name]
    if unknown:
        raise ValueError(f"keep names unknown group(s): {', '.join(sorted(unknown))}")
    pruned = [by_name[n] for n in keep if len(set(keep[n])) < by_name[n].width]
    slim_modules = dict(slim.named_modules())
    targets: list[str] = []
    for group in pruned:
        for m in group.members:
            if m.dim == "in" and m.kind in ("Conv2d", "Linear") and m.module not in targets:
                module = slim_modules.get(m.module)
                if module is not None and is_supported_layer(module):
                    targets.append(m.module)
                else:
                    log.info("reconstruction skips %s (not a groups==1 Conv2d or Linear)", m.module)
    targets = execution_order(original, example, targets)
    if not targets:
        return {}
    with heartbeat(f"least-squares reconstruction: the original's outputs on {len(calibration)} images"):
        reference = collect_layer_samples(original, calibration, {t: None for t in targets}, max_positions, seed,
                                          batch_size, keep_patches=False)
    with progress_bar("least-squares reconstruction", len(targets), "layers") as advance:
        return _refit(original, slim, calibration, targets, reference, pruned, keep, max_positions, ridge, seed,
                      batch_size, advance)


def _refit(original: nn.Module, slim: nn.Module, calibration: torch.Tensor, targets: Sequence[str],
           reference: Mapping[str, LayerSamples], pruned: Sequence[ChannelGroup], keep: Mapping[str, Sequence[int]],
           max_positions: int, ridge: float, seed: int, batch_size: int, advance: Advance
           ) -> dict[str, LayerReconstruction]:
    """Refit ``targets`` in execution order (see :func:`reconstruct_consumers`), calling ``advance`` per layer."""
    slim_modules = dict(slim.named_modules())
    original_modules = dict(original.named_modules())
    results: dict[str, LayerReconstruction] = {}
    for name in counted(targets, advance):
        ref = reference.get(name)
        module = slim_modules[name]
        if ref is None or ref.max_calls != 1:
            log.info("reconstruction skips %s (runs %s times per forward)", name, ref.max_calls if ref else 0)
            continue
        kept_out = _kept_outputs(name, ref.output.shape[1], pruned, keep)
        if len(kept_out) != module.weight.shape[0]:
            log.warning("reconstruction skips %s: %d kept outputs but the slim layer has %d", name,
                        len(kept_out), module.weight.shape[0])
            continue
        got = collect_layer_samples(slim, calibration, {name: None}, max_positions, seed, batch_size,
                                    stop_early=True)[name]
        if got.check_error > 1e-3 or original_modules[name].__class__ is not module.__class__:
            log.info("reconstruction skips %s (its forward is not a plain conv/linear map)", name)
            continue
        x = got.inputs_matrix()
        y = ref.output[:, kept_out]
        if x.shape[0] != y.shape[0]:
            log.warning("reconstruction skips %s: sample counts differ (%d vs %d)", name, x.shape[0], y.shape[0])
            continue
        w_old = got.weight.reshape(got.weight.shape[0], -1)
        before = _relative_error(x @ w_old.T, y)
        if x.shape[0] < x.shape[1] and x.shape[0] < 0.9 * max_positions:  # too few images (not the cap)
            results[name] = LayerReconstruction(name, before, before, x.shape[0], x.shape[1], False)
            log.debug("reconstruction skips %s: %d samples for %d unknowns", name, x.shape[0], x.shape[1])
            continue
        w_new = least_squares_weights(x, y, ridge)
        after = _relative_error(x @ w_new.T, y)
        applied = after < before
        if applied:
            with torch.no_grad():
                module.weight.copy_(w_new.reshape(module.weight.shape).to(module.weight))
        results[name] = LayerReconstruction(name, before, after if applied else before, x.shape[0], x.shape[1],
                                            applied)
        log.debug("reconstructed %s: relative error %.4f -> %.4f (%d samples, %d unknowns)", name, before,
                  results[name].error_after, x.shape[0], x.shape[1])
    return results
