"""The command line's global flags and its one-line errors."""

from __future__ import annotations

import pytest

from edgeprune.cli.common import one_line, print_error
from edgeprune.cli.main import _globals_first, main


def test_verbose_and_quiet_work_after_the_verb_too() -> None:
    assert _globals_first(["fit", "--budget", "60%", "-v"]) == ["-v", "fit", "--budget", "60%"]
    assert _globals_first(["-q", "targets"]) == ["-q", "targets"]
    assert _globals_first(["fit", "--", "-v"]) == ["fit", "--", "-v"]  # after '--' nothing is moved


def test_log_file_works_after_the_verb_too() -> None:
    assert _globals_first(["fit", "--budget", "60%", "--log-file", "fit.log", "-q"]) == \
        ["--log-file", "fit.log", "-q", "fit", "--budget", "60%"]
    assert _globals_first(["fit", "--log-file=fit.log"]) == ["--log-file=fit.log", "fit"]


def test_a_log_file_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
                                                                   ) -> None:
    assert main(["targets", "--log-file", str(tmp_path / "no" / "such" / "dir" / "run.log")]) == 2
    err = capsys.readouterr().err
    assert "--log-file" in err and "cannot be written" in err and "Traceback" not in err


def test_targets_runs_with_q_after_the_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets", "-q"]) == 0
    assert "cpu" in capsys.readouterr().out


def test_error_lines_carry_no_terminal_codes(capsys: pytest.CaptureFixture[str]) -> None:
    raw = "ONNX export failed: \x1b[96mThis is step 1/3\x1b[0m of\nexporting"
    assert one_line(raw) == "ONNX export failed: This is step 1/3 of exporting"
    print_error(raw)
    err = capsys.readouterr().err
    assert "\x1b[96m" not in err and "This is step 1/3" in err


def test_profile_takes_fits_model_options(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    import torch

    from edgeprune.models.cifar_resnet import CifarResNet

    torch.save(CifarResNet(20, 10).state_dict(), tmp_path / "r20.pt")
    # weights that do not fit the model are refused in one line before any probe is timed
    code = main(["profile", "--model", "cifar-resnet8", "--weights", str(tmp_path / "r20.pt"), "--mean", "0.5,0.5,0.5",
                 "--std", "0.2,0.2,0.2", "--table-dir", str(tmp_path / "t")])
    assert code == 2 and "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_a_fit_that_fails_in_a_users_module_prints_the_command_with_freeze(capsys: pytest.CaptureFixture[str]
                                                                          ) -> None:
    from edgeprune.cli.common import run_guarded
    from edgeprune.errors import ModelConstructError

    def failing() -> int:
        raise ModelConstructError("scoring group 'body.3' fails in module 'body.3' (Odd)", module="body.3")

    line = ["-v", "fit", "--model", "pkg:build", "--budget", "70%"]
    assert run_guarded(failing, verbose=False, verb="fit", argv=line) == 2
    err = capsys.readouterr().err
    assert "the command: 'edgeprune fit --model pkg:build --budget 70% --freeze body.3'" in " ".join(err.split())
    assert run_guarded(failing, verbose=False, verb="profile", argv=["profile"]) == 2
    assert "--freeze" not in capsys.readouterr().err  # only fit takes --freeze
