"""Plans: a JSON record that, with the slim weights, rebuilds a pruned model without pickling.

The plan names the original architecture (the model spec and its constructor arguments), the residual blocks
removed whole (depth pruning; replaced by identities), which channels each group kept, and the resulting
shape of every module that owns parameters. Rebuilding constructs the original architecture, removes those
blocks, resizes the modules in place, and strictly loads the slim state dict
(``model.safetensors``), so a missing or mis-shaped tensor is an error, never a silent partial load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.errors import InputError
from edgeprune.prune.plan_schema import validate_plan

PLAN_FORMAT = "edgeprune-plan"
PLAN_VERSION = 1
_SHAPE_ATTRS = (
    "in_channels",
    "out_channels",
    "groups",
    "num_features",
    "in_features",
    "out_features",
    "pad_front",
)


def module_shapes(model: nn.Module) -> dict[str, dict[str, Any]]:
    """For every module owning parameters or buffers: its width attributes and tensor shapes."""
    record: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        tensors = {
            **{k: list(v.shape) for k, v in module.named_parameters(recurse=False)},
            **{k: list(v.shape) for k, v in module.named_buffers(recurse=False) if v is not None},
        }
        attrs = {a: getattr(module, a) for a in _SHAPE_ATTRS if isinstance(getattr(module, a, None), int)}
        if tensors or (attrs and not list(module.children())):
            record[name] = {"type": type(module).__name__, "attrs": attrs, "tensors": tensors}
    return record


def resize_modules(model: nn.Module, shapes: dict[str, dict[str, Any]]) -> None:
    """Resize ``model``'s modules in place to the recorded attributes and tensor shapes."""
    modules = dict(model.named_modules())
    try:
        _resize(modules, shapes)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise InputError(f"malformed plan: module shapes are invalid ({type(exc).__name__}: {exc})") from None


def _resize(modules: dict[str, nn.Module], shapes: dict[str, dict[str, Any]]) -> None:
    for name, entry in shapes.items():
        module = modules.get(name)
        if module is None or type(module).__name__ != entry["type"]:
            raise InputError(f"plan does not match the architecture: module '{name}' ({entry['type']}) not found")
        for attr, value in entry["attrs"].items():
            setattr(module, attr, value)
        for tensor_name, shape in entry["tensors"].items():
            current = getattr(module, tensor_name, None)
            if not isinstance(current, torch.Tensor):
                raise InputError(f"plan does not match the architecture: '{name}.{tensor_name}' not found")
            fresh = torch.zeros(shape, dtype=current.dtype)
            if isinstance(current, nn.Parameter):
                setattr(module, tensor_name, nn.Parameter(fresh, requires_grad=current.requires_grad))
            else:
                module.register_buffer(tensor_name, fresh)
        _follow_weight(module)


def _follow_weight(module: nn.Module) -> None:
    """Set the widths a norm layer keeps outside its tensors from its resized weight: a LayerNorm's
    ``normalized_shape`` (ConvNeXt's channel norms), a GroupNorm's ``num_channels``."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return
    if isinstance(getattr(module, "normalized_shape", None), tuple):
        module.normalized_shape = tuple(int(d) for d in weight.shape)
    if isinstance(module, nn.GroupNorm):
        module.num_channels = int(weight.shape[0])


def remove_planned_blocks(model: nn.Module, names: list[str]) -> None:
    """Replace each named block of ``model`` with ``nn.Identity`` in place (a plan's depth pruning)."""
    from edgeprune.prune.blocks import set_submodule

    known = dict(model.named_modules())
    for name in names:
        if not name or name not in known:
            raise InputError(f"plan does not match the architecture: removed block '{name}' not found")
        set_submodule(model, name, nn.Identity())


@dataclass
class SlimPlan:
    """What was pruned and how to rebuild it.

    Attributes:
        model_spec: the spec the original was built from (``cifar-resnet56``, ``pkg.mod:fn`` ...).
        build_kwargs: constructor arguments used for the original.
        input_shape: (N, C, H, W) the model was exported with.
        preprocessing: input normalisation (plain data) or None.
        groups: per group: name, width before, width after, kept channel indices.
        shapes: :func:`module_shapes` of the slim model.
        method: how widths were chosen (criterion, allocation, ratio ...).
        removed_blocks: dotted names of residual blocks replaced by ``nn.Identity`` (depth pruning).
    """

    model_spec: str
    build_kwargs: dict[str, Any]
    input_shape: list[int]
    preprocessing: dict[str, Any] | None
    groups: list[dict[str, Any]]
    shapes: dict[str, dict[str, Any]]
    method: dict[str, Any] = field(default_factory=dict)
    removed_blocks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``removed_blocks`` only when blocks were removed, so channel-only plans keep
        their digests)."""
        depth = {"removed_blocks": list(self.removed_blocks)} if self.removed_blocks else {}
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "model": {"spec": self.model_spec, "build_kwargs": self.build_kwargs},
            "input_shape": self.input_shape,
            "preprocessing": self.preprocessing,
            "method": self.method,
            **depth,
            "groups": self.groups,
            "modules": self.shapes,
        }

    def digest(self) -> str:
        """SHA-256 of the plan's canonical JSON (identifies the slim architecture)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "plan") -> "SlimPlan":
        """Parse a plan written by :meth:`to_dict`, read from ``origin`` (named in errors), every field checked
        (:func:`~edgeprune.prune.plan_schema.validate_plan`)."""
        if not isinstance(data, dict):
            raise InputError(f"{origin}: not an edgeprune plan: expected a JSON object")
        if data.get("format") != PLAN_FORMAT or data.get("version") != PLAN_VERSION:
            raise InputError(f"{origin}: not an edgeprune plan (version {PLAN_VERSION})")
        validate_plan(data, origin)
        try:
            return cls(
                model_spec=data["model"]["spec"],
                build_kwargs=data["model"].get("build_kwargs", {}),
                input_shape=list(data["input_shape"]),
                preprocessing=data.get("preprocessing"),
                groups=list(data["groups"]),
                shapes=dict(data["modules"]),
                method=dict(data.get("method", {})),
                removed_blocks=[str(n) for n in data.get("removed_blocks", [])],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"malformed plan: missing or invalid {exc}") from None


def load_slim_model(out_dir: str | Path, allow_factory: str | None = None) -> nn.Module:
    """Rebuild the pruned PyTorch model from ``plan.json`` and ``model.safetensors`` in ``out_dir``.

    A plan whose model is a user's factory (``package.module:function``) would import and run that code, so a
    received folder must not decide it: such a plan is refused unless ``allow_factory`` names the same factory.

    >>> model = load_slim_model("edgeprune-out")                   # doctest: +SKIP
    >>> model = load_slim_model("out", allow_factory="mypkg.nets:build")   # doctest: +SKIP
    """
    from safetensors.torch import load_file

    from edgeprune.models.weights import apply_state_dict
    from edgeprune.models.zoo import build_architecture, is_factory_spec

    out = Path(out_dir)
    plan_path, weights_path = out / "plan.json", out / "model.safetensors"
    for path in (plan_path, weights_path):
        if not path.is_file():
            raise InputError(f"{path} not found: is {out} an edgeprune output directory?")
    try:
        plan = SlimPlan.from_dict(json.loads(plan_path.read_text(encoding="utf-8")), str(plan_path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{plan_path} is not valid JSON: {exc}") from None
    if is_factory_spec(plan.model_spec) and plan.model_spec != allow_factory:
        raise InputError(f"{plan_path} names the model factory '{plan.model_spec}', which rebuilding would import "
                         f"and run; a received folder must not run code: if you trust it, pass --allow-factory "
                         f"{plan.model_spec} (Python: allow_factory='{plan.model_spec}')")
    bundle = build_architecture(plan.model_spec, plan.build_kwargs.get("num_classes"))
    remove_planned_blocks(bundle.model, plan.removed_blocks)
    resize_modules(bundle.model, plan.shapes)
    try:
        state = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types on corrupt files
        raise InputError(f"cannot read {weights_path}: {exc}") from None
    apply_state_dict(bundle.model, state, str(weights_path))
    return bundle.model.eval()
