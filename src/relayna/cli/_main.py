"""The ``relayna`` command: argument parsing and dispatch.

Exit codes: 0 success, 1 runtime failure (broker/store unreachable, ...),
2 usage error. Errors are one line on stderr; URLs are password-redacted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from relayna import __version__
from relayna.cli import (
    _cmd_cancel,
    _cmd_dev,
    _cmd_dlq,
    _cmd_mcp,
    _cmd_publish,
    _cmd_serve,
    _cmd_status,
    _cmd_topology,
    _cmd_worker,
)
from relayna.cli._common import (
    EXIT_USAGE,
    Parser,
    Subcommands,
    UsageError,
    env_default,
    fail,
    setup_logging,
)

__all__ = ["build_parser", "main"]

Registrar = Callable[[Subcommands], None]


_REGISTRARS: tuple[Registrar, ...] = (
    _cmd_dev.register,
    _cmd_worker.register,
    _cmd_serve.register,
    _cmd_topology.register,
    _cmd_publish.register,
    _cmd_status.register,
    _cmd_cancel.register,
    _cmd_dlq.register,
    _cmd_mcp.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="relayna",
        description="relayna: structured-concurrency task runtime for RabbitMQ + Redis + SSE.",
    )
    parser.add_argument("--version", action="version", version=f"relayna {__version__}")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        default=env_default("RELAYNA_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default INFO, env RELAYNA_LOG_LEVEL)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for register in _REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    setup_logging(args)  # one format for every command (see relayna.observability)
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        fail(str(exc), EXIT_USAGE)
