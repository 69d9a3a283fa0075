"""``edgeprune report OUT_DIR``: re-renders report.md and the plots; one line and exit 2 on a bad report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgeprune.cli.main import main
from edgeprune.report.render import render_report_files


def _write(out: Path, report: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return out


def test_report_verb_rerenders_files(full_report: dict[str, Any], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = _write(tmp_path / "run", full_report)
    (out / "report.md").write_text("stale", encoding="utf-8")
    assert main(["-q", "report", str(out)]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# edgeprune report:") and "](layer_latency.png)" in md
    for name in ("accuracy_vs_latency.png", "layer_latency.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    printed = capsys.readouterr().out
    assert "re-rendered" in printed and "report.md" in printed


def test_report_verb_json(demo_report: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _write(tmp_path / "run", demo_report)
    assert main(["-q", "report", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == demo_report["schema"]


@pytest.mark.parametrize("content", [None, "{not json", '{"schema": "something-else/9"}', "[1, 2]",
                                     '{"schema": "edgeprune.fit-report/1"}'])
def test_bad_report_exits_2_with_one_line(content: str | None, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    if content is not None:
        (out / "report.json").write_text(content, encoding="utf-8")
    assert main(["-q", "report", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeprune: error:") and "\n" not in err, err
    assert "report" in err
    assert not (out / "report.md").exists()


def test_missing_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and "\n" not in err


def test_render_report_files_returns_names_and_makes_them_readable(full_report: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    written = render_report_files(tmp_path, full_report)
    assert written == ["accuracy_vs_latency.png", "layer_latency.png", "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written)
    for name in written:
        assert (tmp_path / name).stat().st_mode & 0o044, f"{name} is private"
