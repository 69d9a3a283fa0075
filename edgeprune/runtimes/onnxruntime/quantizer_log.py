"""ONNX Runtime's quantizer kept off the terminal: its notes go to edgeprune's DEBUG log, in one summary line.

The quantizer writes with the module-level ``logging.warning(...)``, on the root logger: one line per tensor it
leaves alone (``Axis 1 is out-of-range for weight 'stem.1.weight' with rank 1`` for every norm weight of a
ConvNeXt: 748 lines for one model), and, when the root logger has no handler, ``logging.warning`` first calls
``basicConfig``, which would print every later warning of every library twice. Inside
:func:`quantizer_notes_to_debug` the root logger has a handler that prints nothing and a filter that takes the
root logger's own records below ERROR: they are counted and summarised at DEBUG (``-v``). Errors pass unchanged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class _Notes(logging.Filter):
    """Takes the root logger's own records below ERROR, keeping a count per message shape."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "root" or record.levelno >= logging.ERROR:
            return True
        text = record.getMessage()
        kind = text.split("'")[0].strip()  # the message without the tensor it names
        self.kinds[kind] += 1
        self.first.setdefault(kind, text)
        return False


@contextmanager
def quantizer_notes_to_debug(what: str) -> Iterator[None]:
    """Route the root logger's warnings (ONNX Runtime's quantizer's) raised in the block to one DEBUG line per
    kind of message, naming ``what`` was quantized."""
    root = logging.getLogger()
    notes, quiet = _Notes(), logging.NullHandler()
    root.addFilter(notes)
    root.addHandler(quiet)  # so that logging.warning() does not call basicConfig()
    try:
        yield
    finally:
        root.removeFilter(notes)
        root.removeHandler(quiet)
        for kind, count in notes.kinds.items():
            log.debug("ONNX Runtime's quantizer on %s: %d x %s", what, count, notes.first[kind])
