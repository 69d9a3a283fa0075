"""An Ultralytics dataset ``data.yaml``: its class names and where a split's images are.

``path:`` is the dataset root (relative to the yaml's folder; the folder itself when absent); ``train:``,
``val:``, ``test:`` are a folder of images, a ``.txt`` list of image files, or a list of those, relative to the
root; ``names:`` is a list or a ``{id: name}`` mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeprune.errors import DataError


@dataclass(frozen=True)
class YoloDataYaml:
    """What edgeprune reads from a ``data.yaml``."""

    path: Path
    root: Path
    class_names: tuple[str, ...]
    splits: dict[str, tuple[Path, ...]]

    def split(self, name: str) -> tuple[Path, ...]:
        """The image folders or list files of split ``name``."""
        if name not in self.splits:
            known = ", ".join(sorted(self.splits)) or "none"
            raise DataError(f"{self.path} has no '{name}:' split (it has: {known})")
        return self.splits[name]


def _names(raw: object, where: Path) -> tuple[str, ...]:
    if isinstance(raw, (list, tuple)):
        return tuple(str(n) for n in raw)
    if isinstance(raw, dict):
        try:
            ids = sorted(int(k) for k in raw)
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'names:' keys must be integer class ids") from None
        if ids != list(range(len(ids))):
            raise DataError(f"{where}: 'names:' ids must run 0..{len(ids) - 1} without gaps, got {ids}")
        by_id = {int(k): str(v) for k, v in raw.items()}
        return tuple(by_id[i] for i in ids)
    raise DataError(f"{where}: 'names:' must be a list or a mapping of class id to name")


def read_data_yaml(path: Path) -> YoloDataYaml:
    """Parse ``path`` (a ``data.yaml``); a missing file, bad YAML or missing ``names:`` raises DataError."""
    try:
        import yaml
    except ImportError:
        raise DataError(f"reading {path} needs PyYAML: pip install 'edgeprune[yolo]'") from None
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a mapping with 'names:' and 'val:' keys")
    if "names" not in content:
        raise DataError(f"{path} has no 'names:' (the class names)")
    names = _names(content["names"], path)
    root = path.parent / str(content.get("path") or ".")
    splits: dict[str, tuple[Path, ...]] = {}
    for split in ("train", "val", "test"):
        raw = content.get(split)
        if not raw:
            continue
        entries = raw if isinstance(raw, (list, tuple)) else [raw]
        splits[split] = tuple((root / str(e)).resolve() for e in entries)
    return YoloDataYaml(path, root.resolve(), names, splits)
