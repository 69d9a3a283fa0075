"""Bad --sparsity / --size-budget input: one clear line and exit code 2, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_in_process import run_cli_in_process

from edgeprune.config import FitConfig
from edgeprune.errors import InputError
from edgeprune.fit.pipeline import _check_config


@pytest.mark.parametrize(("flags", "message"), [
    (["--size-budget", "2"], "size budget '2' has no unit; write it with one, e.g. '2MB'"),
    (["--size-budget", "120%"], "must be a percentage in (0, 100]"),
    (["--sparsity", "1.2"], "must be a fraction in (0, 1)"),
    (["--sparsity", "0.8", "--qat-epochs", "1"], "--qat-epochs cannot be combined with --sparsity"),
    (["--sparsity", "0.5", "--sparsity-initial", "0.7"], "--sparsity-initial (0.7) must not exceed --sparsity (0.5)"),
    (["--sparsity", "0.8", "--sparsity-begin-step", "50", "--sparsity-end-step", "40"],
     "--sparsity-end-step (40) must be after --sparsity-begin-step (50)"),
])
def test_bad_sparsity_flags_exit_2_with_one_line(flags: list[str], message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """In this process (the CLI's own entry point; tests/safety runs refusals in a real process too). A value
    argparse refuses ends in SystemExit, the others in the exit code."""
    done = run_cli_in_process("fit", "--model", "demo", "--budget", "50%", "--out", str(tmp_path / "out"), *flags)
    code, err = done.returncode, done.stderr
    assert code == 2
    assert message in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("field", [dict(sparsity=0.0), dict(sparsity_scope="row"),
                                   dict(sparsity_schedule="cosine"), dict(sparsity_frequency=0)])
def test_the_python_api_refuses_the_same(field: dict) -> None:
    with pytest.raises(InputError):
        _check_config(FitConfig(**field))


def test_the_size_search_takes_the_lowest_sparsity_that_fits() -> None:
    """Bisection over one-shot sparsities on a size that falls with sparsity: the answer fits, and a point less does
    not (within the search's resolution)."""
    from edgeprune.export.size import ArtifactSize
    from edgeprune.fit.sparsity_stage import MAX_SPARSITY, _lowest_sparsity

    asked: list[float] = []

    def probe(sparsity: float) -> ArtifactSize:  # zipped bytes of a 1 MB model: 30 kB of overhead plus the survivors
        asked.append(sparsity)
        return ArtifactSize(1_000_000, int(30_000 + 970_000 * (1 - sparsity)))

    found = _lowest_sparsity(probe, 400_000, MAX_SPARSITY)
    assert 30_000 + 970_000 * (1 - found) <= 400_000
    assert 30_000 + 970_000 * (1 - (found - MAX_SPARSITY / 2**6)) > 400_000
    assert len(asked) == 7 and all(0 < s < MAX_SPARSITY for s in asked)
