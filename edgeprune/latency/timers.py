"""Where an artifact is timed: in this process with the local runtime, or on the device through an agent.

Both return the same :class:`~edgeprune.timing.LatencyStats`; each also says where its figures
come from (``measured-local`` or ``measured-agent``) and on what machine and runtime, so reports and
latency tables never mix the two.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeprune.agent.devices import DeviceSpec, check_same_environment, device_environment, parse_devices
from edgeprune.environment import machine_info
from edgeprune.errors import InputError
from edgeprune.latency.analytic import AGENT_HINT, PREDICTED_LABEL, load_profile
from edgeprune.paired import PairedStats, PairingSpec, measure_paired
from edgeprune.runtimes.base import Artifact, Backend
from edgeprune.target import Target
from edgeprune.timing import LatencyStats, TimingSpec

log = logging.getLogger(__name__)


class ArtifactTimer(Protocol):
    """Times artifacts for one target."""

    source: str

    def time(self, artifact: Artifact, spec: TimingSpec) -> LatencyStats:
        """Median/p90/CV of the artifact's single-inference latency."""
        ...

    def runtime_version(self) -> str:
        """Version of the runtime that does the timing."""
        ...

    def machine(self) -> dict[str, Any]:
        """Facts about the machine that does the timing."""
        ...


class LocalTimer:
    """Times with the target's backend in this process."""

    source = "measured-local"

    def __init__(self, backend: Backend, target: Target) -> None:
        self.backend, self.target = backend, target
        self._reference: tuple[Path, Any] | None = None  # the reference's loaded session, kept between pairs

    def time(self, artifact: Artifact, spec: TimingSpec) -> LatencyStats:
        session = self.backend.load(artifact, self.target)
        feed = {artifact.input_name: np.full(artifact.input_shape, 0.5, dtype=np.float32)}
        return session.time(feed, spec)

    def time_paired(self, reference: Artifact, candidate: Artifact, spec: PairingSpec,
                    threshold_ratio: float | None = None) -> PairedStats:
        """Time ``candidate`` against ``reference`` in alternating rounds (see :mod:`edgeprune.paired`)."""
        if self._reference is None or self._reference[0] != reference.path:
            self._reference = (reference.path, self.backend.load(reference, self.target))
        ref_session = self._reference[1]
        cand_session = self.backend.load(candidate, self.target)
        ref_feed = {reference.input_name: np.full(reference.input_shape, 0.5, dtype=np.float32)}
        cand_feed = {candidate.input_name: np.full(candidate.input_shape, 0.5, dtype=np.float32)}
        return measure_paired(lambda: ref_session.run(ref_feed), lambda: cand_session.run(cand_feed), spec,
                              threshold_ratio)

    def runtime_version(self) -> str:
        return self.backend.version()

    def machine(self) -> dict[str, Any]:
        return dict(machine_info())


class AgentTimer:
    """Uploads each artifact to an ``edgeprune agent`` on the device and returns its measurement."""

    source = "measured-agent"

    def __init__(self, url: str, token: str | None, target: Target) -> None:
        from edgeprune.agent.client import AgentClient

        self.client = AgentClient(url, token)
        self.target = target
        self.info = self.client.info()
        runtime = self.info.get("runtimes", {}).get(target.runtime, {})
        self._version = str(runtime.get("version", "unknown")) if isinstance(runtime, dict) else "unknown"
        log.info("measuring on the agent at %s (%s)", self.client.url, self.info.get("machine", {}).get("cpu", "?"))

    def time(self, artifact: Artifact, spec: TimingSpec) -> LatencyStats:
        return self.client.measure(artifact, self.target, spec).stats

    def time_paired(self, reference: Artifact, candidate: Artifact, spec: PairingSpec,
                    threshold_ratio: float | None = None) -> PairedStats:
        """Time ``candidate`` against ``reference`` on the device, in alternating rounds (the agent keeps the
        reference between calls)."""
        paired = self.client.measure_paired(reference, candidate, self.target, spec, threshold_ratio).paired
        assert paired is not None
        return paired

    def runtime_version(self) -> str:
        return self._version

    def machine(self) -> dict[str, Any]:
        machine = self.info.get("machine", {})
        return dict(machine) if isinstance(machine, dict) else {}


class DevicePool:
    """Times on several identical agents at once: each measurement goes to a free one (one each at a time).

    Every agent is asked for its environment first, and a pool whose devices differ is refused in one line
    (:func:`~edgeprune.agent.devices.check_same_environment`). A paired measurement is timed on one device,
    its reference uploaded there (a ratio is only meaningful on the device that timed both sides). The device
    that was freed last takes the next measurement, so a sequence of measurements stays on one device while
    concurrent ones (:data:`workers` at a time, see :func:`edgeprune.latency.spread.spread`) use them all.
    :attr:`shares` counts the measurements each device took. One device behaves as :class:`AgentTimer`.
    """

    source = "measured-agent"

    def __init__(self, devices: Sequence[DeviceSpec], target: Target) -> None:
        if not devices:
            raise InputError("no device to measure on")
        self.timers = [AgentTimer(d.url, d.token, target) for d in devices]
        check_same_environment([(t.client.url, device_environment(t.info, target.runtime)) for t in self.timers])
        self.workers = len(self.timers)
        #: measurements taken per device (its agent's URL)
        self.shares = {t.client.url: 0 for t in self.timers}
        self._free: queue.LifoQueue[AgentTimer] = queue.LifoQueue()
        for timer in reversed(self.timers):  # the first device named is taken first
            self._free.put(timer)
        self._lock = threading.Lock()
        if self.workers > 1:
            log.info("measuring on %d identical devices: %s", self.workers, ", ".join(self.shares))

    @contextmanager
    def _device(self) -> Iterator[AgentTimer]:
        timer = self._free.get()
        try:
            yield timer
            with self._lock:
                self.shares[timer.client.url] += 1
        finally:
            self._free.put(timer)

    def time_where(self, artifact: Artifact, spec: TimingSpec) -> tuple[LatencyStats, str]:
        """Time ``artifact`` on the next free device; returns the statistics and that device's URL."""
        with self._device() as timer:
            return timer.time(artifact, spec), timer.client.url

    def time(self, artifact: Artifact, spec: TimingSpec) -> LatencyStats:
        return self.time_where(artifact, spec)[0]

    def time_paired_where(self, reference: Artifact, candidate: Artifact, spec: PairingSpec,
                          threshold_ratio: float | None = None) -> tuple[PairedStats, str]:
        """Time ``candidate`` against ``reference``, both on the next free device; returns the readings and its URL."""
        with self._device() as timer:
            return timer.time_paired(reference, candidate, spec, threshold_ratio), timer.client.url

    def time_paired(self, reference: Artifact, candidate: Artifact, spec: PairingSpec,
                    threshold_ratio: float | None = None) -> PairedStats:
        """Time ``candidate`` against ``reference`` on one device, in alternating rounds."""
        return self.time_paired_where(reference, candidate, spec, threshold_ratio)[0]

    def runtime_version(self) -> str:
        return self.timers[0].runtime_version()

    def machine(self) -> dict[str, Any]:
        return self.timers[0].machine()


class ProfileTimer:
    """Stands where a timer would: it names the profile and refuses to time anything."""

    source = "predicted-profile"

    def __init__(self, target: Target) -> None:
        if not target.profile:
            raise InputError(f"target '{target.name}' has no shipped profile to predict its latency from")
        self.target = target
        self.profile = load_profile(target.profile)
        log.warning("target '%s': latencies will be %s, not measured; %s", target.name, PREDICTED_LABEL, AGENT_HINT)

    def time(self, artifact: Artifact, spec: TimingSpec) -> LatencyStats:
        raise InputError(f"target '{self.target.name}' cannot be measured from here; {AGENT_HINT}")

    def runtime_version(self) -> str:
        return f"n/a ({PREDICTED_LABEL} '{self.profile.name}')"

    def machine(self) -> dict[str, Any]:
        profile = self.profile.at_precision(self.target.precision) if self.target.precision == "int8" else self.profile
        return {"cpu": self.profile.description, "predicted_from_profile": self.profile.name,
                "expected_error": profile.expected_error}


def make_timer(backend: Backend, target: Target, device_url: str | None, device_token: str | None,
               predict_unreachable: bool = False) -> ArtifactTimer:
    """A pool of agents when ``device_url`` is given (one URL, several separated by commas, or a TOML file of
    them: :func:`~edgeprune.agent.devices.parse_devices`), else the local timer.

    A target whose latencies can only be predicted from here (``latency_source = "predicted-profile"``)
    is never timed on this machine (that would report another device's latency as its own): without an
    agent, ``predict_unreachable`` gives a :class:`ProfileTimer` that labels
    every figure as predicted; otherwise such a target is refused.
    """
    if device_url:
        return DevicePool(parse_devices(device_url, device_token), target)
    if target.latency_source == "predicted-profile":
        if predict_unreachable:
            return ProfileTimer(target)
        raise InputError(
            f"target '{target.name}' is a device edgeprune cannot reach from here (its latencies would only be "
            "predicted from a shipped profile); run 'edgeprune agent' on the device and pass --device URL to "
            "measure it, or use a local target"
        )
    return LocalTimer(backend, target)
