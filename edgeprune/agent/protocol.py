"""Wire format between edgeprune and an on-device measurement agent (``edgeprune agent``).

JSON over plain HTTP, standard library only, no pickle. One request per connection:

* ``GET /v1/info`` → :func:`info_response`-shaped JSON: protocol, edgeprune version, machine facts,
  runtimes installed on the device, the agent's limits.
* ``POST /v1/measure``: header ``Authorization: Bearer <token>``, header ``X-Edgeprune-Request`` holding
  a :class:`MeasureRequest` as one line of ASCII JSON, body = the artifact's bytes (ONNX or TFLite file,
  or for OpenVINO IR a zip holding exactly ``model.xml`` and ``model.bin``). The answer is
  ``{"protocol", "stats": LatencyStats, "timing": TimingSpec actually used, "environment": {...},
  "load_ms", "first_run_ms", "device_state"}``.
* Pairing (``edgeprune-agent/2``): a request with ``keep_as_reference`` has the agent keep the checked upload
  after measuring it and answer its ``reference_id`` (the SHA-256 the agent computed of the bytes it received);
  a later request with ``pair_with`` set to that id is timed against the kept reference in alternating rounds
  (``pairing``: the schedule and the threshold ratio), and its answer carries ``"paired"``
  (:mod:`edgeprune.agent.pairing`). An id the agent does not hold (it restarted) is refused with 409.
  ``edgeprune-agent/3`` adds ``pairing.max_interval_share``: more rounds while the ratio's interval is wider.

Any refusal is ``{"error": "<one line>"}`` with a 4xx/5xx status. Both sides speak exactly
:data:`PROTOCOL_VERSION`; a mismatch is refused with a message saying so.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgeprune.errors import InputError
from edgeprune.runtimes.table import RUNTIME_FACTS
from edgeprune.target import PRECISIONS
from edgeprune.timing import LatencyStats, TimingSpec

PROTOCOL_VERSION = "edgeprune-agent/3"
INFO_PATH = "/v1/info"
MEASURE_PATH = "/v1/measure"
AUTH_HEADER = "Authorization"
REQUEST_HEADER = "X-Edgeprune-Request"
TOKEN_ENV = "EDGEPRUNE_AGENT_TOKEN"

DEFAULT_PORT = 8765
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_TIMEOUT_S = 120.0
#: ceiling on the time one measurement may spend timing (all passes together)
MAX_TIMING_S = 60.0
#: longest accepted X-Edgeprune-Request header value
MAX_METADATA_CHARS = 16 * 1024

#: artifact formats each runtime can load on the agent (the facts table's ``agent_formats``)
RUNTIME_FORMATS: dict[str, tuple[str, ...]] = {facts.name: facts.agent_formats for facts in RUNTIME_FACTS}
INPUT_DTYPES = ("float32", "float16", "uint8", "int8")

# Static bounds on the timing spec a client may ask for; the agent also shortens a spec whose runs
# would not fit in MAX_TIMING_S given the model's measured first-run time.
_SPEC_INT_BOUNDS = {"warmup_runs": (0, 1000), "min_runs": (1, 100_000), "max_runs": (1, 1_000_000), "retries": (0, 5)}
_SPEC_FLOAT_BOUNDS = {"min_seconds": (0.0, MAX_TIMING_S), "max_cv": (1e-6, 100.0)}
_MAX_DIMS, _MAX_DIM, _MAX_ELEMENTS = 8, 1 << 16, 1 << 26
_NAME_RE = re.compile(r"^[\x20-\x7e]{1,256}$")
_DEVICE_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


class ProtocolError(InputError):
    """A request or response does not follow the agent protocol (bad metadata, wrong version)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def timing_spec_to_dict(spec: TimingSpec) -> dict[str, Any]:
    """Plain-data form of a :class:`TimingSpec`."""
    return asdict(spec)


def timing_spec_from_dict(data: Any) -> TimingSpec:
    """Parse and bound a timing spec; missing fields take TimingSpec's defaults, out-of-range values are clamped.

    Raises :class:`ProtocolError` on unknown fields or wrong types.
    """
    if not isinstance(data, dict):
        raise ProtocolError("'timing' must be an object")
    known = {f.name for f in fields(TimingSpec)}
    unknown = set(data) - known
    if unknown:
        raise ProtocolError(f"unknown timing field(s): {', '.join(sorted(map(str, unknown)))}")
    values: dict[str, Any] = {}
    for key, (lo, hi) in _SPEC_INT_BOUNDS.items():
        if key in data:
            if not _is_int(data[key]):
                raise ProtocolError(f"timing.{key} must be an integer, got {data[key]!r}")
            values[key] = min(max(data[key], lo), hi)
    for key, (flo, fhi) in _SPEC_FLOAT_BOUNDS.items():
        if key in data:
            if not _is_number(data[key]):
                raise ProtocolError(f"timing.{key} must be a finite number, got {data[key]!r}")
            values[key] = float(min(max(data[key], flo), fhi))
    spec = TimingSpec(**values)
    if spec.max_runs < spec.min_runs:
        spec = TimingSpec(**{**asdict(spec), "max_runs": spec.min_runs})
    return spec


def fit_timing_to_budget(spec: TimingSpec, seconds_per_run: float, budget_s: float) -> TimingSpec:
    """Shorten ``spec`` so that all its passes (1 + retries) of warm-up and timed runs take at most ``budget_s``.

    ``seconds_per_run`` is an estimate of one inference (the agent times one run before measuring).
    The result always keeps at least one timed run per pass.
    """
    per_run = max(seconds_per_run, 1e-7)
    retries = spec.retries
    if (1 + retries) * per_run > budget_s:
        retries = 0
    per_pass_s = budget_s / (1 + retries)
    min_seconds = min(spec.min_seconds, 0.9 * per_pass_s)
    runs_fit = max(1, int(per_pass_s / per_run))
    warmup = min(spec.warmup_runs, runs_fit // 5)
    max_runs = max(1, min(spec.max_runs, runs_fit - warmup))
    min_runs = min(spec.min_runs, max_runs)
    return TimingSpec(warmup_runs=warmup, min_runs=min_runs, max_runs=max_runs, min_seconds=min_seconds,
                      max_cv=spec.max_cv, retries=retries)


def latency_stats_to_dict(stats: LatencyStats) -> dict[str, Any]:
    """Plain-data form of :class:`LatencyStats`."""
    return dict(stats.to_dict())


def latency_stats_from_dict(data: Any) -> LatencyStats:
    """Parse a :class:`LatencyStats` sent by an agent; raises :class:`ProtocolError` when malformed."""
    if not isinstance(data, dict):
        raise ProtocolError("'stats' must be an object")
    try:
        stats = LatencyStats(
            median_ms=float(data["median_ms"]), p90_ms=float(data["p90_ms"]), mean_ms=float(data["mean_ms"]),
            min_ms=float(data["min_ms"]), cv=float(data["cv"]), runs=int(data["runs"]), noisy=bool(data["noisy"]),
            disturbed_share=float(data.get("disturbed_share", 0.0)), oversubscribed=bool(data.get("oversubscribed", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed latency statistics from the agent ({type(exc).__name__}: {exc})") from None
    if not all(math.isfinite(v) and v >= 0 for v in (stats.median_ms, stats.p90_ms, stats.mean_ms, stats.min_ms)):
        raise ProtocolError("the agent sent non-finite or negative latencies")
    return stats


@dataclass(frozen=True)
class MeasureRequest:
    """What a client asks the agent to measure; travels as JSON in the ``X-Edgeprune-Request`` header.

    Attributes:
        format: artifact format of the body (``onnx``, ``openvino``, ``tflite``).
        runtime: runtime to load it with (a name in :mod:`edgeprune.runtimes.table`).
        device: the runtime's device name (``cpu``, ``NPU`` ...).
        threads: intra-op threads.
        precision: inference precision hint (one of :data:`~edgeprune.target.PRECISIONS`).
        input_name: name of the single input tensor.
        input_shape: full input shape, batch included; the agent feeds zeros of this shape.
        timing: how to time (bounded by the agent).
        input_dtype: element type of the zeros fed.
        keep_as_reference: keep this upload as a reference for later pairs.
        pair_with: the ``reference_id`` to time this upload against, in alternating rounds.
        pairing: the pairs' schedule (:class:`~edgeprune.paired.PairingSpec` fields and ``threshold_ratio``).
        protocol: :data:`PROTOCOL_VERSION` of the sender.
    """

    format: str
    runtime: str
    device: str
    threads: int
    precision: str
    input_name: str
    input_shape: tuple[int, ...]
    timing: TimingSpec = field(default_factory=TimingSpec)
    input_dtype: str = "float32"
    keep_as_reference: bool = False
    pair_with: str | None = None
    pairing: dict[str, float] | None = None
    protocol: str = PROTOCOL_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["timing"] = timing_spec_to_dict(self.timing)
        return data

    def to_header(self) -> str:
        """One line of ASCII JSON, safe as an HTTP header value."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_header(cls, text: str | None) -> MeasureRequest:
        """Parse the header value; raises :class:`ProtocolError` with a one-line reason."""
        if not text:
            raise ProtocolError(f"missing {REQUEST_HEADER} header (JSON metadata describing the artifact)")
        if len(text) > MAX_METADATA_CHARS:
            raise ProtocolError(f"{REQUEST_HEADER} header is longer than {MAX_METADATA_CHARS} characters")
        try:
            data = json.loads(text)
        except ValueError:
            raise ProtocolError(f"{REQUEST_HEADER} header is not valid JSON") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> MeasureRequest:
        """Validate plain data into a request; raises :class:`ProtocolError`."""
        if not isinstance(data, dict):
            raise ProtocolError("request metadata must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ProtocolError(f"unknown request field(s): {', '.join(sorted(map(str, unknown)))}")
        protocol = data.get("protocol")
        if protocol != PROTOCOL_VERSION:
            raise ProtocolError(f"client speaks protocol {protocol!r} but this agent speaks {PROTOCOL_VERSION!r}; "
                                "use the same edgeprune version on both sides")
        for key in ("format", "runtime", "device", "precision", "input_name"):
            if not isinstance(data.get(key), str):
                raise ProtocolError(f"request field '{key}' must be a string")
        runtime, fmt = data["runtime"], data["format"]
        if runtime not in RUNTIME_FORMATS:
            raise ProtocolError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIME_FORMATS)}")
        if fmt not in RUNTIME_FORMATS[runtime]:
            raise ProtocolError(f"runtime {runtime} loads {', '.join(RUNTIME_FORMATS[runtime])} artifacts, "
                                f"not {fmt!r}")
        if data["precision"] not in PRECISIONS:
            raise ProtocolError(f"precision must be one of {', '.join(PRECISIONS)}")
        if not _DEVICE_RE.match(data["device"]):
            raise ProtocolError("device must be 1-64 characters from A-Z a-z 0-9 _ . : -")
        if not _NAME_RE.match(data["input_name"]):
            raise ProtocolError("input_name must be 1-256 printable ASCII characters")
        threads = data.get("threads")
        if not _is_int(threads) or not 1 <= threads <= 1024:
            raise ProtocolError(f"threads must be an integer from 1 to 1024, got {threads!r}")
        dtype = data.get("input_dtype", "float32")
        if dtype not in INPUT_DTYPES:
            raise ProtocolError(f"input_dtype must be one of {', '.join(INPUT_DTYPES)}")
        keep = data.get("keep_as_reference", False)
        if not isinstance(keep, bool):
            raise ProtocolError("keep_as_reference must be true or false")
        pair_with = data.get("pair_with")
        if pair_with is not None and not (isinstance(pair_with, str) and _REFERENCE_ID_RE.match(pair_with)):
            raise ProtocolError("pair_with must be a reference_id (64 hexadecimal characters)")
        return cls(format=fmt, runtime=runtime, device=data["device"], threads=threads,
                   precision=data["precision"], input_name=data["input_name"],
                   input_shape=_parse_shape(data.get("input_shape")),
                   timing=timing_spec_from_dict(data.get("timing", {})), input_dtype=dtype,
                   keep_as_reference=keep, pair_with=pair_with, pairing=_parse_pairing(data.get("pairing")),
                   protocol=protocol)


#: bounds on a pairing schedule a client may ask for (the agent also fits it into its timing ceiling)
_PAIRING_BOUNDS = {"rounds": (2, 200), "max_rounds": (2, 600), "extra_rounds": (1, 200), "min_runs": (1, 1000),
                   "warmup_runs": (0, 1000), "min_round_seconds": (0.0, 5.0), "threshold_ratio": (0.0, 1000.0),
                   "max_interval_share": (0.0, 1.0)}
_REFERENCE_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def _parse_pairing(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError("pairing must be an object")
    unknown = set(value) - set(_PAIRING_BOUNDS)
    if unknown:
        raise ProtocolError(f"unknown pairing field(s): {', '.join(sorted(map(str, unknown)))}")
    parsed: dict[str, float] = {}
    for key, raw in value.items():
        lo, hi = _PAIRING_BOUNDS[key]
        if raw is None and key == "threshold_ratio":
            continue
        if not _is_number(raw) or (isinstance(lo, int) and isinstance(hi, int) and not _is_int(raw)):
            raise ProtocolError(f"pairing.{key} must be a number, got {raw!r}")
        parsed[key] = min(max(raw, lo), hi)
    return parsed


def _parse_shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= _MAX_DIMS:
        raise ProtocolError(f"input_shape must be a list of 1 to {_MAX_DIMS} positive integers")
    if not all(_is_int(v) and 1 <= v <= _MAX_DIM for v in value):
        raise ProtocolError(f"input_shape sizes must be integers from 1 to {_MAX_DIM}, got {value!r}")
    elements = math.prod(value)
    if elements > _MAX_ELEMENTS:
        raise ProtocolError(f"input_shape has {elements} elements; the agent accepts at most {_MAX_ELEMENTS}")
    return tuple(value)


def error_body(message: str) -> bytes:
    """The JSON body of a refusal: ``{"error": "<one line>"}``."""
    return json.dumps({"error": one_line(message)}).encode("utf-8")


def one_line(message: str, limit: int = 500) -> str:
    """First line of ``message``, control characters removed, at most ``limit`` characters."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else "unknown error"
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_measure_response(data: Any) -> tuple[LatencyStats, TimingSpec, dict[str, Any], dict[str, float]]:
    """Split a measure answer into stats, the timing actually used, the environment and extra timings.

    Raises :class:`ProtocolError` when the answer is malformed or from another protocol version.
    """
    if not isinstance(data, dict):
        raise ProtocolError("the agent's answer is not a JSON object")
    if data.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(f"the agent speaks protocol {data.get('protocol')!r}, this edgeprune "
                            f"{PROTOCOL_VERSION!r}; use the same edgeprune version on both sides")
    stats = latency_stats_from_dict(data.get("stats"))
    timing = timing_spec_from_dict(data.get("timing", {}))
    environment = data.get("environment")
    if not isinstance(environment, dict):
        raise ProtocolError("the agent's answer has no 'environment' object")
    extra = {k: float(data[k]) for k in ("load_ms", "first_run_ms") if _is_number(data.get(k))}
    return stats, timing, environment, extra
