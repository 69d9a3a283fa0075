"""Check (and optionally refit) the shipped latency profiles against the public numbers they cite.

    python tools/calibrate_profiles.py            # predicted vs public for every calibration entry
    python tools/calibrate_profiles.py --fit rpi4 # grid-search conv/dwconv efficiency and op overhead

The fit minimises the squared log ratio predicted/public over the entries marked as fitted (those whose
model name does not say "check"). Paste the result into edgeprune/profiles/<name>.toml by hand.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
from dataclasses import replace

import torch
import torchvision

from edgeprune.latency.analytic import AnalyticLatencyModel, DeviceProfile, load_profile
from edgeprune.latency.layers import Layer, extract_layers
from edgeprune.prune.graph import ModelGraph

log = logging.getLogger("calibrate_profiles")


def layers_of(spec: str, shape: list[int]) -> list[Layer]:
    name = spec.split(":", 1)[1].split(" ")[0]
    model = getattr(torchvision.models, name)().eval()
    example = torch.zeros(1, *shape)
    return extract_layers(model, example, ModelGraph(model, example, warn_frozen=False).groups)


def predicted(profile: DeviceProfile, entry: dict) -> float:
    return AnalyticLatencyModel(layers_of(entry["model"], entry["input"]), profile).predict({})


def fit(profile: DeviceProfile) -> DeviceProfile:
    entries = [e for e in profile.calibration if "check" not in e["model"]]
    layers = {e["model"]: layers_of(e["model"], e["input"]) for e in entries}
    best: tuple[float, DeviceProfile] | None = None
    for conv, dw, overhead in itertools.product([0.2, 0.3, 0.4, 0.5, 0.6], [0.02, 0.05, 0.1, 0.2], [5, 10, 20, 40]):
        efficiency = dict(profile.efficiency, conv=conv, conv1x1=conv, dwconv=dw)
        candidate = replace(profile, efficiency=efficiency, op_overhead_us=float(overhead))
        score = sum(
            math.log(AnalyticLatencyModel(layers[e["model"]], candidate).predict({}) / e["public_ms"]) ** 2
            for e in entries
        )
        if best is None or score < best[0]:
            best = (score, candidate)
    assert best is not None
    return best[1]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", metavar="PROFILE", help="refit the efficiencies of this profile")
    args = parser.parse_args()
    names = [args.fit] if args.fit else ["rpi4", "rpi5", "intel-npu"]
    for name in names:
        profile = load_profile(name)
        if args.fit:
            profile = fit(profile)
            log.info("%s fitted: efficiency %s, op_overhead_us %.0f", name, profile.efficiency, profile.op_overhead_us)
        for entry in profile.calibration:
            ms = predicted(profile, entry)
            log.info("%-10s %-45s public %8.2f ms  predicted %8.2f ms  ratio %.2f",
                     name, entry["model"], entry["public_ms"], ms, ms / entry["public_ms"])


if __name__ == "__main__":
    main()
