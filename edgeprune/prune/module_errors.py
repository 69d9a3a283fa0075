"""Failures inside a user's model, named by the module they happened in.

A user's model can fail in edgeprune's hands in ways no test here foresaw: a custom module whose forward
assumes a fixed width, an op the tracer does not know. :func:`naming_the_module` turns any such exception
into one :class:`~edgeprune.errors.ModelConstructError` line that names the innermost module that was running,
its class, the stage, and the flag that leaves it alone (``--freeze MODULE``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from edgeprune.errors import EdgepruneError, ModelConstructError, first_line


class ModuleTracker:
    """Forward hooks that keep the stack of modules currently running, and the one an exception left."""

    def __init__(self, model: nn.Module) -> None:
        self.names = {m: n for n, m in model.named_modules()}
        self.stack: list[nn.Module] = []
        self.failed_in: nn.Module | None = None
        self._handles = [h for m in model.modules() for h in (
            m.register_forward_pre_hook(self._enter), m.register_forward_hook(self._leave))]

    def _enter(self, module: nn.Module, args: Any) -> None:
        self.stack.append(module)
        self.failed_in = module  # the innermost module entered last; cleared when it returns

    def _leave(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.stack and self.stack[-1] is module:
            self.stack.pop()
        self.failed_in = self.stack[-1] if self.stack else None

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self._handles:
            handle.remove()

    def where(self) -> tuple[str, str] | None:
        """(qualified name, class name) of the innermost module running when the exception was raised."""
        module = self.failed_in
        if module is None:
            return None
        return self.names.get(module, "?") or "(the model itself)", type(module).__name__


def describe_failure(stage: str, exc: BaseException, where: tuple[str, str] | None, freezing_helps: bool) -> str:
    """One line: the stage, the module and construct (when known), the error, and what to do."""
    first = first_line(exc, 300)
    if where is None:
        return (f"{stage} failed on this model ({type(exc).__name__}: {first}); rerun with -v for the traceback, "
                "and --freeze MODULE to leave a module edgeprune cannot handle unpruned")
    name, kind = where
    head = f"{stage} failed in module '{name}' ({kind}): {type(exc).__name__}: {first}"
    if freezing_helps:
        return f"{head}; rerun with --freeze {name} to leave it unpruned"
    return (f"{head}; this runs the unpruned model, so --freeze does not avoid it: the module must run as edgeprune "
            "calls it (batches of calibration images, autograd hooks); rerun with -v for the traceback")


@contextmanager
def naming_the_module(model: nn.Module, stage: str, freezing_helps: bool = False) -> Iterator[ModuleTracker]:
    """Run a stage on ``model``; an exception that is not edgeprune's own becomes a ModelConstructError line.

    ``freezing_helps``: the stage works on what will be pruned, so ``--freeze MODULE`` avoids the failure and
    the line says so; otherwise (the unpruned model runs) it says that freezing will not help.
    """
    tracker = ModuleTracker(model)
    try:
        yield tracker
    except EdgepruneError:
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        where = tracker.where()
        raise ModelConstructError(describe_failure(stage, exc, where, freezing_helps),
                                  where[0] if where and freezing_helps else None) from exc
    finally:
        tracker.remove()


def scoring_failure(criterion: str, group: str, exc: BaseException) -> ModelConstructError:
    """The line for a criterion that fails on one channel group: freezing the group's root module avoids it."""
    first = first_line(exc, 300)
    return ModelConstructError(f"scoring channel importance ({criterion}) failed on the channel group of module "
                               f"'{group}': {type(exc).__name__}: {first}; rerun with --freeze {group} to leave it "
                               "unpruned, or choose another --importance", group)
