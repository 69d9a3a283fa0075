"""The device fine-tuning and the scoring passes run on (``--train-device``), and mixed precision there.

Latency is never measured here: it is measured in the target's runtime. This only decides where PyTorch
trains: ``auto`` takes the first CUDA GPU when PyTorch sees one, else the CPU. On a GPU the forward and
backward passes run under automatic mixed precision (float16 autocast with a gradient scaler); on the CPU
everything stays float32, as before.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import torch

from edgeprune.errors import InputError

TRAIN_DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_train_device(spec: str | None) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` as a torch device, refusing a GPU that is not there.

    Under ``torchrun`` a plain ``cuda`` (or ``auto`` with GPUs) is the GPU of the process's ``LOCAL_RANK``.
    """
    text = (spec or "auto").strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text not in ("auto", "cuda") and not re.fullmatch(r"cuda:\d+", text):
        raise InputError(f"--train-device must be one of {', '.join(TRAIN_DEVICES)}, got '{spec}'")
    available = torch.cuda.is_available()
    if text == "auto" and not available:
        return torch.device("cpu")
    if not available:
        raise InputError(f"--train-device {text}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is "
                         "False); use --train-device cpu, or auto to take a GPU only when there is one")
    index = int(text.split(":")[1]) if ":" in text else int(os.environ.get("LOCAL_RANK", "0"))
    count = torch.cuda.device_count()
    if index >= count:
        raise InputError(f"--train-device {text}: there {'is' if count == 1 else 'are'} only {count} CUDA "
                         f"device{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


@contextlib.contextmanager
def placed_on(model: torch.nn.Module, device: torch.device) -> Iterator[torch.nn.Module]:
    """``model`` moved to ``device`` for a scoring pass, and back to the CPU after (nothing on the CPU)."""
    if device.type == "cpu":
        yield model
        return
    model.to(device)
    try:
        yield model
    finally:
        model.to("cpu")


def uses_mixed_precision(device: torch.device) -> bool:
    """Whether training on ``device`` runs under automatic mixed precision (GPUs only)."""
    return device.type == "cuda"


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """float16 autocast on a GPU; nothing on the CPU."""
    if uses_mixed_precision(device):
        with torch.autocast(device_type=device.type, dtype=torch.float16):
            yield
    else:
        yield


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """The loss scaler of mixed-precision training (a pass-through where mixed precision is off)."""
    return torch.amp.GradScaler(device.type, enabled=uses_mixed_precision(device))
