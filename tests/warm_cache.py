"""Fill edgeprune's cache before the test run (`make test` and `make test-full` call this first).

Many tests fit the built-in demo model. Its trained weights (a minute of training on 2 cores) and its ONNX Runtime
latency table with calibration (about a minute of kernel timings) are made here once, as a user's first `fit` of
the demo would make them, so that no single test pays for them. Does nothing when the cache already holds both.
"""

from __future__ import annotations

import logging
import time

from edgeprune.latency.profile_model import ProfileConfig, profile_model
from edgeprune.train.default_weights import demo_weights_path, trained_demo_model


def main() -> None:
    """Train the demo model if its weights are not cached, then complete its latency table on the ``cpu`` target."""
    logging.basicConfig(level=logging.INFO, format="warm cache: %(message)s")
    log = logging.getLogger("warm_cache")
    started = time.perf_counter()
    trained_demo_model()
    _, summary = profile_model(ProfileConfig(model="demo", target="cpu"))
    log.info("demo weights %s; latency table %s (%d kernel timings measured, %d reused); %.0f s",
             demo_weights_path(), summary.table_path, summary.probes_measured, summary.probes_reused,
             time.perf_counter() - started)


if __name__ == "__main__":
    main()
