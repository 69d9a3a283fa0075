"""``--precision auto``: whether a run ships INT8, decided on the unpruned model quantized and measured.

The run measures the original in float, then the same model quantized, paired with it. INT8 is taken when it is
measurably faster *and* the quantized model still predicts what the float model predicts; otherwise the run
searches float candidates, as ``--precision fp32`` would. Both figures come from this run on this target: where
INT8 is not faster (ONNX Runtime on a CPU without dot-product instructions, a Cortex-A72), the search declines it
because it measured so, not because a table says so.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeprune.target import Target

log = logging.getLogger(__name__)

#: INT8 must run at least this many times faster than the float original (paired) to be worth its error
MIN_INT8_SPEEDUP = 1.10
#: share of evaluation images on which the quantized model must predict the float model's class
MIN_INT8_AGREEMENT = 0.97
#: evaluation images the agreement is measured on, at most (each runs once through the quantized artifact)
AGREEMENT_IMAGES = 512


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision an ``auto`` run searches at, with the measurements that decided it."""

    precision: str
    reason: str
    int8_speedup: float
    agreement: float
    images: int
    #: layers left in float when the INT8 model is mixed (see :mod:`edgeprune.quantize.mixed`)
    float_layers: tuple[str, ...] = ()
    #: the mixed-precision search's measurements (``MixedPrecision.to_dict``), when it ran
    mixed: dict[str, Any] | None = field(default=None, compare=False)
    #: the agreement INT8 had to reach (the task's: top-1 for classifiers, mAP against the float boxes for detectors)
    min_agreement: float = MIN_INT8_AGREEMENT

    def to_dict(self) -> dict[str, Any]:
        """For the report (``method.precision_choice``)."""
        return {**asdict(self), "float_layers": list(self.float_layers), "min_int8_speedup": MIN_INT8_SPEEDUP}


def choose_precision(int8_speedup: float, agreement: float, images: int, predicted: bool = False,
                     float_precision: str = "fp32", float_layers: tuple[str, ...] = (),
                     min_agreement: float = MIN_INT8_AGREEMENT, agreement_name: str = "top-1 agreement"
                     ) -> PrecisionChoice:
    """INT8 when it is at least :data:`MIN_INT8_SPEEDUP` times faster and agrees with the float model on at least
    :data:`MIN_INT8_AGREEMENT` of the images; fp32 otherwise, with the reason. ``predicted``: the speedup comes
    from a shipped profile's estimates, not a measurement (the reason says so); ``float_precision``: what a
    declined run searches at (``fp16`` on an NPU); ``float_layers``: the figures are for the INT8 model with these
    layers left in float (mixed precision); ``min_agreement`` and ``agreement_name``: a task's own measure of
    agreement (a detector's mAP against the float model's boxes) and its limit."""
    how = "is predicted (shipped profile, not measured) at" if predicted else "measured"
    which = f"INT8 with {len(float_layers)} layer(s) in float ({', '.join(float_layers)})" if float_layers else "INT8"
    figures = f"{which} {how} {int8_speedup:.2f}x the float original's speed, {agreement_name} {100 * agreement:.1f}%"
    if int8_speedup < MIN_INT8_SPEEDUP:
        choice = PrecisionChoice(float_precision, f"{figures} on {images} images: not faster by {MIN_INT8_SPEEDUP:.2f}x on "
                                 "this target, so the search prunes in float", int8_speedup, agreement, images,
                                 float_layers, min_agreement=min_agreement)
    elif agreement < min_agreement:
        choice = PrecisionChoice(float_precision, f"{figures} on {images} images, under {100 * min_agreement:.0f}%: "
                                 "quantization changes too many predictions, so the search prunes in float "
                                 "(--precision int8 forces it)", int8_speedup, agreement, images, float_layers,
                                 min_agreement=min_agreement)
    else:
        choice = PrecisionChoice("int8", f"{figures} on {images} images: the search prunes the INT8 model",
                                 int8_speedup, agreement, images, float_layers, min_agreement=min_agreement)
    log.info("--precision auto chose %s: %s", choice.precision, choice.reason)
    return choice


def auto_target(target: Target, measured: bool, estimated: bool = False) -> Target:
    """The target an ``auto`` run starts at: INT8 candidates where the target offers INT8, edgeprune quantizes for its
    runtime, and INT8 latency is measured or (``estimated``) its shipped profile has an INT8 estimate; the target
    as it is otherwise."""
    from edgeprune.runtimes.table import facts_of

    if "int8" not in target.precisions:
        why = f"target '{target.name}' lists no int8 precision"
    elif not facts_of(target.runtime).int8:
        why = f"edgeprune does not quantize for {facts_of(target.runtime).title}"
    elif not (measured or estimated):
        why = f"target '{target.name}' has only a float latency profile here (connect its agent with --device)"
    else:
        return target.with_precision("int8")
    log.info("--precision auto: %s, so the run stays at %s", why, target.precision)
    return target
