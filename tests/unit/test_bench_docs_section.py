"""One benchmark section in docs/benchmarks.md is replaced in place, never duplicated."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

from docs_section import write_section  # noqa: E402


def test_a_section_written_twice_appears_once_and_leaves_the_next_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    write_section(doc, "## A", ["## A", "", "first"])
    write_section(doc, "## B", ["## B", "", "other"])
    write_section(doc, "## A", ["## A", "", "second"])
    text = doc.read_text(encoding="utf-8")
    assert text.count("## A") == 1 and "second" in text and "first" not in text
    assert text.count("## B") == 1 and "other" in text


def test_lines_without_their_heading_are_refused(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    with pytest.raises(ValueError, match="heading"):
        write_section(doc, "## A", ["Written by a tool", "rows"])
    assert not doc.exists()
