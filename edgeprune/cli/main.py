"""The ``edgeprune`` command: parse the verb, set up logging, run it, map errors to exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from edgeprune._version import __version__
from edgeprune.cli import agent_cmd, bench_cmd, export_cmd, fit_cmd, profile_cmd, report_cmd, targets_cmd, validate_cmd
from edgeprune.cli.common import run_guarded, setup_logging
from edgeprune.runtimes import keep_runtime_telemetry_off


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-command per verb."""
    parser = argparse.ArgumentParser(
        prog="edgeprune",
        description="Make a trained PyTorch vision model fit a latency budget measured on the target runtime.",
    )
    parser.add_argument("--version", action="version", version=f"edgeprune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--log-file", type=Path, metavar="PATH",
                        help="also append every log line, with its date and time, to PATH (progress of long "
                             "stages included, at least every 30 s; --quiet keeps only the terminal quiet)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    agent_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    export_cmd.add_parser(sub)
    fit_cmd.add_parser(sub)
    profile_cmd.add_parser(sub)
    report_cmd.add_parser(sub)
    targets_cmd.add_parser(sub)
    validate_cmd.add_parser(sub)
    return parser


#: flags of the top-level parser that a user may also write after the verb (``edgeprune fit ... -v``)
_GLOBAL_FLAGS = {"-v": "--verbose", "--verbose": "--verbose", "-q": "--quiet", "--quiet": "--quiet"}
#: the same for options with a value (``--log-file PATH`` or ``--log-file=PATH``)
_GLOBAL_OPTIONS = ("--log-file",)


def _globals_first(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``-v``/``-q``/``--log-file PATH`` moved before the verb, wherever they were written (up to
    a ``--``)."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < end:
        arg = argv[i]
        if arg in _GLOBAL_FLAGS or arg.split("=", 1)[0] in _GLOBAL_OPTIONS and "=" in arg:
            moved.append(arg)
        elif arg in _GLOBAL_OPTIONS and i + 1 < end:
            moved += [arg, argv[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return moved + rest + argv[end:]


def _with_config_file(parser: argparse.ArgumentParser, argv: list[str], args: argparse.Namespace) -> argparse.Namespace:
    """``fit --config FILE``: the file's options placed before the command line's, so that flags override it."""
    if args.verb != "fit" or getattr(args, "config", None) is None:
        return args
    from edgeprune.cli.config_file import config_tokens

    fit_parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["fit"]
    verb = argv.index("fit")
    return parser.parse_args(argv[:verb + 1] + config_tokens(fit_parser, args.config) + argv[verb + 1:])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    line = list(sys.argv[1:] if argv is None else argv)
    ordered = _globals_first(line)
    args = parser.parse_args(ordered)
    if args.verb is None:
        parser.print_help()
        return 2

    def run() -> int:
        setup_logging(args.verbose, args.quiet, args.log_file)  # an unwritable --log-file: one line, exit 2
        keep_runtime_telemetry_off()
        parsed = _with_config_file(parser, ordered, args)
        code: int = parsed.handler(parsed)
        return code

    return run_guarded(run, args.verbose, args.verb, line)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
