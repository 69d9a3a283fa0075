"""Optional ONNX simplification with onnxsim, kept only when it succeeds and leaves the outputs unchanged.

onnxsim folds constants and removes redundant nodes. It is an optional dependency, and on some graphs it
fails or (rarely) changes results; in every such case the unsimplified file is kept and the reason goes to
the DEBUG log, never to the terminal.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: simplified and original outputs must agree within this (relative to the output scale, floored at 1)
SIMPLIFY_RTOL = 1e-5
_CHECK_INPUTS = 2


def _run_onnx(model_bytes: bytes, inputs: list[np.ndarray]) -> list[list[np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [[np.asarray(o) for o in session.run(None, {name: x})] for x in inputs]


def _same_outputs(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> bool:
    for outs_a, outs_b in zip(a, b):
        if len(outs_a) != len(outs_b):
            return False
        for x, y in zip(outs_a, outs_b):
            if x.shape != y.shape:
                return False
            scale = max(1.0, float(np.abs(x).max()) if x.size else 1.0)
            if x.size and float(np.abs(x.astype(np.float64) - y).max()) > SIMPLIFY_RTOL * scale:
                return False
    return True


def simplify_onnx(path: Path, example: np.ndarray, seed: int = 0) -> bool:
    """Simplify the ONNX file at ``path`` in place when onnxsim is installed, succeeds, and the simplified graph
    gives the same outputs as the original on ``example`` and a random input of its shape (ONNX Runtime).

    Returns whether the file was replaced by the simplified graph.
    """
    if importlib.util.find_spec("onnxsim") is None or importlib.util.find_spec("onnxruntime") is None:
        log.debug("onnxsim is not installed; %s left unsimplified", path.name)
        return False
    import onnx

    original = Path(path).read_bytes()
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import onnxsim

            simplified, ok = onnxsim.simplify(onnx.load_from_string(original), check_n=0)
            if not ok:
                raise RuntimeError("onnxsim reported that its check failed")
            onnx.checker.check_model(simplified)
            new_bytes = simplified.SerializeToString()
            rng = np.random.default_rng(seed)
            inputs = [np.ascontiguousarray(example, dtype=np.float32)]
            inputs += [rng.standard_normal(example.shape).astype(np.float32) for _ in range(_CHECK_INPUTS - 1)]
            same = _same_outputs(_run_onnx(original, inputs), _run_onnx(new_bytes, inputs))
    except Exception as exc:  # onnxsim raises many types (and C++ errors); the unsimplified file stays
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.debug("onnxsim could not simplify %s (%s); keeping the exported graph. Output:\n%s",
                  path.name, first, captured.getvalue())
        return False
    if not same:
        log.debug("onnxsim changed the outputs of %s; keeping the exported graph", path.name)
        return False
    Path(path).write_bytes(new_bytes)
    log.debug("onnxsim simplified %s (outputs unchanged)", path.name)
    return True
