"""Serve an ASGI app with hypercorn on a real loopback socket, on the test's backend."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest

from relayna.api import serve_asgi


@asynccontextmanager
async def _serve(app: Any, *, sndbuf: int | None = None) -> AsyncIterator[str]:
    """``sndbuf`` fixes SO_SNDBUF of the accepted sockets (inherited from the
    listener; no autotuning up to 4 MiB), so a client that does not read
    blocks the server's writes after a known amount of data."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    stop = anyio.Event()

    async def trigger() -> None:
        await stop.wait()

    async with anyio.create_task_group() as tg:
        base: str = await tg.start(
            partial(serve_asgi, app, sock=sock, shutdown_trigger=trigger, graceful_timeout=1.0)
        )
        try:
            yield base
        finally:
            stop.set()  # bounded: serve_asgi force-closes what outlives the grace time


@pytest.fixture
def serve() -> Callable[[Any], Any]:
    """``async with serve(app) as base_url:`` — hypercorn on 127.0.0.1, stopped on exit."""
    return _serve
