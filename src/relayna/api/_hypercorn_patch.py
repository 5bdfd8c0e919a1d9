"""A minimal hypercorn patch: each server knows its own connections and can abort them.

The problem (hypercorn 0.17/0.18, reported upstream with this note): after
``graceful_timeout`` hypercorn cancels the request tasks, but one write per
connection cannot be cancelled. On trio ``TCPServer.protocol_send`` runs
``send_all`` in a shielded cancel scope; on asyncio the app task's final
``send(None)`` waits in ``StreamWriter.drain()``. A client that stopped
reading at the TCP level (a frozen tab, a dead NAT mapping) therefore holds
the connection, and ``serve()`` that waits for it, forever. hypercorn has no
hook to reach its connections from outside.

The patch: hypercorn's serve loops build their connection handler from the
module name ``TCPServer`` (``hypercorn.trio.run`` and
``hypercorn.asyncio.run``); :func:`install` points that name at a subclass
that, *only when its config carries a* :class:`ServerConnections` (set by
:func:`track`), registers itself there while it runs. A server can then
:meth:`~ServerConnections.abort` exactly its own connections (trio: shut the
socket down, which fails the shielded ``send_all``; asyncio: abort the
transport, which fails ``drain()``), and hypercorn finishes. Any other
hypercorn server in the process runs the unchanged code path. No descriptor
scan, no ``/proc``.

Upstream fix this stands in for: when ``graceful_timeout`` expires, hypercorn
should abort the connections it is still waiting on (close the stream /
``transport.abort()``) rather than wait for a write that cannot finish.
``tests/api/test_hypercorn_patch.py`` checks that the patch is in place on
the installed hypercorn, so an upgrade that renames these internals fails
the tests instead of silently losing the bounded shutdown.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import hypercorn.asyncio.run as asyncio_run
import hypercorn.trio.run as trio_run
from hypercorn.asyncio.tcp_server import TCPServer as AsyncioTCPServer
from hypercorn.trio.tcp_server import TCPServer as TrioTCPServer

__all__ = [
    "ServerConnections",
    "TrackedAsyncioTCPServer",
    "TrackedTrioTCPServer",
    "install",
    "track",
]

_ATTRIBUTE = "relayna_connections"


class ServerConnections:
    """The connections one hypercorn server is serving right now."""

    def __init__(self) -> None:
        self._open: set[Any] = set()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: Any) -> None:
        self._open.add(connection)

    def discard(self, connection: Any) -> None:
        self._open.discard(connection)

    def abort(self) -> int:
        """Abort every open connection of this server; returns how many."""
        count = 0
        for connection in list(self._open):
            try:
                _abort(connection)
            except OSError:  # already gone
                continue
            count += 1
        return count


def track(config: Any) -> ServerConnections:
    """Register the connections of the server run with ``config`` (a hypercorn Config)."""
    install()
    connections = ServerConnections()
    setattr(config, _ATTRIBUTE, connections)
    return connections


def _abort(connection: Any) -> None:
    writer = getattr(connection, "writer", None)
    if writer is not None:  # asyncio: the stuck drain() raises ConnectionResetError
        writer.transport.abort()
        return
    stream = connection.stream  # trio: SocketStream, or SSLStream over one
    sock = getattr(stream, "socket", None) or stream.transport_stream.socket
    sock.shutdown(socket.SHUT_RDWR)  # the shielded send_all fails: BrokenResourceError


async def _run_tracked(server: Any, run: Callable[[], Awaitable[None]]) -> None:
    connections: ServerConnections | None = getattr(server.config, _ATTRIBUTE, None)
    if connections is None:  # a server relayna did not start: hypercorn's own path
        await run()
        return
    connections.add(server)
    try:
        await run()
    finally:
        connections.discard(server)


class TrackedTrioTCPServer(TrioTCPServer):
    """hypercorn's trio TCPServer, registered with its server's ServerConnections."""

    async def run(self) -> None:
        await _run_tracked(self, super().run)


class TrackedAsyncioTCPServer(AsyncioTCPServer):
    """hypercorn's asyncio TCPServer, registered with its server's ServerConnections."""

    async def run(self) -> None:
        await _run_tracked(self, super().run)


def install() -> None:
    """Point hypercorn's serve loops at the tracking TCPServers (idempotent)."""
    # setattr: the serve modules import the name without re-exporting it.
    setattr(asyncio_run, "TCPServer", TrackedAsyncioTCPServer)  # noqa: B010
    setattr(trio_run, "TCPServer", TrackedTrioTCPServer)  # noqa: B010
