"""LASSO channel selection (He, Zhang, Sun 2017, "Channel Pruning for Accelerating Very Deep Neural Networks").

For a group's consumer layer with per-input-channel contributions ``Z_c`` (see
:mod:`edgeprune.prune.activations`) and output ``Y``, He et al. (eq. 1-3) solve

    min_beta ||Y - sum_c beta_c Z_c||^2 + lambda ||beta||_1

and raise ``lambda`` until only the requested number of channels ``c'`` keep a non-zero ``beta``; the
consumer's weights are then refitted by least squares (:mod:`edgeprune.prune.reconstruct`). Unlike
AIMET, which keeps only the refit and selects by weight magnitude, the selection here *is* the LASSO.

Implementation notes and deviations (documented on purpose):

* Only the group's channels are free. A consumer may also read channels of other groups (a residual
  stream that is the concatenation of padded and added channels); those are fixed by this decision, so
  ``Y`` is taken as the group's own contribution ``sum_{c in group} Z_c``. This equals the recorded output
  minus the fixed channels' contributions, so the objective is He et al.'s up to a constant.
* Several consumers (a residual stream feeds many convolutions, and the classifier): the LASSO is solved
  on the concatenation of all consumers' ``(Z, Y)`` blocks, each block divided by its ``||Y||`` so the
  summed loss is a sum of relative squared errors and large layers do not dominate (He et al. treat one
  layer at a time; their multi-branch variant also couples the branches' losses).
* The objective depends on the data only through the Gram matrix ``G = sum_b Z_b^T Z_b / ||Y_b||^2``
  (``Y = Z 1`` gives ``Z^T Y = G 1``): ``||Y - Z beta||^2 = (1 - beta)^T G (1 - beta)``. It is solved as
  an exactly equivalent ``p x p`` least-squares problem ``X = sqrt(E) V^T`` (eigendecomposition of ``G``),
  so each scikit-learn :class:`~sklearn.linear_model.Lasso` fit costs the same whatever the number of
  sampled positions. ``beta >= 0`` (``positive=True``; a channel's sign is already in its weights) and no
  intercept. Lambdas are reported in scikit-learn's ``alpha`` units for this reduced problem.
* :meth:`LassoImportance.prepare` makes one calibration pass that reduces every Conv2d/Linear layer's
  sampled contributions to a ``C_in x C_in`` Gram over all its input channels; a group's block is the
  sub-matrix of its channels. One forward pass serves all groups and memory stays ``sum C_in^2``.
* Exact width: bisection on ``log alpha`` until exactly ``c'`` coefficients are non-zero; if no alpha gives
  exactly ``c'`` (several channels leave at once), the fit with the fewest non-zeros above ``c'`` is
  truncated to its ``c'`` largest ``beta`` (ties by the channel's energy ``G_cc``).
* Scores: channel ``c`` scores the largest alpha at which it is still selected (its survival along the
  LASSO path, divided by ``alpha_max``). The path is a warm-started sequence of fits on a log grid of
  alphas (what :func:`sklearn.linear_model.lasso_path` computes, but stopped as soon as every channel is
  in or the active ones reproduce the group's contribution to a relative squared error of 1e-6, because
  coordinate descent crawls at tiny alphas on near-singular Grams); channels entering within one grid
  step are ordered by recursive bisection of that step; channels that never enter score below all
  others, by energy ``G_cc`` (0 for dead channels). Keeping the top ``k`` scores therefore keeps the
  channels the LASSO keeps at width ``k`` whenever the path is nested (channels only leave as alpha grows,
  the usual case); with strongly correlated channels a LASSO path may drop a channel and re-admit it, and
  then the two can differ — :meth:`LassoImportance.lasso_select` is the exact He et al. selection.
* Groups wider than :data:`MAX_PATH_WIDTH` channels are ranked (and selected) by energy ``G_cc`` alone: the
  path costs about ``p**3`` (VGG's and AlexNet's 4,096-wide classifier layers took over 20 minutes each).
* Each group's LASSO is solved on the original network with the other groups' channels intact (scores
  are computed once, before the width search); He et al. prune layer by layer on the progressively
  pruned network. The least-squares refit does use the pruned network's inputs.
* Groups with no supported consumer (only depthwise/grouped convolutions, a Linear behind a flatten of a
  spatial map that the group's indices cannot express, or layers whose recording fails its consistency
  check) fall back to L1 filter norms; their names are listed in :attr:`LassoImportance.fallbacks`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso
from torch import nn

from edgeprune.prune.activations import (
    DEFAULT_MAX_POSITIONS,
    LayerGram,
    collect_contribution_grams,
    is_supported_layer,
)
from edgeprune.prune.groups import ChannelGroup, GroupMember
from edgeprune.prune.importance.base import ScoringContext, register_importance
from edgeprune.prune.importance.l1 import L1Importance

log = logging.getLogger(__name__)

_TOL = 1e-8
_MAX_ITER = 100_000
_ALPHA_FLOOR = 1e-6  # smallest alpha tried, relative to alpha_max
_MIN_ALPHAS = 100  # grid points of the path (at least; two per channel)
_SPLIT_DEPTH = 20
_PATH_MAX_ITER = 5_000  # coordinate-descent sweeps per path point (warm-started, so rarely reached)
_PATH_STOP_LOSS = 1e-6  # the path stops once the active channels leave this relative squared error
#: widest group the LASSO path is solved for: its cost grows as p**3 (8 s at 1,024 channels, about 9 min at
#: 4,096 on this project's 2-core VM); wider groups (VGG's and AlexNet's 4,096-wide classifier layers) are ranked
#: by their channels' contribution energy G_cc, the order the path itself gives channels it cannot tell apart
MAX_PATH_WIDTH = 1024


def group_consumers(group: ChannelGroup, model: nn.Module) -> list[GroupMember]:
    """The group's consumer members whose input channels LASSO can select (see module notes)."""
    modules = dict(model.named_modules())
    found = []
    for member in group.members:
        if member.dim != "in" or member.kind not in ("Conv2d", "Linear"):
            continue
        module = modules.get(member.module)
        if module is None or not is_supported_layer(module):
            log.debug("group %s: consumer %s is not a groups==1 Conv2d/Linear; ignored", group.name, member.module)
            continue
        if isinstance(module, nn.Linear) and _behind_flatten(member, module, group.width):
            log.debug("group %s: Linear %s reads a flattened spatial map; ignored", group.name, member.module)
            continue
        found.append(member)
    return found


def _behind_flatten(member: GroupMember, module: nn.Linear, width: int) -> bool:
    # A Linear behind flatten(C, H, W) sees H*W features per channel, but group indices keep one per
    # channel (the first ones). Recognised conservatively: indices 0..width-1 of a multiple-sized input.
    return (
        member.indices == tuple(range(width))
        and module.in_features > width
        and module.in_features % width == 0
    )


@dataclass
class LassoProblem:
    """``min_beta>=0 (1 - beta)^T G (1 - beta) / (2p) + alpha ||beta||_1`` for one group's ``p`` channels.

    Attributes:
        gram: ``(p, p)`` block-normalised Gram matrix of the channel contributions (float64).
        consumers: the consumer layers whose blocks it sums.
    """

    gram: np.ndarray
    consumers: tuple[str, ...]
    _x: np.ndarray = field(init=False, repr=False)
    _y: np.ndarray = field(init=False, repr=False)
    _xtx: np.ndarray = field(init=False, repr=False)
    _survival: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        gram = 0.5 * (self.gram + self.gram.T)
        eigval, eigvec = np.linalg.eigh(gram)
        self._x = np.sqrt(np.clip(eigval, 0.0, None))[:, None] * eigvec.T  # X^T X = G
        self._y = self._x.sum(axis=1)  # X^T y = G 1
        self._xtx = self._x.T @ self._x
        self.gram = gram

    @property
    def width(self) -> int:
        """Number of channels p."""
        return int(self.gram.shape[0])

    @property
    def alpha_max(self) -> float:
        """Smallest alpha at which every coefficient is zero."""
        return float(max(self.gram.sum(axis=1).max(), 0.0) / self.width)

    def solve(self, alpha: float, init: np.ndarray | None = None, max_iter: int = _MAX_ITER) -> np.ndarray:
        """The non-negative LASSO coefficients at ``alpha`` (coordinate descent warm-started from ``init``)."""
        estimator = Lasso(alpha=alpha, fit_intercept=False, positive=True, precompute=self._xtx, tol=_TOL,
                          max_iter=max_iter, warm_start=init is not None)
        if init is not None:
            estimator.coef_ = np.array(init, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(self._x, self._y)
        return np.asarray(estimator.coef_, dtype=np.float64)

    def _ranked(self, beta: np.ndarray) -> list[int]:
        # largest coefficient first; ties (e.g. zeros) by the channel's energy, then index
        return sorted(range(self.width), key=lambda c: (-beta[c], -self.gram[c, c], c))

    def select(self, k: int) -> list[int]:
        """He et al.'s selection: raise alpha (bisection on log alpha) until exactly ``k`` channels remain."""
        p = self.width
        if k >= p:
            return list(range(p))
        if k <= 0:
            return []
        if p > MAX_PATH_WIDTH:  # as survival(): the widest groups keep their most energetic channels
            return sorted(int(c) for c in np.argsort(-self.survival(), kind="stable")[:k])
        lo, hi = math.log(self.alpha_max * _ALPHA_FLOOR), math.log(self.alpha_max)
        beta_lo = self.solve(math.exp(lo))
        if np.count_nonzero(beta_lo > 0) <= k:
            chosen = self._ranked(beta_lo)[:k]  # fewer than k channels can be told apart: complete by energy
            return sorted(chosen)
        best, best_count = beta_lo, int(np.count_nonzero(beta_lo > 0))
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            beta = self.solve(math.exp(mid), init=beta_lo)
            count = int(np.count_nonzero(beta > 0))
            if count == k:
                return sorted(int(c) for c in np.flatnonzero(beta > 0))
            if count > k:
                lo, beta_lo = mid, beta
                if count < best_count:
                    best, best_count = beta, count
            else:
                hi = mid
            if hi - lo < 1e-12:
                break
        log.debug("no alpha keeps exactly %d of %d channels; truncating a fit with %d", k, p, best_count)
        return sorted(self._ranked(best)[:k])

    def survival(self) -> np.ndarray:
        """Per channel: the largest alpha (relative to ``alpha_max``) at which it is still selected.

        The path is computed on a log grid of alphas; channels that enter within the same grid step are
        told apart by splitting the step at its geometric midpoint (one fit tells every tied channel which
        half it enters in), recursively, to a relative resolution of about ``2**-_SPLIT_DEPTH`` of a step.
        Each channel scores an alpha at which it is active. The path stops once the active channels
        reproduce the group's contribution to a relative squared error of ``_PATH_STOP_LOSS`` (the
        remaining channels are redundant: coordinate descent crawls there on near-singular Grams); channels
        that never entered score below all others, ordered by their energy ``G_cc``.
        """
        if self._survival is not None:
            return self._survival
        if self.width > MAX_PATH_WIDTH:
            log.info("lasso: a group of %d channels (over %d) is ranked by each channel's contribution energy, "
                     "not the LASSO path", self.width, MAX_PATH_WIDTH)
            energy = np.clip(np.diag(self.gram), 0.0, None)
            self._survival = energy / energy.max() if energy.max() > 0 else energy
            return self._survival
        amax = self.alpha_max
        alphas = np.geomspace(amax, amax * _ALPHA_FLOOR, max(_MIN_ALPHAS, 2 * self.width))
        first = np.full(self.width, -1)
        coefs = np.zeros((self.width, len(alphas)))
        total = float(self.gram.sum())
        for i in range(1, len(alphas)):  # descending alphas, warm-started
            beta = coefs[:, i] = self.solve(alphas[i], init=coefs[:, i - 1], max_iter=_PATH_MAX_ITER)
            first[(beta > 0) & (first < 0)] = i
            residual = float((1 - beta) @ self.gram @ (1 - beta)) / total
            if (first >= 0).all() or residual <= _PATH_STOP_LOSS:
                break
        scores = np.zeros(self.width, dtype=np.float64)
        for c in np.flatnonzero(first >= 0):
            scores[c] = alphas[first[c]]
        for i in np.unique(first[first > 0]):
            tied = np.flatnonzero(first == i)
            if len(tied) > 1:
                self._split(tied, math.log(alphas[i]), math.log(alphas[i - 1]), coefs[:, i], scores, _SPLIT_DEPTH)
        never = first < 0
        if never.any():
            energy = np.diag(self.gram)
            scale = energy.max() if energy.max() > 0 else 1.0
            scores[never] = 0.5 * alphas[-1] * energy[never] / scale  # below every selected channel
        self._survival = scores / amax
        return self._survival

    def _split(self, tied: np.ndarray, lo: float, hi: float, beta_lo: np.ndarray, scores: np.ndarray,
               depth: int) -> None:
        """Order ``tied`` channels (active at ``exp(lo)``, inactive at ``exp(hi)``) by their entry alpha."""
        scores[tied] = math.exp(lo)
        if len(tied) < 2 or depth == 0:
            return
        mid = 0.5 * (lo + hi)
        beta = self.solve(math.exp(mid), init=beta_lo, max_iter=_PATH_MAX_ITER)
        on = tied[beta[tied] > 0]
        off = tied[beta[tied] <= 0]
        self._split(on, mid, hi, beta, scores, depth - 1)
        self._split(off, lo, mid, beta_lo, scores, depth - 1)


def lasso_problem_from_grams(group: ChannelGroup, model: nn.Module, grams: Mapping[str, LayerGram]
                             ) -> LassoProblem | None:
    """The group's block-normalised LASSO from per-layer contribution Grams; None without a usable consumer."""
    p = group.width
    gram = np.zeros((p, p), dtype=np.float64)
    used = []
    for member in group_consumers(group, model):
        layer = grams.get(member.module)
        if layer is None or not layer.consistent:
            log.debug("group %s: consumer %s has no consistent recording; ignored", group.name, member.module)
            continue
        idx = torch.tensor(member.indices, dtype=torch.long)
        block = layer.gram[idx][:, idx].numpy()  # Z_b^T Z_b for the group's channels
        energy = float(block.sum())  # ||Y_b||^2 with Y_b = Z_b 1
        if energy <= 0.0:
            continue
        gram += block / energy
        used.append(member.module)
    if not used or gram.sum(axis=1).max() <= 0:
        return None
    return LassoProblem(gram, tuple(used))


def build_lasso_problem(
    group: ChannelGroup,
    model: nn.Module,
    calibration: torch.Tensor,
    max_positions: int = DEFAULT_MAX_POSITIONS,
    seed: int = 0,
    batch_size: int = 64,
) -> LassoProblem | None:
    """The group's LASSO problem from a calibration pass over its own consumers only."""
    names = [m.module for m in group_consumers(group, model)]
    if not names:
        return None
    grams = collect_contribution_grams(model, calibration, names, max_positions, seed, batch_size)
    return lasso_problem_from_grams(group, model, grams)


@register_importance
class LassoImportance:
    """He et al. 2017 LASSO channel selection as an importance criterion (``--importance lasso``).

    Scores are survival alphas along the LASSO path (see module notes); :meth:`lasso_select` returns the
    exact selection for a known width. Needs calibration data.
    """

    name: ClassVar[str] = "lasso"
    globally_comparable: ClassVar[bool] = False

    def __init__(self, max_positions: int = DEFAULT_MAX_POSITIONS, seed: int = 0, batch_size: int = 64) -> None:
        self.max_positions = max_positions
        self.seed = seed
        self.batch_size = batch_size
        self.fallbacks: list[str] = []
        self._problems: dict[str, LassoProblem | None] = {}
        self._grams: dict[str, LayerGram] = {}
        self._model_id: int | None = None

    def prepare(self, ctx: ScoringContext) -> None:
        """One calibration pass: the contribution Gram of every Conv2d(groups=1)/Linear layer of the model."""
        if ctx.calibration is None or len(ctx.calibration) == 0:
            raise ValueError("the 'lasso' importance criterion needs calibration images")
        self._problems.clear()
        self.fallbacks.clear()
        names = [n for n, m in ctx.model.named_modules() if is_supported_layer(m)]
        self._grams = collect_contribution_grams(ctx.model, ctx.calibration, names, self.max_positions, self.seed,
                                                 self.batch_size)
        self._model_id = id(ctx.model)

    def problem(self, group: ChannelGroup, ctx: ScoringContext) -> LassoProblem | None:
        """The group's LASSO problem (built once per group and model)."""
        if self._model_id != id(ctx.model):
            self.prepare(ctx)
        if group.name not in self._problems:
            problem = lasso_problem_from_grams(group, ctx.model, self._grams)
            if problem is None:
                log.debug("group %s: no supported consumer; falling back to L1", group.name)
                if group.name not in self.fallbacks:
                    self.fallbacks.append(group.name)
            self._problems[group.name] = problem
        return self._problems[group.name]

    def score(self, group: ChannelGroup, ctx: ScoringContext) -> np.ndarray:
        """Survival of each channel along the LASSO path, in [0, 1]; L1 norms for fallback groups."""
        problem = self.problem(group, ctx)
        if problem is None:
            return L1Importance().score(group, ctx)
        return problem.survival().copy()

    def lasso_select(self, group: ChannelGroup, width: int, ctx: ScoringContext) -> list[int]:
        """The ``width`` channels (sorted) that He et al.'s LASSO keeps; top L1 for fallback groups."""
        problem = self.problem(group, ctx)
        if problem is None:
            scores = L1Importance().score(group, ctx)
            return sorted(int(i) for i in np.argsort(-scores, kind="stable")[:width])
        return problem.select(width)


def lasso_select(group: ChannelGroup, width: int, ctx: ScoringContext) -> list[int]:
    """He et al.'s LASSO selection of ``width`` channels of ``group`` (sorted indices), standalone.

    Makes a calibration pass over the group's own consumers only; falls back to the top L1 channels when
    the group has no supported consumer. Within a run, prefer :meth:`LassoImportance.lasso_select`.
    """
    if ctx.calibration is None or len(ctx.calibration) == 0:
        raise ValueError("LASSO channel selection needs calibration images")
    problem = build_lasso_problem(group, ctx.model, ctx.calibration)
    if problem is None:
        scores = L1Importance().score(group, ctx)
        return sorted(int(i) for i in np.argsort(-scores, kind="stable")[:width])
    return problem.select(width)
