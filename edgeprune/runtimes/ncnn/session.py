"""A loaded ncnn model: run, time and per-layer profile on the CPU, in fp32, with the target's threads.

ncnn's CPU defaults store and compute in fp16 where the CPU has fp16 arithmetic (Armv8.2 cores such as the
Raspberry Pi 5's Cortex-A76) and in bf16 where asked; every one of those options is switched off here, so a float
model runs in fp32 as ONNX Runtime runs it, and Vulkan is off. An INT8 ``.param`` (``int8_scale_term``) would
still run in int8 (``use_int8_inference`` stays on).

An extractor caches the blobs it computed, so each inference uses a fresh one (creating it costs about 2 µs,
measured against 80 µs for the smallest test model: see the package's facts.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import InputError, MissingRuntimeError
from edgeprune.runtimes.base import LayerTiming, single_input
from edgeprune.runtimes.ncnn.param import ParamError, ParamFile, bin_path, read_param
from edgeprune.timing import LatencyStats, TimingSpec, measure_latency

log = logging.getLogger(__name__)

#: ``Extractor.extract``'s type: 1 keeps the blob in the layout the next layer reads (packed, fp32 here)
_RAW = 1


def import_ncnn() -> Any:
    """The ``ncnn`` module, or :class:`MissingRuntimeError` naming the extra."""
    try:
        import ncnn
    except ImportError:
        raise MissingRuntimeError("ncnn", "ncnn") from None
    return ncnn


class NcnnSession:
    """An ``ncnn.Net`` on the CPU, fp32, ``threads`` threads, for a model with one input."""

    def __init__(self, param_path: Path, threads: int) -> None:
        ncnn = import_ncnn()
        self._ncnn = ncnn
        param_path = Path(param_path)
        try:
            self.graph: ParamFile = read_param(param_path)
        except (OSError, ParamError) as exc:
            raise InputError(f"ncnn cannot load {param_path}: {exc}") from None
        weights = bin_path(param_path)
        if not weights.is_file():
            raise InputError(f"ncnn cannot load {param_path}: its weights {weights.name} are not beside it")
        inputs = self.graph.input_names
        if len(inputs) != 1:
            raise InputError(f"ncnn model {param_path} has {len(inputs)} inputs; edgeprune handles one")
        self.input_name = inputs[0]
        self.output_names = self.graph.output_names
        net = ncnn.Net()
        opt = net.opt
        opt.num_threads = int(threads)
        opt.use_vulkan_compute = False
        for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage",
                       "use_bf16_packed"):
            if hasattr(opt, option):
                setattr(opt, option, False)
        if net.load_param(str(param_path)) != 0 or net.load_model(str(weights)) != 0:
            raise InputError(f"ncnn cannot load {param_path} with {weights.name} (the files do not match or are "
                             "damaged)")
        self._net = net
        self._threads = int(threads)

    def _input_mat(self, inputs: Mapping[str, np.ndarray]) -> Any:
        """The single input as an owned ``ncnn.Mat`` (CHW: the batch of 1 dropped)."""
        array = single_input(inputs, self.input_name, "ncnn")
        if array.ndim < 2 or array.shape[0] != 1:
            raise InputError(f"ncnn runs batch 1; got an input of shape {tuple(array.shape)}")
        return self._ncnn.Mat(np.ascontiguousarray(array[0])).clone()  # a copy ncnn owns, not numpy's memory

    def _extract_all(self, mat: Any) -> list[Any]:
        extractor = self._net.create_extractor()
        extractor.input(self.input_name, mat)
        mats = []
        for name in self.output_names:
            status, out = extractor.extract(name)
            if status != 0:
                raise InputError(f"ncnn failed computing output '{name}' (status {status})")
            mats.append(out)
        return mats

    def inputs(self) -> list[tuple[str, list[int]]]:
        """The input's name and NCHW dims, from its ``Input`` layer's ``0=w 1=h 2=c`` (-1 where not recorded)."""
        layer = next(layer for layer in self.graph.layers if layer.type == "Input")
        dims = [layer.param_int(key, -1) or -1 for key in (2, 1, 0)]
        return [(self.input_name, [1, *dims])]

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One inference on NCHW input (batch 1); outputs with the batch axis restored, in PyTorch's order."""
        return [np.array(out, dtype=np.float32)[np.newaxis] for out in self._extract_all(self._input_mat(inputs))]

    def time(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> LatencyStats:
        """Median/p90/CV of one inference: a fresh extractor, the input set, every output extracted (the input
        is converted before timing; reading outputs into numpy is not timed)."""
        mat = self._input_mat(inputs)
        return measure_latency(lambda: self._extract_all(mat), spec)

    def profile_layers(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> list[LayerTiming]:
        """Per-layer median times, each layer run alone on its own inputs (see :mod:`.profile`)."""
        from edgeprune.runtimes.ncnn.profile import profile_layers

        return profile_layers(self._net, self.graph, self.input_name, self._input_mat(inputs), spec)
