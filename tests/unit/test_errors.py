"""edgeprune.errors: hierarchy, exit codes and messages."""

from __future__ import annotations

from edgeprune.errors import (
    BudgetUnreachableError,
    DataError,
    EdgepruneError,
    InputError,
    MissingRuntimeError,
    ModelLoadError,
    OutputError,
    UnknownNameError,
    ValidationFailedError,
)


def test_exit_codes() -> None:
    assert EdgepruneError().exit_code == 2
    for cls in (InputError, ModelLoadError, DataError, OutputError):
        assert issubclass(cls, InputError)
        assert cls("x").exit_code == 2
    assert BudgetUnreachableError(1.0, 2.0).exit_code == 2
    assert ValidationFailedError("x").exit_code == 3


def test_unknown_name_lists_sorted_names_and_suggests() -> None:
    err = UnknownNameError("target", "cpuu", ["gpu", "cpu"])
    assert str(err) == "unknown target 'cpuu'. Did you mean 'cpu'? Known: cpu, gpu."
    assert err.name == "cpuu"
    assert err.known == ["cpu", "gpu"]
    assert isinstance(err, InputError)


def test_unknown_name_without_close_match_has_no_hint() -> None:
    err = UnknownNameError("model", "zzzzzz", ["alpha"])
    assert "Did you mean" not in str(err)
    assert "Known: alpha." in str(err)


def test_missing_runtime_names_extra() -> None:
    assert "pip install 'edgeprune[openvino]'" in str(MissingRuntimeError("OpenVINO", "openvino"))


def test_budget_unreachable_message() -> None:
    err = BudgetUnreachableError(1.0, 2.5, "try a smaller model")
    assert err.budget_ms == 1.0 and err.floor_ms == 2.5
    assert str(err) == (
        "budget 1.000 ms cannot be met: the fastest pruned model measured 2.500 ms (median). try a smaller model"
    )


def test_an_unreachable_predicted_budget_does_not_say_measured() -> None:
    err = BudgetUnreachableError(1.0, 2.5, "try a smaller model").as_predicted()
    assert err.predicted and err.floor_ms == 2.5
    assert "measured 2.500" not in str(err) and "predicted at 2.500 ms" in str(err) and "not measured" in str(err)


def test_a_budget_verdict_gains_a_hint_once_and_keeps_its_figures() -> None:
    from edgeprune.errors import BudgetUnreachableError

    exc = BudgetUnreachableError(0.485, 0.591, "Every prunable channel group was already cut to its minimum width.")
    hinted = exc.with_detail("try --precision auto").with_detail("try --precision auto")
    assert (hinted.budget_ms, hinted.floor_ms) == (0.485, 0.591)
    assert str(hinted).count("try --precision auto") == 1 and "minimum width" in str(hinted)
    assert "PREDICTED" not in str(hinted) and "predicted" in str(hinted.as_predicted())


def test_an_unexpected_exception_is_one_internal_error_line_that_repeats_the_command(capsys) -> None:
    from edgeprune.cli.common import run_guarded

    def broken() -> int:
        raise RuntimeError("boom\nsecond line")

    assert run_guarded(broken, False, "fit", ["fit", "--budget", "50%"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom (rerun as 'edgeprune -v fit --budget 50%' for details)" in err
    assert "second line" not in err and "Traceback" not in err
