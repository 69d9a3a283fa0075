"""First-order Taylor importance (Molchanov et al. 2017, "Pruning Convolutional Neural Networks for
Resource Efficient Inference", ICLR; Molchanov et al. 2019, "Importance Estimation for Neural Network
Pruning", CVPR).

The loss change from removing channel c (setting its activation a_c to zero) is approximated to first
order by ``|dL/da_c * a_c|``. For one calibration image n and a channel with activation map a[n, c, :]
(spatial positions h, w)::

    theta_n(c) = | sum_{h,w} a[n, c, h, w] * dL_n / da[n, c, h, w] |
    score(c)   = (1/N) sum_n theta_n(c)

summed over the group's scoring members: the batch-norm outputs if the group has any, else the outputs of
its convolution and linear producers (:func:`edgeprune.prune.importance.bn.scoring_members`). At a
batch-norm output, ``sum_{h,w} a * dL/da = gamma * dL/dgamma + beta * dL/dbeta`` per image, which is the
batch-norm variant of the 2019 paper.

Loss: cross-entropy over the calibration images. Calibration images have no labels in edgeprune, so the
**labels are the model's own argmax predictions** (pseudo-labels: the score then measures how much a
channel supports the model's current decisions); ``ScoringContext.labels`` replaces them when given.
Each image's own loss is differentiated (``reduction="sum"``; batch norm runs in eval mode, so images do
not interact), so the result does not depend on how the images are chunked (at most ``chunk_size`` per
backward pass).

Deviations from the papers: activations are summed over spatial positions (the 2017 paper averages them,
1/M), there is no per-layer L2 normalisation (2017) and no squaring / averaging over mini-batches of a
training run (2019): scores come from one pass over the calibration set of the trained model, with the
absolute value taken per image. A module called several times in one forward pass adds the scores of all
calls.

The model is left as it was found: modules are put in eval mode (batch-norm statistics are not updated)
and restored one by one afterwards; gradients are taken with :func:`torch.autograd.grad` with respect to
the recorded activations only, so no parameter's ``.grad`` or ``requires_grad`` is touched and nothing
is updated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.errors import InputError
from edgeprune.prune.groups import ChannelGroup
from edgeprune.prune.importance.base import ScoringContext, register_importance
from edgeprune.prune.importance.bn import scored_module_types, sum_member_scores

log = logging.getLogger(__name__)


class OutputRecorder:
    """Forward hooks that record the output tensors of named modules (in call order).

    Each hook passes a *copy* of the output downstream, so a later in-place operation (``ReLU(inplace=True)``,
    ``out += identity``) cannot change the recorded tensor, and gradients with respect to the recorded
    tensor are the gradients with respect to the module's output. Costs one extra activation copy per
    recorded module call.
    """

    def __init__(self, model: nn.Module, names: Iterable[str]) -> None:
        self.outputs: list[tuple[str, torch.Tensor]] = []
        modules = dict(model.named_modules())
        self._targets = [(name, modules[name]) for name in names]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str):  # noqa: ANN202 - a torch forward hook
        def hook(module: nn.Module, inputs: object, output: object) -> object:
            if not isinstance(output, torch.Tensor):
                return None
            self.outputs.append((name, output))
            return output.clone()

        return hook

    def __enter__(self) -> OutputRecorder:
        self._handles = [module.register_forward_hook(self._hook(name)) for name, module in self._targets]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.outputs = []


def per_channel(tensor: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Sum ``tensor`` (a module output of shape N, C, ...) over everything but images and channels -> (N, C).

    Linear layers keep their features in the last dimension; other modules in dimension 1.
    """
    if isinstance(module, nn.Linear):
        tensor = tensor.movedim(-1, 1)
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(0)
    return tensor.reshape(tensor.shape[0], tensor.shape[1], -1).sum(dim=2)


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def require_calibration(ctx: ScoringContext, criterion: str) -> torch.Tensor:
    """The calibration batch, or an :class:`InputError` saying that ``criterion`` needs one."""
    calib = ctx.calibration
    if calib is None or calib.dim() == 0 or len(calib) == 0:
        raise InputError(f"the '{criterion}' importance criterion needs calibration images; none were given")
    if not calib.is_floating_point():
        raise InputError(f"the '{criterion}' importance criterion needs float calibration images, got {calib.dtype}")
    return calib


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every module in eval mode; restore each module's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


class CachedModuleScores:
    """Base for criteria that compute per-module channel scores once (``prepare``) and sum them per group."""

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self._scores: dict[str, np.ndarray] = {}
        self._prepared_for: tuple[nn.Module, torch.Tensor | None] | None = None

    def _compute(self, ctx: ScoringContext) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def prepare(self, ctx: ScoringContext) -> None:
        """One pass over the calibration data; caches per-module channel scores."""
        self._scores = self._compute(ctx)
        self._prepared_for = (ctx.model, ctx.calibration)

    def score(self, group: ChannelGroup, ctx: ScoringContext) -> np.ndarray:
        """Sum the cached per-module scores over the group's scoring members (prepares on first use)."""
        prepared = self._prepared_for
        if prepared is None or prepared[0] is not ctx.model or prepared[1] is not ctx.calibration:
            self.prepare(ctx)
        return sum_member_scores(group, dict(ctx.model.named_modules()), self._scores, self.name)


@register_importance
class TaylorImportance(CachedModuleScores):
    """|activation x gradient| of the cross-entropy against pseudo-labels, per channel, averaged over images."""

    name: ClassVar[str] = "taylor"
    chunk_size: ClassVar[int] = 64

    def _compute(self, ctx: ScoringContext) -> dict[str, np.ndarray]:
        calib = require_calibration(ctx, self.name)
        model = ctx.model
        modules = dict(model.named_modules())
        names = [n for n, m in modules.items() if isinstance(m, scored_module_types())]
        device = model_device(model)
        if ctx.labels is not None and len(ctx.labels) != len(calib):
            raise InputError(f"taylor: {len(ctx.labels)} labels for {len(calib)} calibration images")
        sums: dict[str, torch.Tensor] = {}
        with eval_mode(model), torch.enable_grad(), OutputRecorder(model, names) as recorder:
            for start in range(0, len(calib), self.chunk_size):
                recorder.outputs.clear()
                x = calib[start : start + self.chunk_size].detach().to(device).clone().requires_grad_(True)
                logits = model(x)
                if not isinstance(logits, torch.Tensor) or logits.dim() < 2:
                    raise InputError("the 'taylor' criterion needs a model that returns class scores (N, classes, ...)")
                if ctx.labels is not None:
                    labels = ctx.labels[start : start + self.chunk_size].to(device).long()
                else:
                    labels = logits.detach().argmax(dim=1)  # pseudo-labels: the model's own predictions
                loss = F.cross_entropy(logits, labels, reduction="sum")
                recorded = [(n, t) for n, t in recorder.outputs if t.requires_grad]
                if not recorded:
                    continue
                grads = torch.autograd.grad(loss, [t for _, t in recorded], allow_unused=True)
                for (name, act), grad in zip(recorded, grads):
                    if grad is None:
                        continue
                    theta = per_channel(act.detach() * grad, modules[name]).abs().sum(dim=0).double()
                    sums[name] = sums[name] + theta if name in sums else theta
                del logits, loss, recorded, grads
        log.debug("taylor: scored %d module outputs on %d calibration images", len(sums), len(calib))
        return {name: (total / len(calib)).cpu().numpy() for name, total in sums.items()}
