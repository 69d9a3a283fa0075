"""Targets: where a model will run (runtime, device, threads, precision), loaded from TOML files.

Built-in targets ship inside the package (``edgeprune/targets/*.toml``) so that an installed edgeprune
finds them without a source checkout; the architecture guide's top-level ``targets/`` folder would not
be installed by pip. A user may also pass the path of their own TOML file.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from edgeprune.errors import InputError, MissingRuntimeError, UnknownNameError
from edgeprune.runtimes.table import RUNTIME_NAMES, facts_of, known_runtime

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
LATENCY_SOURCES = ("measured-local", "measured-agent", "predicted-profile")


@dataclass(frozen=True)
class Target:
    """A deployment target.

    Attributes:
        name: short name, e.g. ``"cpu"``.
        description: one line for humans.
        runtime: a runtime of the facts table (:mod:`edgeprune.runtimes.table`), e.g. ``"onnxruntime"``.
        device: the runtime's device name (``"cpu"``, ``"NPU"`` ...).
        threads: intra-op threads used when timing.
        precision: inference precision the runtime is told to use.
        channel_alignment: pruned widths are rounded to a multiple of this (1 = any width).
        latency_source: where this target's latencies come from.
        input_shape: optional default input shape (C, H, W) for models that do not carry one.
        profile: name of the shipped latency profile (``edgeprune/profiles``) used when latencies cannot be
            measured (``latency_source = "predicted-profile"``).
        precisions: the precisions edgeprune can ship for this target (``--precision``); ``precision`` is
            the default and always among them.
        runtimes: every runtime the device runs (``runtime`` among them, first); a target listing several has
            its runtime chosen by measurement by default (``--runtime auto``, :mod:`edgeprune.fit.runtime_choice`).

    >>> load_target("cpu").runtime
    'onnxruntime'
    """

    name: str
    description: str
    runtime: str
    device: str = "cpu"
    threads: int = 1
    precision: str = "fp32"
    channel_alignment: int = 1
    latency_source: str = "measured-local"
    input_shape: tuple[int, ...] | None = None
    profile: str | None = None
    precisions: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.precision not in self.precisions:
            object.__setattr__(self, "precisions", (self.precision, *self.precisions))
        if self.runtimes and self.runtime not in self.runtimes:
            object.__setattr__(self, "runtimes", (self.runtime, *self.runtimes))

    @property
    def float_precision(self) -> str:
        """The float precision this target runs unquantized models at (``fp32``, or ``fp16`` on an NPU)."""
        return next((p for p in self.precisions if p != "int8"), "fp32")

    def with_precision(self, precision: str | None) -> "Target":
        """This target at ``precision`` (None: unchanged); one clear line when the target does not offer it."""
        if precision is None or precision == self.precision:
            return self
        if precision not in self.precisions:
            raise InputError(f"target '{self.name}' offers precision {', '.join(self.precisions)}, not {precision} "
                             "(the precisions line of its TOML; 'edgeprune targets' lists them)")
        return dataclasses.replace(self, precision=precision)

    def runtime_installed(self) -> bool:
        """Whether the Python package of this target's runtime can be imported here."""
        module = facts_of(self.runtime).module
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken install, or a module entry without a spec
            return False

    def require_runtime(self) -> None:
        """Raise :class:`~edgeprune.errors.MissingRuntimeError`, naming the pip extra, when the runtime is absent.

        Commands call this before any work, so a missing optional runtime is reported at once rather than
        at the first export or measurement.
        """
        if not self.runtime_installed():
            facts = facts_of(self.runtime)
            raise MissingRuntimeError(facts.title, facts.extra)


def _builtin_dir() -> Any:
    return resources.files("edgeprune").joinpath("targets")


def builtin_target_names() -> list[str]:
    """Names of the targets shipped with edgeprune."""
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def _from_mapping(data: dict[str, Any], origin: str) -> Target:
    known = {f.name for f in fields(Target)}
    unknown = set(data) - known
    if unknown:
        raise InputError(f"target file {origin}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "runtime"):
        if key not in data:
            raise InputError(f"target file {origin}: missing required key '{key}'")
    data = dict(data)
    data.setdefault("description", data["name"])
    if data.get("latency_source") == "predicted-profile" and not data.get("profile"):
        raise InputError(f"target file {origin}: latency_source 'predicted-profile' needs a 'profile' name")
    for key in ("name", "runtime", "description", "device", "precision", "latency_source", "profile"):
        if key in data and not isinstance(data[key], str):
            raise InputError(f"target file {origin}: '{key}' must be a string, got {data[key]!r}")
    if not known_runtime(data["runtime"]):
        raise InputError(
            f"target file {origin}: runtime '{data['runtime']}' is not one of {', '.join(RUNTIME_NAMES)}"
        )
    if data.get("precision", "fp32") not in PRECISIONS:
        raise InputError(f"target file {origin}: precision must be one of {', '.join(PRECISIONS)}")
    if "precisions" in data:
        offered = data["precisions"]
        if not isinstance(offered, list) or not offered or not all(p in PRECISIONS for p in offered):
            raise InputError(f"target file {origin}: 'precisions' must be a list drawn from {', '.join(PRECISIONS)}")
        data["precisions"] = tuple(offered)
    if "runtimes" in data:
        listed = data["runtimes"]
        if not isinstance(listed, list) or not listed or not all(isinstance(r, str) and known_runtime(r)
                                                                  for r in listed):
            raise InputError(f"target file {origin}: 'runtimes' must be a list drawn from {', '.join(RUNTIME_NAMES)}")
        data["runtimes"] = tuple(listed)
    if data.get("latency_source", "measured-local") not in LATENCY_SOURCES:
        raise InputError(f"target file {origin}: latency_source must be one of {', '.join(LATENCY_SOURCES)}")
    for key in ("threads", "channel_alignment"):
        value = data.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"target file {origin}: '{key}' must be a positive integer, got {value!r}")
    if data.get("input_shape") is not None:
        shape = data["input_shape"]
        if not isinstance(shape, list) or len(shape) != 3 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape
        ):
            raise InputError(f"target file {origin}: 'input_shape' must be three positive integers [C, H, W]")
        data["input_shape"] = tuple(shape)
    return Target(**data)


def load_target(name_or_path: str | Path) -> Target:
    """Load a built-in target by name, or a target TOML file by path.

    Names come first: a folder or file in the working directory that happens to be called ``cpu`` does not
    shadow the built-in target. Text is read as a path only when it looks like one (ends in ``.toml`` or holds
    a path separator), or when it names an existing file and no built-in target.
    """
    text = str(name_or_path)
    path = Path(text)
    names = builtin_target_names()
    looks_like_path = text.endswith(".toml") or "/" in text or (os.sep in text) or isinstance(name_or_path, Path)
    if looks_like_path or (text not in names and path.is_file()):
        if not path.is_file():
            raise InputError(f"target file not found: {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"target file {path} is not valid TOML: {exc}") from None
        return _from_mapping(data, str(path))
    if text not in names:
        raise UnknownNameError("target", text, names)
    resource = _builtin_dir().joinpath(f"{text}.toml")
    return _from_mapping(tomllib.loads(resource.read_text(encoding="utf-8")), f"{text}.toml")


def all_targets() -> list[Target]:
    """Every built-in target."""
    return [load_target(n) for n in builtin_target_names()]
