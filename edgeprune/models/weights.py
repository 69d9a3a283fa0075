"""Safe weight loading: state dicts via ``torch.load(weights_only=True)`` or safetensors, never pickled modules."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from edgeprune.errors import ModelLoadError

log = logging.getLogger(__name__)

_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
#: how to turn an Ultralytics ``best.pt`` into weights edgeprune reads (run where you trust the file: it unpickles)
ULTRALYTICS_CONVERSION = (
    "convert it once where you trust it (this unpickles it): python -c \"import torch; from safetensors.torch import "
    "save_file; c = torch.load('best.pt', weights_only=False); m = (c.get('ema') or c['model']).float(); "
    "save_file({k: v.contiguous() for k, v in m.state_dict().items()}, 'best.safetensors')\" and pass "
    "--weights best.safetensors with --model ultralytics:<its YAML> --num-classes <its classes>")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file, safely.

    Accepts a bare state dict or one nested under a usual key (``state_dict``, ``model`` ...); strips a
    DataParallel ``module.`` prefix. Refuses whole pickled modules with an explanation.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"weights file not found: {path}")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"weights file is empty: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj: object = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read safetensors file {path}: {exc}") from None
    else:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            text = str(exc)
            if "ultralytics" in text:
                raise ModelLoadError(f"{path} is an Ultralytics checkpoint (a pickled model), which edgeprune does "
                                     f"not unpickle; {ULTRALYTICS_CONVERSION}") from None
            if "GLOBAL" in text or "Unsupported global" in text:
                raise ModelLoadError(
                    f"{path} contains pickled Python objects (probably a whole model), which edgeprune does not "
                    "load because unpickling can run arbitrary code; save the weights instead with "
                    "torch.save(model.state_dict(), 'weights.pt')"
                ) from None
            raise ModelLoadError(f"cannot read weights file {path}: corrupt or not a PyTorch file") from None
        except Exception as exc:  # torch raises many types on corrupt input (IndexError, RuntimeError ...)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelLoadError(f"cannot read weights file {path}: corrupt or not a PyTorch file ({first})") from None
    return _as_state_dict(obj, path)


def _as_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ModelLoadError(f"{path} holds no state dict (expected a mapping of tensor names to tensors)")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelLoadError(f"{path} holds no tensors")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load weights from ``path`` into ``model``, naming the first tensor that does not fit."""
    state = read_state_dict(path)
    apply_state_dict(model, state, str(path))


def apply_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Strictly load ``state`` into ``model`` with a one-line error on any mismatch."""
    expected = model.state_dict()
    adapt = getattr(model, "edgeprune_adapt_state_dict", None)  # a model edgeprune rewrote for pruning
    state = dict(adapt(state, expected) if callable(adapt) else state)
    for key in expected:  # checkpoints from PyTorch < 0.4.1 have no batch-norm step counters
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = expected[key]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelLoadError(f"weights {origin} do not fit the model: tensor '{missing[0]}'{more} missing")
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise ModelLoadError(f"weights {origin} do not fit the model: unexpected tensor '{unexpected[0]}'{more}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelLoadError(
                f"weights {origin} do not fit the model: tensor '{key}' has shape {tuple(state[key].shape)}, "
                f"the model expects {tuple(tensor.shape)}"
            )
    model.load_state_dict(state, strict=True)
