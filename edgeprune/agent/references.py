"""The references an agent keeps for paired measurements: checked uploads it holds between requests.

A client uploads the original's artifact once with ``keep_as_reference``; the agent keeps the checked files
in its private directory under the SHA-256 of the bytes it received, and times later uploads against it
(``pair_with``). At most :data:`MAX_REFERENCES` are kept (the oldest goes first); all go when the agent stops.
"""

from __future__ import annotations

import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from edgeprune.agent.protocol import MeasureRequest

#: references held at once (one fit needs one; two let a second client pair without evicting the first)
MAX_REFERENCES = 2


@dataclass(frozen=True)
class KeptReference:
    """A reference's folder, the file the runtime loads, and the request that described it."""

    folder: Path
    model_path: Path
    request: MeasureRequest


class References:
    """The kept references, by id (thread-safe)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, KeptReference] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, reference_id: str) -> KeptReference | None:
        """The reference ``reference_id``, or None when this agent does not hold it."""
        with self._lock:
            kept = self._kept.get(reference_id)
            if kept is not None:
                self._kept.move_to_end(reference_id)
            return kept

    def keep(self, reference_id: str, folder: Path, model_path: Path, request: MeasureRequest) -> None:
        """Hold ``folder`` (the checked upload) as ``reference_id``; the oldest goes beyond MAX_REFERENCES."""
        with self._lock:
            dropped = [self._kept.pop(reference_id)] if reference_id in self._kept else []
            self._kept[reference_id] = KeptReference(folder, model_path, request)
            while len(self._kept) > MAX_REFERENCES:
                dropped.append(self._kept.popitem(last=False)[1])
        for old in dropped:
            shutil.rmtree(old.folder, ignore_errors=True)

    def clear(self) -> None:
        """Forget (and delete) every reference."""
        with self._lock:
            dropped = list(self._kept.values())
            self._kept.clear()
        for old in dropped:
            shutil.rmtree(old.folder, ignore_errors=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)
