"""Shared CLI plumbing: importing ``module:attr`` targets, env defaults, exit codes."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeAlias

import anyio

from relayna._imports import load_target as _load_target
from relayna.cli._errors import explain
from relayna.errors import ConfigurationError
from relayna.observability import LOG_FORMATS, configure_logging

__all__ = [
    "Parser",
    "Subcommands",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "UsageError",
    "add_backend_arg",
    "add_http_args",
    "add_logging_args",
    "setup_logging",
    "env_default",
    "fail",
    "load_target",
    "run_async",
    "wait_for_shutdown_signal",
]

EXIT_RUNTIME = 1
EXIT_USAGE = 2

BACKENDS = ("asyncio", "trio")


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def env_default(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def add_cluster_keys_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cluster-keys",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use the Redis Cluster key layout (hash-tagged key names; see the Redis key "
        "reference in the docs); default: env RELAYNA_STORE_CLUSTER_KEYS, else off "
        "(a worker of an App: the App's store_config)",
    )


def cluster_keys(args: argparse.Namespace, default: bool | None = None) -> bool:
    """``--cluster-keys`` / ``--no-cluster-keys``, else ``default``, else the env.

    Raises:
        UsageError: RELAYNA_STORE_CLUSTER_KEYS is neither a yes nor a no.
    """
    if args.cluster_keys is not None:
        return bool(args.cluster_keys)
    if default is not None:
        return default
    from relayna.app import cluster_keys_from_env
    from relayna.errors import ConfigurationError

    try:
        return cluster_keys_from_env()
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None


def _replicas(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def add_replica_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--replica-acks",
        type=_replicas,
        default=None,
        metavar="N",
        help="replicas of a Redis Cluster store that must hold the writes made for a "
        "message (DLQ record, idempotency mark, cancel claims, workflow steps) before "
        "it is acked; 0 turns the wait off (default: env RELAYNA_STORE_REPLICA_ACKS, "
        "else 1 on a redis+cluster:// store and 0 elsewhere; more than 0 on a store "
        "without replicas is an error)",
    )
    p.add_argument(
        "--replica-wait",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds one wait for replicas may take before the write is retried or "
        "its message left for redelivery (default: env RELAYNA_STORE_REPLICA_WAIT, else 1)",
    )


def replica_options(args: argparse.Namespace, *, env: bool) -> dict[str, Any]:
    """``replica_acks`` / ``replica_wait`` from the flags; with ``env``, the
    environment fills what no flag gave (an App reads it itself).

    Raises:
        UsageError: a malformed RELAYNA_STORE_REPLICA_ACKS / _WAIT.
    """
    from relayna.app import replicas_from_env
    from relayna.errors import ConfigurationError

    options: dict[str, Any] = {}
    if env:
        try:
            options["replica_acks"], options["replica_wait"] = replicas_from_env()
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
    if args.replica_acks is not None:
        options["replica_acks"] = args.replica_acks
    if args.replica_wait is not None:
        options["replica_wait"] = args.replica_wait
    return options


def add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=env_default("RELAYNA_BACKEND", "asyncio"),
        help="async backend (default asyncio, env RELAYNA_BACKEND)",
    )


def add_http_args(p: argparse.ArgumentParser) -> None:
    """``--host``, ``--port`` and ``--access-log`` of the commands that serve HTTP."""
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--access-log", action="store_true", help="log every HTTP request")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_logging_args(p: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format`` of the long-running commands."""
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=argparse.SUPPRESS,  # else the global --log-level (default INFO)
        help="logging level (default INFO, env RELAYNA_LOG_LEVEL)",
    )
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=env_default("RELAYNA_LOG_FORMAT", "text"),
        help="text (default) or json: one JSON object per line (env RELAYNA_LOG_FORMAT)",
    )


def setup_logging(args: argparse.Namespace) -> None:
    """Configure the process's logging from ``--log-level`` / ``--log-format``."""
    configure_logging(
        getattr(args, "log_level", None) or "INFO", getattr(args, "log_format", "text")
    )


def fail(message: str, code: int) -> NoReturn:
    print(f"relayna: error: {message}", file=sys.stderr)
    raise SystemExit(code)


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors reported as relayna's (exit code EXIT_USAGE)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        fail(message, EXIT_USAGE)


#: What each command's ``register`` adds its parser to.
Subcommands: TypeAlias = "argparse._SubParsersAction[Parser]"


def load_target(spec: str, *, what: str = "object") -> Any:
    """Import ``package.module:attribute``; a failure is a usage error (exit 2)."""
    try:
        return _load_target(spec, what=what)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None


async def wait_for_shutdown_signal() -> None:
    """Return on the first SIGINT or SIGTERM."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def run_async(main: Callable[[], Awaitable[int | None]], backend: str) -> int:
    """Run ``main`` on ``backend``; a relayna error (or a group of one) ends in one line:
    exit code 2 for configuration errors, 1 for other failures (see :func:`explain`)."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose asyncio or trio")
    try:
        result = anyio.run(main, backend=backend)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        explained = explain(exc)
        if explained is None:
            raise
        fail(explained.message, explained.exit_code)
    return int(result or 0)
