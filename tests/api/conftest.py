"""Serve an ASGI app with hypercorn on a real loopback socket, on the test's backend."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import sniffio
from hypercorn.config import Config


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
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.graceful_timeout = 1.0
    config.accesslog = None
    config.errorlog = None
    sock.close()
    stop = anyio.Event()

    async def trigger() -> None:
        await stop.wait()

    async with anyio.create_task_group() as tg:
        if sniffio.current_async_library() == "trio":
            from hypercorn.trio import serve as trio_serve

            tg.start_soon(lambda: trio_serve(app, config, shutdown_trigger=trigger))
        else:
            from hypercorn.asyncio import serve as asyncio_serve

            tg.start_soon(lambda: asyncio_serve(app, config, shutdown_trigger=trigger))
        base = f"http://127.0.0.1:{port}"
        try:
            yield base
        finally:
            stop.set()
            # hypercorn's graceful shutdown waits on open connections; a test
            # that failed may leave one behind, so the stop is bounded.
            tg.cancel_scope.deadline = anyio.current_time() + 5


@pytest.fixture
def serve() -> Callable[[Any], Any]:
    """``async with serve(app) as base_url:`` — hypercorn on 127.0.0.1, stopped on exit."""
    return _serve
