"""Serve an ASGI app with hypercorn on the current anyio backend, with a bounded shutdown.

hypercorn's graceful shutdown waits for every open connection, and one write
of it cannot be cancelled: on trio ``TCPServer.protocol_send`` runs
``send_all`` inside a shielded cancel scope, and on asyncio the app task's
final ``send(None)`` waits in ``drain()`` after the graceful timeout already
cancelled it once. A client that stopped reading at the TCP level (a frozen
browser tab, a dead NAT mapping) therefore keeps hypercorn, and whoever waits
for it, running forever. :func:`serve_asgi` bounds that: a while after
hypercorn's own graceful timeout it shuts down, at the socket level, the
connections of *this server's requests* that are still open, which fails the
stuck write (``EPIPE``) so hypercorn finishes.

Which connections: the app is wrapped so that every HTTP/WebSocket request
records its connection's two endpoints (``scope["server"]``,
``scope["client"]``) while it runs; from the moment the shutdown begins the
record is frozen. The forced close shuts down only sockets whose local *and*
peer address are such a pair: nothing else of the process (another server,
an outgoing connection, a listener sharing the port) is touched. The sockets
are found among the process's descriptors (listed from ``/proc/self/fd`` or
``/dev/fd`` where the system has them, else probed up to the descriptor
limit), so it needs no ``/proc``.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
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
#: Where descriptors cannot be listed, how many are probed at most.
_PROBE_LIMIT = 65536

_Endpoints = tuple[tuple[str, int], tuple[str, int]]  # (local, peer), hosts as text


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
            connections of this server's requests that are still open are
            shut down (``SHUT_RDWR``), so that a client that stopped reading
            cannot hold the shutdown forever; ``None`` waits for hypercorn
            however long it takes.
        task_status: ``await tg.start(serve_asgi, ...)`` returns
            ``http://host:port`` once the socket listens.

    Cancellation: cancelling ``serve_asgi`` is a graceful stop, the same as
    the trigger returning (hypercorn's own cancellation path is not used: on
    asyncio it fails with ``InvalidStateError``); it returns, re-raising the
    cancellation, within ``graceful_timeout + force_close_after`` plus the
    app's lifespan shutdown.

    Resource handling: the listening socket is bound here and handed to
    hypercorn, which closes it. The forced close acts only on the connections
    of this server's own requests (see the module docs).
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
    """hypercorn in a shielded scope: only the trigger, or :attr:`stop`, ends it."""

    def __init__(self, app: Any, config: Any, force_close_after: float | None) -> None:
        self.connections = _Connections()
        self.app = self.connections.wrap(app)
        self.config = config
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
            self.connections.freeze()
            self.stopping.set()

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                if self.force_close_after is not None:
                    tg.start_soon(self._close_stuck, self.force_close_after)
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

    async def _close_stuck(self, after: float) -> None:
        await self.stopping.wait()
        delay = self.config.graceful_timeout + after
        with anyio.move_on_after(delay):
            await self.served.wait()
        while not self.served.is_set():
            closed = shutdown_connections(self.connections.open)
            if closed:
                log.warning(
                    "%d connection(s) still open %.1fs after shutdown "
                    "(a client that stopped reading?): shut down",
                    closed,
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


class _Connections:
    """The endpoints of this server's requests in flight (and, once frozen, all seen since)."""

    def __init__(self) -> None:
        self.open: dict[_Endpoints, int] = {}
        self._frozen = False

    def freeze(self) -> None:
        """Shutdown began: keep every pair, even of requests that end from now on (on
        asyncio hypercorn's last write of a finished request can still be stuck)."""
        self._frozen = True

    def wrap(self, app: Any) -> Any:
        async def tracked(scope: Any, receive: Any, send: Any) -> None:
            pair = _endpoints(scope)
            if pair is None:
                await app(scope, receive, send)
                return
            self.open[pair] = self.open.get(pair, 0) + 1
            try:
                await app(scope, receive, send)
            finally:
                if not self._frozen:
                    left = self.open.pop(pair) - 1
                    if left:
                        self.open[pair] = left

        return tracked


def _endpoints(scope: Any) -> _Endpoints | None:
    if scope.get("type") not in ("http", "websocket"):
        return None
    server, client = scope.get("server"), scope.get("client")
    if not server or not client or server[1] is None or client[1] is None:
        return None  # a unix socket, or an unknown peer
    return (str(server[0]), int(server[1])), (str(client[0]), int(client[1]))


def shutdown_connections(pairs: Iterable[_Endpoints]) -> int:
    """Shut down this process's TCP sockets whose (local, peer) addresses are in ``pairs``.

    ``shutdown`` acts on the connection itself, so a duplicate of its
    descriptor is enough, and the server's own descriptor stays valid for it
    to close. Returns how many were shut down.
    """
    wanted = set(pairs)
    if not wanted:
        return 0
    count = 0
    for fd in _descriptors():
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:  # closes the duplicate only
            try:
                if sock.type != socket.SOCK_STREAM or sock.family not in (
                    socket.AF_INET,
                    socket.AF_INET6,
                ):
                    continue
                local, peer = sock.getsockname(), sock.getpeername()
                if ((local[0], local[1]), (peer[0], peer[1])) not in wanted:
                    continue
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue
            count += 1
    return count


def _descriptors() -> Iterable[int]:
    """This process's socket descriptors: listed where the system lists them, else probed."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        return [int(name) for name in names if name.isdigit() and _is_socket(int(name))]
    limit = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], _PROBE_LIMIT)
    return [fd for fd in range(limit) if _is_socket(fd)]


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
