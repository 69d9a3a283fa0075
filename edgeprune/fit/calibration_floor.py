"""What a fit's calibration images are enough for: data-driven steps are switched off, in one line, below a floor.

Calibration images feed the importance scores (LASSO, NISP, Taylor), batch-norm re-estimation and least-squares
reconstruction. With a handful of them each step fits those images instead of the data: a 20-image folder gave a
MobileNetV2 fit 4 calibration images (the rest measured accuracy), and its reconstructed, re-normalised model
agreed with the original on none of them (issue 35). So below :data:`MIN_SCORING_IMAGES` a data-driven criterion
gives way to L1 (data-free), below :data:`MIN_BN_IMAGES` batch norm keeps the original's statistics, and
reconstruction skips the layers that have more weights to fit than the images give sampled positions
(:func:`edgeprune.prune.reconstruct.reconstruct_consumers`). Each says so in one warning naming the minimum and
``--calib-data``; report.json's ``calibration`` records the images and their source.

Why 8: the floors were 16 at first, and that was wrong on the evidence. The shapes detector fitted on a 48-image
folder without labels calibrates on 9 (tests/e2e/test_fit_detector.py, the unlabelled case): with LASSO,
reconstruction and batch-norm re-estimation on those 9 images its shipped model kept 35% box agreement with the
original; with the three switched off (16 as the floor) it kept none. A convolution's statistics and its least
squares are taken over every sampled position of every image, so 9 images of 64 px are not 9 samples. At 4 images
(the MobileNetV2 case above) the steps stay off; 8 lies between the two counts measured.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: the fewest calibration images a data-driven importance criterion is scored on (else L1)
MIN_SCORING_IMAGES = 8
#: the fewest calibration images batch-norm statistics are re-estimated from (else the original's are kept)
MIN_BN_IMAGES = 8
#: criteria that need no images
DATA_FREE_CRITERIA = ("l1", "bn")


def criterion_for(name: str, images: int) -> str:
    """``name``, or ``l1`` with a warning when ``name`` is data-driven and ``images`` are too few."""
    if name in DATA_FREE_CRITERIA or images >= MIN_SCORING_IMAGES:
        return name
    log.warning("importance: '%s' is scored on calibration images and this run has %d, fewer than %d: scoring by "
                "L1 instead; pass --calib-data DIR with at least %d images to use '%s'", name, images,
                MIN_SCORING_IMAGES, MIN_SCORING_IMAGES, name)
    return "l1"


def batchnorm_for(wanted: bool, images: int) -> bool:
    """Whether to re-estimate batch-norm statistics: ``wanted``, unless ``images`` are too few (a warning)."""
    if not wanted or images >= MIN_BN_IMAGES:
        return wanted
    log.warning("batch-norm re-estimation is off: it needs at least %d calibration images and this run has %d; "
                "pass --calib-data DIR with more", MIN_BN_IMAGES, images)
    return False


def note_short_calibration(got: int, asked: int, source: str) -> None:
    """Say, in one warning, that the run calibrates on fewer images than ``--calib-images`` asked, and from where
    (``source``: the run's description of its calibration images)."""
    if got < asked:
        log.warning("calibrating on %d images, fewer than --calib-images %d: %s; pass --calib-data DIR (or "
                    "--train-data) with more images", got, asked, source)
