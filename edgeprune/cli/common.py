"""Shared CLI plumbing: logging to the terminal through rich, argument converters, error-to-exit-code mapping."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from edgeprune import progress
from edgeprune.errors import EdgepruneError, OutputError

Number = TypeVar("Number", int, float)

# When output is piped (scripts, CI logs) rich would assume 80 columns and truncate tables; don't.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def setup_logging(verbose: bool, quiet: bool, log_file: Path | None = None) -> None:
    """INFO (or DEBUG with --verbose, WARNING with --quiet) to stderr, formatted by rich; with ``log_file``, every
    line at INFO (DEBUG with --verbose) also appended to that file with its date and time, whatever --quiet says.

    On an interactive terminal long stages draw progress bars (:mod:`edgeprune.progress`); their progress lines
    then go only to the log file. Raises OutputError when the log file cannot be opened."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False,
                          rich_tracebacks=verbose)
    handler.setLevel(level)
    handler.addFilter(progress.drop_drawn_progress)
    handlers: list[logging.Handler] = [handler]
    if log_file is not None:
        handlers.append(_file_handler(log_file, logging.DEBUG if verbose else logging.INFO))
    logging.basicConfig(level=logging.WARNING, handlers=handlers, format="%(message)s", force=True)
    logging.getLogger("edgeprune").setLevel(min(h.level for h in handlers))
    progress.configure(err_console, bars=err_console.is_terminal and level <= logging.INFO)
    if not verbose:  # "No CUDA runtime is found": torch's extension tools (imported by NNCF and OpenVINO's PyTorch
        # frontend) say it once per process on any machine with a CUDA toolkit and no GPU; nothing edgeprune runs
        # builds an extension, so it only worries the user of a CPU fit
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


#: a log file's lines: ``2026-12-08 10:27:13,123 INFO edgeprune.fit.run: original model: 7.310 ms ...``
LOG_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _file_handler(path: Path, level: int) -> logging.Handler:
    """``--log-file``: appended to, one timestamped line per record; one clear line when it cannot be opened."""
    try:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"--log-file {path}: cannot be written ({exc.strerror or exc})") from None
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(LOG_FILE_FORMAT))
    return handler


def float_list(text: str) -> tuple[float, ...]:
    """``"0.5,0.5,0.5"`` → (0.5, 0.5, 0.5)."""
    try:
        values = tuple(float(v) for v in re.split(r"[,\s]+", text.strip()) if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def shape(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` or ``"3x224x224"`` → (3, 224, 224)."""
    parts = [p for p in re.split(r"[,x\s]+", text.strip()) if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 3,224,224, got '{text}'") from None
    if len(values) != 3 or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected three positive sizes C,H,W, got '{text}'")
    return values


def bounded_number(parse: Callable[[str], Number], low: float | None, high: float | None, expected: str
                   ) -> Callable[[str], Number]:
    """An argparse converter: ``parse(text)`` within ``[low, high]`` (a None bound is open), else an error
    that says ``expected ...``."""
    def convert(text: str) -> Number:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got '{text}'") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got '{text}'")
        return value
    return convert


#: a strictly positive integer
positive_int = bounded_number(int, 1, None, "a positive integer")
#: an integer >= 0
non_negative_int = bounded_number(int, 0, None, "an integer >= 0")
#: a number between 0 and 1 (an accuracy, a share)
fraction = bounded_number(float, 0.0, 1.0, "a fraction between 0 and 1")


#: terminal colour and cursor codes (third-party errors carry them, e.g. torch.export's "[96mThis is step 1/3")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def one_line(text: str) -> str:
    """``text`` as one line: terminal codes removed, its lines joined by spaces, blank lines dropped.

    >>> one_line("bad value\\n  details")
    'bad value details'
    >>> one_line("\\x1b[96mThis is step 1/3\\x1b[0m")
    'This is step 1/3'
    """
    plain = _ANSI.sub("", str(text))
    return " ".join(part.strip() for part in plain.splitlines() if part.strip())


def print_error(message: str, label: str = "edgeprune: error:") -> None:
    """Print ``label message`` as one line on stderr; the message is shown literally (no rich markup), so
    text such as ``pip install 'edgeprune[openvino]'`` keeps its brackets."""
    err_console.print(f"[bold red]{label}[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


#: top-level modules of the ``workstation`` extra: without them only ``agent``, ``targets`` and ``--help`` work
WORKSTATION_MODULES = ("torch", "torchvision", "torch_pruning", "onnx", "onnxscript", "onnxruntime", "sklearn",
                       "matplotlib", "safetensors", "PIL")


def run_guarded(action: Callable[[], int], verbose: bool, verb: str | None = None,
                argv: Sequence[str] | None = None) -> int:
    """Run a verb; map edgeprune errors to their exit code and one line, Ctrl-C to 130.

    ``verb`` and ``argv`` (the command line after ``edgeprune``) let a ``fit`` that failed inside a user's
    module print the whole command again with ``--freeze MODULE``."""
    try:
        return action()
    except EdgepruneError as exc:
        if verbose and exc.__cause__ is not None:  # a user model's failure keeps the original error for -v
            import traceback

            err_console.print("".join(traceback.format_exception(exc.__cause__)), highlight=False, markup=False)
        module = getattr(exc, "module", None)  # a user model's module edgeprune cannot handle: a command that skips it
        if module and verb == "fit":
            print_error(f"{exc} (the command: 'edgeprune {_verb_line(argv)} --freeze {module}')")
        else:
            print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("edgeprune: interrupted; nothing half-written was left behind", highlight=False)
        return 130
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in WORKSTATION_MODULES:
            return _internal_error(exc, verbose, argv)
        print_error(f"this command needs the workstation install ({exc.name} is not installed; a device running "
                    "only 'edgeprune agent' does not need it): pip install 'edgeprune[workstation]'")
        return 2
    except Exception as exc:  # a bug in edgeprune or in user code: say so plainly
        return _internal_error(exc, verbose, argv)


def _verb_line(argv: Sequence[str] | None) -> str:
    """The command line after ``edgeprune`` (for a hint that can be pasted), or ``VERB ...`` when unknown."""
    args = [a for a in (argv or ()) if a not in ("-v", "--verbose", "-q", "--quiet")]
    return " ".join(args) if args else "VERB ..."


def _internal_error(exc: Exception, verbose: bool, argv: Sequence[str] | None = None) -> int:
    """A bug in edgeprune or in user code: one plain line, or the traceback with ``--verbose``."""
    if verbose:
        raise exc
    first = str(exc).splitlines()[0] if str(exc) else ""
    print_error(f"{type(exc).__name__}: {first} (rerun as 'edgeprune -v {_verb_line(argv)}' for details)",
                "edgeprune: internal error:")
    return 1
