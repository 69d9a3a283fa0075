"""Weight (unstructured) pruning by magnitude: masks on the weights of convolutions and linear layers.

The masks are ``torch.nn.utils.prune``'s: :meth:`WeightMasks.apply` installs them with
``prune.custom_from_mask`` (the weight becomes ``weight_orig`` times the buffer ``weight_mask``, recomputed
before every forward pass, so a masked weight stays zero however the optimiser moves ``weight_orig``), and
:meth:`WeightMasks.make_permanent` is ``prune.remove``: the product is written back as a plain ``weight`` with
its zeros. Because the masks are buffers of the model, they are saved in its ``state_dict`` and so in the
fine-tune's checkpoints: ``--resume`` restores them with the weights.

Which weights go is decided as ``prune.global_unstructured(..., pruning_method=prune.L1Unstructured,
amount=s)`` decides (``scope="global"``: the smallest ``round(s * N)`` magnitudes over all ``N`` prunable weights
at once, by the library's own ``L1Unstructured.compute_mask`` on the concatenated vector), or
``prune.l1_unstructured`` per layer (``scope="layer"``: ``round(s * n)`` of each layer's ``n``). Unlike repeated
calls of those functions, whose ``amount`` is a share of the weights *still unpruned*, ``s`` here is always the
share of *all* the weights: a gradual schedule (Zhu & Gupta 2017) asks for the total sparsity at each step, and
magnitudes are those of the masked weights, so weights pruned before (magnitude zero) are pruned first again
and a rising schedule only ever adds zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune

#: the layers whose ``weight`` is pruned (biases, batch norms and embeddings are left dense)
PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)
SCOPES = ("global", "layer")


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) of every layer whose weight may be pruned, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)
            and isinstance(getattr(m, "weight_orig", getattr(m, "weight", None)), torch.Tensor)]


def magnitude_masks(weights: list[torch.Tensor], sparsity: float, scope: str = "global") -> list[torch.Tensor]:
    """Masks (1 keep, 0 prune) removing the smallest-magnitude ``sparsity`` share of ``weights``.

    ``global``: one ranking over all of them, as ``prune.global_unstructured`` with ``L1Unstructured``;
    ``layer``: each tensor ranked alone, as ``prune.l1_unstructured``. Ties are broken as the library breaks them
    (``torch.topk`` over the flattened magnitudes, tensors concatenated in the order given).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    method = prune.L1Unstructured(amount=float(sparsity))
    with torch.no_grad():
        if scope == "layer":
            return [method.compute_mask(w.detach(), torch.ones_like(w)) for w in weights]
        flat = torch.cat([w.detach().reshape(-1) for w in weights])
        mask = method.compute_mask(flat, torch.ones_like(flat))
        out, start = [], 0
        for w in weights:
            out.append(mask[start:start + w.numel()].view_as(w).clone())
            start += w.numel()
        return out


class WeightMasks:
    """Magnitude masks on the prunable weights of one model, installed with ``torch.nn.utils.prune``."""

    def __init__(self, model: nn.Module, scope: str = "global") -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        self.model, self.scope = model, scope
        self.layers = prunable_layers(model)
        self.sparsity = 0.0
        self.updates = 0

    @property
    def installed(self) -> bool:
        """Whether the masks are on the model (between :meth:`apply` and :meth:`make_permanent`)."""
        return bool(self.layers) and prune.is_pruned(self.layers[0][1])

    def _effective(self, module: nn.Module) -> torch.Tensor:
        if hasattr(module, "weight_mask"):
            return module.weight_orig.detach() * module.weight_mask
        return module.weight.detach()

    def apply(self, sparsity: float) -> None:
        """Mask the smallest ``sparsity`` share of the weights (of the masked weights, when masks are on)."""
        masks = magnitude_masks([self._effective(m) for _, m in self.layers], sparsity, self.scope)
        with torch.no_grad():
            for (_, module), mask in zip(self.layers, masks, strict=True):
                if hasattr(module, "weight_mask"):
                    module.weight_mask.copy_(mask)
                else:
                    prune.custom_from_mask(module, "weight", mask)
        self.sparsity = float(sparsity)
        self.updates += 1

    def make_permanent(self) -> None:
        """``prune.remove`` on every layer: the masked weights become plain weights holding their zeros."""
        for _, module in self.layers:
            if prune.is_pruned(module) and hasattr(module, "weight_mask"):
                prune.remove(module, "weight")


@dataclass(frozen=True)
class LayerSparsity:
    """One prunable layer's weights and how many of them are zero."""

    name: str
    params: int
    zeros: int

    @property
    def sparsity(self) -> float:
        """The share of its weights that are zero."""
        return self.zeros / max(self.params, 1)

    def to_dict(self) -> dict[str, object]:
        """For report.json."""
        return {"name": self.name, "params": self.params, "zeros": self.zeros, "sparsity": self.sparsity}


def layer_sparsity(model: nn.Module) -> list[LayerSparsity]:
    """Zeros in each prunable layer's weight (masks applied, where installed)."""
    out = []
    for name, module in prunable_layers(model):
        weight = module.weight_orig * module.weight_mask if hasattr(module, "weight_mask") else module.weight
        out.append(LayerSparsity(name, weight.numel(), int((weight.detach() == 0).sum())))
    return out


def total_sparsity(layers: list[LayerSparsity]) -> float:
    """The share of zeros over all the layers' weights."""
    params = sum(layer.params for layer in layers)
    return sum(layer.zeros for layer in layers) / max(params, 1)


def sparsify(model: nn.Module, sparsity: float, scope: str = "global") -> nn.Module:
    """One-shot magnitude pruning of ``model`` in place, made permanent; returns it."""
    masks = WeightMasks(model, scope)
    masks.apply(sparsity)
    masks.make_permanent()
    return model
