"""Torch-Pruning's warnings sent to edgeprune's log instead of the terminal.

Torch-Pruning warns with :func:`warnings.warn` about what it decides on its own (``Unwrapped parameters
detected: [...]`` for a layer scale such as ConvNeXt's ``gamma``, unknown ops it treats as element-wise).
They are notes for a developer, not for the person running a fit, and edgeprune's graph already names what it
freezes and why; inside :func:`torch_pruning_warnings` each one goes to the DEBUG log (``-v`` shows it), once.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def torch_pruning_warnings() -> Iterator[None]:
    """Route the warnings raised inside the block to edgeprune's DEBUG log; other code's warnings are unchanged
    outside it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen: set[str] = set()
    for warning in caught:
        text = " ".join(str(warning.message).split())
        if text not in seen:
            seen.add(text)
            log.debug("Torch-Pruning: %s (%s:%d)", text, warning.filename, warning.lineno)
