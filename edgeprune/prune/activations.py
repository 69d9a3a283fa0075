"""Sampled inputs and outputs of consumer layers on calibration data (He, Zhang, Sun 2017, "Channel pruning").

He et al. select the input channels of a layer and refit its weights from a sample of its input patches
and outputs: for an output position ``p`` and input channel ``c`` the layer's output is the sum over
channels of the per-channel contribution ``z_c(p) = sum_k W[:, c, k] * patch_c(p, k)`` (a vector over
output channels). This module records, for chosen layers, the input patches and the output before the
bias at a seeded sample of output positions, and forms those contributions.

Supported layers are ``nn.Linear`` and ``nn.Conv2d`` with ``groups == 1`` (any kernel, stride, padding,
padding mode, dilation). Grouped and depthwise convolutions are not: an input channel there feeds only
its own group's filters, so the "drop an input channel, refit the remaining ones" formulation does not
apply (AIMET's layer selector excludes them for the same reason); callers fall back or skip them.

Memory is bounded: at most ``max_positions`` positions per layer in total (spread evenly over the
calibration images, a seeded subset of images if there are more images than positions), stored as
float32 on the CPU; patches are gathered at the sampled positions only (what ``F.unfold`` would give
there) rather than unfolding whole feature maps.

Positions are drawn from a generator seeded by ``(seed, layer name)`` and consumed batch by batch, so two
models with the same spatial shapes (an original and its channel-pruned copy) fed the same calibration
tensor in the same batches see exactly the same positions: :mod:`edgeprune.prune.reconstruct` relies on
this to pair the pruned network's inputs with the original network's outputs.

Every recording is checked: ``patches @ W`` must reproduce the output the layer actually produced (first
batch); a layer whose forward is not the plain convolution/affine map (a custom subclass) fails the check
and is reported through :attr:`LayerSamples.consistent`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from edgeprune.prune.patches import (
    contribution_gram,
    conv_output_size,
    is_supported_layer,
    layer_weight,
    sampled_unfold,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_POSITIONS", "LayerGram", "LayerSamples", "collect_contribution_grams", "collect_layer_samples",
    "contribution_gram", "conv_output_size", "execution_order", "is_supported_layer", "layer_weight",
    "sampled_unfold",
]

DEFAULT_MAX_POSITIONS = 4000
_CHECK_TOLERANCE = 1e-3


@dataclass
class LayerSamples:
    """One layer's input patches and output at sampled positions.

    Attributes:
        name: qualified module name.
        weight: ``(out, in, K)`` weight at recording time.
        channels: the input channels ``patches`` holds, in order (all of them when recorded with ``None``).
        patches: ``(S, len(channels), K)`` input patches at the S sampled output positions (empty when
            patches were not requested).
        output: ``(S, out)`` the layer's output minus its bias at the same positions.
        check_error: relative mismatch between ``patches @ W`` (all channels) and the recorded output on
            the first batch; large values mean the layer's forward is not a plain conv/linear map.
        max_calls: most forward calls of the layer within one model forward (1 for ordinary layers).
    """

    name: str
    weight: torch.Tensor
    channels: tuple[int, ...]
    patches: torch.Tensor
    output: torch.Tensor
    check_error: float
    max_calls: int

    @property
    def num_samples(self) -> int:
        """Number of sampled positions S."""
        return int(self.output.shape[0])

    @property
    def consistent(self) -> bool:
        """The recording reproduces the layer's output and the layer ran once per forward."""
        return self.check_error <= _CHECK_TOLERANCE and self.max_calls == 1

    def inputs_matrix(self) -> torch.Tensor:
        """``(S, len(channels) * K)`` design matrix of the recorded patches (column order = weight's)."""
        return self.patches.reshape(self.patches.shape[0], -1)

    def contributions(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Per-input-channel contributions ``Z[s, c, o] = sum_k W[o, channels[c], k] * patch[s, c, k]``.

        ``Z`` summed over ``c`` is the part of the output (before bias) that the recorded channels produce.
        ``start``/``stop`` select a slice of samples so callers can bound memory.
        """
        return self._contributions_cso(start, stop).permute(1, 0, 2)

    def _contributions_cso(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        # one (s, K) @ (K, out) product per channel: (c, s, out)
        w = self.weight[:, list(self.channels)].permute(1, 2, 0)  # (c, K, out)
        return torch.bmm(self.patches[start:stop].transpose(0, 1), w)

    def contribution_gram(self) -> torch.Tensor:
        """``G[c, d] = sum_{s, o} Z[s, c, o] Z[s, d, o]`` over the recorded channels (float64)."""
        return contribution_gram(self.patches, self.weight[:, list(self.channels)])


@dataclass
class LayerGram:
    """One layer's contribution Gram matrix over *all* its input channels, reduced on the fly.

    ``gram[c, d] = sum_{s, o} Z[s, c, o] Z[s, d, o]`` for the layer's input channels c, d at the sampled
    positions. Any channel subset's LASSO block is a sub-matrix of it, so one calibration pass serves
    every group.
    """

    name: str
    gram: torch.Tensor
    samples: int
    check_error: float
    max_calls: int

    @property
    def consistent(self) -> bool:
        """The recording reproduces the layer's output and the layer ran once per forward."""
        return self.check_error <= _CHECK_TOLERANCE and self.max_calls == 1


def _module_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**63)


class _Recorder:
    """Forward hooks that sample one layer's patches (pre-hook) and output (hook) at the same positions.

    ``mode``: ``"patches"`` keeps patches and outputs, ``"outputs"`` only outputs, ``"gram"`` reduces each
    batch's patches to the contribution Gram over all input channels and keeps nothing else.
    """

    def __init__(self, name: str, module: nn.Module, channels: Sequence[int] | None, per_image: int,
                 seed: int, mode: str) -> None:
        self.name = name
        self.module = module
        self.channels = None if channels is None else [int(c) for c in channels]
        self.per_image = per_image
        self.mode = mode
        self.gen = torch.Generator().manual_seed(_module_seed(seed, name))
        self.weight = layer_weight(module)
        self.patches: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []
        self.gram = torch.zeros(self.weight.shape[1], self.weight.shape[1], dtype=torch.float64)
        self.samples = 0
        self.check_error = 0.0
        self.checked = False
        self.calls = 0
        self.max_calls = 0
        self._pos: torch.Tensor | None = None
        self._full: torch.Tensor | None = None

    # -- sampling -------------------------------------------------------------------------------------
    def _positions(self, n: int, length: int) -> torch.Tensor:
        count = min(self.per_image, length)
        return torch.rand(n, length, generator=self.gen).argsort(dim=1)[:, :count]

    def _conv_patches(self, x: torch.Tensor) -> torch.Tensor:
        module = self.module
        assert isinstance(module, nn.Conv2d)
        h_out, w_out = conv_output_size(module, x.shape[-2:])
        pos = self._positions(x.shape[0], h_out * w_out)
        self._pos = pos
        return sampled_unfold(module, x, pos).cpu()

    def _linear_patches(self, x: torch.Tensor) -> torch.Tensor:
        n, f = x.shape[0], x.shape[-1]
        rows = x.reshape(n, -1, f).float()
        pos = self._positions(n, rows.shape[1])
        self._pos = pos
        picked = rows.gather(1, pos.to(rows.device)[:, :, None].expand(-1, -1, f))
        return picked.reshape(-1, f, 1).cpu()

    # -- hooks ----------------------------------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self.calls += 1
        self.max_calls = max(self.max_calls, self.calls)
        x = args[0].detach()
        full = self._conv_patches(x) if isinstance(module, nn.Conv2d) else self._linear_patches(x)
        self._full = full
        self.samples += full.shape[0]
        if self.mode == "patches":
            self.patches.append(full if self.channels is None else full[:, self.channels].contiguous())
        elif self.mode == "gram":
            self.gram += contribution_gram(full, self.weight)

    def hook(self, module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        assert self._pos is not None and self._full is not None
        if self.mode != "gram" or not self.checked:
            y = output.detach().float()
            n, o = y.shape[0], self.weight.shape[0]
            pos = self._pos.to(y.device)
            if isinstance(module, nn.Conv2d):
                y = y.reshape(n, o, -1).gather(2, pos[:, None, :].expand(-1, o, -1)).transpose(1, 2)
            else:
                y = y.reshape(n, -1, o).gather(1, pos[:, :, None].expand(-1, -1, o))
            y = y.reshape(-1, o).cpu()
            if getattr(module, "bias", None) is not None:
                y = y - module.bias.detach().float().cpu()
            if self.mode != "gram":
                self.outputs.append(y)
            if not self.checked:
                predicted = torch.einsum("sck,ock->so", self._full, self.weight)
                self.check_error = float((predicted - y).norm() / y.norm().clamp_min(1e-12))
                self.checked = True
        self._pos, self._full = None, None

    def samples_result(self) -> LayerSamples:
        o, cin, k = self.weight.shape
        channels = tuple(range(cin)) if self.channels is None else tuple(self.channels)
        patches = torch.cat(self.patches) if self.patches else torch.zeros(0, len(channels), k)
        output = torch.cat(self.outputs) if self.outputs else torch.zeros(0, o)
        return LayerSamples(self.name, self.weight, channels, patches, output, self.check_error, self.max_calls)

    def gram_result(self) -> LayerGram:
        return LayerGram(self.name, self.gram, self.samples, self.check_error, self.max_calls)


class _StopForward(Exception):
    """Raised by a hook once every requested layer has been recorded for the current batch."""


def _calibration_subset(calibration: torch.Tensor, max_positions: int, seed: int) -> tuple[torch.Tensor, int]:
    """The images to use (a seeded subset if there are more images than positions) and positions per image."""
    images = calibration
    if len(images) > max_positions:
        gen = torch.Generator().manual_seed(int(seed))
        images = images[torch.randperm(len(images), generator=gen)[:max_positions].sort().values]
    return images, max(1, max_positions // max(1, len(images)))


def _run(model: nn.Module, images: torch.Tensor, recorders: Sequence[_Recorder], batch_size: int,
         stop_early: bool) -> None:
    handles = []
    for rec in recorders:
        handles.append(rec.module.register_forward_pre_hook(rec.pre_hook))
        handles.append(rec.module.register_forward_hook(rec.hook))
    if stop_early:
        def stopper(module: nn.Module, args: object, output: object) -> None:
            if all(r.calls > 0 for r in recorders):
                raise _StopForward
        # registered after the recorders' hooks, so the layer is recorded before the pass stops
        handles += [rec.module.register_forward_hook(stopper) for rec in recorders]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                for rec in recorders:
                    rec.calls = 0
                try:
                    model(images[start : start + batch_size].to(device))
                except _StopForward:
                    pass
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def _check_layers(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules or not is_supported_layer(modules[name]):
            raise ValueError(f"layer '{name}' is not a supported Linear/Conv2d(groups=1) of the model")
    return modules


def collect_layer_samples(
    model: nn.Module,
    calibration: torch.Tensor,
    requests: Mapping[str, Sequence[int] | None],
    max_positions: int = DEFAULT_MAX_POSITIONS,
    seed: int = 0,
    batch_size: int = 64,
    keep_patches: bool = True,
    stop_early: bool = False,
) -> dict[str, LayerSamples]:
    """Record the inputs and outputs of the requested layers while ``model`` runs on ``calibration``.

    Args:
        model: the network (run in eval mode under ``torch.no_grad``; its mode is restored).
        calibration: ``(N, ...)`` model inputs.
        requests: layer name -> the input channels to keep patches of (``None``: all).
        max_positions: sampled positions per layer in total.
        seed: seeds the image subset and every layer's position generator.
        batch_size: images per forward pass.
        keep_patches: False records only the outputs (enough for a reconstruction target).
        stop_early: abort each forward pass once all requested layers have run (valid only when each
            runs once per pass; later layers are then never computed).

    Returns:
        layer name -> :class:`LayerSamples`, for the requested layers that ran. Unsupported layers raise
        ``ValueError``.
    """
    modules = _check_layers(model, list(requests))
    images, per_image = _calibration_subset(calibration, max_positions, seed)
    mode = "patches" if keep_patches else "outputs"
    recorders = [_Recorder(n, modules[n], ch, per_image, seed, mode) for n, ch in requests.items()]
    _run(model, images, recorders, batch_size, stop_early)
    results = {rec.name: rec.samples_result() for rec in recorders if rec.outputs}
    for name, samples in results.items():
        if not samples.consistent:
            log.debug("layer %s: recording inconsistent (check error %.2e, %d calls per forward)",
                      name, samples.check_error, samples.max_calls)
    return results


def collect_contribution_grams(
    model: nn.Module,
    calibration: torch.Tensor,
    names: Sequence[str],
    max_positions: int = DEFAULT_MAX_POSITIONS,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, LayerGram]:
    """One calibration pass that reduces each named layer's sampled contributions to a Gram matrix.

    Same sampling as :func:`collect_layer_samples`, but memory per layer is only ``C_in x C_in``.
    """
    modules = _check_layers(model, names)
    images, per_image = _calibration_subset(calibration, max_positions, seed)
    recorders = [_Recorder(n, modules[n], None, per_image, seed, "gram") for n in names]
    _run(model, images, recorders, batch_size, stop_early=False)
    results = {rec.name: rec.gram_result() for rec in recorders if rec.samples}
    for name, gram in results.items():
        if not gram.consistent:
            log.debug("layer %s: recording inconsistent (check error %.2e, %d calls per forward)",
                      name, gram.check_error, gram.max_calls)
    return results


def execution_order(model: nn.Module, example: torch.Tensor, names: Sequence[str]) -> list[str]:
    """The given layers in the order a forward pass on ``example`` first calls them (uncalled ones dropped)."""
    modules = dict(model.named_modules())
    order: list[str] = []
    wanted = set(names)

    def make_hook(name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, args: object) -> None:
            if name not in order:
                order.append(name)
        return hook

    handles = [modules[n].register_forward_pre_hook(make_hook(n)) for n in names if n in modules]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [n for n in order if n in wanted]
