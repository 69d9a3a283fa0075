"""The output directory: results are staged in a hidden folder and moved in only when the run succeeds.

A failed or interrupted run therefore leaves nothing that looks like a result, and an existing directory
with results is never overwritten unless the user passes ``--force``, or ``--resume`` continues the run that
wrote them: a run killed during (or just after) its final commit keeps its journal until the commit is done,
so results beside a journal are that run's own, and the resumed run replays its measurements and commits the
same results again. Staging folders a killed run left behind are removed when a run resumes. Every file is
flushed to disk before it is renamed into place (:mod:`edgeprune.io_atomic`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from edgeprune.errors import OutputError
from edgeprune.io_atomic import fsync_dir, fsync_file
from edgeprune.runtimes.table import RUNTIME_FACTS

RESULT_FILES = (
    *(f"model{suffix}" for facts in RUNTIME_FACTS for suffix in facts.suffixes),
    *(f"model{facts.suffix}.json" for facts in RUNTIME_FACTS),
    *(f"original{suffix}" for facts in RUNTIME_FACTS for suffix in facts.suffixes),
    "model.safetensors", "plan.json", "report.json", "report.md",
    "accuracy_vs_latency.png", "accuracy_vs_size.png", "layer_latency.png",
)

#: the prefix of a run's staging folder inside the output directory
STAGING_PREFIX = ".edgeprune-staging-"

#: The files of an artifact of each format, as named in the output directory.
ARTIFACT_FILES = {facts.format: tuple(f"model{suffix}" for suffix in facts.suffixes) for facts in RUNTIME_FACTS}

#: The files of the original model's artifact (the one the fit measured the budget against), beside the shipped one
#: so that ``edgeprune bench original.onnx model.onnx`` compares them.
ORIGINAL_FILES = {facts.format: tuple(f"original{suffix}" for suffix in facts.suffixes) for facts in RUNTIME_FACTS}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputDir:
    """An output directory checked up front, with a staging area for the run's files."""

    def __init__(self, path: Path, force: bool, resuming: bool = False) -> None:
        """Check ``path`` and create its staging folder.

        ``resuming``: ``--resume`` continues an interrupted run whose journal is in ``path``; result files
        there are that run's (it was killed during or after its commit) and are replaced, and stale staging
        folders are removed.
        """
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"output path {self.path} exists and is not a directory")
        existing = [f for f in RESULT_FILES if (self.path / f).exists()]
        if existing and not (force or resuming):
            raise OutputError(
                f"output directory {self.path} already holds results ({', '.join(existing)}); "
                "pass --force to replace them or choose another --out"
            )
        if resuming:
            self.remove_stale_staging()
        #: the folders this run creates (the output directory and missing parents), removed again if still empty
        self.created = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.path))
        except OSError as exc:
            raise OutputError(f"cannot write to output directory {self.path}: {exc.strerror or exc}") from None
        self.work = self.staging / "work"
        self.work.mkdir()

    def commit(self, files: list[str]) -> dict[str, Path]:
        """Move the named staged files into the output directory (each by an atomic rename), then remove the
        result files of an earlier run that this one did not write (``--force``: an old ``model.xml``, sidecar
        or plot must not sit beside the new results). Files edgeprune does not write are left alone."""
        placed: dict[str, Path] = {}
        for name in files:
            source = self.staging / name
            destination = self.path / name
            os.chmod(source, 0o666 & ~_umask())  # temporary files are created private; results are not
            fsync_file(source)  # on disk before its name is: a power cut leaves no empty result
            os.replace(source, destination)
            placed[name] = destination
        for stale in set(RESULT_FILES) - set(files):
            (self.path / stale).unlink(missing_ok=True)
        fsync_dir(self.path)
        self.discard()
        return placed

    def remove_stale_staging(self) -> list[Path]:
        """Remove the staging folders that killed runs left in the output directory; returns them."""
        stale = [p for p in self.path.glob(STAGING_PREFIX + "*") if p.is_dir()] if self.path.is_dir() else []
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return stale

    def discard(self) -> None:
        """Remove the staging area and everything in it, then the folders this run created if they are empty
        (a run that failed before any result or resume state leaves no empty ``--out`` behind)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        for folder in self.created:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # holds results or the resume journal (or is not ours to judge): kept
                break
