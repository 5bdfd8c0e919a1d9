"""A fault-injecting TCP proxy on anyio: toxiproxy's toxics, in the test tree.

``async with open_fault_proxy(port) as proxy:`` listens on a free loopback port
(``proxy.port``) and forwards each accepted connection to ``127.0.0.1:port``.
Toxics apply per direction (``proxy.upstream``: client to server,
``proxy.downstream``: server to client) and take effect at once, on live
connections too:

* ``latency``: seconds added before each chunk is forwarded;
* ``bytes_per_second``: a bandwidth limit (chunks are sliced and paced);
* ``drip``: forward one byte at a time, ``drip`` seconds apart;
* ``blackhole``: read and drop everything, send nothing, close nothing: a
  half-open connection (no FIN, no RST); only heartbeats can tell. A
  connection that lost bytes this way stays silent for good, even after the
  toxic is cleared: TCP never delivers a stream with a hole in the middle (a
  client that sent a command whose bytes were dropped would otherwise read
  the reply to its next command as the reply to the lost one);
* ``reset_after``: after that many more bytes (mid-chunk, so mid-frame) the
  connection is reset (RST, ``SO_LINGER`` 0) on both sides.

``proxy.down()`` closes every connection and refuses new ones until
``proxy.up()``; ``proxy.reset_all()`` resets every live connection now;
``proxy.sever()`` half-opens every live connection for good (their bytes are
dropped from then on, nothing is closed: the peer's host vanished).
Counters in ``proxy.stats`` tell the test how many faults really happened.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import attrs
from anyio.abc import SocketAttribute, SocketStream

__all__ = ["FaultProxy", "Toxics", "open_fault_proxy"]

_CHUNK = 65536


@attrs.define
class Toxics:
    latency: float = 0.0
    bytes_per_second: float | None = None
    drip: float | None = None
    blackhole: bool = False
    reset_after: int | None = None

    def clear(self) -> None:
        self.latency, self.bytes_per_second, self.drip = 0.0, None, None
        self.blackhole, self.reset_after = False, None


@attrs.define
class ProxyStatistics:
    accepted: int = 0
    refused: int = 0  # closed at once: proxy down, or upstream unreachable
    cut: int = 0  # live connections closed by down()
    resets: int = 0
    severed: int = 0  # connections half-opened for good (sever(), or a blackhole)
    blackholed_bytes: int = 0
    forwarded_bytes: int = 0


class _Reset(Exception):
    pass


def _rst(stream: SocketStream) -> None:
    sock: socket.socket = stream.extra(SocketAttribute.raw_socket)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class FaultProxy:
    """See the module docstring; made by :func:`open_fault_proxy`."""

    def __init__(self, port: int, target_port: int) -> None:
        self.port = port
        self.target_port = target_port
        self.upstream = Toxics()
        self.downstream = Toxics()
        self.stats = ProxyStatistics()
        self.is_up = True
        self._live: dict[anyio.CancelScope, tuple[SocketStream, SocketStream]] = {}
        self._severed: set[anyio.CancelScope] = set()

    def clear(self) -> None:
        """Remove every toxic (live connections go back to plain forwarding)."""
        self.upstream.clear()
        self.downstream.clear()

    def down(self) -> None:
        self.is_up = False
        self.stats.cut += len(self._live)
        for scope in list(self._live):
            scope.cancel()

    def up(self) -> None:
        self.is_up = True

    def sever(self) -> None:
        """Half-open every live connection for good (see the module docstring)."""
        for scope in list(self._live):
            self._sever(scope)

    def _sever(self, scope: anyio.CancelScope) -> None:
        if scope not in self._severed:
            self._severed.add(scope)
            self.stats.severed += 1

    def reset_all(self) -> None:
        for scope, (client, upstream) in list(self._live.items()):
            _rst(client)
            _rst(upstream)
            self.stats.resets += 1
            scope.cancel()

    async def handle(self, client: SocketStream) -> None:
        async with client:
            self.stats.accepted += 1
            if not self.is_up:
                self.stats.refused += 1
                return
            try:
                upstream = await anyio.connect_tcp("127.0.0.1", self.target_port)
            except OSError:
                self.stats.refused += 1
                return
            async with upstream:
                with anyio.CancelScope() as scope:
                    self._live[scope] = (client, upstream)
                    try:
                        async with anyio.create_task_group() as tg:
                            tg.start_soon(self._pump, client, upstream, self.upstream, scope)
                            tg.start_soon(self._pump, upstream, client, self.downstream, scope)
                    except* _Reset:
                        _rst(client)
                        _rst(upstream)
                        self.stats.resets += 1
                    finally:
                        self._live.pop(scope, None)
                        self._severed.discard(scope)

    async def _pump(
        self, src: SocketStream, dst: SocketStream, toxics: Toxics, scope: anyio.CancelScope
    ) -> None:
        try:
            while True:
                try:
                    chunk = await src.receive(_CHUNK)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    break
                if toxics.blackhole or scope in self._severed:
                    self._sever(scope)  # bytes lost mid-stream: it never forwards again
                    self.stats.blackholed_bytes += len(chunk)
                    continue
                if toxics.latency:
                    await anyio.sleep(toxics.latency)
                if toxics.reset_after is not None:
                    if len(chunk) >= toxics.reset_after:
                        await self._send(dst, chunk[: toxics.reset_after], toxics)
                        toxics.reset_after = None
                        raise _Reset
                    toxics.reset_after -= len(chunk)
                await self._send(dst, chunk, toxics)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        scope.cancel()  # one side finished: the connection ends (as through a proxy)

    async def _send(self, dst: SocketStream, data: bytes, toxics: Toxics) -> None:
        # Toxics may be cleared while a chunk is on its way: re-read them per slice.
        sent = 0
        while sent < len(data):
            drip, rate = toxics.drip, toxics.bytes_per_second
            if drip:
                await dst.send(data[sent : sent + 1])
                sent += 1
                await anyio.sleep(drip)
            elif rate:
                step = max(1, int(rate / 20))
                await dst.send(data[sent : sent + step])
                sent += step
                await anyio.sleep(step / rate)
            else:
                await dst.send(data[sent:])
                sent = len(data)
        self.stats.forwarded_bytes += len(data)


@asynccontextmanager
async def open_fault_proxy(target_port: int) -> AsyncIterator[FaultProxy]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    proxy = FaultProxy(port, target_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy.handle)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()
