"""Runtime backends, looked up by the target's runtime name."""

from __future__ import annotations

from edgeprune.backends.base import Artifact, Backend, Session
from edgeprune.backends.litert_backend import LiteRtBackend
from edgeprune.backends.onnxruntime_backend import OnnxRuntimeBackend
from edgeprune.backends.openvino_backend import OpenVinoBackend
from edgeprune.errors import UnknownNameError
from edgeprune.target import Target

# The backend modules import their runtimes lazily, so registering them here costs nothing when absent.
_BACKENDS: dict[str, type] = {
    cls.name: cls for cls in (OnnxRuntimeBackend, OpenVinoBackend, LiteRtBackend)
}


def get_backend(target: Target) -> Backend:
    """The backend that serves ``target.runtime``."""
    cls = _BACKENDS.get(target.runtime)
    if cls is None:
        raise UnknownNameError("runtime", target.runtime, _BACKENDS)
    backend: Backend = cls()
    return backend


__all__ = ["Artifact", "Backend", "Session", "get_backend"]
