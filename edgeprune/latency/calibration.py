"""Whole-model calibration of the lookup model: measured ≈ Σ over kernel kinds of scale × Σ kernels + offset.

Single-kernel probes miss what a runtime does between kernels (layout reorders, memory traffic of a whole
network, how kernels of one kind share caches), and each kind of kernel misses it by its own factor: a
depthwise convolution is memory-bound, a pointwise one compute-bound. One global scale cannot absorb errors
that go both ways, so the fit gives each kernel kind (:func:`calibration_kind`) its own scale, pulled
toward the global one by a ridge penalty whose strength is chosen by leave-one-out error over the
calibration samples: with few samples, or kinds that always move together, it stays global.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgeprune.latency.layers import LayerSignature
from edgeprune.latency.table import Calibration

#: ridge strengths tried (relative to the mean square of the whole kernel sum); ``inf`` is the global fit
RIDGE_STRENGTHS = (0.001, 0.01, 0.1, 1.0, float("inf"))
#: a kind whose kernels are less than this share of the kernel sum keeps the global scale: its own would be
#: fitted to noise (a classifier's tiny linear layer, whose width follows the last stage, would pose as a proxy
#: for the whole model)
MIN_KIND_SHARE = 0.05


def calibration_kind(sig: LayerSignature) -> str:
    """The kernel kind that gets its own scale: ``dwconv``, ``linear``, ``conv1x1`` or ``conv``."""
    if sig.kind in ("dwconv", "linear"):
        return sig.kind
    return "conv1x1" if sig.kernel == (1, 1) else "conv"


def _global_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares of y = scale × x + offset, in relative error; scale-only when no positive slope."""
    w = 1.0 / y
    if x.size >= 2 and np.ptp(x) > 0:
        a = np.stack([x * w, w], axis=1)
        scale, offset = np.linalg.lstsq(a, np.ones_like(y), rcond=None)[0]
        if scale > 0:
            return float(scale), float(offset)
    scale = float((x @ y) / (x @ x)) if x @ x > 0 else 1.0
    return scale, 0.0


def _ridge_fit(sums: np.ndarray, y: np.ndarray, scale0: float, strength: float) -> np.ndarray:
    """Per-kind scales and offset, penalised toward ``scale0`` (relative-error least squares)."""
    w = 1.0 / y
    a = np.concatenate([sums, np.ones((sums.shape[0], 1))], axis=1) * w[:, None]
    b = np.ones_like(y)
    kinds = sums.shape[1]
    penalty = np.zeros(kinds + 1)
    # one penalty for every kind, on the scale of the whole sum: a small kind cannot buy fit with a wild scale
    penalty[:kinds] = strength * np.mean(np.sum(a[:, :kinds], axis=1) ** 2)
    prior = np.concatenate([np.full(kinds, scale0), [0.0]])
    lhs = a.T @ a + np.diag(penalty)
    rhs = a.T @ b + penalty * prior
    return np.linalg.solve(lhs + 1e-12 * np.eye(kinds + 1), rhs)


def _loo_error(sums: np.ndarray, y: np.ndarray, strength: float) -> float:
    """Mean absolute relative error of each sample predicted by a fit on the others."""
    errors = []
    for i in range(y.size):
        keep = np.arange(y.size) != i
        scale0, offset0 = _global_fit(sums[keep].sum(axis=1), y[keep])
        if np.isinf(strength):
            predicted = scale0 * sums[i].sum() + offset0
        else:
            theta = _ridge_fit(sums[keep], y[keep], scale0, strength)
            if np.any(theta[:-1] <= 0):
                return float("inf")
            predicted = sums[i] @ theta[:-1] + theta[-1]
        errors.append(abs(predicted - y[i]) / y[i])
    return float(np.mean(errors))


def fit_calibration(pairs: Sequence[tuple[float, float]],
                    kind_sums: Sequence[Mapping[str, float]] | None = None) -> Calibration:
    """Fit measured = Σ_kind scale_kind × kernel_sum_kind + offset on the calibration samples.

    ``pairs`` are (Σ kernels, measured ms) per sample; ``kind_sums`` the same Σ split by kernel kind. The
    offset may be negative: every probe also pays the runtime's per-call overhead, which a model's n kernels
    count n times while the model pays it once. Per-kind scales are kept only where leave-one-out error
    says they predict unseen samples better than the global scale.
    """
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    scale, offset = _global_fit(x, y)
    samples = [tuple(p) for p in pairs]
    totals = x if x.size else np.ones(1)
    kinds = sorted(k for k in {k for s in kind_sums or () for k in s}
                   if np.mean([s.get(k, 0.0) for s in kind_sums or ()] / totals) >= MIN_KIND_SHARE)
    if not kind_sums or len(kinds) < 2 or len(pairs) < len(kinds) + 3:
        return Calibration(scale, offset, samples)  # type: ignore[arg-type]
    # the small kinds ride with the largest one at its scale (they stay in the sum, not fitted apart)
    largest = max(kinds, key=lambda k: np.mean([s.get(k, 0.0) for s in kind_sums]))
    grouped = [{(k if k in kinds else largest): 0.0 for k in s} for s in kind_sums]
    for g, s in zip(grouped, kind_sums):
        for k, v in s.items():
            g[k if k in kinds else largest] += v
    sums = np.array([[g.get(k, 0.0) for k in kinds] for g in grouped], dtype=float)
    errors = {strength: _loo_error(sums, y, strength) for strength in RIDGE_STRENGTHS}
    best = min(RIDGE_STRENGTHS, key=lambda s: (errors[s], -s))
    stored = [dict(s) for s in kind_sums]
    if np.isinf(best):
        return Calibration(scale, offset, samples, kind_sums=stored)  # type: ignore[arg-type]
    theta = _ridge_fit(sums, y, scale, best)
    kind_scales = {k: float(v) for k, v in zip(kinds, theta[:-1])}
    for small in {k for s in kind_sums for k in s} - set(kinds):
        kind_scales[small] = kind_scales[largest]
    return Calibration(scale, offset, samples, kind_sums=stored,  # type: ignore[arg-type]
                       kind_scales=kind_scales, kind_offset_ms=float(theta[-1]))
