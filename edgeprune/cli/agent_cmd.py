"""``edgeprune agent``: serve latency measurements of uploaded model files with this device's runtimes."""

from __future__ import annotations

import argparse
import logging
import os

from edgeprune.agent.config import DEFAULT_HEADER_TIMEOUT_S, MIN_TOKEN_CHARS
from edgeprune.agent.limits import default_max_threads, default_memory_mb, usable_cores
from edgeprune.agent.protocol import DEFAULT_MAX_BYTES, DEFAULT_PORT, DEFAULT_TIMEOUT_S, TOKEN_ENV
from edgeprune.agent.server import is_loopback, serve
from edgeprune.cli.common import bounded_number, err_console
from edgeprune.errors import InputError

log = logging.getLogger(__name__)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


_port = bounded_number(int, 0, 65535, "a port from 0 to 65535")
_count = bounded_number(int, 1, 4096, "a whole number from 1 to 4096")
_megabytes = bounded_number(int, 0, 1 << 30, "a whole number of MiB (0: no limit)")
_seconds_or_zero = bounded_number(float, 0.0, 1e6, "a number of seconds (0: no limit)")


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
    p.add_argument("--insecure-token", action="store_true",
                   help=f"accept a token shorter than {MIN_TOKEN_CHARS} characters (it can be guessed)")
    limits = p.add_argument_group("limits (docs/security.md)")
    limits.add_argument("--header-timeout", type=_positive_float, default=DEFAULT_HEADER_TIMEOUT_S,
                        help="seconds a client has to send its whole request line and headers "
                             f"(default {DEFAULT_HEADER_TIMEOUT_S:g})")
    limits.add_argument("--max-connections", type=_count, default=64,
                        help="connections open at once; past it the oldest one that has not shown the token is "
                             "dropped, or the newcomer answered 503 (default 64)")
    limits.add_argument("--max-per-source", type=_count, default=16,
                        help="connections one address may hold before showing the token (default 16)")
    limits.add_argument("--worker-memory-mb", type=_megabytes, default=default_memory_mb(),
                        help="address-space limit of the measuring worker in MiB, 0 for none (default "
                             f"{default_memory_mb()}: three quarters of this machine's memory)")
    limits.add_argument("--worker-cpu", type=_seconds_or_zero, default=None,
                        help="CPU seconds one measurement may use in the worker, 0 for none (default: --timeout "
                             f"times the {usable_cores()} usable cores)")
    limits.add_argument("--max-threads", type=_count, default=default_max_threads(),
                        help=f"most intra-op threads a request may ask for (default {default_max_threads()}: this "
                             "machine's cores, at least 4)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check the token and the address, then serve until Ctrl-C."""
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise InputError(f"the agent needs a token: pass --token or set {TOKEN_ENV} (e.g. export "
                         f"{TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(24))'))")
    if len(token) < MIN_TOKEN_CHARS:
        if not args.insecure_token:
            raise InputError(f"the token is {len(token)} characters; the agent needs at least {MIN_TOKEN_CHARS} "
                             f"(e.g. export {TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(24))'"
                             "), or --insecure-token to accept a guessable one")
        log.warning("the token is shorter than %d characters (--insecure-token); anyone who can reach the agent "
                    "may guess it", MIN_TOKEN_CHARS)
    if not is_loopback(args.host):
        err_console.print(
            f"[bold red]WARNING: the agent will accept connections from the network on {args.host}:{args.port}. "
            "Anyone who can reach this port and knows the token can make this machine load and time models; "
            "traffic, token included, is NOT encrypted. Use only on a trusted network, or keep the default "
            "127.0.0.1 and reach it through an SSH tunnel.[/]", highlight=False, soft_wrap=True)
        log.warning("agent bound to non-loopback address %s", args.host)
    serve(args.host, args.port, token, max_bytes=int(args.max_mb * 2**20), timeout_s=args.timeout,
          insecure_token=args.insecure_token, header_timeout_s=args.header_timeout,
          max_connections=args.max_connections, max_connections_per_source=args.max_per_source,
          worker_memory_mb=args.worker_memory_mb, worker_cpu_s=args.worker_cpu, max_threads=args.max_threads)
    return 0
