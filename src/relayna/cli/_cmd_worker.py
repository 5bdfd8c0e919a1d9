"""``relayna worker module:handler``: delegates to :func:`relayna.consumer.main_worker`."""

from __future__ import annotations

import argparse

from relayna.cli._common import Subcommands


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "worker",
        help="run a task worker (MODULE:HANDLER) until SIGTERM, then drain",
        description="Run a relayna task worker. See `relayna worker --help`.",
        add_help=False,
    )
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from relayna.api import serve_metrics
    from relayna.consumer import main_worker

    return main_worker(args.rest, metrics_server=serve_metrics)
