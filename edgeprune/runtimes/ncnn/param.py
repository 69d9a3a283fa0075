"""Reading and writing ncnn's text ``.param`` files (no ncnn, no torch).

A ``.param`` file is ``7767517`` (the magic), then ``<layer count> <blob count>``, then one line per layer::

    <type> <name> <bottom count> <top count> <bottom blobs...> <top blobs...> <id>=<value>...

An array parameter is written with a negative id, ``-23303=<n>,<v1>,...``. Blobs are produced once and named
by the layers; pnnx names the model's inputs ``in0, in1 ...`` and its outputs ``out0, out1 ...`` in PyTorch's
order. The weights live in the ``.bin`` file beside it (``model.ncnn.param`` → ``model.ncnn.bin``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = "7767517"
#: ncnn reads a layer's type and name with ``%255s``
MAX_NAME = 255
#: bounds a sane file stays within (ncnn itself allocates by the declared counts)
MAX_LAYERS = 100_000
MAX_BLOBS = 200_000
#: the layer types that hold a model's convolutions and matrix products
COMPUTE_TYPES = frozenset({
    "Convolution", "ConvolutionDepthWise", "Convolution1D", "Convolution3D", "ConvolutionDepthWise1D",
    "ConvolutionDepthWise3D", "Deconvolution", "DeconvolutionDepthWise", "Deconvolution1D", "Deconvolution3D",
    "DeconvolutionDepthWise1D", "DeconvolutionDepthWise3D", "InnerProduct", "Gemm", "MatMul",
})


class ParamError(ValueError):
    """The text is not a well-formed ncnn ``.param`` file."""


@dataclass
class Layer:
    """One layer line: type, name, input and output blob names, and its ``id=value`` parameters (as text)."""

    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[str, str] = field(default_factory=dict)

    def param_int(self, key: int, default: int = 0) -> int:
        """An integer parameter by id (``default`` where absent or not an integer)."""
        try:
            return int(self.params.get(str(key), default))
        except ValueError:
            return default

    def line(self) -> str:
        """The layer as a ``.param`` line."""
        parts = [f"{self.type:<24} {self.name:<24} {len(self.bottoms)} {len(self.tops)}", *self.bottoms, *self.tops,
                 *(f"{k}={v}" for k, v in self.params.items())]
        return " ".join(parts)


@dataclass
class ParamFile:
    """A parsed ``.param`` file."""

    layers: list[Layer]
    blob_count: int

    @property
    def input_names(self) -> list[str]:
        """The blobs of the ``Input`` layers, in file order."""
        return [top for layer in self.layers if layer.type == "Input" for top in layer.tops]

    @property
    def output_names(self) -> list[str]:
        """Blobs no layer reads: pnnx's ``out0, out1 ...`` in their numbered order (PyTorch's), else file order."""
        consumed = {blob for layer in self.layers for blob in layer.bottoms}
        outputs = [top for layer in self.layers for top in layer.tops if top not in consumed]
        numbered = [re.fullmatch(r"out(\d+)", name) for name in outputs]
        if all(numbered):
            return sorted(outputs, key=lambda name: int(name[3:]))
        return outputs

    def text(self) -> str:
        """The file's text."""
        return "\n".join([MAGIC, f"{len(self.layers)} {self.blob_count}", *(layer.line() for layer in self.layers)]) \
            + "\n"


def parse_param(text: str) -> ParamFile:
    """Parse ``.param`` text; :class:`ParamError` (one line) when it is not one."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != MAGIC:
        raise ParamError(f"not an ncnn param file: the first line is not the magic number {MAGIC}")
    try:
        layer_count, blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise ParamError("not an ncnn param file: the second line is not '<layer count> <blob count>'") from None
    if not (0 < layer_count <= MAX_LAYERS and 0 < blob_count <= MAX_BLOBS):
        raise ParamError(f"implausible ncnn param file: {layer_count} layers, {blob_count} blobs")
    if len(lines) - 2 != layer_count:
        raise ParamError(f"ncnn param file declares {layer_count} layers but has {len(lines) - 2} layer lines")
    layers = [_parse_layer(line, number) for number, line in enumerate(lines[2:], start=3)]
    produced = [top for layer in layers for top in layer.tops]
    if len(set(produced)) > blob_count:
        raise ParamError(f"ncnn param file declares {blob_count} blobs but its layers produce {len(set(produced))}")
    known = set(produced)
    for layer in layers:
        missing = [blob for blob in layer.bottoms if blob not in known]
        if missing:
            raise ParamError(f"ncnn param layer '{layer.name}' reads blob '{missing[0]}' that no layer produces")
    return ParamFile(layers, blob_count)


def _parse_layer(line: str, number: int) -> Layer:
    parts = line.split()
    try:
        kind, name, n_bottom, n_top = parts[0], parts[1], int(parts[2]), int(parts[3])
    except (IndexError, ValueError):
        raise ParamError(f"ncnn param line {number} is not '<type> <name> <bottoms> <tops> ...'") from None
    if n_bottom < 0 or n_top < 0 or len(parts) < 4 + n_bottom + n_top or max(len(kind), len(name)) > MAX_NAME:
        raise ParamError(f"ncnn param line {number} ('{name[:40]}') is malformed")
    blobs = parts[4 : 4 + n_bottom + n_top]
    params = {}
    for item in parts[4 + n_bottom + n_top :]:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"-?\d+", key):
            raise ParamError(f"ncnn param line {number} ('{name[:40]}') has a malformed parameter '{item[:40]}'")
        params[key] = value
    return Layer(kind, name, blobs[:n_bottom], blobs[n_bottom:], params)


def read_param(path: Path) -> ParamFile:
    """Parse the ``.param`` file at ``path`` (:class:`ParamError` when it is not one)."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ParamError("not an ncnn param file: it is not ASCII text") from None
    return parse_param(text)


def bin_path(param_path: Path) -> Path:
    """The weights file beside a ``.param`` file: ``model.ncnn.param`` → ``model.ncnn.bin``."""
    return Path(param_path).with_suffix(".bin")
