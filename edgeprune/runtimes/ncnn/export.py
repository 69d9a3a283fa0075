"""PyTorch → ncnn with pnnx: trace, convert with pnnx's binary, keep only the ncnn files.

pnnx (``pip install pnnx``) converts a TorchScript trace. Its binary writes, besides the ncnn ``.param`` and
``.bin``, its own IR, an ONNX file and two Python scripts; the conversion runs in a temporary folder and only
the ncnn pair is moved to the destination. pnnx's own output (a page of pass names per conversion) goes to this
module's DEBUG log. Weights are stored in fp32 (pnnx's default, ``fp16=1``, stores them in fp16).

pnnx renames every layer after its kind (``convrelu_0``, ``linear_4``): a BatchNorm folded into its convolution
takes the module's name with it. The compute layers are named back after their PyTorch module paths here, by
matching the ncnn convolutions and inner products in file order against the Conv/Linear modules in the order
the model calls them (same kind, output channels, kernel, stride and groups); a layer left unmatched keeps
pnnx's name. Layer names are labels only in ncnn (blobs carry the data flow), so renaming changes nothing else.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeprune.errors import InputError, MissingRuntimeError
from edgeprune.runtimes.ncnn.param import MAX_NAME, Layer, ParamError, read_param

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: how long one pnnx conversion may take
PNNX_TIMEOUT_S = 600
_CONV_TYPES = {"Convolution", "ConvolutionDepthWise"}
_DECONV_TYPES = {"Deconvolution", "DeconvolutionDepthWise"}


def pnnx_executable() -> str:
    """The pnnx binary shipped in the ``pnnx`` wheel (``MissingRuntimeError`` when it is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise MissingRuntimeError("ncnn", "ncnn")
    for folder in spec.submodule_search_locations:  # the package's __init__ imports torch; find the binary directly
        for name in ("pnnx", "pnnx.exe"):
            candidate = Path(folder) / name
            if candidate.is_file():
                return str(candidate)
    raise MissingRuntimeError("ncnn", "ncnn")


def export_ncnn(model: nn.Module, example: torch.Tensor, param_path: Path) -> Path:
    """Write ``model`` at the example's shape to ``param_path`` and the ``.bin`` beside it; return ``param_path``."""
    import torch

    if example.dim() < 1 or example.shape[0] != 1:
        raise InputError(f"the ncnn runtime runs batch 1; the example input has shape {tuple(example.shape)}")
    executable = pnnx_executable()
    was_training = model.training
    model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="edgeprune-pnnx-") as tmp:
            work = Path(tmp)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer warnings
                calls = _compute_calls(model, example)
                try:
                    torch.jit.trace(model, example, check_trace=False).save(str(work / "model.pt"))
                except Exception as exc:
                    raise InputError(f"ncnn export: PyTorch cannot trace the model: {_first(exc)}") from None
            shape = ",".join(str(int(v)) for v in example.shape)
            _run_pnnx(executable, work, f"[{shape}]{_type_code(example)}")
            param, weights = work / "model.ncnn.param", work / "model.ncnn.bin"
            if not param.is_file() or not weights.is_file():
                raise InputError("ncnn export: pnnx wrote no ncnn files (an operator it cannot convert?); run with "
                                 "-v for its output")
            _refuse_unknown_layers(param)
            _label_compute_layers(param, calls, tuple(int(v) for v in example.shape))
            param_path = Path(param_path)
            param_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(weights), str(param_path.with_suffix(".bin")))
            shutil.move(str(param), str(param_path))
    finally:
        model.train(was_training)
    return param_path


def _refuse_unknown_layers(param: Path) -> None:
    """One line naming the operation when pnnx left one that ncnn has no layer for (it writes PyTorch's own name,
    such as ``Tensor.slice`` for strided slicing ``x[:, :, ::2, ::2]``); ncnn would refuse the whole file."""
    import ncnn

    unknown = [(layer.type, layer.name) for layer in read_param(param).layers if ncnn.layer_to_index(layer.type) < 0]
    if unknown:
        kinds = ", ".join(sorted({kind for kind, _ in unknown}))
        raise InputError(f"ncnn has no layer for {kinds} (pnnx's conversion of the model, {len(unknown)} place(s), "
                         f"first '{unknown[0][1]}'); rewrite that operation or choose another runtime")


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _type_code(example: torch.Tensor) -> str:
    import torch

    return {torch.float32: "f32", torch.float16: "f16", torch.float64: "f64"}.get(example.dtype, "f32")


def _run_pnnx(executable: str, work: Path, input_shape: str) -> None:
    """Run pnnx on ``work/model.pt``; its output goes to the DEBUG log, a failure is one line."""
    command = [executable, "model.pt", f"inputshape={input_shape}", "fp16=0", "device=cpu",
               "ncnnparam=model.ncnn.param", "ncnnbin=model.ncnn.bin"]
    try:
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, errors="replace",
                              timeout=PNNX_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"ncnn export: pnnx did not finish within {PNNX_TIMEOUT_S} s") from None
    output = (done.stdout + done.stderr).strip()
    if output:
        log.debug("pnnx output:\n%s", output)
    if done.returncode != 0:
        lines = [line for line in output.splitlines() if line.strip()]
        last = lines[-1][:200] if lines else "no output"
        raise InputError(f"ncnn export: pnnx failed (exit {done.returncode}): {last}")


def _signature_of_module(module: Any) -> tuple[Any, ...] | None:
    from torch import nn

    if isinstance(module, nn.Conv2d):
        depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        return ("dwconv" if depthwise else "conv", module.out_channels, module.kernel_size[1], module.stride[1],
                1 if depthwise else module.groups)
    if isinstance(module, nn.ConvTranspose2d):
        return ("deconv", module.out_channels, module.kernel_size[1], module.stride[1], module.groups)
    if isinstance(module, nn.Linear):
        return ("linear", module.out_features)
    return None


def _signature_of_layer(layer: Layer) -> tuple[Any, ...] | None:
    out = layer.param_int(0)
    kernel, stride, groups = layer.param_int(1, 0), layer.param_int(3, 1), layer.param_int(7, 1)
    if layer.type == "Convolution":
        return ("conv", out, kernel, stride, 1)
    if layer.type == "ConvolutionDepthWise":
        return ("dwconv", out, kernel, stride, 1) if groups == out else ("conv", out, kernel, stride, groups)
    if layer.type in _DECONV_TYPES:
        return ("deconv", out, kernel, stride, groups)
    if layer.type == "InnerProduct":
        return ("linear", out)
    return None


def _compute_calls(model: nn.Module, example: torch.Tensor) -> list[tuple[str, tuple[Any, ...]]]:
    """``(module path, signature)`` of each Conv2d/ConvTranspose2d/Linear call, in the order the model makes them."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    handles = []
    for path, module in model.named_modules():
        signature = _signature_of_module(module)
        if signature is not None:
            handles.append(module.register_forward_hook(
                lambda _m, _i, _o, path=path, signature=signature: calls.append((path, signature))))
    try:
        model(example)
    except Exception as exc:
        raise InputError(f"ncnn export: the model fails on the example input: {_first(exc)}") from None
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _label_compute_layers(param: Path, calls: list[tuple[str, tuple[Any, ...]]], shape: tuple[int, ...]) -> None:
    """Rename the compute layers of ``param`` after the module paths in ``calls`` (see the module docstring), and
    record the input's shape in its ``Input`` layer (``0=w 1=h 2=c``, as ncnn's own models do)."""
    try:
        parsed = read_param(param)
    except ParamError as exc:
        raise InputError(f"ncnn export: pnnx wrote an unreadable param file: {exc}") from None
    taken = {layer.name for layer in parsed.layers}
    used: set[str] = set()
    position, renamed, compute = 0, 0, 0
    for layer in parsed.layers:
        signature = _signature_of_layer(layer)
        if signature is None:
            continue
        compute += 1
        match = next((i for i in range(position, len(calls)) if calls[i][1] == signature), None)
        if match is None:
            continue
        path = calls[match][0]
        position = match + 1
        if not path or path in used or path in taken or len(path) > MAX_NAME or not path.isascii() \
                or any(c.isspace() for c in path):
            continue  # a module called twice (or a name pnnx already uses) keeps pnnx's name
        taken.discard(layer.name)
        layer.name = path
        used.add(path)
        taken.add(path)
        renamed += 1
    log.debug("ncnn export: %d of %d compute layers named after their PyTorch modules", renamed, compute)
    if len(shape) == 4:
        for layer in parsed.layers:
            if layer.type == "Input":
                layer.params.update({"0": str(shape[3]), "1": str(shape[2]), "2": str(shape[1])})
    param.write_text(parsed.text(), encoding="ascii")
