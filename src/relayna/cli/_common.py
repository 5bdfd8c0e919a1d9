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
from relayna.errors import ConfigurationError, RelaynaError

__all__ = [
    "Parser",
    "Subcommands",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "UsageError",
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
    """Run ``main`` on ``backend``, mapping relayna errors to exit code 1."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose asyncio or trio")
    try:
        result = anyio.run(main, backend=backend)
    except RelaynaError as exc:
        fail(str(exc), EXIT_RUNTIME)
    except KeyboardInterrupt:
        return 130
    return int(result or 0)
