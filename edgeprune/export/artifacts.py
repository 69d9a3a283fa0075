"""Export one PyTorch model to several runtimes' formats at once, each artifact with its JSON sidecar.

Conversion itself is the backends' (``edgeprune.runtimes``): ONNX through the dynamo exporter (then
simplified by :func:`~edgeprune.export.onnx_simplify.simplify_onnx` when that is safe), OpenVINO IR read from
that ONNX by OpenVINO's frontend and saved with fp32 weights (the inference precision is chosen when the
runtime compiles it, from the target, and recorded in the sidecar), TFLite by litert-torch. Their chatter
goes to the DEBUG log.

Everything is written to a staging folder inside ``directory`` first and renamed into place only when every
format has been exported, sidecars last, so an interrupted or failed export leaves no partial artifacts and
no sidecar that describes a file which is not there.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.errors import InputError, OutputError
from edgeprune.export.formats import (
    artifact_files,
    artifact_precision,
    effective_precision,
    parse_formats,
    require_runtime,
    runtime_target,
)
from edgeprune.export.nhwc import NhwcInput
from edgeprune.export.onnx_simplify import simplify_onnx
from edgeprune.export.sidecar import InputSpec, Sidecar, checksums, sidecar_path, write_sidecar
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.quantize.backend import for_precision
from edgeprune.runtimes import get_backend
from edgeprune.runtimes.onnx_export import is_onnx
from edgeprune.target import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportedArtifact:
    """One exported artifact in its final place.

    Attributes:
        format: ``onnx``, ``openvino`` or ``tflite``.
        path: the main file (``model.onnx``, ``model.xml``, ``model.tflite``).
        files: every file of the artifact, main file first (``model.xml``, ``model.bin``).
        sidecar_path: the JSON sidecar beside it.
        sidecar: what the sidecar holds.
        simplified: for ONNX, whether onnxsim's simplified graph was kept; None for other formats.
    """

    format: str
    path: Path
    files: tuple[Path, ...]
    sidecar_path: Path
    sidecar: Sidecar
    simplified: bool | None = None

    @property
    def file_names(self) -> list[str]:
        """Names of every file written for this artifact, sidecar included."""
        return [f.name for f in self.files] + [self.sidecar_path.name]


def target_record(target: Target, precision: str | None = None) -> dict[str, Any]:
    """The target fields a sidecar records: name, device, threads and the precision really used (``precision``
    when the artifact itself fixes it, as a quantized one does)."""
    return {"name": target.name, "device": target.device, "threads": target.threads,
            "precision": precision or effective_precision(target)}


def input_spec(name: str, shape: Sequence[int], layout: str, preprocessing: Preprocessing | None) -> InputSpec:
    """An :class:`InputSpec` with normalisation from ``preprocessing`` (unknown → null mean/std/range)."""
    if preprocessing is None:
        return InputSpec(name, tuple(int(v) for v in shape), layout, value_range=None)
    return InputSpec(name, tuple(int(v) for v in shape), layout, value_range=(0.0, 1.0),
                     mean=tuple(float(v) for v in preprocessing.mean), std=tuple(float(v) for v in preprocessing.std))


def _as_preprocessing(value: Preprocessing | dict[str, Any] | None) -> Preprocessing | None:
    if value is None or isinstance(value, Preprocessing):
        return value
    return Preprocessing(int(value["height"]), int(value["width"]), int(value.get("channels", 3)),
                         tuple(value["mean"]), tuple(value["std"]))


def _check_destination(directory: Path, formats: Sequence[str], stem: str, force: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"output path {directory} exists and is not a directory")
    existing = []
    for fmt in formats:
        files = artifact_files(directory / f"{stem}.x", fmt)
        existing += [p.name for p in [*files, sidecar_path(files[0])] if p.exists()]
    if existing and not force:
        raise OutputError(f"output directory {directory} already holds {', '.join(existing)}; "
                          "pass --force to replace them or choose another --out")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export_artifacts(
    model: nn.Module,
    example: torch.Tensor,
    formats: str | Sequence[str],
    directory: Path,
    *,
    target: Target,
    preprocessing: Preprocessing | dict[str, Any] | None = None,
    plan_digest: str | None = None,
    nhwc: bool = False,
    force: bool = False,
    stem: str = "model",
    calibration: np.ndarray | None = None,
) -> list[ExportedArtifact]:
    """Export ``model`` at ``example``'s (N, C, H, W) shape to each format in ``directory``, with sidecars.

    Args:
        model: the PyTorch model (exported in eval mode; its mode is restored).
        example: an NCHW example input; its shape is the artifacts' fixed input shape.
        formats: ``"onnx,openvino,tflite"`` or a sequence of format names.
        directory: where ``<stem>.onnx``, ``<stem>.xml`` + ``.bin``, ``<stem>.tflite`` and their
            ``.json`` sidecars go (created if needed).
        target: the deployment target; a format whose runtime differs from the target's is recorded with
            :func:`~edgeprune.export.formats.runtime_target` (same threads, that runtime's CPU, fp32).
        preprocessing: the model's input normalisation, recorded in the sidecars (None: unknown).
        plan_digest: :meth:`SlimPlan.digest` of the slim model, or None for a model without a plan.
        nhwc: give every artifact an NHWC input (the model is wrapped with a permute before conversion).
        force: replace existing artifacts of the same names (else :class:`~edgeprune.errors.OutputError`).
        stem: file name without suffix.
        calibration: model inputs (N, C, H, W, normalised) to quantize with when ``target``'s precision is
            ``int8`` (:mod:`edgeprune.quantize`); formats of other runtimes stay float.

    Returns:
        One :class:`ExportedArtifact` per format, in the order given.

    >>> export_artifacts(model, torch.randn(1, 3, 32, 32), "onnx,tflite", Path("out"),
    ...                  target=load_target("cpu"))                          # doctest: +SKIP
    """
    fmts = parse_formats(formats if isinstance(formats, str) else list(formats))
    targets = {fmt: runtime_target(target, fmt) for fmt in fmts}
    for fmt in fmts:  # fail before any slow conversion when a runtime is missing
        require_runtime(targets[fmt].runtime, converting=True)
    directory = Path(directory)
    _check_destination(directory, fmts, stem, force)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".edgeprune-export-", dir=directory))
    except OSError as exc:
        raise OutputError(f"cannot write to output directory {directory}: {exc.strerror or exc}") from None
    layout = "NHWC" if nhwc else "NCHW"
    # the wrapper takes the model's mode: backends restore the mode they found, and a fresh module is training
    source = NhwcInput(model).train(model.training) if nhwc else model
    example_in = example.permute(0, 2, 3, 1).contiguous() if nhwc else example
    prep = _as_preprocessing(preprocessing)
    if calibration is None and any(targets[f].precision == "int8" for f in fmts):
        raise InputError("INT8 export needs calibration images")
    calib = None if calibration is None else (calibration.transpose(0, 2, 3, 1) if nhwc else calibration)
    try:
        staged = [_export_one(source, example_in, fmt, targets[fmt], staging, stem, layout, prep, plan_digest, calib)
                  for fmt in fmts]
        return _commit(staged, staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_artifact_sidecar(path: Path, fmt: str, *, target: Target, input_name: str, input_shape: Sequence[int],
                           preprocessing: Preprocessing | dict[str, Any] | None = None,
                           plan_digest: str | None = None, layout: str = "NCHW") -> Sidecar:
    """Write the sidecar of an artifact that already exists at ``path`` (all its files beside it), for the
    runtime :func:`~edgeprune.export.formats.runtime_target` picks for ``fmt``; returns what was written.

    >>> write_artifact_sidecar(Path("out/model.onnx"), "onnx", target=load_target("cpu"), input_name="input",
    ...                        input_shape=(1, 3, 32, 32))                          # doctest: +SKIP
    """
    run_target = runtime_target(target, fmt)
    backend = get_backend(run_target)
    sidecar = Sidecar(format=fmt, runtime=run_target.runtime, runtime_version=backend.version(),
                      target=target_record(run_target, artifact_precision(path, fmt, run_target)),
                      input=input_spec(input_name, input_shape, layout, _as_preprocessing(preprocessing)),
                      plan_sha256=plan_digest, files=checksums(artifact_files(path, fmt)))
    write_sidecar(path, sidecar)
    return sidecar


def _export_one(model: nn.Module, example: torch.Tensor, fmt: str, target: Target, staging: Path, stem: str,
                layout: str, prep: Preprocessing | None, plan_digest: str | None,
                calibration: np.ndarray | None) -> ExportedArtifact:
    backend = get_backend(target)
    if calibration is not None:
        backend = for_precision(backend, target, calibration)
    log.info("exporting %s for %s (%s)", fmt, target.runtime, layout)
    artifact = backend.export(model, example, staging / stem, target)
    simplified = simplify_onnx(artifact.path, example.numpy()) if is_onnx(fmt) else None
    sidecar = write_artifact_sidecar(artifact.path, fmt, target=target, input_name=artifact.input_name,
                                     input_shape=artifact.input_shape, preprocessing=prep,
                                     plan_digest=plan_digest, layout=layout)
    files = tuple(artifact_files(artifact.path, fmt))
    return ExportedArtifact(fmt, artifact.path, files, sidecar_path(artifact.path), sidecar, simplified)


def _commit(staged: list[ExportedArtifact], staging: Path, directory: Path) -> list[ExportedArtifact]:
    """Rename every staged file into ``directory``: artifact files first, then the sidecars."""
    mode = 0o666 & ~_umask()  # temporary files are created private; results are not
    placed = []
    for item in staged:
        for file in item.files:
            os.chmod(file, mode)
            os.replace(file, directory / file.name)
    for item in staged:
        os.chmod(item.sidecar_path, mode)
        os.replace(item.sidecar_path, directory / item.sidecar_path.name)
        placed.append(ExportedArtifact(item.format, directory / item.path.name,
                                       tuple(directory / f.name for f in item.files),
                                       directory / item.sidecar_path.name, item.sidecar, item.simplified))
        log.debug("wrote %s", ", ".join(item.file_names))
    return placed
