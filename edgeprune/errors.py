"""edgeprune's exceptions: one base class, one subclass per condition.

Every message names the offending value and, where there is one, the fix. The CLI turns any
:class:`EdgepruneError` into one line on stderr and the exception's ``exit_code``; nothing a user can
cause by bad input should surface as a traceback.

Exit codes (documented in docs/guide/options.md, and in brief in the README):

* 0 success
* 2 bad input, or a budget that pruning cannot reach (:class:`BudgetUnreachableError`)
* 3 validation of an artifact failed
* 4 the device's agent could not be reached (:class:`DeviceUnavailableError`): a fit keeps its state
* 5 the CPU that times was oversubscribed, so latencies could not be measured without bias
  (:class:`OversubscribedError`): a fit keeps its state
* 130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgepruneError(Exception):
    """Base class of every error edgeprune raises on purpose."""

    exit_code: int = 2


class InputError(EdgepruneError):
    """A user-supplied value (flag, file, model, data) is invalid."""


class BudgetError(InputError):
    """A latency budget string could not be parsed or is not positive."""


class UnknownNameError(InputError):
    """A name (target, model, importance ...) is not registered; the message lists the known ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known_sorted = sorted(known)
        close = closest_name(name, known_sorted)
        hint = f" Did you mean '{close}'?" if close else ""
        super().__init__(f"unknown {kind} '{name}'.{hint} Known: {', '.join(known_sorted)}.")
        self.name = name
        self.known = known_sorted


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its type's name when empty.

    >>> first_line(ValueError("bad value\\n  details"))
    'bad value'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def closest_name(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (ignoring case), or None when none is close.

    The similarity cutoff is 0.5 rather than difflib's 0.6 so that short names get a hint too.

    >>> closest_name("l2", ["bn", "l1", "taylor"])
    'l1'
    >>> closest_name("RPI44", ["cpu", "rpi4", "rpi5"])
    'rpi4'
    """
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    return by_lower[close[0]] if close else None


class ModelLoadError(InputError):
    """A model could not be built or its weights could not be loaded."""


class ModelConstructError(ModelLoadError):
    """edgeprune cannot handle a construct in the user's model; the message names the module (``module``, when
    known) and the hint (``--freeze MODULE``). The original exception is kept as ``__cause__`` for ``-v``."""

    def __init__(self, message: str, module: str | None = None) -> None:
        super().__init__(message)
        self.module = module


class DataError(InputError):
    """A dataset is missing, empty, malformed or does not fit the model."""


class MissingRuntimeError(InputError):
    """An optional runtime is not installed; the message names the pip extra to install."""

    def __init__(self, runtime: str, extra: str) -> None:
        super().__init__(
            f"the {runtime} runtime is not installed; install it with: pip install 'edgeprune[{extra}]'"
        )


class OutputError(InputError):
    """The output directory cannot be used (not writable, or holds results and --force was not given)."""


class BudgetUnreachableError(EdgepruneError):
    """No model edgeprune may build meets the budget: even the smallest is slower (``floor_ms`` over the
    budget), or none of those that fit while searching held up when their latency was confirmed."""

    def __init__(self, budget_ms: float, floor_ms: float, detail: str = "", predicted: bool = False) -> None:
        extra = f" {detail}" if detail else ""
        if predicted:  # a target edgeprune cannot reach: nothing was measured
            message = (f"budget {budget_ms:.3f} ms cannot be met: the fastest pruned model is predicted at "
                       f"{floor_ms:.3f} ms by the shipped profile (not measured; an agent on the device measures "
                       f"it).{extra}")
        elif floor_ms > budget_ms:
            message = (f"budget {budget_ms:.3f} ms cannot be met: the fastest pruned model measured "
                       f"{floor_ms:.3f} ms (median).{extra}")
        else:  # a noisy search reading fit, but no candidate's confirming measurement did
            message = (f"budget {budget_ms:.3f} ms was not met reliably: a candidate measured {floor_ms:.3f} ms "
                       f"(median) while searching, but no candidate's confirming measurement stayed within the "
                       f"budget; timings on this machine may be too noisy, try a looser budget.{extra}")
        super().__init__(message)
        self.budget_ms = budget_ms
        self.floor_ms = floor_ms
        self.detail = detail
        self.predicted = predicted

    def with_detail(self, hint: str) -> BudgetUnreachableError:
        """The same verdict with ``hint`` added to its detail."""
        detail = f"{self.detail} {hint}".strip() if hint not in self.detail else self.detail
        return BudgetUnreachableError(self.budget_ms, self.floor_ms, detail, self.predicted)

    def as_predicted(self) -> BudgetUnreachableError:
        """The same verdict, worded for latencies that were predicted, not measured."""
        return BudgetUnreachableError(self.budget_ms, self.floor_ms, self.detail, predicted=True)


class SizeBudgetUnreachableError(EdgepruneError):
    """The size budget cannot be met: even at the most weight sparsity the run allows, the shipped artifact
    compresses to ``floor_bytes`` (zip, deflate), over ``budget_bytes``. Exit code 2, like a latency budget."""

    def __init__(self, budget_bytes: int, floor_bytes: int, sparsity: float, artifact: str, detail: str = "") -> None:
        extra = f" {detail}" if detail else ""
        super().__init__(f"size budget {budget_bytes:,} bytes (compressed) cannot be met: at {100 * sparsity:g}% "
                         f"weight sparsity, the most this run allows, {artifact} compresses to {floor_bytes:,} bytes "
                         f"(zip, deflate).{extra}")
        self.budget_bytes, self.floor_bytes, self.sparsity = budget_bytes, floor_bytes, sparsity


class DeviceUnavailableError(EdgepruneError):
    """The agent on the device did not answer (connection refused or reset, a timeout, HTTP 503): not bad
    input, so a fit keeps its measurements and checkpoints and can be resumed once the device answers."""

    exit_code = 4


class OversubscribedError(EdgepruneError):
    """Too few timed runs were undisturbed (threads waited for a CPU during most of them), several times over:
    deciding on such figures would favour the shorter model. Not bad input, so a fit keeps its state."""

    exit_code = 5


class ValidationFailedError(EdgepruneError):
    """An exported artifact failed validation (parity or accuracy)."""

    exit_code = 3


class AccuracyCollapsedError(ValidationFailedError):
    """The shipped model agrees with the original on fewer evaluation images than the accuracy guard's floor
    (``--min-agreement``): the results are kept for inspection, but the fit is not a success."""


class ArtifactIntegrityError(ValidationFailedError):
    """An artifact's files do not match the checksums recorded in its sidecar (modified or replaced)."""
