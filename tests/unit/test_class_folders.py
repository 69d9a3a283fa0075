"""How class folder names become labels (edgeprune.data.class_folders) and the rule that flags labels at chance
(edgeprune.data.label_check)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeprune.data.class_folders import (
    ClassMap,
    LabelNaming,
    folder_labels,
    imagenet_wnids,
    read_class_map,
)
from edgeprune.data.label_check import MIN_IMAGES, label_check, suspect_threshold
from edgeprune.data.lazy_folder import LazyImageFolder
from edgeprune.data.loaders import load_image_folder
from edgeprune.errors import DataError, InputError

WNIDS = imagenet_wnids()

# ------------------------------------------------------------------------------------------ the wnid list


def test_the_shipped_wnid_list_is_imagenet_1k_in_class_order() -> None:
    assert len(WNIDS) == 1000 == len(set(WNIDS))
    assert list(WNIDS) == sorted(WNIDS)  # torchvision's and timm's class index is the sorted position
    assert WNIDS[0] == "n01440764" and WNIDS[-1] == "n15075141"  # tench, toilet tissue
    assert WNIDS[1] == "n01443537" and WNIDS[388] == "n02510455"  # goldfish, giant panda


# -------------------------------------------------------------------------------------------- the rules


def test_wordnet_folders_map_to_imagenet_1k_indices() -> None:
    folders = [WNIDS[999], WNIDS[0], WNIDS[388]]  # any order: each folder's index is its own
    labels = folder_labels(folders, LabelNaming(1000), "d")
    assert labels.rule == "wordnet" and labels.indices == (999, 0, 388)
    assert labels.class_names == ()
    assert "ImageNet WordNet id -> ImageNet-1k class indices" in labels.description
    assert folder_labels(folders, LabelNaming(None), "d").indices == (999, 0, 388)  # unknown count: by name


def test_wordnet_folders_of_a_model_with_other_classes_are_in_sorted_order() -> None:
    """Imagenette: ten ImageNet classes named by WordNet id, a model trained on them with ImageFolder's numbering."""
    folders = sorted([WNIDS[217], WNIDS[0], WNIDS[482]])
    labels = folder_labels(folders, LabelNaming(10), "d")
    assert labels.rule == "sorted" and labels.indices == (0, 1, 2)
    assert "the model has 10 classes, not ImageNet-1k's 1000" in labels.description


def test_wordnet_folders_outside_imagenet_1k_are_in_sorted_order_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edgeprune"):
        labels = folder_labels(["n00004475", WNIDS[3]], LabelNaming(1000), "d")
    assert labels.rule == "sorted" and labels.indices == (0, 1)
    assert "'n00004475' not among ImageNet-1k's 1000 classes" in caplog.text and "--class-map" in caplog.text


def test_integer_folders_are_class_indices() -> None:
    labels = folder_labels(["0", "129", "7"], LabelNaming(1000), "d")
    assert labels.rule == "index" and labels.indices == (0, 129, 7)
    assert folder_labels(["10", "2"], LabelNaming(None), "d").indices == (10, 2)  # sorted order would say (0, 1)
    assert folder_labels(["007"], LabelNaming(10), "d").indices == (7,)


def test_an_integer_folder_beyond_the_models_classes_is_one_line() -> None:
    with pytest.raises(DataError, match=r"^d: class folder '10' is read as a class index .* the model has 10 "
                                        r"classes \(0\.\.9\); rename the folders or pass --class-map FILE$"):
        folder_labels(["1", "10", "2"], LabelNaming(10), "d")


@pytest.mark.parametrize("folders", [["cat", "dog"], ["n01440764", "cat"], ["1", "b"], ["-1", "2"], ["1.5"],
                                     ["N01440764"], ["n0144076"], ["٣"]])  # Arabic-Indic 3: not an index
def test_other_names_are_in_sorted_order(folders: list[str]) -> None:
    labels = folder_labels(folders, LabelNaming(1000), "d")
    assert labels.rule == "sorted"
    assert labels.class_names == tuple(sorted(folders))
    assert [labels.class_names[i] for i in labels.indices] == folders


def test_a_class_map_wins_over_the_names() -> None:
    class_map = ClassMap({"0": 5, "cat": 281, "extra": 3}, "m.txt")
    labels = folder_labels(["0", "cat"], LabelNaming(1000, class_map), "d")
    assert labels.rule == "class-map" and labels.indices == (5, 281)
    assert labels.description == "2 folders mapped by the class map m.txt"


def test_a_folder_missing_from_the_class_map_is_one_line() -> None:
    class_map = ClassMap({"cat": 0}, "m.txt")
    with pytest.raises(DataError, match=r"^d: class folder 'dog' is not in the class map m.txt \(it maps 1 folders\)"):
        folder_labels(["cat", "dog"], LabelNaming(10, class_map), "d")
    many = [f"f{i}" for i in range(6)]
    with pytest.raises(DataError, match=r"'f0', 'f1', 'f2' \(and 3 more\) is not in"):
        folder_labels(many, LabelNaming(10, class_map), "d")


def test_a_class_map_index_beyond_the_models_classes_is_one_line() -> None:
    with pytest.raises(DataError, match=r"^class map m.txt: folder 'dog' maps to class 10, but the model has 10 "):
        folder_labels(["cat", "dog"], LabelNaming(10, ClassMap({"cat": 0, "dog": 10}, "m.txt")), "d")


# ------------------------------------------------------------------------------------------ --class-map files


@pytest.mark.parametrize(("name", "text"), [
    ("m.txt", "cat 3\ndog 0\n"),
    ("m.csv", "cat,3\ndog, 0\n"),
    ("m.txt", "# folder index\n\n  cat   3  \ndog\t0\ndog 0\n"),  # comments, blanks, a repeat that agrees
    ("m.json", '{"cat": 3, "dog": 0}'),
    ("m.map", '  {"cat": 3,\n "dog": 0}\n'),  # JSON by its first character
])
def test_class_map_forms(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    class_map = read_class_map(path)
    assert dict(class_map.indices) == {"cat": 3, "dog": 0} and class_map.source == str(path)


def test_class_map_folder_names_may_hold_spaces_and_commas(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("great white shark 2\n")
    (tmp_path / "m.csv").write_text("sharks, great white,2\n")
    assert dict(read_class_map(tmp_path / "m.txt").indices) == {"great white shark": 2}
    assert dict(read_class_map(tmp_path / "m.csv").indices) == {"sharks, great white": 2}


@pytest.mark.parametrize(("name", "content", "match"), [
    ("m.json", '{"cat": 3,', r"is not valid JSON \(line 1: "),
    ("m.json", '[["cat", 3]]', r'expected a JSON object \{"FOLDER": INDEX\}, got list'),
    ("m.json", '"cat"', "got str"),
    ("m.json", '{"cat": "3"}', r"'cat' maps to \"3\", expected a class index \(an integer >= 0\)"),
    ("m.json", '{"cat": -1}', "'cat' maps to -1, expected a class index"),
    ("m.json", '{"cat": true}', "'cat' maps to true, expected a class index"),
    ("m.json", '{"cat": 1.5}', "'cat' maps to 1.5, expected"),
    ("m.json", '{"cat": 1, "cat": 2}', r"folder 'cat' is mapped twice \(1 and 2\)"),
    ("m.json", "{}", "maps no folder"),
    ("m.txt", "", "maps no folder"),
    ("m.txt", "# only a comment\n", "maps no folder"),
    ("m.txt", "cat 3\ndog\n", r"line 2: expected 'FOLDER INDEX' or 'FOLDER,INDEX' with an integer index >= 0, "
                              r"got 'dog'"),
    ("m.txt", "cat three\n", "line 1: expected 'FOLDER INDEX'"),
    ("m.txt", "cat -3\n", "line 1: expected"),
    ("m.csv", ",3\n", "line 1: expected"),
    ("m.txt", "cat 1\ncat 2\n", r"line 2: folder 'cat' is mapped twice \(1 and 2\)"),
])
def test_bad_class_maps_are_one_line(tmp_path: Path, name: str, content: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        read_class_map(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_unreadable_class_maps_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="^class map not found: "):
        read_class_map(tmp_path / "missing.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 1\n".encode("latin-1"))
    with pytest.raises(InputError, match="is not UTF-8 text"):
        read_class_map(tmp_path / "latin1.txt")
    with pytest.raises(InputError, match="^cannot read class map "):
        read_class_map(tmp_path)


# --------------------------------------------------------------------------------- the loaders use the rules


def _folder(root: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (4, 4), (i, 0, 0)).save(root / name / "a.png")
    return root


def test_the_loaders_label_by_the_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _folder(tmp_path / "wnid", [WNIDS[129], WNIDS[7]])
    with caplog.at_level(logging.INFO, logger="edgeprune"):
        data = load_image_folder(root, (4, 4), 3, LabelNaming(1000))
    assert data.labels is not None and data.labels.tolist() == [7, 129]  # sorted folders: n016... then n020...
    assert data.num_classes == 130 and data.class_names == ()
    assert "labels: " in caplog.text and "2 folders named by ImageNet WordNet id" in caplog.text
    assert data.labels_from.startswith("2 folders named by ImageNet WordNet id")
    assert data.subset(np.array([1])).labels_from == data.labels_from
    lazy = LazyImageFolder(_folder(tmp_path / "index", ["129", "7"]), (4, 4), 3, LabelNaming(1000))
    assert lazy.labels is not None and lazy.labels.tolist() == [129, 7] and lazy.num_classes == 130
    assert lazy.subset(np.array([0])).labels_from == "2 folders named by class index -> that index"
    mapped = load_image_folder(_folder(tmp_path / "named", ["cat", "dog"]), (4, 4), 3,
                               LabelNaming(1000, ClassMap({"cat": 281, "dog": 207}, "m")))
    assert mapped.labels is not None and mapped.labels.tolist() == [281, 207]


def test_a_flat_folder_is_unlabelled_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    with caplog.at_level(logging.INFO, logger="edgeprune"):
        data = load_image_folder(tmp_path, (4, 4), 3, LabelNaming(1000, ClassMap({"x": 1}, "m")))
    assert data.labels is None and data.labels_from == ""
    assert "has no class subfolders, so its 1 images are unlabelled" in caplog.text


# ----------------------------------------------------------------------------------------- labels at chance


def test_the_label_check_flags_top1_at_chance() -> None:
    assert suspect_threshold(1000) == pytest.approx(0.002) and suspect_threshold(10) == suspect_threshold(2) == 0.2
    flagged = label_check(0.0, 20, 1000, "3 folders in sorted order -> classes 0..2")
    assert flagged is not None and flagged["suspect"] and flagged["judged"]
    message = flagged["message"]
    assert "top-1 on the labelled data is 0.00% on 20 images, no better than chance for 1000 classes (0.10%)" in message
    assert "they came from 3 folders in sorted order" in message and "--class-map FILE" in message
    assert "docs/guide/data.md" in message and "--weights" in message and "\n" not in message
    assert label_check(0.05, 200, 10, "")["suspect"]  # type: ignore[index]
    assert label_check(0.2, 200, 10, "")["suspect"]  # type: ignore[index]


def test_the_label_check_passes_trained_models_and_does_not_judge_too_few_images() -> None:
    for top1, classes in ((0.9, 20), (0.7, 1000), (0.985, 10), (0.6, 2), (0.25, 10), (0.003, 1000)):
        check = label_check(top1, 100, classes)
        assert check is not None and not check["suspect"] and check["message"] is None, (top1, classes)
    few = label_check(0.0, MIN_IMAGES - 1, 1000)
    assert few is not None and not few["judged"] and not few["suspect"]
    assert label_check(None, 100, 10) is None and label_check(0.5, 100, None) is None
    assert label_check(0.0, 100, 1) is None
    assert json.dumps(label_check(0.0, 100, 10))  # report.json takes it as it is
