"""ExecuTorch (``.pte`` programs lowered to the XNNPACK delegate): export, run, time, profile, INT8.

Imports nothing heavy at module level: torch and executorch are loaded inside the functions that need them.
"""
