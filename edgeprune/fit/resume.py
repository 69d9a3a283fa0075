"""The resume journal of a fit run: what an interrupted run had finished, so ``--resume`` can go on.

A fit run keeps its state in ``OUT/.edgeprune-resume/``: ``journal.json`` (every latency measurement and
which candidate each search round chose) and fine-tune checkpoints (one per recovered candidate, saved
after every epoch). Everything else a run does (channel groups, importance scores, the search, least-squares
reconstruction) is deterministic given the seed and the measurements, so a resumed run replays the
recorded measurements instead of measuring again, takes the same decisions, continues fine-tuning from the
last finished epoch, and ends with the same model as an uninterrupted run. Latency tables resume on their
own (they are saved after every probe).

The journal carries a fingerprint of the options that change the result; resuming with other options is
refused. The state is removed when the run's results are committed: the folder is first renamed aside in one
step (``.edgeprune-resume-done-*``, removed next, its journal last), so a kill at any moment leaves the whole
journal (the results may already be in place: ``--resume`` replays and commits them again; a journal renamed aside
is put back first, :func:`restore_state_renamed_aside`) or none of it (the run finished). A final answer (the
budget is out of reach, an input refused) removes the state; a state that cannot be written keeps it.
A journal of the wrong shape or a state folder that cannot be written is one line naming it
(:mod:`edgeprune.fit.journal_schema`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgeprune.config import FitConfig
from edgeprune.errors import OutputError
from edgeprune.fit.journal_schema import parse_journal
from edgeprune.io_atomic import fsync_dir, write_json_atomic
from edgeprune.timing import LatencyStats

log = logging.getLogger(__name__)

STATE_DIR = ".edgeprune-resume"
#: a finished run's state, renamed aside before it is removed (a kill may leave one; any run removes it)
DONE_PREFIX = ".edgeprune-resume-done-"
JOURNAL_FORMAT = "edgeprune.resume-journal/2"
#: options that do not change what a run computes
_NOT_FINGERPRINTED = {"out", "force", "resume", "device_token", "table_dir"}


def has_interrupted_run(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds the journal of a run that has not finished (killed at any moment, even
    during its final commit)."""
    return (Path(out_dir) / STATE_DIR / "journal.json").is_file()


def finished_run(config: FitConfig) -> Any:
    """The :class:`~edgeprune.report.fit_result.FitResult` of the run that finished in ``config.out`` with the
    same options (its report.json carries their fingerprint), else None.

    ``--resume`` of such a run answers with its results (a kill after its journal was removed, or a second
    ``--resume``): they are the ones an interrupted run would have committed. Without a matching report, the
    caller refuses (nothing to resume)."""
    from edgeprune.report.fit_result import FitResult

    try:
        report = json.loads((Path(config.out) / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("config_fingerprint") != config_fingerprint(config):
        return None
    if report.get("status") in ("validation failed", "accuracy collapsed"):  # not a success to answer with
        return None
    log.info("the run in %s had finished with these options: its results are in place, nothing to resume",
             config.out)
    return FitResult(report)


def restore_state_renamed_aside(out_dir: Path) -> bool:
    """Put back the journal of a run killed after its commit, between renaming its state aside and deleting it.

    Called by ``--resume`` only (any other run removes such folders): the newest aside folder that still holds
    its journal becomes the state again, so the resumed run replays it and commits the same results; other
    aside folders are removed. Returns whether a journal was put back.
    """
    out_dir = Path(out_dir)
    if has_interrupted_run(out_dir) or not out_dir.is_dir():
        return False
    aside = sorted((p for p in out_dir.glob(DONE_PREFIX + "*") if (p / "journal.json").is_file()),
                   key=lambda p: p.stat().st_mtime)
    if not aside:
        return False
    shutil.rmtree(out_dir / STATE_DIR, ignore_errors=True)  # an empty or partial folder without a journal
    try:
        os.replace(aside[-1], out_dir / STATE_DIR)
    except OSError:
        return False
    fsync_dir(out_dir)
    for stale in aside[:-1]:
        shutil.rmtree(stale, ignore_errors=True)
    log.info("the run in %s was killed after committing its results, before removing its journal: resuming it",
             out_dir)
    return True


def _remove_journal_last(folder: Path) -> None:
    """Delete a state folder, its journal last: while the folder exists, it holds the whole journal."""
    journal = folder / "journal.json"
    for child in list(folder.iterdir()) if folder.is_dir() else []:
        if child == journal:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    journal.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def config_fingerprint(config: FitConfig) -> str:
    """SHA-256 over every option that changes the result (paths as given, not their contents)."""
    data = {k: v for k, v in asdict(config).items() if k not in _NOT_FINGERPRINTED}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def keep_key(step: int, kind: str, keep: dict[str, list[int]]) -> str:
    """Journal key of a measurement: the step, the purpose and the exact channels kept."""
    body = json.dumps({k: keep[k] for k in sorted(keep)}, separators=(",", ":"))
    return f"{step}:{kind}:{hashlib.sha256(body.encode()).hexdigest()[:20]}"


class RunJournal:
    """Measurements and checkpoints of one fit run, kept in the output directory until it succeeds."""

    def __init__(self, out_dir: Path, config: FitConfig) -> None:
        self.dir = Path(out_dir) / STATE_DIR
        self.path = self.dir / "journal.json"
        self.fingerprint = config_fingerprint(config)
        #: every measurement of this run, in order, per key (a key asked twice has two readings)
        self.entries: dict[str, list[dict[str, Any]]] = {}
        #: the interrupted run's readings still to be replayed, per key (only with --resume)
        self._to_replay: dict[str, list[dict[str, Any]]] = {}
        self.replayed = 0
        #: the paired ratio journalled with the last replayed reading (None: it was not timed in pairs)
        self.replayed_ratio: float | None = None
        for stale in self.dir.parent.glob(DONE_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        if self.path.is_file():
            self._open_existing(config)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from None
        self._save()

    def _unwritable(self, exc: OSError) -> OutputError:
        return OutputError(f"cannot write the resume state in {self.dir}: {exc.strerror or exc}; make the folder "
                           "writable (chmod -R u+w) or choose another --out")

    def _open_existing(self, config: FitConfig) -> None:
        if not config.resume:
            if not config.force:
                raise OutputError(f"{self.dir.parent} holds an interrupted fit run; pass --resume to continue it "
                                  "or --force to start over")
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
            raise OutputError(f"cannot read the resume journal {self.path}: {reason}; pass --force instead of "
                              "--resume to start the run over") from None
        fmt, fingerprint, entries = parse_journal(self.path, data)
        if fmt != JOURNAL_FORMAT or fingerprint != self.fingerprint:
            raise OutputError(f"the interrupted run in {self.dir.parent} used other options; rerun it with the "
                              "same options and --resume, or pass --force to start over")
        self.entries = entries
        self._to_replay = {k: list(v) for k, v in self.entries.items()}
        log.info("resuming: %d measurement(s) of the interrupted run will be replayed",
                 sum(len(v) for v in self.entries.values()))

    def _save(self) -> None:
        try:
            write_json_atomic(self.path, {"format": JOURNAL_FORMAT, "fingerprint": self.fingerprint,
                                          "entries": self.entries})
        except OSError as exc:
            raise self._unwritable(exc) from None

    def measurement(self, key: str) -> LatencyStats | None:
        """The interrupted run's next reading for ``key`` when resuming, else None (measure it).

        Only ``--resume`` replays: a fresh run measures every query, a repeated one too. A key the interrupted
        run asked n times is replayed n times, its readings in their order, so the resumed run takes the same
        decisions; the next query of it is measured anew.
        """
        pending = self._to_replay.get(key)
        if not pending:
            return None
        self.replayed += 1
        entry = dict(pending.pop(0))
        self.replayed_ratio = entry.pop("paired_ratio", None)
        return LatencyStats(**entry)

    def record(self, key: str, stats: LatencyStats, paired_ratio: float | None = None) -> None:
        """Record a new measurement (saved at once), with its paired ratio against the original when it was
        timed in pairs; replayed ones are already recorded."""
        entry = stats.to_dict()
        if paired_ratio is not None:
            entry["paired_ratio"] = paired_ratio
        self.entries.setdefault(key, []).append(entry)
        self._save()

    def checkpoint_path(self, name: str) -> Path:
        """Where the fine-tune checkpoint ``name`` lives."""
        return self.dir / f"{name}.pt"

    def finish(self) -> None:
        """Remove the state (the run's results were committed): renamed aside in one step, then deleted."""
        if not self.dir.exists():
            return
        aside = self.dir.parent / f"{DONE_PREFIX}{os.getpid()}"
        try:
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(self.dir, aside)
            fsync_dir(self.dir.parent)
        except OSError:  # cannot rename (e.g. a read-only output folder): remove it in place
            aside = self.dir
        try:
            _remove_journal_last(aside)
        except OSError:
            shutil.rmtree(aside, ignore_errors=True)
