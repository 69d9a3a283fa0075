"""Ultralytics kept offline and out of the user's folders: call :func:`configure_ultralytics_offline` before
the first ``import ultralytics``.

Ultralytics reads its environment once, when it is first imported: ``YOLO_OFFLINE=1`` stops its online checks
and downloads, and ``YOLO_CONFIG_DIR`` moves its settings file from ``~/.config/Ultralytics`` into edgeprune's
cache. Set after the import, neither has any effect, so the helper warns when ultralytics is already loaded.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from edgeprune.cache import cache_dir

log = logging.getLogger(__name__)


def ultralytics_config_dir() -> Path:
    """Where Ultralytics keeps its settings under edgeprune: ``cache_dir()/ultralytics``."""
    return cache_dir() / "ultralytics"


def configure_ultralytics_offline() -> None:
    """Set ``YOLO_OFFLINE=1`` and ``YOLO_CONFIG_DIR`` (edgeprune's cache) for the coming ``import ultralytics``.

    Safe to call before every import: once set, a later call changes nothing.
    """
    config = str(ultralytics_config_dir())
    already = os.environ.get("YOLO_OFFLINE") == "1" and os.environ.get("YOLO_CONFIG_DIR") == config
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = config
    os.environ.setdefault("YOLO_VERBOSE", "False")  # its INFO lines ("Overriding model.yaml nc=80") go to stdout
    if not already and "ultralytics" in sys.modules:
        log.warning("ultralytics was imported before edgeprune set YOLO_OFFLINE and YOLO_CONFIG_DIR; "
                    "its settings stay where it put them")
