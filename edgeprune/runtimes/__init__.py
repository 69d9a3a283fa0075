"""The runtime wing: one folder per runtime (``onnxruntime/``, ``openvino/``, ``litert/`` ...), each holding
everything that runtime means, behind the one protocol of :mod:`edgeprune.runtimes.base`; the facts table
(:mod:`edgeprune.runtimes.table`) that every other package reads; and what runtimes share (the ONNX export and
its node labels).

A runtime's folder is imported only when the runtime is used (:func:`backend_of`), and its backend imports the
runtime's package only inside its methods, so the wing loads nothing heavy until a file is exported or run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from edgeprune.errors import UnknownNameError
from edgeprune.runtimes.base import Artifact, Backend, Session
from edgeprune.runtimes.table import (
    ARTIFACT_FORMATS,
    RUNTIME_FACTS,
    RUNTIME_NAMES,
    RuntimeFacts,
    facts_of,
    facts_of_format,
    known_runtime,
)

if TYPE_CHECKING:
    from edgeprune.target import Target


def backend_of(runtime: str) -> Backend:
    """A fresh backend of ``runtime`` (a name in the facts table), from its own folder's ``BACKEND``."""
    if not known_runtime(runtime):
        raise UnknownNameError("runtime", runtime, RUNTIME_NAMES)
    module = importlib.import_module(facts_of(runtime).package)
    backend: Backend = module.BACKEND()
    return backend


def get_backend(target: Target) -> Backend:
    """The backend that serves ``target.runtime``."""
    return backend_of(target.runtime)


def backend_for_format(fmt: str) -> Backend:
    """The backend of the runtime whose own artifact format is ``fmt``."""
    return backend_of(facts_of_format(fmt).name)


def keep_runtime_telemetry_off() -> None:
    """Keep every installed runtime's usage telemetry off unless the user opted in (call where work starts,
    before a runtime is imported; see :mod:`edgeprune.runtimes.openvino.telemetry`)."""
    from edgeprune.runtimes.openvino.telemetry import keep_openvino_telemetry_off

    keep_openvino_telemetry_off()


__all__ = ["ARTIFACT_FORMATS", "RUNTIME_FACTS", "RUNTIME_NAMES", "Artifact", "Backend", "RuntimeFacts", "Session",
           "backend_for_format", "backend_of", "facts_of", "facts_of_format", "get_backend",
           "keep_runtime_telemetry_off", "known_runtime"]
