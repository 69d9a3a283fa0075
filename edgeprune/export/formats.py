"""Artifact formats: parsing ``--export onnx,openvino,tflite``, file names, and the runtime each format runs in.

Each format has one runtime of its own (``onnx`` → ONNX Runtime, ``openvino`` → OpenVINO, ``tflite`` → LiteRT).
When the target's runtime is that runtime, the target is used as it is; otherwise the artifact is run with
:func:`runtime_target`: the target's thread count on the runtime's CPU device in fp32 (a target's device and
precision belong to its own runtime: an ``intel-npu`` fp16 target says nothing about how LiteRT should run).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from edgeprune.backends.base import ARTIFACT_FORMATS
from edgeprune.errors import InputError, MissingRuntimeError, UnknownNameError
from edgeprune.target import RUNTIME_MODULES, Target

#: the runtime that runs each artifact format
FORMAT_RUNTIME: dict[str, str] = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}
#: the main file's suffix of each format (OpenVINO's ``.bin`` weights sit beside the ``.xml``)
FORMAT_SUFFIX: dict[str, str] = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite"}
#: every file suffix of each format, main file first
FORMAT_FILE_SUFFIXES: dict[str, tuple[str, ...]] = {"onnx": (".onnx",), "openvino": (".xml", ".bin"),
                                                    "tflite": (".tflite",)}
#: human names of the runtimes, for error messages
RUNTIME_TITLES: dict[str, str] = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "litert": "LiteRT"}
#: other spellings accepted on the command line
_ALIASES = {"ov": "openvino", "ir": "openvino", "openvino-ir": "openvino", "litert": "tflite", "ort": "onnx"}


def parse_formats(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"onnx,openvino,tflite"`` (or a list of names) → the formats, in order, without duplicates.

    An unknown name raises :class:`~edgeprune.errors.UnknownNameError` suggesting the closest one.

    >>> parse_formats("onnx, tflite,onnx")
    ('onnx', 'tflite')
    """
    parts = re.split(r"[,\s]+", text.strip()) if isinstance(text, str) else [str(p).strip() for p in text]
    formats: list[str] = []
    for part in (p.lower() for p in parts if p):
        name = _ALIASES.get(part, part)
        if name not in ARTIFACT_FORMATS:
            raise UnknownNameError("export format", part, ARTIFACT_FORMATS)
        if name not in formats:
            formats.append(name)
    if not formats:
        raise InputError(f"no export format given; choose from {', '.join(ARTIFACT_FORMATS)}")
    return tuple(formats)


def format_of_path(path: Path) -> str:
    """The artifact format of a file, from its suffix (``.onnx``, ``.xml``, ``.tflite``)."""
    suffix = Path(path).suffix.lower()
    for fmt, own in FORMAT_SUFFIX.items():
        if suffix == own:
            return fmt
    raise InputError(
        f"{path}: not a model file edgeprune can run (expected {', '.join(FORMAT_SUFFIX.values())})"
    )


def artifact_files(path: Path, fmt: str) -> list[Path]:
    """Every file of the artifact whose main file is ``path`` (``model.xml`` → ``model.xml``, ``model.bin``)."""
    return [Path(path).with_suffix(s) for s in FORMAT_FILE_SUFFIXES[fmt]]


def runtime_target(target: Target, fmt: str) -> Target:
    """The target to run a ``fmt`` artifact with: ``target`` itself when it uses that format's runtime, else
    the same thread count on that runtime's CPU in fp32 (see the module docstring).

    >>> from edgeprune.target import load_target
    >>> runtime_target(load_target("cpu"), "tflite").runtime
    'litert'
    """
    runtime = FORMAT_RUNTIME[fmt]
    if target.runtime == runtime:
        return target
    return dataclasses.replace(target, runtime=runtime, device="cpu", precision="fp32",
                               channel_alignment=1, latency_source="measured-local", profile=None)


def runnable_here(target: Target) -> tuple[Target, str | None]:
    """The target to run artifacts with on this machine, and a note when it is not ``target`` itself.

    An OpenVINO device this machine lacks (the NPU of ``intel-npu`` without an agent) is replaced by OpenVINO's
    CPU at the same precision hint, so the artifact is still evaluated and validated here; the note says so.
    """
    if target.runtime != "openvino" or target.device.lower() == "cpu":
        return target, None
    from edgeprune.backends.openvino_backend import device_available

    if device_available(target.device):
        return target, None
    note = (f"evaluated with OpenVINO on this machine's CPU at {target.precision} ({target.device.upper()} is not "
            "on this machine); outputs on the device may differ slightly")
    return dataclasses.replace(target, device="cpu"), note


def effective_precision(target: Target) -> str:
    """The precision the runtime really computes a *float* model in: ONNX Runtime's CPU provider and LiteRT run
    fp32 models in fp32 whatever the target says; OpenVINO honours the target's precision hint (an INT8 target
    runs a float model in fp32: its integer kernels come from a quantized file, :func:`artifact_precision`)."""
    return target.precision if target.runtime == "openvino" and target.precision != "int8" else "fp32"


def artifact_precision(path: Path, fmt: str, target: Target) -> str:
    """The precision an artifact computes in: ``int8`` for a quantized ONNX file, OpenVINO IR or TFLite model (whoever
    quantized it), else the runtime's precision for a float model (:func:`effective_precision`; fp32 for a
    float model run under an INT8 target, as the original of an INT8 run is)."""
    if fmt == "onnx" and Path(path).is_file():
        from edgeprune.quantize.onnx_int8 import onnx_is_quantized

        if onnx_is_quantized(Path(path)):
            return "int8"
    if fmt == "tflite" and Path(path).is_file():
        from edgeprune.quantize.tflite_int8 import tflite_is_quantized

        if tflite_is_quantized(Path(path)):
            return "int8"
    if fmt == "openvino" and Path(path).is_file():
        from edgeprune.quantize.openvino_int8 import openvino_is_quantized

        if openvino_is_quantized(Path(path)):
            return "int8"
    return effective_precision(target)


def require_runtime(runtime: str, *, converting: bool = False) -> None:
    """Raise :class:`~edgeprune.errors.MissingRuntimeError` (naming the pip extra) when ``runtime`` is absent;
    ``converting`` also requires the converter that writes its format (LiteRT's is ``litert_torch``)."""
    import importlib.util

    module, extra = RUNTIME_MODULES[runtime]
    modules = [module, "litert_torch"] if runtime == "litert" and converting else [module]
    if any(importlib.util.find_spec(m) is None for m in modules):
        raise MissingRuntimeError(RUNTIME_TITLES.get(runtime, runtime), extra)
