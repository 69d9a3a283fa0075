"""The agent's structural check of an uploaded ncnn model, before ncnn sees it (no torch, no ncnn).

An upload is the ``.param`` text and the ``.bin`` weights (the agent receives them as a zip of fixed member
names, ``model.ncnn.param`` and ``model.ncnn.bin``, unpacked under its own names). The ``.param`` must be ASCII,
start with the magic ``7767517``, declare plausible layer and blob counts that its lines agree with, produce
every blob it reads, and have exactly one ``Input``; the ``.bin`` must exist beside it and not be empty.
"""

from __future__ import annotations

from pathlib import Path

from edgeprune.errors import InputError
from edgeprune.runtimes.ncnn.param import ParamError, bin_path, read_param

#: the largest ``.param`` accepted (text; a 1000-layer model's is ~100 KB)
MAX_PARAM_BYTES = 16 << 20
#: the fixed member names of an upload zip, main file first
UPLOAD_MEMBERS = ("model.ncnn.param", "model.ncnn.bin")


def check_upload(path: Path) -> None:
    """Refuse (:class:`InputError`, one line) a ``.param`` at ``path`` (with its ``.bin`` beside it) that is not
    structurally an ncnn model."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise InputError(f"ncnn upload: {path.name} does not exist") from None
    if size > MAX_PARAM_BYTES:
        raise InputError(f"ncnn upload: the param file is {size} bytes; at most {MAX_PARAM_BYTES} are accepted")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head.startswith(b"7767517"):
        raise InputError("not an ncnn model: the param file does not start with the magic number 7767517 (a "
                         "binary .param.bin is not accepted)")
    try:
        graph = read_param(path)
    except ParamError as exc:
        raise InputError(f"ncnn upload: {exc}") from None
    if len(graph.input_names) != 1:
        raise InputError(f"ncnn upload: the model has {len(graph.input_names)} Input layers; edgeprune runs one")
    if not graph.output_names:
        raise InputError("ncnn upload: the model has no output blob")
    weights = bin_path(path)
    if not weights.is_file() or weights.stat().st_size == 0:
        raise InputError(f"ncnn upload: the weights file {weights.name} is missing or empty")
