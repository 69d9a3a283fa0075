"""Artifact formats: parsing ``--export onnx,openvino,tflite``, file names, and the runtime each format runs in.

Each format has one runtime of its own (``onnx`` → ONNX Runtime, ``openvino`` → OpenVINO, ``tflite`` → LiteRT ...:
the facts table, :mod:`edgeprune.runtimes.table`).
When the target's runtime is that runtime, the target is used as it is; otherwise the artifact is run with
:func:`runtime_target`: the target's thread count on the runtime's CPU device in fp32 (a target's device and
precision belong to its own runtime: an ``intel-npu`` fp16 target says nothing about how LiteRT should run).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from edgeprune.errors import InputError, MissingRuntimeError, UnknownNameError
from edgeprune.runtimes import backend_of
from edgeprune.runtimes.table import ARTIFACT_FORMATS, RUNTIME_FACTS, facts_of, facts_of_format
from edgeprune.target import Target

#: other spellings accepted on the command line
_ALIASES = {alias: facts.format for facts in RUNTIME_FACTS for alias in facts.format_aliases}


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
    lowered = Path(Path(path).name.lower())
    for facts in sorted(RUNTIME_FACTS, key=lambda f: -len(f.suffix)):  # the longest suffix that matches
        if facts.owns(lowered):
            return facts.format
    raise InputError(
        f"{path}: not a model file edgeprune can run (expected {', '.join(f.suffix for f in RUNTIME_FACTS)})"
    )


def artifact_files(path: Path, fmt: str) -> list[Path]:
    """Every file of the artifact whose main file is ``path`` (``model.xml`` → ``model.xml``, ``model.bin``)."""
    return facts_of_format(fmt).files(Path(path))


def runtime_target(target: Target, fmt: str) -> Target:
    """The target to run a ``fmt`` artifact with: ``target`` itself when it uses that format's runtime, else
    the same thread count on that runtime's CPU in fp32 (see the module docstring).

    >>> from edgeprune.target import load_target
    >>> runtime_target(load_target("cpu"), "tflite").runtime
    'litert'
    """
    runtime = facts_of_format(fmt).name
    if target.runtime == runtime:
        return target
    return dataclasses.replace(target, runtime=runtime, device="cpu", precision="fp32",
                               channel_alignment=1, latency_source="measured-local", profile=None)


def runnable_here(target: Target) -> tuple[Target, str | None]:
    """The target to run artifacts with on this machine, and a note when it is not ``target`` itself.

    A device this machine lacks (OpenVINO's NPU of ``intel-npu`` without an agent) is replaced by the runtime's
    CPU at the same precision hint, so the artifact is still evaluated and validated here; the note says so.
    """
    if target.device.lower() == "cpu" or backend_of(target.runtime).device_available(target.device):
        return target, None
    note = (f"evaluated with {facts_of(target.runtime).title} on this machine's CPU at {target.precision} "
            f"({target.device.upper()} is not on this machine); outputs on the device may differ slightly")
    return dataclasses.replace(target, device="cpu"), note


def effective_precision(target: Target) -> str:
    """The precision the runtime really computes a *float* model in: most runtimes (ONNX Runtime's CPU provider,
    LiteRT) run fp32 models in fp32 whatever the target says; one with ``precision_hint`` in its row (OpenVINO)
    honours the target's hint (an INT8 target runs a float model in fp32: its integer kernels come from a
    quantized file, :func:`artifact_precision`)."""
    hinted = facts_of(target.runtime).precision_hint
    return target.precision if hinted and target.precision != "int8" else "fp32"


def artifact_precision(path: Path, fmt: str, target: Target) -> str:
    """The precision an artifact computes in: ``int8`` for a quantized ONNX file, OpenVINO IR or TFLite model (whoever
    quantized it), else the runtime's precision for a float model (:func:`effective_precision`; fp32 for a
    float model run under an INT8 target, as the original of an INT8 run is)."""
    if Path(path).is_file() and backend_of(facts_of_format(fmt).name).is_quantized(Path(path)):
        return "int8"
    return effective_precision(target)


def require_runtime(runtime: str, *, converting: bool = False) -> None:
    """Raise :class:`~edgeprune.errors.MissingRuntimeError` (naming the pip extra) when ``runtime`` is absent;
    ``converting`` also requires the converter that writes its format (LiteRT's is ``litert_torch``)."""
    import importlib.util

    facts = facts_of(runtime)
    modules = [facts.module, *facts.converter_modules] if converting else [facts.module]
    if any(importlib.util.find_spec(m) is None for m in modules):
        raise MissingRuntimeError(facts.title, facts.extra)
