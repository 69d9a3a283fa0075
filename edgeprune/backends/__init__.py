"""Runtime backends, looked up by the target's runtime name."""

from __future__ import annotations

from edgeprune.backends.base import Artifact, Backend, Session
from edgeprune.backends.onnxruntime_backend import OnnxRuntimeBackend
from edgeprune.errors import InputError, UnknownNameError
from edgeprune.target import Target

_BACKENDS: dict[str, type] = {OnnxRuntimeBackend.name: OnnxRuntimeBackend}


def get_backend(target: Target) -> Backend:
    """The backend that serves ``target.runtime``."""
    cls = _BACKENDS.get(target.runtime)
    if cls is None:
        if target.runtime in ("openvino", "litert"):
            raise InputError(
                f"target '{target.name}' needs the {target.runtime} backend, which this edgeprune version "
                "cannot yet drive for fit; use target 'cpu'"
            )
        raise UnknownNameError("runtime", target.runtime, _BACKENDS)
    backend: Backend = cls()
    return backend


__all__ = ["Artifact", "Backend", "Session", "get_backend"]
