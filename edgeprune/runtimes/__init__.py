"""One folder per runtime: export, session, INT8, layer precisions and upload checks of each."""
