"""A tiny TCP proxy for fault tests: toxiproxy's ``down`` toxic, without toxiproxy.

``async with open_tcp_proxy(port) as proxy:`` listens on a free loopback port
(``proxy.port``) and forwards every accepted connection to ``127.0.0.1:port``.
``proxy.down()`` closes every forwarded connection (both sides) and from then
on closes each new connection as soon as it is accepted; ``proxy.up()``
forwards again. The listening socket stays open while down (so the port
cannot be taken by someone else); clients see their connection closed before
the server said anything, which Redis clients treat like a refused connect.
A connection whose upstream cannot be reached (the server is restarting) is
closed the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import attrs
from anyio.abc import ByteStream, SocketAttribute, SocketStream

__all__ = ["TcpProxy", "TcpProxyStatistics", "open_tcp_proxy"]

_CHUNK = 65536


@attrs.define
class TcpProxyStatistics:
    accepted: int = 0
    forwarded: int = 0  # connections that reached the upstream
    refused: int = 0  # closed at once: proxy down, or upstream unreachable
    cut: int = 0  # forwarded connections closed by down()


class TcpProxy:
    """See the module docstring; made by :func:`open_tcp_proxy`."""

    def __init__(self, port: int, target_host: str, target_port: int) -> None:
        self.port = port
        self.target_host = target_host
        self.target_port = target_port
        self.is_up = True
        self.stats = TcpProxyStatistics()
        self._live: set[anyio.CancelScope] = set()

    def down(self) -> None:
        """Close every forwarded connection and refuse new ones until :meth:`up`."""
        self.is_up = False
        self.stats.cut += len(self._live)
        for scope in self._live:
            scope.cancel()

    def up(self) -> None:
        self.is_up = True

    async def handle(self, client: SocketStream) -> None:
        async with client:
            self.stats.accepted += 1
            if not self.is_up:
                self.stats.refused += 1
                return
            with anyio.CancelScope() as scope:
                self._live.add(scope)
                try:
                    await self._forward(client)
                finally:
                    self._live.discard(scope)

    async def _forward(self, client: SocketStream) -> None:
        try:
            upstream = await anyio.connect_tcp(self.target_host, self.target_port)
        except OSError:
            self.stats.refused += 1
            return
        self.stats.forwarded += 1
        async with upstream, anyio.create_task_group() as tg:
            tg.start_soon(_pump, client, upstream, tg.cancel_scope)
            tg.start_soon(_pump, upstream, client, tg.cancel_scope)


async def _pump(source: ByteStream, sink: ByteStream, pair: anyio.CancelScope) -> None:
    """Copy until either side closes, then close the pair (no half-open connections)."""
    try:
        while True:
            data = await source.receive(_CHUNK)
            await sink.send(data)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    pair.cancel()


@asynccontextmanager
async def open_tcp_proxy(
    target_port: int, target_host: str = "127.0.0.1"
) -> AsyncIterator[TcpProxy]:
    """Forward a free loopback port to ``target_host:target_port`` for the block's life."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", backlog=1024)
    async with listener, anyio.create_task_group() as tg:
        port = listener.extra(SocketAttribute.local_port)
        proxy = TcpProxy(port, target_host, target_port)
        tg.start_soon(listener.serve, proxy.handle)
        try:
            yield proxy
        finally:
            proxy.down()
            tg.cancel_scope.cancel()
