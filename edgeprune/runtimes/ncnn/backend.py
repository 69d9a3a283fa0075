"""ncnn backend: PyTorch → ``model.ncnn.param`` + ``model.ncnn.bin`` with pnnx, run and timed by ncnn on the CPU.

An artifact's path is its ``.param`` file (``<stem>.ncnn.param``); the weights are the ``.bin`` beside it
(``<stem>.ncnn.bin``). Float models run in fp32 (see :mod:`.session`); batch 1 only, which is what pnnx's
conversion and ncnn's ``Mat`` (CHW) are made for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeprune.errors import InputError, MissingRuntimeError
from edgeprune.runtimes.base import Artifact, Backend, Int8Request, LayerPrecision
from edgeprune.runtimes.ncnn.param import ParamError, read_param
from edgeprune.target import Target

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeprune.runtimes.ncnn.session import NcnnSession

#: suffixes an export path may carry that are not part of the artifact's stem
_OTHER_SUFFIXES = frozenset({".param", ".bin", ".ncnn", ".onnx", ".tflite", ".xml", ".pt"})


def param_path_for(out_path: Path) -> Path:
    """Where an export to ``out_path`` writes its ``.param``: ``out/model`` or ``out/model.onnx`` →
    ``out/model.ncnn.param`` (and ``out/model.ncnn.bin`` beside it)."""
    out_path = Path(out_path)
    stem = out_path.name
    while Path(stem).suffix in _OTHER_SUFFIXES:
        stem = Path(stem).stem
    return out_path.with_name(f"{stem}.ncnn.param")


def _require_float(target: Target) -> None:
    if target.precision not in ("fp32", "int8"):
        raise InputError(f"target '{target.name}': the ncnn backend runs fp32 models, not '{target.precision}'")


class NcnnBackend(Backend):
    """ncnn ``.param``/``.bin`` pairs converted by pnnx and executed by ncnn's CPU kernels."""

    name: ClassVar[str] = "ncnn"
    artifact_format: ClassVar[str] = "ncnn"

    def version(self) -> str:
        """ncnn's version (the ``ncnn`` wheel's)."""
        from importlib import metadata

        try:
            return metadata.version("ncnn")
        except metadata.PackageNotFoundError:
            raise MissingRuntimeError("ncnn", "ncnn") from None

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Convert ``model`` (eval mode, batch 1) to ``<out_path stem>.ncnn.param`` + ``.ncnn.bin``."""
        from edgeprune.runtimes.ncnn.export import export_ncnn

        _require_float(target)
        path = export_ncnn(model, example, param_path_for(out_path))
        graph = read_param(path)
        return Artifact(path, self.artifact_format, graph.input_names[0], tuple(int(v) for v in example.shape))

    def load(self, artifact: Artifact, target: Target) -> NcnnSession:
        """Load an artifact's ``.param`` and the ``.bin`` beside it with the target's thread count."""
        from edgeprune.runtimes.ncnn.session import NcnnSession

        _require_float(target)
        if artifact.format != self.artifact_format:
            raise InputError(f"the ncnn backend cannot load a '{artifact.format}' artifact ({artifact.path}); it "
                             "reads ncnn .param/.bin pairs")
        self.require()
        return NcnnSession(artifact.path, target.threads)

    def export_int8(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target,
                    images: np.ndarray, request: Int8Request) -> Artifact:
        """Refused in one line: ncnn's quantizer is not installable from pip (:mod:`.int8`)."""
        from edgeprune.runtimes.ncnn.int8 import NO_INT8_MESSAGE

        raise InputError(NO_INT8_MESSAGE)

    def is_quantized(self, path: Path) -> bool:
        """Whether a convolution or inner product has ``int8_scale_term`` set (an int8 file made elsewhere)."""
        from edgeprune.runtimes.ncnn.int8 import is_quantized

        return is_quantized(Path(path))

    def layer_precisions(self, path: Path) -> list[LayerPrecision]:
        """Each compute layer's precision, from the ``.param`` and the weight tags of the ``.bin``."""
        from edgeprune.runtimes.ncnn.layers import layer_precisions

        return layer_precisions(Path(path))

    def weight_tensors(self, path: Path) -> list[tuple[np.ndarray, Any]]:
        """Each compute layer's stored weights, read from the ``.bin``."""
        from edgeprune.runtimes.ncnn.layers import weight_tensors

        return weight_tensors(Path(path))

    def check_upload(self, path: Path) -> None:
        """The ``.param``'s magic number and sane counts; a non-empty ``.bin`` (:mod:`.upload`)."""
        from edgeprune.runtimes.ncnn.upload import check_upload

        check_upload(Path(path))


def input_name_of(param_path: Path) -> str:
    """The input blob of an ncnn ``.param`` file (pnnx names it ``in0``)."""
    try:
        names = read_param(param_path).input_names
    except (OSError, ParamError) as exc:
        raise InputError(f"cannot read ncnn param {param_path}: {exc}") from None
    if len(names) != 1:
        raise InputError(f"ncnn model {param_path} has {len(names)} inputs; edgeprune handles one")
    return names[0]
