"""Patch geometry and per-channel contributions of Linear and Conv2d layers (He, Zhang, Sun 2017).

For an output position ``p`` and input channel ``c`` a layer's output is the sum over channels of the
contribution ``z_c(p) = sum_k W[:, c, k] * patch_c(p, k)``. These helpers gather input patches at sampled
output positions (exactly what ``F.unfold`` gives there) and reduce contributions to the Gram matrix the
LASSO channel selection needs; :mod:`edgeprune.prune.activations` records the data they work on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_CHUNK_BYTES = 64 * 2**20


def is_supported_layer(module: nn.Module) -> bool:
    """True for layers whose input channels can be selected and refitted: Linear, and Conv2d with groups == 1."""
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, nn.Conv2d) and module.groups == 1


def layer_weight(module: nn.Module) -> torch.Tensor:
    """The weight as ``(out, in, K)`` float32 on the CPU (K = kernel positions; 1 for Linear)."""
    w = module.weight.detach().float().cpu()
    return w.reshape(w.shape[0], w.shape[1], -1)


def contribution_gram(patches: torch.Tensor, weight: torch.Tensor, chunk_bytes: int = _CHUNK_BYTES) -> torch.Tensor:
    """``G[c, d] = sum_{s, o} Z[s, c, o] Z[s, d, o]`` with ``Z[s, c, o] = sum_k weight[o, c, k] patches[s, c, k]``.

    Two exact formulas, the cheaper one chosen by operation count: forming ``Z`` channel by channel
    (``~ S*C*O*(K + C)``), or ``sum_{k,k'} A[ck, dk'] M[ck, dk']`` with the patch second moment
    ``A = P^T P`` and ``M = W^T W`` (``~ (S + O)*(C*K)^2``; far cheaper for 1x1 convolutions and linears).

    Args:
        patches: ``(S, C, K)`` float32.
        weight: ``(O, C, K)`` float32.

    Returns:
        ``(C, C)`` float64.
    """
    s, c, k = patches.shape
    o = weight.shape[0]
    if s * c * o * (k + c) <= (s + o) * (c * k) ** 2:
        gram = torch.zeros(c, c, dtype=torch.float64)
        w = weight.permute(1, 2, 0)  # (C, K, O)
        step = max(1, chunk_bytes // max(1, 4 * c * o))
        for start in range(0, s, step):
            z = torch.bmm(patches[start : start + step].transpose(0, 1), w).reshape(c, -1)  # (C, s*O)
            gram += (z @ z.T).double()
        return gram
    flat_p = patches.reshape(s, c * k)
    flat_w = weight.reshape(o, c * k)
    moment = (flat_p.T @ flat_p) * (flat_w.T @ flat_w)
    return moment.reshape(c, k, c, k).sum(dim=(1, 3), dtype=torch.float64)


def conv_output_size(module: nn.Conv2d, size: Sequence[int]) -> tuple[int, int]:
    """Spatial output size of ``module`` for an input of spatial ``size``."""
    pad = module._reversed_padding_repeated_twice  # (left, right, top, bottom)
    padded = [int(size[0]) + pad[2] + pad[3], int(size[1]) + pad[0] + pad[1]]
    return tuple(  # type: ignore[return-value]
        (padded[i] - module.dilation[i] * (module.kernel_size[i] - 1) - 1) // module.stride[i] + 1 for i in range(2)
    )


def sampled_unfold(module: nn.Conv2d, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``F.unfold`` of the convolution's input, restricted to the given output positions.

    Args:
        module: the convolution (its padding, padding mode, stride and dilation are honoured).
        x: ``(n, C, H, W)`` input.
        positions: ``(n, P)`` flat output positions (``row * W_out + col``) per image.

    Returns:
        ``(n * P, C, K)`` float32 patches, equal to ``F.unfold(...)[:, :, positions]`` (channel-major,
        matching ``weight.reshape(out, C, K)``). Gathering only the sampled positions instead of
        unfolding the whole map keeps time and memory proportional to the sample.
    """
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    pad = module._reversed_padding_repeated_twice
    xp = F.pad(x.float(), pad, mode=mode) if any(pad) else x.float()
    n, c, hp, wp = xp.shape
    _, w_out = conv_output_size(module, x.shape[-2:])
    (kh, kw), (sh, sw), (dh, dw) = module.kernel_size, module.stride, module.dilation
    pos = positions.to(xp.device)
    rows = (pos // w_out) * sh  # top-left corner of each patch in the padded input
    cols = (pos % w_out) * sw
    ki = torch.arange(kh, device=xp.device).repeat_interleave(kw) * dh  # kernel offsets, row-major like unfold
    kj = torch.arange(kw, device=xp.device).repeat(kh) * dw
    flat = (rows[:, :, None] + ki) * wp + (cols[:, :, None] + kj)  # (n, P, K)
    p, k = flat.shape[1], flat.shape[2]
    picked = xp.reshape(n, c, hp * wp).gather(2, flat.reshape(n, 1, p * k).expand(-1, c, -1))
    return picked.reshape(n, c, p, k).permute(0, 2, 1, 3).reshape(n * p, c, k)
