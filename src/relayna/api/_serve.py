"""Serve an ASGI app with hypercorn on the current anyio backend."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sniffio

__all__ = ["serve_asgi"]


async def serve_asgi(
    app: Any,
    *,
    host: str,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
    access_log: bool = False,
) -> None:
    """Run hypercorn until ``shutdown_trigger`` returns.

    hypercorn ships one server per backend; pick the one matching the running
    event loop so the same app runs unchanged on asyncio and trio.
    """
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = "-" if access_log else None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5.0
    if sniffio.current_async_library() == "trio":
        from hypercorn.trio import serve as trio_serve

        await trio_serve(app, config, shutdown_trigger=shutdown_trigger)
    else:
        from hypercorn.asyncio import serve as asyncio_serve

        await asyncio_serve(app, config, shutdown_trigger=shutdown_trigger)
