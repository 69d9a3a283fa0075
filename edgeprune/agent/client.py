"""Client of the on-device agent: send an artifact, get back latency measured with the device's runtime.

>>> parse_agent_url("raspberrypi.local:8765")
('raspberrypi.local', 8765)
"""

from __future__ import annotations

import dataclasses
import http.client
import io
import json
import logging
import os
import socket
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import numpy as np

from edgeprune.agent.checks import member_names
from edgeprune.agent.pairing import paired_from_wire, pairing_to_request
from edgeprune.agent.protocol import (
    AUTH_HEADER,
    DEFAULT_PORT,
    INFO_PATH,
    MEASURE_PATH,
    PROTOCOL_VERSION,
    REQUEST_HEADER,
    TOKEN_ENV,
    MeasureRequest,
    ProtocolError,
    one_line,
    parse_measure_response,
)
from edgeprune.errors import DeviceUnavailableError, InputError
from edgeprune.paired import PairedStats, PairingSpec
from edgeprune.runtimes import facts_of_format
from edgeprune.runtimes.base import Artifact, LayerTiming
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec, monotonic_s

log = logging.getLogger(__name__)

_MAX_RESPONSE_BYTES = 4 << 20
_BLOCKSIZE = 1 << 20


def parse_agent_url(url: str) -> tuple[str, int]:
    """``http://host:port``, ``host:port`` or ``host`` (port 8765) → (host, port); only plain http."""
    text = url.strip()
    if not text:
        raise InputError("empty agent URL; expected http://HOST:PORT")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InputError(f"malformed agent URL '{url}'; expected http://HOST:PORT") from None
    if parts.scheme != "http":
        raise InputError(f"agent URL '{url}': only http:// is supported (the agent has no TLS; on untrusted "
                         "networks reach it through an SSH tunnel)")
    if parts.username or parts.password:
        raise InputError(f"agent URL '{url}' must not carry credentials; pass the token separately")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError(f"agent URL '{url}' must be just http://HOST:PORT")
    if not parts.hostname:
        raise InputError(f"agent URL '{url}' has no host; expected http://HOST:PORT")
    return parts.hostname, port if port is not None else DEFAULT_PORT


@dataclass(frozen=True)
class AgentMeasurement:
    """One measurement taken by an agent.

    Attributes:
        stats: latency statistics measured on the device.
        environment: machine facts, runtime name/version, device, threads, precision on the agent.
        timing: the timing spec the agent actually used (it may shorten a spec that would run too long).
        load_ms: time the runtime took to load (compile) the artifact.
        first_run_ms: the first inference, excluded from the statistics.
        device_state: the device's clocks and temperatures just before and after the timing (``before``,
            ``after``; empty dicts where the device exposes none).
        paired: the readings against the kept reference, for a paired measurement.
        reference_id: the id the agent keeps the upload under, when asked to keep it.
    """

    stats: LatencyStats
    environment: dict[str, Any]
    timing: TimingSpec
    load_ms: float | None = None
    first_run_ms: float | None = None
    device_state: dict[str, Any] | None = None
    paired: PairedStats | None = None
    reference_id: str | None = None


@dataclass
class AgentClient:
    """Talks to one ``edgeprune agent``.

    Args:
        url: ``http://host:port`` (or ``host:port``).
        token: the agent's token; defaults to the ``EDGEPRUNE_AGENT_TOKEN`` environment variable.
        timeout_s: socket timeout for connecting and for each wait on the agent (a measure waits for the
            upload, any queued measurements and its own timing).
    """

    url: str
    token: str | None = None
    timeout_s: float = 600.0
    _info: dict[str, Any] | None = field(default=None, init=False, repr=False)
    _reference_ids: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.host, self.port = parse_agent_url(self.url)
        host_text = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host_text}:{self.port}"
        if self.token is None:
            self.token = os.environ.get(TOKEN_ENV)
        if not self.token:
            raise InputError(f"no token for the agent at {self.url}: pass one or set {TOKEN_ENV}")

    # --- public API ------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The agent's protocol, machine facts, installed runtimes and limits (``GET /v1/info``)."""
        data = self._request("GET", INFO_PATH, {}, None, 0)
        if data.get("protocol") != PROTOCOL_VERSION:
            raise InputError(f"the agent at {self.url} speaks protocol {data.get('protocol')!r}, this edgeprune "
                             f"{PROTOCOL_VERSION!r}; use the same edgeprune version on both sides")
        self._info = data
        return data

    def measure(self, artifact: Artifact, target: Target, spec: TimingSpec | None = None,
                input_dtype: str = "float32") -> AgentMeasurement:
        """Upload ``artifact`` and have the agent time it with ``target``'s runtime, device, threads, precision."""
        return self._measure(artifact, target, spec or TimingSpec(), input_dtype)

    def measure_paired(self, reference: Artifact, candidate: Artifact, target: Target, pairing: PairingSpec,
                       threshold_ratio: float | None = None) -> AgentMeasurement:
        """Time ``candidate`` against ``reference`` on the device, in alternating rounds.

        The reference is uploaded once and kept by the agent (``keep_as_reference``); an agent that no longer
        holds it (it restarted) gets it again. The answer's ``paired`` holds the readings; the ratio and its
        interval are recomputed here from the round medians.
        """
        for attempt in range(2):
            reference_id = self._reference_ids.get(str(reference.path))
            if reference_id is None:
                kept = self._measure(reference, target, TimingSpec(min_runs=10, min_seconds=0.2), "float32",
                                     keep_as_reference=True)
                reference_id = kept.reference_id
                if reference_id is None:
                    raise InputError(f"the agent at {self.url} did not keep the reference {reference.path.name}")
                self._reference_ids = {str(reference.path): reference_id}
            try:
                return self._measure(candidate, target, TimingSpec(), "float32", pair_with=reference_id,
                                     pairing=pairing_to_request(pairing, threshold_ratio))
            except AgentRefusedError as exc:
                if exc.status != 409 or attempt:
                    raise
                log.info("the agent at %s no longer holds the reference; uploading it again", self.url)
                self._reference_ids = {}
        raise AssertionError("unreachable")

    def _measure(self, artifact: Artifact, target: Target, spec: TimingSpec, input_dtype: str,
                 keep_as_reference: bool = False, pair_with: str | None = None,
                 pairing: dict[str, float] | None = None) -> AgentMeasurement:
        request = MeasureRequest(
            format=artifact.format, runtime=target.runtime, device=target.device, threads=target.threads,
            precision=target.precision, input_name=artifact.input_name, input_shape=tuple(artifact.input_shape),
            timing=spec, input_dtype=input_dtype, keep_as_reference=keep_as_reference, pair_with=pair_with,
            pairing=pairing,
        )
        try:  # validate locally what the agent would refuse anyway
            MeasureRequest.from_dict(request.to_dict())
        except ProtocolError as exc:
            raise InputError(f"cannot measure {artifact.path.name} on the agent: {exc}") from None
        self._preflight(target, artifact)
        body, size = _artifact_body(artifact)
        limit = int(self._agent_info()["limits"]["max_bytes"])
        if size > limit:
            body.close()
            raise InputError(f"{artifact.path.name} is {size / 2**20:.1f} MiB but the agent at {self.url} accepts "
                             f"at most {limit / 2**20:.1f} MiB (start it with a larger --max-mb)")
        headers = {REQUEST_HEADER: request.to_header(), "Content-Type": "application/octet-stream"}
        with body:
            data = self._request("POST", MEASURE_PATH, headers, body, size)
        try:
            stats, timing, environment, extra = parse_measure_response(data)
        except ProtocolError as exc:
            raise InputError(f"the agent at {self.url}: {exc}") from None
        if timing != request.timing:
            log.info("the agent shortened the timing to fit its limit: %s", timing)
        state = data.get("device_state") if isinstance(data.get("device_state"), dict) else None
        paired = None
        if pair_with is not None:
            try:
                paired = paired_from_wire(data.get("paired"))
            except ProtocolError as exc:
                raise InputError(f"the agent at {self.url}: {exc}") from None
            # the rounds' start times are the device's clock: put them on this machine's, ending now
            now, last = monotonic_s(), paired.round_started_s[-1]
            paired = dataclasses.replace(paired, round_started_s=[now - last + t for t in paired.round_started_s])
        reference_id = data.get("reference_id") if isinstance(data.get("reference_id"), str) else None
        return AgentMeasurement(stats, environment, timing, extra.get("load_ms"), extra.get("first_run_ms"), state,
                                paired, reference_id)

    # --- internals -------------------------------------------------------------------------------

    def _agent_info(self) -> dict[str, Any]:
        return self._info if self._info is not None else self.info()

    def _preflight(self, target: Target, artifact: Artifact) -> None:
        runtimes = self._agent_info().get("runtimes", {})
        entry = runtimes.get(target.runtime)
        if not isinstance(entry, dict):
            raise InputError(f"the agent at {self.url} does not know runtime '{target.runtime}'")
        if not entry.get("installed"):
            raise InputError(f"the agent at {self.url} has no {target.runtime} runtime; on the device run: "
                             f"pip install 'edgeprune[{entry.get('extra', target.runtime)}]'")

    def _request(self, method: str, path: str, headers: dict[str, str], body: BinaryIO | None,
                 size: int) -> dict[str, Any]:
        """One HTTP exchange; every failure becomes a one-line :class:`InputError`.

        An agent that is momentarily full (503 with ``Retry-After``: its connection cap, while others' requests
        are being read) is asked again after the time it gives, for as long as :attr:`timeout_s` allows.
        """
        deadline = monotonic_s() + self.timeout_s
        while True:
            status, raw, retry_after = self._exchange(method, path, headers, body, size)
            if status != 503 or retry_after is None or monotonic_s() + retry_after > deadline:
                break
            if body is not None:
                if not body.seekable():
                    break
                body.seek(0)
            log.info("the agent at %s is full; asking again in %g s", self.url, retry_after)
            time.sleep(retry_after)
        return self._answer(method, path, status, raw)

    def _exchange(self, method: str, path: str, headers: dict[str, str], body: BinaryIO | None,
                  size: int) -> tuple[int, bytes, float | None]:
        """Send one request; (status, raw answer, Retry-After in seconds when the agent gave one)."""
        headers = {**headers, AUTH_HEADER: f"Bearer {self.token}", "Content-Length": str(size),
                   "Accept": "application/json"}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s, blocksize=_BLOCKSIZE)
        try:
            try:
                conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # the agent refused before reading the whole upload; its answer may still be readable
                try:
                    response = conn.getresponse()
                except (OSError, http.client.HTTPException):
                    raise DeviceUnavailableError(
                        f"the agent at {self.url} closed the connection during the upload ({size / 2**20:.1f} "
                        "MiB): wrong token, larger than its --max-mb limit, or the connection dropped?") from None
            else:
                response = conn.getresponse()
            raw = response.read(_MAX_RESPONSE_BYTES + 1)
            status = response.status
            retry_text = (response.getheader("Retry-After") or "").strip()
        except ConnectionRefusedError:
            raise DeviceUnavailableError(f"cannot connect to the edgeprune agent at {self.url}: connection refused "
                                         "(is 'edgeprune agent' running there, on this port, and the tunnel up?)"
                                         ) from None
        except (TimeoutError, socket.timeout):
            raise DeviceUnavailableError(f"the edgeprune agent at {self.url} did not answer within "
                                         f"{self.timeout_s:g} s") from None
        except socket.gaierror as exc:
            raise InputError(f"cannot resolve the agent host '{self.host}': {exc.strerror or exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise DeviceUnavailableError(f"cannot talk to the edgeprune agent at {self.url}: "
                                         f"{one_line(reason, 200)}") from None
        finally:
            conn.close()
        retry_after = min(max(float(retry_text), 0.1), 10.0) if retry_text.isascii() and retry_text.isdigit() else None
        return status, raw, retry_after

    def _answer(self, method: str, path: str, status: int, raw: bytes) -> dict[str, Any]:
        """The JSON object of a 200 answer; any other status becomes a one-line error."""
        if len(raw) > _MAX_RESPONSE_BYTES:
            raise InputError(f"the agent at {self.url} sent an oversized answer")
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if status != 200:
            error = data.get("error") if isinstance(data, dict) else None
            text = one_line(str(error)) if error else one_line(raw.decode("utf-8", "replace"), 200) or "no detail"
            if status == 503:  # busy or shutting down: the device is there but cannot take work now
                raise DeviceUnavailableError(f"the edgeprune agent at {self.url} is unavailable (HTTP 503): {text}")
            raise AgentRefusedError(status, f"the edgeprune agent at {self.url} refused {method} {path} "
                                            f"(HTTP {status}): {text}")
        if not isinstance(data, dict):
            raise InputError(f"the agent at {self.url} sent an answer that is not a JSON object")
        return data


class AgentRefusedError(InputError):
    """The agent answered with an error status (``status``); the message is its one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _artifact_body(artifact: Artifact) -> tuple[BinaryIO, int]:
    """The request body for an artifact: the file itself, or for an artifact of several files (OpenVINO's
    ``.xml`` + ``.bin``) a zip of them under the member names the agent expects."""
    path = Path(artifact.path)
    facts = facts_of_format(artifact.format)
    if facts.multi_file:
        parts = facts.files(path)
        for p in parts:
            if not p.is_file():
                raise InputError(f"{facts.title} file not found: {p}")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for part, member in zip(parts, member_names(artifact.format)):
                archive.write(part, member)
        size = buffer.tell()
        buffer.seek(0)
        return buffer, size
    if not path.is_file():
        raise InputError(f"artifact not found: {path}")
    return open(path, "rb"), path.stat().st_size


class RemoteSession:
    """A :class:`~edgeprune.runtimes.base.Session` whose ``time()`` measures on an agent.

    Outputs are not shipped back, so :meth:`run` and :meth:`profile_layers` raise ``NotImplementedError``:
    parity and accuracy are checked with a local session. The last measurement (with the agent's
    environment) is kept in :attr:`last_measurement`.
    """

    def __init__(self, client: AgentClient, artifact: Artifact, target: Target) -> None:
        self.client = client
        self.artifact = artifact
        self.target = target
        self.last_measurement: AgentMeasurement | None = None

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Not available: the agent returns timings only."""
        raise NotImplementedError("a remote agent returns timings only; run the artifact locally for outputs")

    def time(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> LatencyStats:
        """Latency measured by the agent on zeros of the artifact's input shape (``inputs`` fix shape and dtype)."""
        dtype = "float32"
        if self.artifact.input_name in inputs:
            x = np.asarray(inputs[self.artifact.input_name])
            if tuple(x.shape) != tuple(self.artifact.input_shape):
                raise InputError(f"input '{self.artifact.input_name}' has shape {tuple(x.shape)} but the artifact "
                                 f"expects {tuple(self.artifact.input_shape)}")
            dtype = str(x.dtype)
        self.last_measurement = self.client.measure(self.artifact, self.target, spec, input_dtype=dtype)
        return self.last_measurement.stats

    def profile_layers(self, inputs: Mapping[str, np.ndarray], spec: TimingSpec) -> list[LayerTiming]:
        """Not available through the agent."""
        raise NotImplementedError("per-layer profiles are not available through the agent")
