"""``--max-rounds`` bounds the search, not the confirmations of what it found (CI, session 20).

LR-ASPP's search measured a candidate within the budget at its 10th round; two confirmations overturned it,
which made 12 rounds of 12, and the run stopped with "no candidate met it" although the search had rounds'
worth of smaller candidates to propose. Confirmations and depth pruning's rounds no longer count.
"""

from __future__ import annotations

from edgeprune.fit.closed_loop import CONFIRM_KINDS, DEPTH_KINDS, search_rounds


def _rounds(*kinds: str) -> list[dict[str, str]]:
    return [{"kind": k} for k in kinds]


def test_only_the_searchs_own_measurements_count() -> None:
    rounds = _rounds("search", "search-upward", "floor", "preconfirm", "preconfirm-recheck", "search", "preconfirm",
                     "confirm", "recheck", "depth", "depth-recheck")
    assert search_rounds(rounds) == 4  # search, search-upward, floor, search


def test_every_confirming_kind_the_closed_loop_records_is_exempt() -> None:
    assert search_rounds(_rounds(*CONFIRM_KINDS, *DEPTH_KINDS)) == 0
    assert search_rounds(_rounds("search") * 12 + _rounds(*CONFIRM_KINDS)) == 12
