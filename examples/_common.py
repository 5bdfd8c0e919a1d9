"""Small helpers shared by the examples (not an example itself).

* :func:`cli` — the common command line: ``--broker-url`` / ``--store-url``
  (default ``RELAYNA_BROKER_URL`` / ``RELAYNA_STORE_URL``, else ``memory://``)
  and ``--backend asyncio|trio`` (default ``RELAYNA_BACKEND``, else asyncio);
  it runs an example's ``main`` and returns the process exit code.
* :func:`serve_http` — hypercorn on a free loopback port, on whichever anyio
  backend is running, stopped when the block is left.
* :func:`follow_status` — one task's statuses from the status store (history,
  then live) until a terminal status: the same machinery the SSE route uses,
  without HTTP.
* :func:`new_id` — a readable unique identifier.

Run the examples from the repository root (``python examples/NAME.py``): the
script's own directory is on ``sys.path``, so ``import _common`` works.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio

from relayna.api import serving
from relayna.status import Emit, StatusStore, open_status_stream

__all__ = ["cli", "follow_status", "new_id", "serve_http"]

MEMORY = "memory://"


def new_id(prefix: str) -> str:
    """``prefix-<12 hex>``: valid relayna identifier, unique per run."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def parse_args(description: str | None, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(description or "").strip().splitlines()[0] if description else None
    )
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("RELAYNA_BROKER_URL", MEMORY),
        help="amqp://... or memory:// (default: $RELAYNA_BROKER_URL, else memory://)",
    )
    parser.add_argument(
        "--store-url",
        default=os.environ.get("RELAYNA_STORE_URL", MEMORY),
        help="redis://... or memory:// (default: $RELAYNA_STORE_URL, else memory://)",
    )
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default=os.environ.get("RELAYNA_BACKEND", "asyncio"),
        help="the anyio backend (default: $RELAYNA_BACKEND, else asyncio)",
    )
    return parser.parse_args(argv)


def cli(
    main: Callable[..., Awaitable[Any]],
    description: str | None,
    argv: Sequence[str] | None = None,
    *,
    backend: str | None = None,
) -> int:
    """Parse the command line, run ``main(broker_url=..., store_url=...)``, return 0.

    ``backend`` forces the anyio backend (``--backend`` is then ignored).
    """
    args = parse_args(description, argv)
    run = partial(main, broker_url=args.broker_url, store_url=args.store_url)
    anyio.run(run, backend=backend or args.backend)
    return 0


@asynccontextmanager
async def serve_http(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` with :func:`relayna.api.serving`; yield its base URL; stop it on exit.

    ``port=0`` picks a free port. hypercorn's trio or asyncio server is picked
    to match the running backend, so the same code runs on both, and the
    shutdown is bounded even if a client stopped reading.
    """
    async with serving(app, host=host, port=port, graceful_timeout=2.0) as url:
        yield url


async def follow_status(
    status: StatusStore,
    task_id: str,
    *,
    terminal: Iterable[str] = ("completed", "failed"),
    time_limit: float = 30.0,
) -> list[dict[str, Any]]:
    """Every status event of ``task_id`` (history, then live) up to the first terminal one."""
    events: list[dict[str, Any]] = []
    with anyio.fail_after(time_limit):
        async with open_status_stream(status, task_id, terminal_statuses=terminal) as items:
            async for item in items:
                if isinstance(item, Emit):
                    events.append(dict(item.event))
    return events


def print_events(title: str, events: Iterable[dict[str, Any]]) -> None:
    print(title)
    for event in events:
        extra = {k: event[k] for k in ("message", "meta", "result") if event.get(k)}
        print(f"  {event['status']:<16} {extra if extra else ''}")
    sys.stdout.flush()
