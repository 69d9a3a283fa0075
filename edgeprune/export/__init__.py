"""Multi-runtime export: ONNX, OpenVINO IR and TFLite artifacts, each with a verified JSON sidecar.

>>> from edgeprune.export import export_artifacts, parse_formats
>>> parse_formats("onnx,openvino")
('onnx', 'openvino')
"""

from __future__ import annotations

from edgeprune.export.artifacts import ExportedArtifact, export_artifacts, write_artifact_sidecar
from edgeprune.export.formats import format_of_path, parse_formats, runtime_target
from edgeprune.export.sidecar import InputSpec, Sidecar, read_sidecar, sidecar_path, write_sidecar
from edgeprune.export.slim_source import SlimSource, export_from_source, load_slim_source

__all__ = [
    "ExportedArtifact",
    "InputSpec",
    "Sidecar",
    "SlimSource",
    "export_artifacts",
    "export_from_source",
    "format_of_path",
    "load_slim_source",
    "parse_formats",
    "read_sidecar",
    "runtime_target",
    "sidecar_path",
    "write_artifact_sidecar",
    "write_sidecar",
]
