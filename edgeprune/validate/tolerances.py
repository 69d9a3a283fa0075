"""How closely an artifact must match its reference, by the precision it computes in.

The output difference is judged relative to the output's scale: ``max|artifact - reference| / max(1, max|reference|)``.
Logits of a few units then get an absolute limit (fp32: 1e-3), and large-valued outputs a proportional one, so
one limit serves classifiers and regressors alike. Top-1 agreement is the fraction of inputs on which both
pick the same class.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """Limits for one precision.

    Attributes:
        max_abs_diff_relative: largest allowed ``max|diff| / max(1, max|reference|)``.
        min_top1_agreement: smallest allowed fraction of inputs with the same top-1 class.
    """

    max_abs_diff_relative: float
    min_top1_agreement: float


#: limits by precision: fp32 runtimes agree with PyTorch to ~1e-6 on small models; half precisions keep
#: about three significant digits, which after a few dozen layers is a few percent of the output scale
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(1e-3, 0.99),
    "fp16": Tolerance(5e-2, 0.95),
    "bf16": Tolerance(5e-2, 0.95),
    # int8: top-1 agreement decides; the output bound only catches a broken model (wrong scales put it far over
    # 1). A fully integer TFLite model's int8 logits differed by 0.36 of the output scale on the demo with 100%
    # top-1 agreement; ONNX Runtime's QDQ model (float output) by 0.12
    "int8": Tolerance(5e-1, 0.90),
}

#: detectors: the smallest allowed agreement, the mAP50-95 of the artifact's boxes scored against the reference's
#: confident boxes (1.0 when both find the same boxes). mAP50-95 averages IoU thresholds up to 0.95, so boxes a
#: pixel or two apart (INT8) already lower it; these limits catch a broken model, not a pixel's drift
DETECTION_AGREEMENT: dict[str, float] = {"fp32": 0.95, "fp16": 0.8, "bf16": 0.8, "int8": 0.5}


#: segmentation: the smallest allowed pixel agreement, the share of pixels whose arg-max class is the reference's.
#: A float runtime flips a pixel only where two classes' logits tie to within its rounding; INT8 moves class
#: boundaries by a pixel or so, and boundaries are a few percent of a mask's pixels, so these limits catch a
#: broken model, not a boundary's drift
SEGMENTATION_AGREEMENT: dict[str, float] = {"fp32": 0.99, "fp16": 0.95, "bf16": 0.95, "int8": 0.85}

#: the agreement limits of each task (``Task.name``) by precision
AGREEMENT_LIMITS: dict[str, dict[str, float]] = {
    "classification": {precision: t.min_top1_agreement for precision, t in TOLERANCES.items()},
    "detection": DETECTION_AGREEMENT,
    "segmentation": SEGMENTATION_AGREEMENT,
}


def min_agreement(task: str, *precisions: str) -> float:
    """The loosest agreement limit of ``task`` (``classification``, ``detection``, ``segmentation``) among
    ``precisions`` (artifact and reference may compute in different ones; an unknown precision counts as fp32).

    >>> min_agreement("segmentation", "fp32", "int8")
    0.85
    >>> min_agreement("classification", "fp32", "bf16")
    0.95
    """
    limits = AGREEMENT_LIMITS[task]
    return min(limits.get(p, limits["fp32"]) for p in precisions or ("fp32",))


def min_detection_agreement(*precisions: str) -> float:
    """The loosest detection agreement limit among ``precisions``.

    >>> min_detection_agreement("fp32", "int8")
    0.5
    """
    return min_agreement("detection", *precisions)


def tolerance_for(*precisions: str) -> Tolerance:
    """The loosest limits among ``precisions`` (artifact and reference may compute in different ones).

    >>> tolerance_for("fp32", "bf16").min_top1_agreement
    0.95
    """
    chosen = [TOLERANCES.get(p, TOLERANCES["fp32"]) for p in precisions] or [TOLERANCES["fp32"]]
    return Tolerance(max(t.max_abs_diff_relative for t in chosen), min(t.min_top1_agreement for t in chosen))
