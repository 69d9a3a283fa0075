"""How an image folder's class subfolders become class indices, so that labels mean what the model's outputs mean.

Four rules, the first that applies wins (:func:`folder_labels`):

1. a class map (``--class-map FILE``, :func:`read_class_map`): each folder's index as the file says;
2. every folder an ImageNet WordNet id (``n01440764``) and the model has ImageNet-1k's 1000 classes: the id's
   place in the sorted list of the 1000 ids (``imagenet_wnids.txt``, shipped with edgeprune, taken from timm's
   ``imagenet_synsets.txt``), which is torchvision's and timm's class order;
3. every folder an integer (``129``): that integer is the class index;
4. otherwise the folders in sorted order are classes 0..K-1, as torchvision's ``ImageFolder`` numbers them.

The model's class count comes from the caller (the data layer does not build models): it bounds rules 1 and 3
(an index beyond it is one line naming the folder) and gates rule 2. None means unknown: rules 2 and 3 then go
by the names alone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from edgeprune.errors import DataError, InputError

log = logging.getLogger(__name__)

#: the 1000 ImageNet-1k WordNet ids, sorted (class i of torchvision's and timm's ImageNet models is line i)
WNID_FILE = "imagenet_wnids.txt"
IMAGENET_CLASSES = 1000
_WNID = re.compile(r"n[0-9]{8}")
_INDEX = re.compile(r"[0-9]+")
#: folder names quoted in an error line, at most
_NAMED = 3


@dataclass(frozen=True)
class ClassMap:
    """Folder name -> class index, read from ``source`` (:func:`read_class_map`)."""

    indices: Mapping[str, int]
    source: str


@dataclass(frozen=True)
class LabelNaming:
    """What decides a class folder's index: the model's class count (None: unknown) and an optional class map."""

    num_classes: int | None = None
    class_map: ClassMap | None = None


@dataclass(frozen=True)
class FolderLabels:
    """The class index of each folder (in the order given), the rule that gave them, and the names by index.

    ``class_names[i]`` names class ``i`` under the sorted-order rule; under the other rules the indices are the
    model's own and ``class_names`` is empty.
    """

    indices: tuple[int, ...]
    rule: str
    description: str
    class_names: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (sorted; ``n01440764`` is class 0, tench)."""
    text = resources.files("edgeprune.data").joinpath(WNID_FILE).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def folder_labels(folders: Sequence[str], naming: LabelNaming, where: str) -> FolderLabels:
    """The class index of each of ``folders`` (the class subfolders of ``where``) by the first rule that applies
    (see the module's docstring); raises :class:`~edgeprune.errors.DataError` naming the folder when a folder is
    missing from the class map or names an index the model does not have."""
    k = naming.num_classes
    if naming.class_map is not None:
        return _mapped(folders, naming.class_map, k, where)
    if folders and all(_WNID.fullmatch(name) for name in folders):
        wnids = {w: i for i, w in enumerate(imagenet_wnids())}
        unknown = [name for name in folders if name not in wnids]
        if k in (None, IMAGENET_CLASSES) and not unknown:
            return FolderLabels(tuple(wnids[name] for name in folders), "wordnet",
                                f"{len(folders)} folders named by ImageNet WordNet id -> ImageNet-1k class indices "
                                "(torchvision's and timm's order)")
        why = (f"{_quoted(unknown)} not among ImageNet-1k's 1000 classes" if unknown else
               f"the model has {k} classes, not ImageNet-1k's {IMAGENET_CLASSES}")
        if unknown and k in (None, IMAGENET_CLASSES):  # an ImageNet model, but these folders are not its classes
            log.warning("%s: the class folders are named by WordNet id, but %s: they are numbered in sorted order, "
                        "which does not match an ImageNet-1k model's classes; pass --class-map FILE", where, why)
        return _sorted(folders, f"folders named by WordNet id, but {why}")
    if folders and all(_INDEX.fullmatch(name) for name in folders):
        indices = tuple(int(name) for name in folders)
        beyond = [name for name, i in zip(folders, indices, strict=True) if k is not None and i >= k]
        if beyond:
            raise DataError(f"{where}: class folder {_quoted(beyond)} is read as a class index (folders named by "
                            f"integers are class indices), but the model has {k} classes (0..{k - 1}); rename the "
                            "folders or pass --class-map FILE")
        return FolderLabels(indices, "index", f"{len(folders)} folders named by class index -> that index")
    return _sorted(folders, "")


def _sorted(folders: Sequence[str], why: str) -> FolderLabels:
    """Rule 4: the folders in sorted order are classes 0..K-1."""
    names = tuple(sorted(folders))
    order = {name: i for i, name in enumerate(names)}
    text = f"{len(folders)} folders in sorted order -> classes 0..{len(folders) - 1}"
    return FolderLabels(tuple(order[name] for name in folders), "sorted", f"{text} ({why})" if why else text, names)


def _mapped(folders: Sequence[str], class_map: ClassMap, k: int | None, where: str) -> FolderLabels:
    """Rule 1: each folder's index from the class map, every folder in it and within the model's classes."""
    missing = [name for name in folders if name not in class_map.indices]
    if missing:
        raise DataError(f"{where}: class folder {_quoted(missing)} is not in the class map {class_map.source} "
                        f"(it maps {len(class_map.indices)} folders); add a line 'FOLDER INDEX' for each")
    beyond = [name for name in folders if k is not None and class_map.indices[name] >= k]
    if beyond:
        raise DataError(f"class map {class_map.source}: folder '{beyond[0]}' maps to class "
                        f"{class_map.indices[beyond[0]]}, but the model has {k} classes (0..{k - 1})")
    return FolderLabels(tuple(class_map.indices[name] for name in folders), "class-map",
                        f"{len(folders)} folders mapped by the class map {class_map.source}")


def _quoted(names: Sequence[str]) -> str:
    """``'a'``, ``'a', 'b'`` or ``'a', 'b', 'c' (and 4 more)``."""
    shown = ", ".join(f"'{name}'" for name in names[:_NAMED])
    return shown + (f" (and {len(names) - _NAMED} more)" if len(names) > _NAMED else "")


def read_class_map(path: str | Path) -> ClassMap:
    """A class map file: a JSON object ``{"folder": index}`` (a ``.json`` file, or any file starting with ``{``),
    or text with one ``folder index`` or ``folder,index`` per line (blank lines and ``#`` comments skipped; the
    index is the last field, so folder names may hold spaces). Anything else is one
    :class:`~edgeprune.errors.InputError` line naming the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"class map not found: {path}") from None
    except UnicodeDecodeError:
        raise InputError(f"class map {path} is not UTF-8 text (expected 'FOLDER INDEX' lines or a JSON object)") from None
    except OSError as exc:
        raise InputError(f"cannot read class map {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        indices = _json_entries(text, path)
    else:
        indices = _line_entries(text, path)
    if not indices:
        raise InputError(f"class map {path} maps no folder: expected lines 'FOLDER INDEX' (or 'FOLDER,INDEX') or a "
                         'JSON object {"FOLDER": INDEX}')
    return ClassMap(indices, str(path))


def _json_entries(text: str, path: Path) -> dict[str, int]:
    """A JSON object's folder -> index entries, each index an integer >= 0 and each folder once."""
    try:
        pairs = json.loads(text, object_pairs_hook=lambda items: items)
    except json.JSONDecodeError as exc:
        raise InputError(f"class map {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(pairs, list) or (pairs and not isinstance(pairs[0], tuple)):
        raise InputError(f'class map {path}: expected a JSON object {{"FOLDER": INDEX}}, got {type(pairs).__name__}')
    indices: dict[str, int] = {}
    for folder, value in pairs:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"class map {path}: '{folder}' maps to {json.dumps(value)}, expected a class index "
                             "(an integer >= 0)")
        _add(indices, folder, value, f"class map {path}")
    return indices


def _line_entries(text: str, path: Path) -> dict[str, int]:
    """``folder index`` or ``folder,index`` lines; blank lines and ``#`` comments skipped."""
    indices: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "," in line:
            folder, _, index = line.rpartition(",")
        else:
            folder, index = _split_last(line)
        folder, index = folder.strip(), index.strip()
        if not folder or not _INDEX.fullmatch(index):
            raise InputError(f"class map {path}, line {number}: expected 'FOLDER INDEX' or 'FOLDER,INDEX' with "
                             f"an integer index >= 0, got {line!r}")
        _add(indices, folder, int(index), f"class map {path}, line {number}")
    return indices


def _split_last(line: str) -> tuple[str, str]:
    """(everything before the last whitespace-separated field, that field)."""
    parts = line.rsplit(None, 1)
    return (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])


def _add(indices: dict[str, int], folder: str, index: int, where: str) -> None:
    """One entry; the same folder twice is refused unless both say the same index."""
    if folder in indices and indices[folder] != index:
        raise InputError(f"{where}: folder '{folder}' is mapped twice ({indices[folder]} and {index})")
    indices[folder] = index
