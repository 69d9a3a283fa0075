"""``edgeprune agent``: serve latency measurements of uploaded model files with this device's runtimes."""

from __future__ import annotations

import argparse
import logging
import os

from edgeprune.agent.protocol import DEFAULT_MAX_BYTES, DEFAULT_PORT, DEFAULT_TIMEOUT_S, TOKEN_ENV
from edgeprune.agent.server import is_loopback, serve
from edgeprune.cli.common import bounded_number, err_console
from edgeprune.errors import InputError

log = logging.getLogger(__name__)
_MIN_TOKEN_CHARS = 16


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


_port = bounded_number(int, 0, 65535, "a port from 0 to 65535")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``agent`` verb."""
    p = sub.add_parser(
        "agent", help="run on the device: measure uploaded model files with this machine's runtimes",
        description="Serve latency measurements over HTTP. Accepts only ONNX, TFLite and OpenVINO IR files from "
                    "clients presenting the token; never executes anything it receives. Listens on 127.0.0.1 "
                    "unless --host is given (there is no TLS: use an SSH tunnel or a trusted network).")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument("--token", help=f"shared secret clients must send (better: set {TOKEN_ENV}, which other users "
                                   "cannot read from the process list)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--max-mb", type=_positive_float, default=DEFAULT_MAX_BYTES / 2**20,
                   help=f"largest accepted upload in MiB (default {DEFAULT_MAX_BYTES // 2**20})")
    p.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds allowed for each of upload, queueing and measuring (default {DEFAULT_TIMEOUT_S:g})")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check the token and the address, then serve until Ctrl-C."""
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise InputError(f"the agent needs a token: pass --token or set {TOKEN_ENV} (e.g. export "
                         f"{TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(24))'))")
    if len(token) < _MIN_TOKEN_CHARS:
        log.warning("the token is shorter than %d characters; anyone who can reach the agent may guess it",
                    _MIN_TOKEN_CHARS)
    if not is_loopback(args.host):
        err_console.print(
            f"[bold red]WARNING: the agent will accept connections from the network on {args.host}:{args.port}. "
            "Anyone who can reach this port and knows the token can make this machine load and time models; "
            "traffic, token included, is NOT encrypted. Use only on a trusted network, or keep the default "
            "127.0.0.1 and reach it through an SSH tunnel.[/]", highlight=False, soft_wrap=True)
        log.warning("agent bound to non-loopback address %s", args.host)
    serve(args.host, args.port, token, max_bytes=int(args.max_mb * 2**20), timeout_s=args.timeout)
    return 0
