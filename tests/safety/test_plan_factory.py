"""A received output folder is inert: a plan naming a model factory does not run it unless the user names it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))  # the shared tiny-model helpers

from export_test_models import write_slim_output  # noqa: E402

from edgeprune.cli.main import main  # noqa: E402

MODULE = "ep_received_factory"
SOURCE = """
from pathlib import Path
Path({marker!r}).write_text("the module's top-level code ran")

from edgeprune.models.cifar_resnet import CifarResNet

def build(num_classes=10):
    return CifarResNet(8, num_classes)
"""


@pytest.fixture()
def received(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An output folder whose plan names an importable factory, and the file its module writes when imported."""
    marker = tmp_path / "ran.txt"
    (tmp_path / f"{MODULE}.py").write_text(SOURCE.format(marker=str(marker)), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    folder = write_slim_output(tmp_path / "received")
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["model"]["spec"] == "cifar-resnet8"
    plan["model"]["spec"] = f"{MODULE}:build"
    (folder / "plan.json").write_text(json.dumps(plan))
    yield folder, marker
    sys.modules.pop(MODULE, None)


def _code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_export_from_a_received_folder_does_not_run_its_factory(received: tuple[Path, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder, marker = received
    assert _code(["export", "--from", str(folder), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert f"--allow-factory {MODULE}:build" in err and "Traceback" not in err
    assert not marker.exists()  # nothing of the module ran
    assert _code(["export", "--from", str(folder), "--out", str(tmp_path / "b"),
                  "--allow-factory", f"{MODULE}:build"]) == 0
    assert marker.exists() and (tmp_path / "b" / "model.onnx").is_file()


def test_validate_with_a_received_reference_folder_does_not_run_its_factory(
        received: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, marker = received
    honest = write_slim_output(tmp_path / "honest")
    assert _code(["export", "--from", str(honest), "--out", str(tmp_path / "e")]) == 0
    capsys.readouterr()
    artifact = tmp_path / "e" / "model.onnx"
    assert _code(["validate", str(artifact), "--reference", str(folder), "--timing-seconds", "0"]) == 2
    assert "--allow-factory" in capsys.readouterr().err and not marker.exists()


def test_the_python_api_refuses_it_too(received: tuple[Path, Path]) -> None:
    import edgeprune
    from edgeprune.errors import InputError

    folder, marker = received
    with pytest.raises(InputError, match="allow_factory"):
        edgeprune.load_slim_model(folder)
    assert not marker.exists()
    assert edgeprune.load_slim_model(folder, allow_factory=f"{MODULE}:build") is not None
