"""A pretrained ImageNet model scores on ImageNet-style folders as it should, through fit's own data loading.

The 20 ImageNet samples of ../shared/data (label = the last number of the file name) are laid out as an
ImageNet folder would be: one subfolder per class, named by WordNet id, by class index, by a name a class map
maps, or by a name nothing maps (sorted order: the labels are wrong, and the fit says so).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from edgeprune.config import FitConfig
from edgeprune.data.class_folders import imagenet_wnids
from edgeprune.fit.inputs import resolve_inputs
from edgeprune.fit.labels import check_labels_early
from edgeprune.target import load_target

SAMPLES = "samples/imagenet_foolbox"
WEIGHTS = "models/imagenet/mobilenet_v2-b0353104.pth"


def _samples(shared: Path) -> list[tuple[Path, int]]:
    folder = shared / SAMPLES
    if not folder.is_dir() or not (shared / WEIGHTS).is_file():
        pytest.skip(f"needs the ImageNet samples in {folder} and {shared / WEIGHTS}; not present here")
    return [(p, int(p.stem.split("_")[-1])) for p in sorted(folder.glob("*.jpg"))]


def _lay_out(samples: list[tuple[Path, int]], root: Path, name_of: dict[int, str]) -> Path:
    """The samples copied into ``root/<name_of[label]>/``."""
    for path, label in samples:
        (root / name_of[label]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / name_of[label] / path.name)
    return root


#: layout -> (what the log says of the folders, whether a class map names them). The quick tier runs the WordNet
#: ids (5-7 s on a busy 2-core machine); the integer rule is in the quick tier through ``validate``
#: (tests/validate/test_validate_cli.py) and the unit tests
LAYOUTS = {"wnid": ("named by ImageNet WordNet id", False), "index": ("named by class index", False),
           "mapped": ("mapped by the class map", True), "sorted": ("in sorted order", False)}


def _folder_name(layout: str, label: int) -> str:
    return {"wnid": imagenet_wnids()[label], "index": str(label)}.get(layout, f"class {label}")


@pytest.mark.shared_data
@pytest.mark.parametrize("layout", ["wnid", *(pytest.param(layout, marks=pytest.mark.full)
                                              for layout in ("index", "mapped", "sorted"))])
def test_mobilenet_v2_scores_on_imagenet_folders(layout: str, shared_data: Path, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """18 of the 20 samples right (these weights' ImageNet-1k top-1: 71.9%) whether the class folders are named by
    WordNet id, by class index, or mapped by --class-map; in sorted order (names nothing maps) the labels are wrong:
    top-1 at chance, and the early check says so in a WARNING."""
    samples = _samples(shared_data)
    assert len(samples) == 20
    labels = sorted({label for _, label in samples})
    rule, mapped = LAYOUTS[layout]
    data = _lay_out(samples, tmp_path / layout, {label: _folder_name(layout, label) for label in labels})
    calib = tmp_path / "calib"  # unlabelled (flat): every one of the 20 labelled images is evaluated
    calib.mkdir()
    shutil.copy(samples[0][0], calib)
    class_map = tmp_path / "classes.txt"
    class_map.write_text("".join(f"class {label},{label}\n" for label in labels))
    config = FitConfig(model="torchvision:mobilenet_v2", weights=shared_data / WEIGHTS, data=data,
                       calib_data=calib, class_map=class_map if mapped else None)
    with caplog.at_level(logging.INFO, logger="edgeprune"):
        inputs = resolve_inputs(config, load_target("cpu"))
        check = check_labels_early(inputs.bundle.model, inputs)
    assert f"labels: {data}: {len(labels)} folders {rule}" in caplog.text
    assert check is not None and check["images"] == 20 and check["classes"] == 1000
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "no better than chance" in r.message]
    if layout == "sorted":
        assert check["top1"] <= 0.05 and check["suspect"] and len(warned) == 1
        assert f"they came from {len(labels)} folders in sorted order" in check["message"]
    else:
        assert check["top1"] == pytest.approx(18 / 20) and not check["suspect"] and not warned
