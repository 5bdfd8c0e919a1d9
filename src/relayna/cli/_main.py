"""The ``relayna`` command: argument parsing and dispatch.

Exit codes: 0 success, 1 runtime failure (broker/store unreachable, ...),
2 usage error. Errors are one line on stderr; URLs are password-redacted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from relayna import __version__
from relayna.cli import (
    _cmd_dev,
    _cmd_publish,
    _cmd_serve,
    _cmd_status,
    _cmd_topology,
    _cmd_worker,
)
from relayna.cli._common import EXIT_USAGE, Parser, Subcommands, UsageError, fail

__all__ = ["build_parser", "main"]

Registrar = Callable[[Subcommands], None]


_REGISTRARS: tuple[Registrar, ...] = (
    _cmd_dev.register,
    _cmd_worker.register,
    _cmd_serve.register,
    _cmd_topology.register,
    _cmd_publish.register,
    _cmd_status.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="relayna",
        description="relayna: structured-concurrency task runtime for RabbitMQ + Redis + SSE.",
    )
    parser.add_argument("--version", action="version", version=f"relayna {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for register in _REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        # `relayna worker` owns its whole argument list (incl. --help).
        from relayna.api import serve_metrics
        from relayna.consumer import main_worker

        return main_worker(argv[1:], metrics_server=serve_metrics)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        fail(str(exc), EXIT_USAGE)
