"""edgeprune.environment.device_state: CPU clocks and temperatures read from sysfs, absent ones left out."""

from __future__ import annotations

from pathlib import Path

from edgeprune.environment import device_state


def test_clocks_and_temperatures_are_read(tmp_path: Path) -> None:
    policy = tmp_path / "devices/system/cpu/cpufreq/policy0"
    policy.mkdir(parents=True)
    (policy / "scaling_cur_freq").write_text("1500000\n")
    zone = tmp_path / "class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("61234\n")
    broken = tmp_path / "class/thermal/thermal_zone1"
    broken.mkdir(parents=True)
    (broken / "temp").write_text("n/a\n")  # an unreadable zone is skipped, not fatal
    state = device_state(str(tmp_path))
    assert state["cpu_khz"] == {"policy0": 1_500_000}
    assert state["temperature_c"] == {"thermal_zone0": 61.234}


def test_a_machine_that_exposes_nothing_gives_an_empty_state(tmp_path: Path) -> None:
    state = device_state(str(tmp_path))
    assert "cpu_khz" not in state and "temperature_c" not in state
