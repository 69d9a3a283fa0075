"""Neuron Importance Score Propagation (Yu et al. 2018, "NISP: Pruning Networks using Neuron Importance
Score Propagation", CVPR).

NISP ranks the neurons of the final response layer (FRL) and propagates those scores backwards: for a
fully connected layer k+1 with weights W, ``s_k = |W|^T s_{k+1}``; for convolutions the absolute kernels
are summed over their spatial taps. The scores are non-negative and on one scale for all layers, so
channels are ranked globally.

Implementation on any traceable graph: ``s_k = |W|^T s_{k+1}`` chained through the network is exactly the
gradient of ``s_F . y`` with respect to layer k's output in a *non-negative linearised* copy of the
model, in which

* every convolution / linear weight is replaced by |W| and its bias by 0;
* every batch norm becomes the per-channel factor |gamma| / sqrt(running_var + eps) (weight |gamma|,
  bias 0, running mean 0, running variance kept), i.e. it is folded into the neighbouring |W| as the
  paper's BN-free networks would have it;
* activations (ReLU, ReLU6, LeakyReLU, ELU, GELU, SiLU, Hardswish, Hardtanh, Mish and their functional
  forms ``F.relu``, ``torch.relu``, ``Tensor.relu`` ...) become the identity: the functional forms are
  patched process-wide only for the duration of the pass (not thread-safe; a function bound under another
  name at import time, ``from torch.nn.functional import relu``, is not seen);
* max pooling becomes average pooling of the same geometry (``count_include_pad=False``; modules and
  ``F.max_pool*`` / ``F.adaptive_max_pool*``), average pooling, zero padding, reshapes and residual adds
  are linear already. Residual branches therefore add up through autograd like the paper's sums over
  outgoing connections;
* GroupNorm / InstanceNorm / LayerNorm keep only their |affine weight| (the division by the data's
  standard deviation is dropped).

The gradient is summed over spatial positions (the paper's spatial kernel sums) and over images. In a
linear network it does not depend on the input, so the pass uses a single all-ones image of the
calibration shape, in float64: products of |W| grow geometrically with depth (no sign cancellation), so
early layers of deep networks get scores many orders of magnitude above late ones. That is inherent to
|W|^T propagation (a trained CIFAR ResNet-56 spans about 1e1 to 1e47); a global ranking by NISP
therefore prunes late layers first. A group's score sums its scoring members: the batch-norm outputs if
it has any, else its convolution / linear outputs (:func:`edgeprune.prune.importance.bn.scoring_members`);
a residual stream with several producers therefore sums their scores.

Final-response importance: ``s_F[j] = mean over calibration images of |y_j|`` (y: the original model's
output, summed over spatial positions for dense outputs), normalised to sum 1. **Deviation:** the paper
ranks the FRL with Inf-FS (infinite feature selection) on the FRL responses; mean absolute response is a
simpler, data-driven stand-in. Other deviations: only the forward graph's linear path is followed; ops
that stay non-linear (multiplicative gates such as squeeze-and-excitation, sigmoids, attention) make the
scores input-dependent and approximate; the paper's per-layer binary-integer-program derivation is used
only for its closed form.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.errors import InputError
from edgeprune.prune.importance.base import ScoringContext, register_importance
from edgeprune.prune.importance.bn import scored_module_types
from edgeprune.prune.importance.taylor import (
    CachedModuleScores,
    OutputRecorder,
    eval_mode,
    model_device,
    per_channel,
    require_calibration,
)

log = logging.getLogger(__name__)

_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardtanh,
)
_IDENTITY_FUNCTIONALS = (
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "gelu", "silu",
    "mish", "hardswish", "hardtanh", "hardtanh_",
)
_MAX_TO_AVG = {
    nn.MaxPool1d: nn.AvgPool1d,
    nn.MaxPool2d: nn.AvgPool2d,
    nn.MaxPool3d: nn.AvgPool3d,
}
_ADAPTIVE_MAX_TO_AVG = {
    nn.AdaptiveMaxPool1d: nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool2d: nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool3d: nn.AdaptiveAvgPool3d,
}


def _identity(input: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:  # noqa: A002 - torch's name
    return input


def _all_ones(value: Any) -> bool:
    return all(v == 1 for v in value) if isinstance(value, (tuple, list)) else value == 1


def _avg_for_max(avg: Callable[..., torch.Tensor], original: Callable[..., Any]) -> Callable[..., Any]:
    """``F.max_poolNd`` replacement that averages over the same windows (falls back when it cannot)."""

    def pool(input: torch.Tensor, kernel_size: Any, stride: Any = None,  # noqa: A002 - torch's name
             padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
        if return_indices or not _all_ones(dilation):
            return original(input, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                            return_indices=return_indices)
        stride = kernel_size if stride is None or (isinstance(stride, (tuple, list)) and not stride) else stride
        return avg(input, kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=False)

    return pool


def _adaptive_avg_for_max(avg: Callable[..., torch.Tensor], original: Callable[..., Any]) -> Callable[..., Any]:
    def pool(input: torch.Tensor, output_size: Any, return_indices: bool = False) -> Any:  # noqa: A002
        if return_indices:
            return original(input, output_size, return_indices=True)
        return avg(input, output_size)

    return pool


@contextmanager
def linear_functionals() -> Iterator[None]:
    """Within the block, functional activations are the identity and functional max pools average.

    Patches ``torch.nn.functional``, ``torch`` and ``torch.Tensor`` attributes process-wide and restores
    them on exit.
    """
    patches: list[tuple[Any, str, Any]] = [(F, name, _identity) for name in _IDENTITY_FUNCTIONALS]
    patches += [(torch, "relu", _identity), (torch, "relu_", _identity),
                (torch.Tensor, "relu", _identity), (torch.Tensor, "relu_", _identity)]
    for n in (1, 2, 3):
        patches.append((F, f"max_pool{n}d", _avg_for_max(getattr(F, f"avg_pool{n}d"), getattr(F, f"max_pool{n}d"))))
        patches.append((F, f"adaptive_max_pool{n}d", _adaptive_avg_for_max(
            getattr(F, f"adaptive_avg_pool{n}d"), getattr(F, f"adaptive_max_pool{n}d"))))
    saved: list[tuple[Any, str, Any, bool]] = []
    try:
        for owner, name, replacement in patches:
            if not hasattr(owner, name):
                continue
            saved.append((owner, name, getattr(owner, name), name in vars(owner)))
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original, own in reversed(saved):
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)


class _Scale(nn.Module):
    """Multiplies by a fixed non-negative factor per channel (dim 1) or over the trailing dimensions."""

    def __init__(self, factor: torch.Tensor, channel_dim: bool) -> None:
        super().__init__()
        self.register_buffer("factor", factor.detach().clone())
        self.channel_dim = channel_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim:
            return x * self.factor.view(1, -1, *([1] * (x.dim() - 2)))
        return x * self.factor


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, module)


@torch.no_grad()
def linearised_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` made non-negative and linear as described in the module docstring."""
    try:
        lin = copy.deepcopy(model)
    except Exception as exc:  # deepcopy failures come in many types
        raise InputError(f"the 'nisp' criterion cannot copy the model: {exc}") from None
    lin.eval()
    replaced: dict[str, int] = {}
    for name, module in list(lin.named_modules()):
        new: nn.Module | None = None
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            module.weight.abs_()
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            if module.running_var is not None:
                if module.weight is not None:
                    module.weight.abs_()
                    module.bias.zero_()
                module.running_mean.zero_()
            else:  # no running statistics: batch statistics would make it non-linear; keep |gamma| only
                gamma = module.weight.abs() if module.weight is not None else torch.ones(module.num_features)
                new = _Scale(gamma, channel_dim=True)
        elif isinstance(module, (nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)):
            new = _Scale(module.weight.abs(), True) if getattr(module, "weight", None) is not None else nn.Identity()
        elif isinstance(module, nn.LayerNorm):
            new = _Scale(module.weight.abs(), False) if module.weight is not None else nn.Identity()
        elif isinstance(module, _ACTIVATIONS):
            new = nn.Identity()
        elif type(module) in _MAX_TO_AVG and _all_ones(module.dilation) and not module.return_indices:
            new = _MAX_TO_AVG[type(module)](module.kernel_size, module.stride, module.padding,
                                            ceil_mode=module.ceil_mode, count_include_pad=False)
        elif type(module) in _ADAPTIVE_MAX_TO_AVG and not module.return_indices:
            new = _ADAPTIVE_MAX_TO_AVG[type(module)](module.output_size)
        elif type(module) in _MAX_TO_AVG:
            log.warning("nisp: %s (%s) stays a max pool (dilated or returning indices); scores are approximate",
                        name, type(module).__name__)
        if new is not None and name:
            _set_module(lin, name, new.to(model_device(lin)))
            replaced[type(module).__name__] = replaced.get(type(module).__name__, 0) + 1
    log.debug("nisp: linearised copy replaced %s", replaced or "nothing")
    return lin


@torch.no_grad()
def final_response_importance(model: nn.Module, calibration: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """``s_F``: mean |output| per output channel (dim 1) over the calibration images, normalised to sum 1."""
    device = model_device(model)
    total: torch.Tensor | None = None
    with eval_mode(model):
        for start in range(0, len(calibration), chunk_size):
            y = model(calibration[start : start + chunk_size].to(device))
            if not isinstance(y, torch.Tensor) or y.dim() < 2:
                raise InputError("the 'nisp' criterion needs a model that returns class scores (N, classes, ...)")
            part = y.abs().double().movedim(1, 0).reshape(y.shape[1], -1).sum(dim=1)
            total = part if total is None else total + part
    assert total is not None
    if float(total.sum()) <= 0.0:
        log.debug("nisp: all final responses are 0; using uniform final-response importance")
        return torch.full_like(total, 1.0 / len(total))
    return total / total.sum()


@register_importance
class NispImportance(CachedModuleScores):
    """Final-response importance propagated backwards through |W| (gradient of the linearised copy)."""

    name: ClassVar[str] = "nisp"

    def _compute(self, ctx: ScoringContext) -> dict[str, np.ndarray]:
        calib = require_calibration(ctx, self.name)
        s_final = final_response_importance(ctx.model, calib)
        # float64: products of |W| grow geometrically with depth (about 1e22 at the stem of a ResNet-18
        # at initialisation) and would overflow float32 in deep networks.
        lin = linearised_copy(ctx.model).double()
        modules = dict(ctx.model.named_modules())
        names = [n for n, m in modules.items() if isinstance(m, scored_module_types())]
        x = torch.ones_like(calib[:1], dtype=torch.float64, device=model_device(lin)).requires_grad_(True)
        scores: dict[str, np.ndarray] = {}
        with torch.enable_grad(), linear_functionals(), OutputRecorder(lin, names) as recorder:
            y = lin(x)
            if y.shape[1] != len(s_final):
                raise InputError(f"nisp: the linearised model gives {y.shape[1]} outputs, the model {len(s_final)}")
            weights = s_final.to(device=y.device, dtype=y.dtype).view(1, -1, *([1] * (y.dim() - 2)))
            objective = (y * weights).sum()
            recorded = [(n, t) for n, t in recorder.outputs if t.requires_grad]
            grads = torch.autograd.grad(objective, [t for _, t in recorded], allow_unused=True) if recorded else ()
            for (name, _), grad in zip(recorded, grads):
                if grad is None:
                    continue
                # non-negative by construction; the clamp only guards ops that stayed non-linear
                s = np.maximum(per_channel(grad, modules[name]).sum(dim=0).double().cpu().numpy() / x.shape[0], 0.0)
                scores[name] = scores[name] + s if name in scores else s
        overflowed = sorted(n for n, s in scores.items() if not np.all(np.isfinite(s)))
        if overflowed:
            log.warning("nisp: scores of %d module output(s) overflowed float64 (network too deep for |W|^T "
                        "propagation), e.g. %s", len(overflowed), overflowed[0])
        log.debug("nisp: propagated final-response importance to %d module outputs", len(scores))
        return scores
