"""Serve an ASGI app with hypercorn on the current anyio backend, with a bounded shutdown.

hypercorn's graceful shutdown waits for every open connection, and one write
of it cannot be cancelled (see :mod:`relayna.api._hypercorn_patch`): a client
that stopped reading at the TCP level (a frozen browser tab, a dead NAT
mapping) would keep hypercorn, and whoever waits for it, running forever.
:func:`serve_asgi` bounds that: a while after hypercorn's own graceful
timeout it aborts the connections *this server* still has open, which fails
the stuck write so hypercorn finishes. The server's connections are known
by object (hypercorn's connection handler registers itself with its server,
through the patch): nothing else of the process is touched, no descriptor is
scanned, no ``/proc`` is needed.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import sniffio
from anyio.abc import TaskStatus

from relayna.errors import unwrap_groups

__all__ = ["serve_asgi", "serving"]

log = logging.getLogger("relayna.api.serve")

#: How often connections that survived the forced close are looked for again.
_FORCE_CLOSE_REPEAT = 1.0


async def serve_asgi(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    shutdown_trigger: Callable[[], Awaitable[None]],
    sock: socket.socket | None = None,
    access_log: bool = False,
    graceful_timeout: float = 5.0,
    force_close_after: float | None = 1.0,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run hypercorn until ``shutdown_trigger`` returns and its connections are closed.

    hypercorn ships one server per backend; the one matching the running
    event loop is used, so the same app runs unchanged on asyncio and trio.

    Args:
        app: the ASGI application.
        host / port: where to listen; ``port=0`` picks a free port (reported
            through ``task_status``).
        shutdown_trigger: returns when the server should stop accepting and
            shut down.
        sock: a bound, listening TCP socket to serve on instead of
            ``host``/``port`` (for options such as a larger backlog or
            ``SO_SNDBUF``); ``serve_asgi`` takes it over and closes it.
        access_log: log every request (logger ``hypercorn.access``, level INFO).
        graceful_timeout: seconds hypercorn waits for open requests after
            the trigger; then it cancels them.
        force_close_after: seconds after the graceful timeout when the
            connections this server still has open are aborted, so that a
            client that stopped reading cannot hold the shutdown forever;
            ``None`` waits for hypercorn however long it takes after the
            trigger (a cancellation still aborts them after the graceful
            timeout).
        task_status: ``await tg.start(serve_asgi, ...)`` returns
            ``http://host:port`` once the socket listens.

    Cancellation: cancelling ``serve_asgi`` is a graceful stop, the same as
    the trigger returning (hypercorn's own cancellation path is not used: on
    asyncio it fails with ``InvalidStateError``); it returns, re-raising the
    cancellation, within ``graceful_timeout + force_close_after`` (or
    ``graceful_timeout`` when ``force_close_after`` is None) plus the app's
    lifespan shutdown.

    Resource handling: the listening socket is bound here and handed to
    hypercorn, which closes it. The forced close acts only on this server's
    own connections (see the module docs).
    """
    from hypercorn.config import Config

    config = Config()
    # Through logging (not hypercorn's own stdout handler): the access log then has
    # the process's one format (text or JSON, see relayna.observability).
    config.accesslog = logging.getLogger("hypercorn.access") if access_log else None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = graceful_timeout
    if sock is None:
        sock = await _listen(host, port, config.backlog)
    else:
        host = str(sock.getsockname()[0])
    bound = sock.getsockname()[1]
    config.bind = [f"fd://{sock.detach()}"]
    server = _Server(app, config, force_close_after)
    bare_host = host.strip("[]")
    url_host = f"[{bare_host}]" if ":" in bare_host else bare_host
    with unwrap_groups():
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.run, shutdown_trigger)
            task_status.started(f"http://{url_host}:{bound}")
            try:
                await server.served.wait()
            except anyio.get_cancelled_exc_class():
                server.stop.set()
                with anyio.CancelScope(shield=True):
                    await server.served.wait()
                raise


@asynccontextmanager
async def serving(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    graceful_timeout: float = 5.0,
    force_close_after: float | None = 1.0,
    access_log: bool = False,
) -> AsyncIterator[str]:
    """``async with serving(app) as url:`` runs :func:`serve_asgi` for the block.

    Yields ``http://host:port`` once the socket listens (``port=0``: a free
    port); leaving the block is the shutdown trigger, and the block's exit
    waits for the bounded shutdown. Options as for :func:`serve_asgi`.
    """
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        url: str = await tg.start(
            partial(
                serve_asgi,
                app,
                host=host,
                port=port,
                sock=sock,
                shutdown_trigger=stop.wait,
                graceful_timeout=graceful_timeout,
                force_close_after=force_close_after,
                access_log=access_log,
            )
        )
        try:
            yield url
        finally:
            stop.set()


class _Server:
    """hypercorn, shielded from cancellation: the trigger, or :attr:`stop`, starts its
    graceful stop, which :meth:`_close_stuck` bounds."""

    def __init__(self, app: Any, config: Any, force_close_after: float | None) -> None:
        from relayna.api._hypercorn_patch import track

        self.app = app
        self.config = config
        self.connections = track(config)
        self.force_close_after = force_close_after
        self.stop = anyio.Event()  # set when serve_asgi is cancelled
        self.stopping = anyio.Event()  # hypercorn's shutdown began
        self.served = anyio.Event()  # hypercorn returned

    async def run(self, shutdown_trigger: Callable[[], Awaitable[None]]) -> None:
        async def trigger() -> None:
            async with anyio.create_task_group() as race:

                async def by_trigger() -> None:
                    await shutdown_trigger()
                    race.cancel_scope.cancel()

                race.start_soon(by_trigger)
                await self.stop.wait()
                race.cancel_scope.cancel()
            self.stopping.set()

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._close_stuck)
                try:
                    if sniffio.current_async_library() == "trio":
                        from hypercorn.trio import serve as trio_serve

                        await trio_serve(self.app, self.config, shutdown_trigger=trigger)
                    else:
                        from hypercorn.asyncio import serve as asyncio_serve

                        await asyncio_serve(self.app, self.config, shutdown_trigger=trigger)
                finally:
                    self.served.set()
                tg.cancel_scope.cancel()

    async def _close_stuck(self) -> None:
        await self.stopping.wait()
        after = self.force_close_after
        if after is None:  # wait for hypercorn, unless serve_asgi is cancelled
            async with anyio.create_task_group() as race:

                async def by_served() -> None:
                    await self.served.wait()
                    race.cancel_scope.cancel()

                race.start_soon(by_served)
                await self.stop.wait()
                race.cancel_scope.cancel()
            after = 0.0
        delay = self.config.graceful_timeout + after
        with anyio.move_on_after(delay):
            await self.served.wait()
        while not self.served.is_set():
            aborted = self.connections.abort()
            if aborted:
                log.warning(
                    "%d connection(s) still open %.1fs after shutdown "
                    "(a client that stopped reading?): aborted",
                    aborted,
                    delay,
                )
            with anyio.move_on_after(_FORCE_CLOSE_REPEAT):
                await self.served.wait()


async def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket, set up as hypercorn sets up its ``host:port`` binds
    (IPv6 when ``host`` contains a colon, else IPv4)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    family, kind, proto, _, address = (
        await anyio.getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
