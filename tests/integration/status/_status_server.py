"""``status_routes`` of a runtime served by hypercorn on a loopback socket."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette

from relayna.api import RelaynaRuntime, serving, status_routes

__all__ = ["serve"]


@asynccontextmanager
async def serve(runtime: RelaynaRuntime) -> AsyncIterator[str]:
    """Yield the base URL; backlog 1024 (hundreds of clients may connect at once)."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"relayna": runtime}

    app = Starlette(routes=status_routes(max_streams_per_client=None), lifespan=lifespan)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    async with serving(app, sock=sock, graceful_timeout=1.0) as base:
        try:
            yield base
        finally:
            runtime.request_shutdown()
