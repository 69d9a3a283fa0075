"""report.md's measurement section: paired method, the original's medians over time, drift, device state."""

from __future__ import annotations

from typing import Any

from edgeprune.report.markdown_measurement import measurement_section


def _measurement(change: float, device: dict[str, Any] | None = None) -> dict[str, Any]:
    first = {"t_s": 0.0, "median_ms": 2.0, **({"device": device} if device else {})}
    return {"measurement": {"paired": True, "anchor": "the original's median at the start of the run",
                            "reference_medians": [first, {"t_s": 40.0, "median_ms": 2.0 * (1 + change)}],
                            "max_change": change, "max_change_at_s": 40.0, "drift_detected": abs(change) > 0.1,
                            "threshold": 0.1}}


def test_drift_is_said_with_its_size_and_time() -> None:
    text = "\n".join(measurement_section(_measurement(0.25)))
    assert "speed changed during the run" in text and "+25%" in text and "at 40 s" in text
    assert "| 40 | 2.500 |" in text


def test_a_steady_machine_is_said_too() -> None:
    text = "\n".join(measurement_section(_measurement(0.03)))
    assert "speed changed" not in text and "stayed within 10%" in text and "+3.0%" in text


def test_clocks_and_temperatures_get_a_column_when_the_device_gives_them() -> None:
    text = "\n".join(measurement_section(_measurement(0.0, {"cpu_khz": {"policy0": 1_800_000},
                                                            "temperature_c": {"thermal_zone0": 71.5}})))
    assert "CPU clock, temperature" in text and "1800 MHz, 71.5 °C" in text


def test_an_unpaired_run_has_no_section() -> None:
    assert measurement_section({}) == []
