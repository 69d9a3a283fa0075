"""Writing one benchmark's section into docs/benchmarks.md, leaving every other section as it is."""

from __future__ import annotations

from pathlib import Path

_NEW_DOC = "# Benchmarks\n\nResults of the scripts in `tools/bench/`, each with the command that reproduces it.\n"


def write_section(doc: Path, heading: str, lines: list[str]) -> None:
    """Replace the section that starts at ``heading`` (up to the next ``## ``) with ``lines``, or append it.

    ``lines`` must begin with ``heading``: a section written without it would be found by no later write, and every
    later write would append a second copy.
    """
    if not lines or lines[0] != heading:
        raise ValueError(f"a section's lines must start with its heading {heading!r}")
    text = doc.read_text(encoding="utf-8") if doc.exists() else _NEW_DOC
    if heading in text:
        head, _, rest = text.partition(heading)
        tail = rest.split("\n## ", 1)
        text = head + "\n".join(lines) + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip() + "\n\n" + "\n".join(lines)
    doc.write_text(text, encoding="utf-8")
