"""``edgeprune fit --config fit.toml``: options from a file, the command line's flags overriding them (issue 37)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeprune.cli.main import _with_config_file, build_parser, main


def _parse(*argv: str):  # type: ignore[no-untyped-def]
    parser = build_parser()
    args = parser.parse_args(list(argv))
    return _with_config_file(parser, list(argv), args)


def test_the_files_options_are_read_and_flags_override_them(tmp_path: Path) -> None:
    (tmp_path / "fit.toml").write_text('model = "cifar-resnet20"\nbudget = "50%"\neval_images = 64\n'
                                       'calib-images = 32\nexport = ["onnx", "tflite"]\nreconstruct = false\n'
                                       'force = true\nfreeze = ["fc", "layer1.0"]\nweights = "w/r20.th"\n'
                                       'mean = [0.5, 0.5, 0.5]\n')
    args = _parse("fit", "--config", str(tmp_path / "fit.toml"), "--eval-images", "100", "--budget", "40%")
    assert (args.model, args.budget, args.eval_images, args.calib_images) == ("cifar-resnet20", "40%", 100, 32)
    assert args.export == "onnx,tflite" and args.reconstruct is False and args.force is True
    assert args.freeze == ["fc", "layer1.0"]
    assert args.weights == tmp_path / "w" / "r20.th", "a relative path is relative to the file"
    assert args.mean == (0.5, 0.5, 0.5)


def test_a_fit_table_is_read_too(tmp_path: Path) -> None:
    (tmp_path / "fit.toml").write_text('[fit]\nbudget = "20ms"\nprune_blocks = true\n')
    args = _parse("fit", "--config", str(tmp_path / "fit.toml"))
    assert args.budget == "20ms" and args.prune_blocks is True


@pytest.mark.parametrize(("text", "message"), [
    ('budgett = "50%"\n', "'budgett' is not an option of edgeprune fit. Did you mean 'budget'?"),
    ('budget = [\n', "is not valid TOML"),
    ('force = "yes"\n', "'force' takes true or false, got 'yes'"),
    ('budget = true\n', "'budget' takes a value, got True"),
    ('config = "other.toml"\n', "'config' is not an option of edgeprune fit"),
])
def test_a_bad_file_is_one_line_and_exit_2(text: str, message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fit.toml").write_text(text)
    assert main(["fit", "--config", str(tmp_path / "fit.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", str(tmp_path / "none.toml")]) == 2
    assert "--config: file not found" in capsys.readouterr().err
