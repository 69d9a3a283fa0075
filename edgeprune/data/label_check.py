"""The sign of labels that do not match the model's classes: a classifier's top-1 on labelled data near chance.

A trained classifier on images of its own classes scores far above chance (1/K for K classes); one whose labels
are numbered differently from its outputs (folders in sorted order for an ImageNet model, a class map off by
one) scores at chance or below, however good the model. The rule (:func:`label_check`) flags a top-1 at or below
:data:`CHANCE_MULTIPLE` times chance, capped at :data:`CEILING` so that a two- or three-class model is not flagged
for being merely mediocre, on at least :data:`MIN_IMAGES` labelled images: on 20 images a 1000-class model is
flagged only when it gets none right (a 70%-top-1 model does that with probability 0.3^20), a 10-class one when
it gets at most 4 right.
"""

from __future__ import annotations

from typing import Any

#: the fewest labelled images the rule judges on
MIN_IMAGES = 20
#: a top-1 at or below this multiple of chance (1/K) is the sign of mismatched labels ...
CHANCE_MULTIPLE = 2.0
#: ... and at or below this share, whatever K
CEILING = 0.2
#: where a newcomer reads how folder names become labels
GUIDE = "docs/guide/data.md"


def suspect_threshold(num_classes: int) -> float:
    """The top-1 at or below which ``num_classes`` classes' labels look mismatched.

    >>> suspect_threshold(1000), suspect_threshold(10), suspect_threshold(2)
    (0.002, 0.2, 0.2)
    """
    return min(CHANCE_MULTIPLE / num_classes, CEILING)


def label_check(top1: float | None, images: int, num_classes: int | None, labels_from: str = "",
                who: str = "the original model") -> dict[str, Any] | None:
    """report.json's ``label_check``: ``top1`` (a fraction, on ``images`` labelled images) judged against chance for
    ``num_classes`` classes; ``suspect`` with a one-line ``message`` saying what to check. None when there is
    nothing to judge (no labels, or fewer than two classes)."""
    if top1 is None or num_classes is None or num_classes < 2:
        return None
    threshold = suspect_threshold(num_classes)
    judged = images >= MIN_IMAGES
    suspect = judged and top1 <= threshold
    return {"top1": top1, "images": images, "classes": num_classes, "chance": 1.0 / num_classes,
            "threshold": threshold, "min_images": MIN_IMAGES, "judged": judged, "suspect": suspect,
            "labels_from": labels_from or None,
            "message": mismatch_message(top1, images, num_classes, labels_from, who) if suspect else None}


def mismatch_message(top1: float, images: int, num_classes: int, labels_from: str, who: str) -> str:
    """One line: the figure, and what to check (the labels' source, ``--class-map``, the weights)."""
    source = f"they came from {labels_from}" if labels_from else "check how they were made"
    return (f"{who}'s top-1 on the labelled data is {100 * top1:.2f}% on {images} images, no better than chance for "
            f"{num_classes} classes ({100 / num_classes:.2f}%): the labels probably do not number the model's classes "
            f"({source}; folders named by ImageNet WordNet id or by class index map to the model's classes, pass "
            f"--class-map FILE for other names, see {GUIDE}), or the model is untrained (check --weights)")
