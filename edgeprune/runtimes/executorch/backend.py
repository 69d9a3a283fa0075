"""ExecuTorch backend: PyTorch → ``.pte`` lowered to the XNNPACK delegate, run, timed and profiled in-process.

Export is ``torch.export.export`` → ``to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])`` →
``to_executorch()`` (:mod:`.lowering`). Sessions use the ``executorch.runtime`` API (``Runtime.get()``,
``load_program``, ``load_method("forward")``), whose pybindings import torch: inputs are handed over as torch
tensors made from the numpy arrays outside any timed call.

Threads: ExecuTorch has one thread pool per process, which XNNPACK binds at method load; see
:mod:`.threadpool` for how ``target.threads`` is honoured (pool reset before load, reload after another
session's reset).

Per-layer times come from ExecuTorch's own event tracer (ETDump, read by ``executorch.devtools.Inspector``),
which the pip wheel is built with: one event per XNNPACK runtime operator (XNNPACK's own profiler, microsecond
resolution) and one per portable kernel call.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeprune.errors import InputError, MissingRuntimeError, first_line
from edgeprune.runtimes.base import Artifact, Backend, Int8Request, LayerPrecision, LayerTiming, single_input
from edgeprune.runtimes.executorch.lowering import INPUT_NAME
from edgeprune.runtimes.executorch.threadpool import POOL
from edgeprune.runtimes.native_output import quiet_native_output
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec, measure_latency

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: ETDump events that wrap others (a delegate call, a kernel call, the whole method): left out of the layers
_WRAPPER_EVENTS = frozenset({"DELEGATE_CALL", "OPERATOR_CALL", "Method::execute", "Method::init",
                             "Program::load_method"})
_COUNTER = re.compile(r" #\d+$")


def _runtime_module() -> Any:
    """``executorch.extension.pybindings.portable_lib`` (the C++ runtime), or :class:`MissingRuntimeError`."""
    if importlib.util.find_spec("executorch") is None or importlib.util.find_spec("torch") is None:
        raise MissingRuntimeError("ExecuTorch", "executorch")
    try:
        with quiet_native_output():  # an ExperimentalWarning, and cpuinfo's notes on stderr at first use
            import executorch.extension.pybindings.portable_lib as runtime
    except ImportError:
        raise MissingRuntimeError("ExecuTorch", "executorch") from None
    return runtime


def _require_precision(target: Target) -> None:
    """A ``.pte`` runs as it was lowered: fp32, or int8 where the file was quantized (:mod:`.int8`)."""
    if target.precision not in ("fp32", "int8"):
        raise InputError(f"target '{target.name}': the ExecuTorch backend runs fp32 and int8 programs, "
                         f"not '{target.precision}'")


class ExecuTorchSession:
    """The ``forward`` method of a ``.pte`` program, on XNNPACK with the target's thread count."""

    def __init__(self, path: Path, threads: int) -> None:
        if threads < 1:
            raise InputError(f"threads must be at least 1, got {threads}")
        self._runtime = _runtime_module()
        self._path, self._threads = Path(path), threads
        self._method: Any = None
        self._generation = -1
        with POOL.lock:
            self._bind()
        meta = self._method.method_meta()
        if meta.num_inputs() != 1:
            raise InputError(f"ExecuTorch program {path} has {meta.num_inputs()} inputs; edgeprune handles one")
        self.input_name = INPUT_NAME
        self.input_shape = tuple(int(v) for v in meta.input_tensor_meta(0).sizes())

    def _load(self, enable_etdump: bool = False) -> tuple[Any, Any]:
        """A freshly loaded ``(program, method)`` (the pool lock held, the pool at this session's width)."""
        try:
            with quiet_native_output():
                program = self._runtime._load_program(str(self._path), enable_etdump=enable_etdump)  # noqa: SLF001
                method = program.load_method("forward")
        except Exception as exc:
            raise InputError(f"ExecuTorch cannot load {self._path}: {first_line(exc)}") from None
        return program, method

    def _bind(self) -> Any:
        """The method, reloaded if the pool was reset since it was loaded (call with the pool lock held)."""
        if POOL.needs_reset(self._threads):
            with quiet_native_output():  # a reset announces itself on stderr
                POOL.ensure(self._runtime, self._threads)
        generation = POOL.generation
        if generation != self._generation or self._method is None:
            self._method = None  # drop the old XNNPACK runtime before loading the new one
            self._program, self._method = self._load()
            self._generation = generation
        return self._method

    def _input_tensor(self, inputs: Mapping[str, np.ndarray]) -> torch.Tensor:
        """The single input as a contiguous float32 torch tensor of the program's shape."""
        import torch

        array = single_input(inputs, self.input_name, "ExecuTorch")
        if tuple(array.shape) != self.input_shape:
            raise InputError(f"ExecuTorch program expects input shape {self.input_shape}, got {tuple(array.shape)}")
        return torch.from_numpy(array.copy())

    def inputs(self) -> list[tuple[str, list[int]]]:
        """The input's name (a ``.pte`` keeps none: ``input``) and its shape, from the method's metadata."""
        return [(self.input_name, list(self.input_shape))]

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference on NCHW input and return the outputs as numpy arrays (PyTorch's output order)."""
        tensor = self._input_tensor(inputs)
        with POOL.lock:
            outputs = self._bind()([tensor])
        return [np.array(o.detach().numpy()) for o in outputs]

    def time(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> LatencyStats:
        """Median/p90/CV of single-inference latency: each timed call copies the input into the program's
        planned buffer and executes; outputs are not copied out. The pool lock is held throughout."""
        tensor = self._input_tensor(inputs)
        with POOL.lock:
            method = self._bind()
            args = [tensor]
            return measure_latency(lambda: method(args, False), spec)

    def profile_layers(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> list[LayerTiming]:
        """Median time per XNNPACK operator and per portable kernel call, from ExecuTorch's ETDump.

        Names are ``xnnpack@<instruction>/<XNNPACK operator> #<n>`` (``xnnpack@0/Convolution (NHWC, F32) IGEMM
        #2``: the second IGEMM convolution of the delegate called by instruction 0) and ``portable@<instruction>/
        <kernel>``; they are stable between a model and its channel-pruned copy. The file keeps no module paths
        (they would need an ETRecord written beside it), so names do not say which ``nn.Module`` a layer is.
        """
        tensor = self._input_tensor(inputs)
        with POOL.lock:
            self._bind()  # the pool at this session's width
            program, method = self._load(enable_etdump=True)
            for _ in range(spec.warmup_runs + spec.min_runs):
                method([tensor], False)
            with tempfile.TemporaryDirectory(prefix="edgeprune-etdump-") as tmp:
                etdump = Path(tmp) / "run.etdp"
                program.write_etdump_result_to_file(str(etdump), None)
                del method, program
                return _layer_timings(etdump, spec.min_runs)


def _layer_timings(etdump: Path, runs: int) -> list[LayerTiming]:
    """Median per-event times (ms) over the last ``runs`` executions recorded in ``etdump``."""
    with quiet_native_output():
        from executorch.devtools import Inspector

        inspector = Inspector(etdump_path=str(etdump))
    timings = []
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for event in block.events:
            if event.name in _WRAPPER_EVENTS or event.perf_data is None:
                continue
            instruction = getattr(event, "_instruction_id", None)
            where = "" if instruction is None else f"@{instruction}"
            if event.is_delegated_op:
                backend = (event.delegate_backend_name or "xnnpack").lower().replace("backend", "")
                name, op_type = f"{backend}{where}/{event.name}", _COUNTER.sub("", event.name)
            else:
                op_type = str(event.name).removeprefix("native_call_").removesuffix(".out")
                name = f"portable{where}/{op_type}"
            raw = [float(v) for v in event.perf_data.raw][-runs:]
            timings.append(LayerTiming(name, op_type, float(np.median(raw))))
    return timings


class ExecuTorchBackend(Backend):
    """``.pte`` programs lowered to XNNPACK and executed by ExecuTorch's C++ runtime through its pybindings."""

    name: ClassVar[str] = "executorch"
    artifact_format: ClassVar[str] = "pte"

    def available(self) -> bool:
        """Whether ``executorch`` (and torch, which its pybindings load) are importable."""
        return all(importlib.util.find_spec(m) is not None for m in ("executorch", "torch"))

    def version(self) -> str:
        """The executorch distribution's version."""
        from importlib import metadata

        try:
            return metadata.version("executorch")
        except metadata.PackageNotFoundError:
            raise MissingRuntimeError("ExecuTorch", "executorch") from None

    def export(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target) -> Artifact:
        """Lower ``model`` (eval mode) at the example's shape to ``out_path.with_suffix('.pte')``."""
        from edgeprune.runtimes.executorch.lowering import export_program, lower_to_pte

        _require_precision(target)
        path = Path(out_path).with_suffix(".pte")
        lower_to_pte(export_program(model, example), path)
        return Artifact(path, self.artifact_format, INPUT_NAME, tuple(int(v) for v in example.shape))

    def load(self, artifact: Artifact, target: Target) -> ExecuTorchSession:
        """Load a ``.pte`` artifact with the target's thread count."""
        _require_precision(target)
        if artifact.format != self.artifact_format:
            raise InputError(f"the ExecuTorch backend cannot load a '{artifact.format}' artifact "
                             f"({artifact.path}); it reads pte")
        return ExecuTorchSession(artifact.path, target.threads)

    def export_int8(self, model: nn.Module, example: torch.Tensor, out_path: Path, target: Target,
                    images: np.ndarray, request: Int8Request) -> Artifact:
        """PT2E with ExecuTorch's XNNPACK quantizer on the PyTorch model, then lowered (:mod:`.int8`); every layer
        is quantized (mixed precision is not implemented here)."""
        from edgeprune.runtimes.executorch.int8 import export_int8

        if request.float_layers:
            raise InputError("mixed precision (layers kept in float) is not implemented for ExecuTorch here")
        return export_int8(model, example, Path(out_path), target, images)

    def describe_int8(self, calibration_images: int) -> dict[str, Any]:
        """The XNNPACK quantizer's scheme, as the report states it."""
        from edgeprune.runtimes.executorch.int8 import describe_int8

        return describe_int8(calibration_images)

    def is_quantized(self, path: Path) -> bool:
        """Whether the program's XNNPACK graphs hold int8 tensors."""
        from edgeprune.runtimes.executorch.int8 import is_quantized

        return is_quantized(Path(path))

    def layer_precisions(self, path: Path) -> list[LayerPrecision]:
        """Each XNNPACK convolution and linear node's precision, from the delegate graph's tensor types."""
        from edgeprune.runtimes.executorch.layers import layer_precisions

        return layer_precisions(Path(path))

    def weight_tensors(self, path: Path) -> list[tuple[np.ndarray, Any]]:
        """Each compute node's stored weights, read from the delegate's constant data."""
        from edgeprune.runtimes.executorch.layers import weight_tensors

        return weight_tensors(Path(path))

    def check_upload(self, path: Path) -> None:
        """The flatbuffer identifier, root offset and extended header against the file size (:mod:`.upload`)."""
        from edgeprune.runtimes.executorch.upload import check_upload

        check_upload(Path(path))
