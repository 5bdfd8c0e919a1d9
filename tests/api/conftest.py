"""Serve an ASGI app with hypercorn on a real loopback socket, on the test's backend."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from relayna.api import serving


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
    async with serving(app, sock=sock, graceful_timeout=1.0) as base:
        yield base  # leaving: bounded, serving force-closes what outlives the grace time


@pytest.fixture
def serve() -> Callable[[Any], Any]:
    """``async with serve(app) as base_url:`` — hypercorn on 127.0.0.1, stopped on exit."""
    return _serve
