"""Which agents a run measures on (``--device``), and the check that they are identical devices.

``--device`` takes one agent URL (today's single device), several separated by commas, or a TOML file naming
them, each with its own token where they differ::

    # devices.toml
    [[device]]
    url = "http://127.0.0.1:8765"
    [[device]]
    url = "http://127.0.0.1:8766"
    token = "another-token"        # optional: default --device-token, then $EDGEPRUNE_AGENT_TOKEN

Timings from several devices are mixed only when the devices report the same environment
(:data:`ENVIRONMENT_FIELDS`); otherwise :func:`check_same_environment` refuses the pool in one line.

>>> [d.url for d in parse_devices("http://a:1, b:2", None)]
['http://a:1', 'b:2']
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: what must be equal on every device of a pool: (name in the error, path in ``GET /v1/info``); the
#: runtime's version is compared too. The OS string and Python version are not: they do not decide how fast
#: a runtime runs a kernel, and identical boards often differ in a kernel patch level.
ENVIRONMENT_FIELDS = (
    ("edgeprune_version", ("edgeprune_version",)),  # first: another version may report other fields
    ("cpu", ("machine", "cpu")),
    ("cpu_features", ("machine", "cpu_features")),
    ("logical_cores", ("machine", "logical_cores")),
    ("usable_cores", ("machine", "usable_cores")),
    ("architecture", ("machine", "architecture")),
    ("cpu_governor", ("machine", "cpu_governor")),
)


@dataclass(frozen=True)
class DeviceSpec:
    """One agent of a pool: its URL and its token (None: ``--device-token``, then the environment variable)."""

    url: str
    token: str | None = None


def parse_devices(text: str, token: str | None) -> list[DeviceSpec]:
    """The agents ``--device`` names: a URL, comma-separated URLs, or a ``.toml`` file of ``[[device]]`` tables.

    ``token`` (``--device-token``) is every device's token unless its TOML entry gives its own.
    """
    text = text.strip()
    if text.endswith(".toml"):
        devices = _from_toml(Path(text), token)
    else:
        devices = [DeviceSpec(url.strip(), token) for url in text.split(",")]
        if any(not d.url for d in devices):
            raise InputError(f"--device '{text}' has an empty entry; expected URL or URL1,URL2,...")
    seen: set[str] = set()
    for device in devices:
        if device.url in seen:
            raise InputError(f"--device names the agent {device.url} twice; each device is measured on once")
        seen.add(device.url)
    return devices


def _from_toml(path: Path, token: str | None) -> list[DeviceSpec]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the device file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"the device file {path} is not valid TOML: {exc}") from None
    entries = data.get("device")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"the device file {path} names no device; expected [[device]] tables with url = \"...\"")
    devices = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not entry["url"].strip():
            raise InputError(f"the device file {path}: device {i} has no url = \"http://HOST:PORT\"")
        unknown = sorted(set(entry) - {"url", "token"})
        if unknown:
            raise InputError(f"the device file {path}: device {i} has unknown key(s) {', '.join(unknown)}; "
                             "expected url and token")
        own = entry.get("token")
        if own is not None and not isinstance(own, str):
            raise InputError(f"the device file {path}: device {i}'s token must be a string")
        devices.append(DeviceSpec(entry["url"].strip(), own or token))
    return devices


def device_environment(info: Mapping[str, Any], runtime: str) -> dict[str, Any]:
    """The facts of one agent's ``GET /v1/info`` answer that a pool compares (``runtime``'s version included)."""
    facts: dict[str, Any] = {}
    for name, path in ENVIRONMENT_FIELDS:
        value: Any = info
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        facts[name] = value
    entry = (info.get("runtimes") or {}).get(runtime)
    facts[f"{runtime}_version"] = entry.get("version") if isinstance(entry, Mapping) else None
    return facts


def check_same_environment(environments: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Refuse, in one line naming the field and both values, devices whose environments differ.

    ``environments`` pairs each agent's URL with its :func:`device_environment`.
    """
    if not environments:
        return
    first_url, first = environments[0]
    for url, env in environments[1:]:
        for name, value in first.items():
            if env.get(name) != value:
                raise InputError(
                    f"the devices differ in {name}: {first_url} has {_shown(value)}, {url} has "
                    f"{_shown(env.get(name))}; a pool mixes timings of identical devices only")


def _shown(value: Any) -> str:
    return "nothing" if value is None else repr(value) if isinstance(value, str) else str(value)
