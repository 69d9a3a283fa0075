"""One package per runtime: export, load, run, time, per-layer profile, INT8, layer precisions and upload checks."""
