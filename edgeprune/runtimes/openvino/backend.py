"""OpenVINO backend: PyTorch → ONNX → OpenVINO IR (``.xml`` + ``.bin``), run and time on the target's device.

OpenVINO picks a reduced inference precision by default where the CPU supports it (bf16 on AVX-512/AMX
machines), so every compiled model here sets ``INFERENCE_PRECISION_HINT`` from the target's precision
explicitly. The device is taken literally: a device that is not present raises instead of falling back to
the CPU (``AUTO``/``MULTI`` are refused for the same reason: they may silently run elsewhere).
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeprune.errors import InputError, MissingRuntimeError
from edgeprune.runtimes.base import FLOAT_MODULE, Artifact, Backend, Int8Request, LayerPrecision, LayerTiming
from edgeprune.runtimes.onnx_export import INPUT_NAME, export_onnx
from edgeprune.runtimes.openvino.telemetry import keep_openvino_telemetry_off
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec, measure_latency

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)
keep_openvino_telemetry_off()  # before this module imports openvino (the Python API may come here first)

#: target precision → OpenVINO ``INFERENCE_PRECISION_HINT`` value
PRECISION_HINTS: dict[str, str] = {"fp32": "f32", "fp16": "f16", "bf16": "bf16",
                                   "int8": "f32"}  # an INT8 IR's quantized ops run in int8, the rest in f32


def _require_openvino() -> None:
    if importlib.util.find_spec("openvino") is None:
        raise MissingRuntimeError("OpenVINO", "openvino")


def compile_config(target: Target, profiling: bool = False) -> dict[str, Any]:
    """The compile properties for ``target``: its threads and precision, one stream, latency hint.

    >>> compile_config(Target("t", "t", "openvino"))["INFERENCE_PRECISION_HINT"]
    'f32'
    """
    hint = PRECISION_HINTS.get(target.precision)
    if hint is None:
        raise InputError(
            f"target '{target.name}': the OpenVINO backend cannot run precision '{target.precision}'; "
            f"use one of {', '.join(PRECISION_HINTS)}"
        )
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": target.threads,
        "INFERENCE_PRECISION_HINT": hint,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    if profiling:
        config["PERF_COUNT"] = True  # openvino.properties.enable_profiling
    return config


def device_available(device: str) -> bool:
    """Whether OpenVINO on this machine has ``device`` (``CPU``, ``NPU``, ``GPU`` ...)."""
    import openvino as ov

    available = list(ov.Core().available_devices)
    return device.upper() in available or device.upper() in {d.split(".")[0] for d in available}


def _compile(path: Path, target: Target, profiling: bool = False) -> Any:
    """Read ``path`` (IR or ONNX) and compile it for the target's device with :func:`compile_config`."""
    import openvino as ov

    config = compile_config(target, profiling)
    device = target.device.upper()
    core = ov.Core()
    available = list(core.available_devices)
    if device not in available and device not in {d.split(".")[0] for d in available}:
        raise InputError(
            f"OpenVINO device '{device}' (target '{target.name}') is not available on this machine; "
            f"available: {', '.join(available) or 'none'}"
        )
    try:
        model = core.read_model(str(path))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line messages
        raise InputError(f"OpenVINO cannot read {path}: {_error_line(exc)}") from None
    try:
        return core.compile_model(model, device, config)
    except Exception as exc:
        raise InputError(f"OpenVINO cannot compile {path} for device '{device}': {_error_line(exc)}") from None


def _error_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (its messages open with a stack of source locations)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from ", "Check '"))]
    return (useful or lines or [type(exc).__name__])[-1 if useful else 0]


class OpenVinoSession:
    """A compiled OpenVINO model with one reused infer request."""

    def __init__(self, path: Path, target: Target) -> None:
        self._path, self._target = path, target
        self.compiled = _compile(path, target)
        self._request = self.compiled.create_infer_request()
        self.input_names = [next(iter(i.get_names()), "") for i in self.compiled.inputs]
        log.debug(
            "OpenVINO compiled %s on %s: precision %s, %s thread(s)",
            path.name,
            target.device.upper(),
            self.compiled.get_property("INFERENCE_PRECISION_HINT"),
            self.compiled.get_property("INFERENCE_NUM_THREADS"),
        )

    def inputs(self) -> list[tuple[str, list[int]]]:
        """Each input's name and dims (-1 where dynamic)."""
        return [(name, [d.get_length() if d.is_static else -1 for d in i.get_partial_shape()])
                for name, i in zip(self.input_names, self.compiled.inputs)]

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference."""
        results = self._request.infer(dict(inputs))
        return [np.array(results[out]) for out in self.compiled.outputs]

    def time(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> LatencyStats:
        """Median/p90/CV of single-inference latency (``InferRequest.infer`` with the inputs each run)."""
        feed: dict[str, Any] = dict(inputs)
        infer = self._request.infer
        return measure_latency(lambda: infer(feed), spec)

    def profile_layers(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> list[LayerTiming]:
        """Per-node median ``real_time`` from OpenVINO's performance counters (executed nodes only), from a
        separately compiled model so that the timed session runs without profiling overhead."""
        return profile_openvino(self._path, self._target, inputs, spec)


def profile_openvino(
    path: Path, target: Target, inputs: Mapping[str, np.ndarray], spec: TimingSpec
) -> list[LayerTiming]:
    """Run ``spec.min_runs`` profiled inferences and return median per-node times (``op_type`` = node type)."""
    import openvino as ov

    compiled = _compile(path, target, profiling=True)
    request = compiled.create_infer_request()
    feed = dict(inputs)
    for _ in range(spec.warmup_runs):
        request.infer(feed)
    per_node: dict[tuple[str, str], list[float]] = {}
    for _ in range(spec.min_runs):
        request.infer(feed)
        for info in request.get_profiling_info():
            if info.status != ov.ProfilingInfo.Status.EXECUTED:
                continue
            key = (str(info.node_name), str(info.node_type))
            per_node.setdefault(key, []).append(info.real_time.total_seconds() * 1000.0)
    return [LayerTiming(name, op, float(np.median(ms))) for (name, op), ms in per_node.items()]


class OpenVinoBackend(Backend):
    """OpenVINO IR (via ONNX) executed by OpenVINO on the target's device."""

    name: ClassVar[str] = "openvino"
    artifact_format: ClassVar[str] = "openvino"
    #: an IR names its operations after the ONNX nodes it was read from but keeps no module paths
    needs_layer_nodes: ClassVar[bool] = True
    #: NNCF exports quantizers as FakeQuantize operations, which OpenVINO reads and runs as INT8 kernels
    qat_onnx_mode: ClassVar[str | None] = "fake_quantize"

    def version(self) -> str:
        """OpenVINO's version."""
        _require_openvino()
        import openvino

        return str(openvino.__version__)

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Export to ONNX (temporary), read it with OpenVINO's ONNX frontend and save the IR at
        ``out_path.with_suffix('.xml')`` (+ ``.bin``) with fp32 weights: the precision is chosen at compile
        time, not baked into the file.

        ``Core.read_model`` is used rather than ``openvino.convert_model``: the latter sends usage telemetry
        (a forked process per call, unless the user opted out) and its extra offline passes made no
        difference to outputs or compiled latency here (OpenVINO 2026.4, the CPU plugin re-fuses at compile).
        """
        _require_openvino()
        import openvino as ov

        xml = out_path.with_suffix(".xml")
        with tempfile.TemporaryDirectory(prefix="edgeprune-ov-") as tmp:
            onnx_path = export_onnx(model, example, Path(tmp) / "model.onnx")
            try:
                ov_model = ov.Core().read_model(str(onnx_path))
                ov.save_model(ov_model, str(xml), compress_to_fp16=False)
            except Exception as exc:
                raise InputError(f"OpenVINO conversion failed: {_error_line(exc)}") from None
        return Artifact(xml, self.artifact_format, INPUT_NAME, tuple(example.shape))

    def load(self, artifact: Artifact, target: Target) -> OpenVinoSession:
        """Compile an IR or ONNX artifact on the target's device with its threads and precision."""
        _require_openvino()
        if artifact.format not in self.facts.agent_formats:
            raise InputError(
                f"the OpenVINO backend cannot load a '{artifact.format}' artifact ({artifact.path}); "
                f"it reads {' and '.join(self.facts.agent_formats)}"
            )
        return OpenVinoSession(artifact.path, target)

    def device_available(self, device: str) -> bool:
        """Whether OpenVINO on this machine has ``device``."""
        return device.lower() == "cpu" or (self.available() and device_available(device))

    def quantize_file(self, fp32: Artifact, out_path: Path, images: np.ndarray, request: Int8Request) -> Artifact:
        """NNCF's post-training quantization (:mod:`edgeprune.runtimes.openvino.int8`) of an IR or ONNX file; the
        layers left in float are found by the ONNX nodes the IR was read from (``request.layer_nodes``)."""
        from edgeprune.runtimes.openvino.int8 import quantize_openvino_int8

        if request.float_layers and not request.layer_nodes:
            raise ValueError("an IR's float layers need the ONNX nodes they were read from (layer_nodes)")
        nodes = [node for node, label in (request.layer_nodes or {}).items()
                 if label in request.float_layers or label == FLOAT_MODULE]
        dest = self.staged_files(out_path, lambda staged: quantize_openvino_int8(fp32.path, staged, images, nodes))
        return Artifact(dest, self.artifact_format, fp32.input_name, fp32.input_shape)

    def describe_int8(self, calibration_images: int) -> dict[str, Any]:
        """NNCF's quantization, as the report states it."""
        return {"precision": "int8", "tool": "nncf.quantize", "format": "OpenVINO IR with FakeQuantize",
                "weights": "int8, symmetric, one scale per output channel (preset PERFORMANCE)",
                "activations": "int8, symmetric, min/max calibration", "calibration_images": calibration_images}

    def is_quantized(self, path: Path) -> bool:
        """Whether the IR holds FakeQuantize operations or 8-bit weights (anyone's)."""
        from edgeprune.runtimes.openvino.int8 import openvino_is_quantized

        return openvino_is_quantized(Path(path))

    def artifact_from_qat_onnx(self, onnx_path: Path, out_path: Path, input_shape: tuple[int, ...]) -> Artifact:
        """The IR of NNCF's FakeQuantize ONNX export (``.xml`` and ``.bin``, fp32 constants)."""
        _require_openvino()
        import openvino as ov

        def write(staged: Path) -> None:
            try:
                ov.save_model(ov.Core().read_model(str(onnx_path)), str(staged), compress_to_fp16=False)
            except Exception as exc:
                raise InputError(f"OpenVINO cannot read the quantization-aware model: {_error_line(exc)}") from None

        return Artifact(self.staged_files(out_path, write), self.artifact_format, INPUT_NAME, input_shape)

    def layer_precisions(self, path: Path) -> list[LayerPrecision]:
        """Each compute operation's precision: FakeQuantize inputs or 8-bit constants are integer."""
        from edgeprune.runtimes.openvino.layers import openvino_layers

        return openvino_layers(Path(path))

    def weight_tensors(self, path: Path) -> list[tuple[np.ndarray, Any]]:
        """Each compute operation's weight constant, with its zero point."""
        from edgeprune.runtimes.openvino.weights import openvino_weights

        return openvino_weights(Path(path))

    def check_upload(self, path: Path) -> None:
        """The IR's xml parsed by ``defusedxml``, DOCTYPE and entities refused (ONNX uploads are checked as ONNX)."""
        from edgeprune.runtimes.openvino.upload import check_ir_xml

        check_ir_xml(Path(path))
