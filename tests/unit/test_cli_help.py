"""Every verb's --help reads as written: argparse %-formats help strings but not descriptions, so a doubled
percent sign in a description reached users as "90%%" (issue 37)."""

from __future__ import annotations

import argparse

from edgeprune.cli.main import build_parser


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_no_help_text_shows_a_doubled_percent_sign() -> None:
    parser = build_parser()
    verbs = _verbs(parser)
    assert {"fit", "bench", "validate", "export", "profile"} <= set(verbs), sorted(verbs)
    for name, verb in {"edgeprune": parser, **verbs}.items():
        text = verb.format_help()
        assert "%%" not in text, (name, text[text.index("%%") - 80:text.index("%%") + 20])
