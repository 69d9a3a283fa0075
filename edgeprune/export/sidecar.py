"""The JSON sidecar written next to every exported artifact (``model.onnx.json``, ``model.xml.json`` ...).

It says what the artifact is and how to feed it, so that a deployment (or ``edgeprune validate``) need not
guess: the edgeprune version that wrote it, the runtime that will run it (name and version), the target
(name, device, threads, precision), the input (name, shape, layout, normalisation), the plan's SHA-256 (which
slim architecture it is), the SHA-256 of each of its files, and when it was written.

The checksums detect **accidental** changes (a file copied half-way, the wrong ``model.bin`` beside an
``model.xml``, a re-export that left an old sidecar): they sit in the same editable JSON as the files they
describe, so they are not a signature and prove nothing against someone who edits both.

Schema ``edgeprune.artifact-sidecar/1``::

    {"schema": "edgeprune.artifact-sidecar/1", "edgeprune_version": "0.1.0", "format": "openvino",
     "runtime": {"name": "openvino", "version": "2026.4.1"},
     "target": {"name": "cpu-openvino", "device": "cpu", "threads": 1, "precision": "fp32"},
     "input": {"name": "input", "shape": [1, 3, 32, 32], "layout": "NCHW", "dtype": "float32",
               "value_range": [0.0, 1.0], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
     "plan_sha256": "…" | null, "files": {"model.xml": "<sha256>", "model.bin": "<sha256>"},
     "created_utc": "2025-01-01T12:00:00Z"}

``value_range`` is the range pixels are scaled to before ``(x - mean) / std`` is applied per channel (edgeprune
models take normalised float input); it, ``mean`` and ``std`` are null when the normalisation is unknown.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeprune._version import __version__
from edgeprune.errors import ArtifactIntegrityError, InputError
from edgeprune.io_atomic import write_json_atomic

SCHEMA = "edgeprune.artifact-sidecar/1"
LAYOUTS = ("NCHW", "NHWC")
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class InputSpec:
    """How to feed an artifact: its input tensor's name, shape (batch included), layout and normalisation."""

    name: str
    shape: tuple[int, ...]
    layout: str = "NCHW"
    dtype: str = "float32"
    value_range: tuple[float, float] | None = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InputError(f"input layout must be one of {', '.join(LAYOUTS)}, got '{self.layout}'")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "shape": list(self.shape), "layout": self.layout, "dtype": self.dtype,
                "value_range": None if self.value_range is None else list(self.value_range),
                "mean": None if self.mean is None else list(self.mean),
                "std": None if self.std is None else list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "InputSpec":
        """Parse :meth:`to_dict`'s form."""
        def floats(key: str) -> tuple[float, ...] | None:
            value = data.get(key)
            return None if value is None else tuple(float(v) for v in value)

        value_range = floats("value_range")
        return cls(name=str(data["name"]), shape=tuple(int(v) for v in data["shape"]),
                   layout=str(data.get("layout", "NCHW")), dtype=str(data.get("dtype", "float32")),
                   value_range=None if value_range is None else (value_range[0], value_range[1]),
                   mean=floats("mean"), std=floats("std"))


@dataclass(frozen=True)
class Sidecar:
    """The record written next to an artifact (see the module docstring for the JSON form).

    Attributes:
        format: ``onnx``, ``openvino`` or ``tflite``.
        runtime: name of the runtime that runs the artifact (``onnxruntime``, ``openvino``, ``litert``).
        runtime_version: that runtime's version when the artifact was written.
        target: the target's name, device, threads and precision the artifact is meant to run with.
        input: how to feed it.
        plan_sha256: :meth:`~edgeprune.prune.plan.SlimPlan.digest` of the slim model's plan, or None.
        files: SHA-256 of each of the artifact's files, by file name (same directory as the sidecar).
        edgeprune_version: the version that wrote it.
        created_utc: ISO 8601 time of writing, UTC.
    """

    format: str
    runtime: str
    runtime_version: str
    target: dict[str, Any]
    input: InputSpec
    plan_sha256: str | None
    files: dict[str, str]
    edgeprune_version: str = __version__
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, schema :data:`SCHEMA`."""
        return {"schema": SCHEMA, "edgeprune_version": self.edgeprune_version, "format": self.format,
                "runtime": {"name": self.runtime, "version": self.runtime_version},
                "target": dict(self.target), "input": self.input.to_dict(), "plan_sha256": self.plan_sha256,
                "files": dict(self.files), "created_utc": self.created_utc}

    @classmethod
    def from_dict(cls, data: Any, origin: str = "sidecar") -> "Sidecar":
        """Parse :meth:`to_dict`'s form; anything else raises :class:`~edgeprune.errors.InputError`."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise InputError(f"{origin} is not an edgeprune sidecar (schema '{SCHEMA}' expected, found {found!r})")
        try:
            files = {str(k): str(v) for k, v in data["files"].items()}
            return cls(format=str(data["format"]), runtime=str(data["runtime"]["name"]),
                       runtime_version=str(data["runtime"]["version"]), target=dict(data["target"]),
                       input=InputSpec.from_dict(data["input"]), plan_sha256=data.get("plan_sha256"),
                       files=files, edgeprune_version=str(data["edgeprune_version"]),
                       created_utc=str(data["created_utc"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{origin} is malformed: missing or invalid {exc}") from None


def sidecar_path(artifact_path: Path) -> Path:
    """``model.onnx`` → ``model.onnx.json``."""
    artifact_path = Path(artifact_path)
    return artifact_path.with_name(artifact_path.name + SIDECAR_SUFFIX)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(files: list[Path]) -> dict[str, str]:
    """``{file name: sha256}`` for files that sit in one directory (the sidecar refers to them by name)."""
    return {Path(f).name: file_sha256(Path(f)) for f in files}


def write_sidecar(artifact_path: Path, sidecar: Sidecar) -> Path:
    """Write ``sidecar`` next to ``artifact_path`` atomically; returns the sidecar's path."""
    return write_json_atomic(sidecar_path(artifact_path), sidecar.to_dict())


def read_sidecar(artifact_path: Path, *, verify: bool = True) -> Sidecar:
    """Read the sidecar of ``artifact_path`` and, with ``verify``, check every listed file's SHA-256.

    Raises :class:`~edgeprune.errors.InputError` when the sidecar is missing or malformed, and
    :class:`~edgeprune.errors.ArtifactIntegrityError` (exit code 3) when a file is missing or its checksum
    differs from the recorded one.
    """
    path = sidecar_path(artifact_path)
    if not path.is_file():
        raise InputError(f"no sidecar for {artifact_path} (expected {path})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"sidecar {path} is not valid JSON: {exc}") from None
    sidecar = Sidecar.from_dict(data, str(path))
    if verify:
        from edgeprune.export.formats import artifact_files

        verify_files(sidecar, path.parent, str(path))
        unlisted = [f.name for f in artifact_files(Path(artifact_path), sidecar.format) if f.name not in sidecar.files]
        if unlisted:  # checksums of other files would vouch for nothing about this one
            raise ArtifactIntegrityError(f"sidecar {path} does not list {', '.join(unlisted)}: it belongs to another "
                                         "artifact or was edited")
    return sidecar


def verify_files(sidecar: Sidecar, directory: Path, origin: str = "sidecar") -> None:
    """Check that each file the sidecar lists exists in ``directory`` with the recorded SHA-256."""
    if not sidecar.files:
        raise InputError(f"{origin} lists no files")
    for name, expected in sidecar.files.items():
        if Path(name).name != name or name in ("", ".", ".."):
            raise InputError(f"{origin}: file name '{name}' is not a plain file name")
        file = Path(directory) / name
        if not file.is_file():
            raise ArtifactIntegrityError(f"{file} is missing (listed in {origin})")
        actual = file_sha256(file)
        if actual != expected:
            raise ArtifactIntegrityError(
                f"{file} does not match its sidecar: sha256 {actual[:12]}… but {origin} records {expected[:12]}…; "
                "the file was changed or replaced after export (an accidental change; the sidecar is no signature)"
            )
