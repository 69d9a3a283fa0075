"""A fit killed (SIGKILL) at any moment resumes to the same results (issue 36).

Each run goes through ``tests/fault_injection.py``, which kills the process at a named point: at a latency
query, after a journal save, after a fine-tune checkpoint, in the middle of the final commit, after the commit
but before the journal is removed, after the journal is renamed aside but before it is deleted, or after a random number of seconds. Then ``fit --resume`` must finish
(exit 0, no refusal) and its ``plan.json`` and ``model.safetensors`` must equal those of an uninterrupted run
that saw the same measurements, as in ``test_fit_recovery.py::test_interrupted_fit_resumes_to_the_same_model``:

* the runs killed while they replay a complete journal (an uninterrupted reference run's, kept by the
  helper) are compared with that reference run;
* the runs killed while measuring live are compared with a run that replays the resumed run's final journal
  in a fresh folder (no checkpoints: its fine-tune runs uninterrupted).

Every finished folder must hold no resume state and no staging folder. The quick tier kills one run in its
final commit (the new behaviour); the ``full`` tier sweeps seeded random kill points in every stage.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from edgeprune.fit.outputs import RESULT_FILES, STAGING_PREFIX
from edgeprune.fit.resume import DONE_PREFIX, STATE_DIR

HELPER = Path(__file__).resolve().parents[1] / "fault_injection.py"
#: the cheapest fit that runs every stage (search, confirmation, fine-tune, export, commit) on the demo model
FIT = ("fit", "--model", "demo", "--target", "cpu", "--budget", "60%", "--eval-images", "32", "--calib-images",
       "32", "--max-rounds", "3", "--allocation", "uniform", "--importance", "l1", "--precision", "fp32",
       "--search-headroom", "0.25",
       # these runs test resuming, not a quality: L1 at 60% without fine-tuning keeps 59% of the demo's answers,
       # under the accuracy guard's 80% floor (its exit 3 is tested in tests/e2e/test_accuracy_guard.py)
       "--min-agreement", "0")
KILLED = -9  # subprocess's return code of a process ended by SIGKILL


def run_fit(out: Path, point: str = "none", *extra: str, keep_journal: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    """The fit into ``out`` through the fault-injection helper, killed at ``point``."""
    keep = ["--keep-journal", str(keep_journal)] if keep_journal is not None else []
    cmd = [sys.executable, str(HELPER), *keep, point, "--", "-q", *FIT, "--out", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def resume(out: Path, *extra: str, keep_journal: Path | None = None) -> None:
    """``fit --resume`` into ``out``: it must finish, whatever state the kill left."""
    done = run_fit(out, "none", *extra, "--resume", keep_journal=keep_journal)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def assert_clean(out: Path) -> None:
    leftovers = [p.name for p in out.iterdir() if p.name == STATE_DIR or p.name.startswith((STAGING_PREFIX,
                                                                                           DONE_PREFIX))]
    assert leftovers == [], f"left in {out}: {leftovers}"


def assert_same_results(plan_a: Path, weights_a: Path, plan_b: Path, weights_b: Path) -> None:
    assert json.loads(plan_a.read_text()) == json.loads(plan_b.read_text())
    a, b = load_file(str(weights_a)), load_file(str(weights_b))
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), name


@pytest.mark.full  # a variant of the quick tier's resume (tests/e2e/test_fit_recovery.py): 32 s, two fits
def test_a_fit_killed_in_its_final_commit_resumes_to_the_same_results(tmp_path: Path) -> None:
    """The quick tier's kill point: two result files are in place, the rest in a staging folder, the journal
    whole. Before issue 36, ``--resume`` refused ("already holds results") and the staging folder stayed."""
    out = tmp_path / "out"
    killed = run_fit(out, "commit:3", "--finetune-epochs", "0")
    assert killed.returncode == KILLED, killed.stderr
    staging = [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(staging) == 1 and (out / STATE_DIR / "journal.json").is_file()
    committed = [f for f in RESULT_FILES if (out / f).exists()]
    assert len(committed) == 2, committed
    before = tmp_path / "before"  # the killed run's complete results: two in place, the rest staged
    shutil.copytree(staging[0], before, ignore=shutil.ignore_patterns("work"))
    for name in committed:
        shutil.copy2(out / name, before / name)

    resume(out, "--finetune-epochs", "0")
    assert_clean(out)
    assert_same_results(before / "plan.json", before / "model.safetensors", out / "plan.json",
                        out / "model.safetensors")
    report = json.loads((out / "report.json").read_text())
    assert report["resume"]["measurements_replayed"] >= 2


@pytest.mark.full
def test_a_fit_killed_at_random_moments_resumes_to_the_same_results(tmp_path: Path) -> None:
    """Seeded kill points in every stage; each killed run resumes to the results of an uninterrupted run with
    the same measurements."""
    rng = random.Random(36)
    extra = ("--finetune-epochs", "2")
    reference, journal = tmp_path / "reference", tmp_path / "reference-journal.json"
    started = time.monotonic()
    done = run_fit(reference, "none", *extra, keep_journal=journal)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    queries = sum(len(v) for v in json.loads(journal.read_text())["entries"].values())
    files = sum((reference / f).exists() for f in RESULT_FILES)
    # distinct points (each has its own folder): two per stage where the stage has two
    replaying = [*(f"query:{n}" for n in rng.sample(range(1, queries + 1), min(2, queries))), "checkpoint:1",
                 "checkpoint:2", *(f"commit:{n}" for n in rng.sample(range(1, files + 1), min(2, files))), "finish", "aside",
                 *(f"time:{t:.1f}" for t in sorted({rng.uniform(2.0, seconds) for _ in range(2)}))]
    for point in replaying:  # killed while replaying the reference run's measurements
        out = tmp_path / point.replace(":", "-")
        (out / STATE_DIR).mkdir(parents=True)
        shutil.copyfile(journal, out / STATE_DIR / "journal.json")
        killed = run_fit(out, point, *extra, "--resume")
        assert killed.returncode == KILLED or (point.startswith("time:") and killed.returncode == 0), (
            point, killed.returncode, killed.stderr)
        resume(out, *extra)
        assert_clean(out)
        assert_same_results(reference / "plan.json", reference / "model.safetensors", out / "plan.json",
                            out / "model.safetensors")

    for point in (f"journal:{n}" for n in rng.sample(range(2, queries + 2), min(2, queries))):  # measuring live
        out, final = tmp_path / point.replace(":", "-"), tmp_path / f"{point.replace(':', '-')}.json"
        killed = run_fit(out, point, *extra)
        assert killed.returncode == KILLED, (point, killed.stderr)
        resume(out, *extra, keep_journal=final)
        assert_clean(out)
        replay = tmp_path / f"{out.name}-replay"
        (replay / STATE_DIR).mkdir(parents=True)
        shutil.copyfile(final, replay / STATE_DIR / "journal.json")
        resume(replay, *extra)
        assert_same_results(replay / "plan.json", replay / "model.safetensors", out / "plan.json",
                            out / "model.safetensors")
