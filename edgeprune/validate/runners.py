"""Load any model file (``.onnx``, ``.xml`` + ``.bin``, ``.tflite``; edgeprune's or foreign) in its own runtime,
or wrap a PyTorch model, behind one interface that takes NCHW float input.

An artifact's input layout comes from its sidecar when there is one; a foreign 4-D input whose last dimension
is 1 or 3 and whose second is not is taken to be NHWC. Inputs are always handed over as NCHW and transposed
here, so artifacts of different layouts compare directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.errors import InputError, first_line
from edgeprune.export.formats import (
    artifact_files,
    artifact_precision,
    format_of_path,
    require_runtime,
    runtime_target,
)
from edgeprune.export.nhwc import nchw_to_nhwc
from edgeprune.export.sidecar import Sidecar, read_sidecar, sidecar_path
from edgeprune.runtimes import get_backend
from edgeprune.runtimes.base import Artifact, Session
from edgeprune.runtimes.onnx_export import is_onnx
from edgeprune.runtimes.table import facts_of_format
from edgeprune.target import Target

log = logging.getLogger(__name__)


def check_onnx_file(path: Path) -> None:
    """``onnx.checker.check_model`` on ``path``; a corrupt or invalid file raises a one-line InputError."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # DecodeError, ValidationError, OSError ... : the user needs one line
        raise InputError(f"{path} is not a valid ONNX model: {first_line(exc)}") from None


@dataclass
class LoadedArtifact:
    """An artifact loaded in its runtime, with what is known about its input.

    Attributes:
        path: the main file.
        format: ``onnx``, ``openvino`` or ``tflite``.
        target: the target it runs with (:func:`~edgeprune.export.formats.runtime_target`).
        session: the runtime session.
        runtime_version: the runtime's version.
        input_name: the input tensor's name.
        input_shape: the input's shape as the artifact takes it (batch included).
        layout: ``NCHW`` or ``NHWC``.
        sidecar: the verified sidecar, or None for a file without one.
    """

    path: Path
    format: str
    target: Target
    session: Session
    runtime_version: str
    input_name: str
    input_shape: tuple[int, ...]
    layout: str
    sidecar: Sidecar | None

    @property
    def precision(self) -> str:
        """The precision the runtime computes in (``int8`` for a quantized model)."""
        return artifact_precision(self.path, self.format, self.target)

    @property
    def nchw_shape(self) -> tuple[int, ...]:
        """The input shape in NCHW order (what :meth:`run` takes)."""
        s = self.input_shape
        return (s[0], s[3], s[1], s[2]) if self.layout == "NHWC" else s

    def feed(self, x_nchw: np.ndarray) -> dict[str, np.ndarray]:
        """The session's input mapping for one NCHW array."""
        x = np.ascontiguousarray(x_nchw, dtype=np.float32)
        return {self.input_name: nchw_to_nhwc(x) if self.layout == "NHWC" else x}

    def run(self, x_nchw: np.ndarray) -> np.ndarray:
        """The first output for one NCHW input."""
        return np.asarray(self.session.run(self.feed(x_nchw))[0])

    def describe(self) -> str:
        """``model.onnx (onnxruntime 1.2, 1 thread, fp32)``."""
        return f"{self.path.name} ({self.target.runtime} {self.runtime_version}, {self.target.threads} thread(s), " \
               f"{self.precision})"


class TorchRunner:
    """A PyTorch reference model behind the same ``run(x_nchw)`` interface."""

    def __init__(self, model: nn.Module, name: str = "PyTorch model") -> None:
        self.model = model.eval()
        self.name = name
        self.precision = "fp32"

    def run(self, x_nchw: np.ndarray) -> np.ndarray:
        """The model's output for one NCHW input."""
        try:
            with torch.no_grad():
                out = self.model(torch.from_numpy(np.ascontiguousarray(x_nchw, dtype=np.float32)))
        except Exception as exc:  # user models fail in many ways on a wrong input shape
            raise InputError(f"reference {self.name} cannot run on input of shape {tuple(x_nchw.shape)}: "
                             f"{first_line(exc)}") from None
        if isinstance(out, (tuple, list)):
            out = out[0]
        return np.asarray(out.detach().numpy())

    def describe(self) -> str:
        """The reference's name."""
        return self.name


def _static_shape(dims: list[Any], path: Path, fallback: tuple[int, ...] | None) -> tuple[int, ...]:
    """Dims as ints: a dynamic batch becomes 1; another dynamic dim needs the sidecar's shape."""
    shape: list[int] = []
    for i, d in enumerate(dims):
        if isinstance(d, (int, np.integer)) and int(d) > 0:
            shape.append(int(d))
        elif fallback is not None and len(fallback) == len(dims):
            shape.append(int(fallback[i]))
        elif i == 0:
            shape.append(1)
        else:
            raise InputError(f"{path}: input dimension {i} is dynamic ({d}); edgeprune validates fixed-shape models")
    return tuple(shape)


def _session_input(session: Any, path: Path) -> tuple[str, list[Any]]:
    """(name, dims) of the session's single input, whatever the runtime."""
    inputs = session.inputs()
    if len(inputs) != 1:
        raise InputError(f"{path} has {len(inputs)} inputs; edgeprune validates single-input models")
    name, dims = inputs[0]
    return str(name), list(dims)


def guess_layout(shape: tuple[int, ...]) -> str:
    """``NHWC`` for a 4-D shape whose last dim is 1 or 3 and whose second is not, else ``NCHW``."""
    if len(shape) == 4 and shape[3] in (1, 3) and shape[1] not in (1, 3):
        return "NHWC"
    return "NCHW"


def load_artifact(path: str | Path, target: Target) -> LoadedArtifact:
    """Check and load a model file in its runtime with the target's threads and precision.

    ONNX files must pass ``onnx.checker.check_model`` first; an artifact with a sidecar must match the
    sidecar's checksums (:class:`~edgeprune.errors.ArtifactIntegrityError` otherwise).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"artifact not found: {path}")
    fmt = format_of_path(path)
    for file in artifact_files(path, fmt)[1:]:
        if not file.is_file():
            raise InputError(f"{path}: its weights file {file.name} is missing")
    sidecar = read_sidecar(path) if sidecar_path(path).is_file() else None
    if sidecar is not None and sidecar.format != fmt:
        raise InputError(f"{sidecar_path(path)} describes a '{sidecar.format}' artifact, but {path} is '{fmt}'")
    if is_onnx(fmt):
        check_onnx_file(path)
    run_target = runtime_target(target, fmt)
    require_runtime(run_target.runtime)
    backend = get_backend(run_target)
    session = backend.load(Artifact(path, fmt, "", ()), run_target)
    name, dims = _session_input(session, path)
    known = sidecar.input.shape if sidecar is not None else None
    shape = _static_shape(dims, path, known)
    if len(shape) != 4:
        raise InputError(f"{path}: input shape {list(shape)} is not an image batch (N, C, H, W) or (N, H, W, C)")
    layout = sidecar.input.layout if sidecar is not None else guess_layout(shape)
    log.debug("loaded %s: input %s %s (%s)", path, name, list(shape), layout)
    return LoadedArtifact(path, fmt, run_target, session, backend.version(), name, shape, layout, sidecar)



def default_target(path: str | Path) -> Target:
    """The target to validate ``path`` with when none is given: the one its sidecar names, if built in, else
    the built-in CPU target of its format's runtime."""
    from edgeprune.target import builtin_target_names, load_target

    path = Path(path)
    fmt = format_of_path(path)
    if sidecar_path(path).is_file():
        try:
            name = str(read_sidecar(path, verify=False).target.get("name", ""))
        except InputError:
            name = ""
        if name in builtin_target_names():
            return load_target(name)
    return load_target(facts_of_format(fmt).default_target)
