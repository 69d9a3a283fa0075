"""Paired measurements through the agent: the schedule on the wire, its fit into the agent's limits, the answer.

The client keeps the original's artifact on the agent as a *reference* (``keep_as_reference``) and has every
candidate timed against it on the device (``pair_with``): the same alternating rounds as a local paired
measurement (:mod:`edgeprune.paired`), so a device that warms up and throttles during a run moves both sides
alike. This module turns a :class:`~edgeprune.paired.PairingSpec` into request data and back, shortens a
schedule that would not fit the agent's timing ceiling, and carries a :class:`~edgeprune.paired.PairedStats`
back to the client.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from edgeprune.agent.protocol import ProtocolError, latency_stats_from_dict, latency_stats_to_dict
from edgeprune.paired import PairedStats, PairingSpec, ratio_summary


def pairing_to_request(spec: PairingSpec, threshold_ratio: float | None) -> dict[str, float]:
    """The ``pairing`` field of a request."""
    data: dict[str, float] = {k: v for k, v in dataclasses.asdict(spec).items()}
    if threshold_ratio is not None and math.isfinite(threshold_ratio):
        data["threshold_ratio"] = float(threshold_ratio)
    return data


def pairing_from_request(data: dict[str, float]) -> tuple[PairingSpec, float | None]:
    """The schedule and threshold of a validated ``pairing`` field (missing fields take the defaults)."""
    fields = {f.name for f in dataclasses.fields(PairingSpec)}
    floats = {"min_round_seconds", "max_interval_share"}
    values: dict[str, Any] = {k: (float(v) if k in floats else int(v)) for k, v in data.items() if k in fields}
    spec = PairingSpec(**values)
    if spec.max_rounds < spec.rounds:
        spec = dataclasses.replace(spec, max_rounds=spec.rounds)
    threshold = data.get("threshold_ratio")
    return spec, float(threshold) if threshold is not None else None


def fit_pairing_to_budget(spec: PairingSpec, seconds_per_call: float, budget_s: float) -> PairingSpec:
    """Shorten ``spec`` so that its rounds, extensions included, take at most ``budget_s`` on this device.

    ``seconds_per_call`` is the slower side's single inference, timed once before measuring. At least two
    rounds are kept.
    """
    per_side_s = max(spec.min_round_seconds, spec.min_runs * max(seconds_per_call, 1e-7))
    per_round_s = 2 * per_side_s
    warmup_s = 2 * spec.warmup_runs * max(seconds_per_call, 1e-7)
    fit_rounds = max(2, int((budget_s - warmup_s) / per_round_s))
    max_rounds = min(spec.max_rounds, fit_rounds)
    rounds = min(spec.rounds, max_rounds)
    return dataclasses.replace(spec, rounds=rounds, max_rounds=max_rounds,
                               extra_rounds=max(1, min(spec.extra_rounds, max_rounds - rounds)))


def paired_to_wire(paired: PairedStats) -> dict[str, Any]:
    """The ``paired`` field of an answer: the round medians (enough to recompute) and both pooled summaries."""
    return {**paired.to_dict(), "reference_stats": latency_stats_to_dict(paired.reference),
            "candidate_stats": latency_stats_to_dict(paired.candidate)}


def paired_from_wire(data: Any, seed: int = 0) -> PairedStats:
    """Rebuild a paired measurement from an agent's answer, recomputing the ratio and its interval from the
    round medians (the agent's own figures are not taken on trust); raises :class:`ProtocolError`."""
    if not isinstance(data, dict):
        raise ProtocolError("the agent's 'paired' answer is not an object")
    try:
        ref = [float(x) for x in data["reference_round_ms"]]
        cand = [float(x) for x in data["candidate_round_ms"]]
        started = [float(x) for x in data.get("round_started_s", [0.0] * len(ref))]
        summary = ratio_summary(ref, cand, seed)
        threshold = data.get("threshold_ratio")
        return PairedStats(summary=summary, reference_round_ms=ref, candidate_round_ms=cand, round_started_s=started,
                           reference=latency_stats_from_dict(data["reference_stats"]),
                           candidate=latency_stats_from_dict(data["candidate_stats"]),
                           threshold_ratio=float(threshold) if threshold is not None else None,
                           extended=bool(data.get("extended", False)),
                           disturbed_share=float(data.get("disturbed_share", 0.0)),
                           rounds_left_out=int(data.get("rounds_left_out", 0)),
                           oversubscribed=bool(data.get("oversubscribed", False)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed paired answer from the agent ({type(exc).__name__}: {exc})") from None
