"""OpenVINO's usage telemetry stays off unless the user opted in to it.

``import openvino`` (2025 and later) initialises ``openvino_telemetry`` with its opt-in dialog turned off. When
the user was never asked (no consent file, ``~/intel/openvino_telemetry``), it counts that as consent and sends a
Google Analytics event, from a process it forks in a thread pool. Inside edgeprune that is usage data leaving a
user's device (the agent's worker on a lab Raspberry Pi, a fit on a workstation) that nobody agreed to, and the
fork deadlocks in a multi-threaded process: the agent's measuring worker, killed at its CPU limit, left such a
forked copy holding its reply pipe, and the agent waited out its whole timeout (issue 36).

:func:`keep_openvino_telemetry_off` makes "never asked" count as "declined" in this process, before OpenVINO or
NNCF is imported. An explicit choice is kept: a user who ran ``opt_in_out --opt_in`` still sends, one who ran
``--opt_out`` does not. It is called where edgeprune's work starts (the CLI, :func:`edgeprune.fit`, the agent's
worker, the OpenVINO backend) rather than on ``import edgeprune``, which stays cheap (the package takes 0.1 s).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

log = logging.getLogger(__name__)

_MARK = "_edgeprune_declines_unasked"


def keep_openvino_telemetry_off() -> bool:
    """Count a missing consent file as declined for OpenVINO's telemetry in this process (idempotent).

    Returns whether the rule is in place; False where ``openvino_telemetry`` is not installed (nothing to turn
    off) or its consent check has a shape this version does not know (logged at debug level)."""
    if importlib.util.find_spec("openvino_telemetry") is None:
        return False
    try:
        from openvino_telemetry.utils import opt_in_checker

        checker, result = opt_in_checker.OptInChecker, opt_in_checker.ConsentCheckResult
        original = checker.check
        if getattr(original, _MARK, False):
            return True

        def check(self: Any, *args: Any, **kwargs: Any) -> Any:
            answer = original(self, *args, **kwargs)
            return result.DECLINED if answer == result.NO_FILE else answer

        setattr(check, _MARK, True)
        checker.check = check
        return True
    except (ImportError, AttributeError) as exc:
        log.debug("could not turn OpenVINO's telemetry off: %s", exc)
        return False
