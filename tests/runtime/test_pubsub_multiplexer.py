"""The pubsub multiplexer against a fake server whose connections the test drops.

Who gets ``PubSubReconnected`` after a reconnect: every subscriber whose
``subscribe`` returned before the connection was lost (it may have missed
messages), and no subscriber that joined while the connection was down (it
reads its history after its channels are confirmed on the new connection, so
a notice would only make it read the history twice; after an outage that is
every client reconnecting into it).

The keepalive: a connection that stops answering PING (half-open: nothing
closed, nothing arrives) is given up after one keepalive period and replaced;
one that answers is kept however quiet its channels are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relayna.errors import StoreConnectionError, StoreConnectionLost
from relayna.transport import (
    PubSubMessage,
    PubSubMultiplexer,
    PubSubReconnected,
    RawEvent,
    RawMessage,
    RawSubscribed,
)

pytestmark = pytest.mark.anyio


class FakeConnection:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.channels: set[str] = set()
        self.silent = False  # half-open: PINGs go out, no answer comes back
        self.pings = 0
        self._send: MemoryObjectSendStream[RawEvent]
        self._receive: MemoryObjectReceiveStream[RawEvent]
        self._send, self._receive = anyio.create_memory_object_stream[RawEvent](100)

    def drop(self) -> None:
        self._send.close()

    async def subscribe(self, channels: Sequence[str]) -> None:
        for channel in channels:
            self.channels.add(channel)
            try:
                self._send.send_nowait(RawSubscribed(channel))
            except anyio.ClosedResourceError:
                raise StoreConnectionLost("dropped") from None

    async def unsubscribe(self, channels: Sequence[str]) -> None:
        self.channels.difference_update(channels)

    async def ping(self) -> None:
        self.pings += 1
        if self.silent:
            await anyio.sleep_forever()

    async def next_event(self) -> RawEvent:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StoreConnectionLost("dropped") from None

    def deliver(self, channel: str, data: bytes) -> None:
        if channel in self.channels:
            self._send.send_nowait(RawMessage(channel, data))


class FakeServer:
    def __init__(self) -> None:
        self.up = True
        self.connections: list[FakeConnection] = []
        self.refused = 0

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[FakeConnection]:
        if not self.up:
            self.refused += 1
            raise StoreConnectionError("connection refused")
        conn = FakeConnection(self)
        self.connections.append(conn)
        try:
            yield conn
        finally:
            conn.drop()
            if conn in self.connections:
                self.connections.remove(conn)

    def go_down(self) -> None:
        self.up = False
        for conn in self.connections:
            conn.drop()
        self.connections.clear()

    def publish(self, channel: str, data: bytes) -> None:
        for conn in self.connections:
            conn.deliver(channel, data)


async def test_reconnect_notice_only_for_subscribers_armed_before_the_loss() -> None:
    server = FakeServer()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            mux = PubSubMultiplexer(server.connect, tg, backoff=(0.01, 0.01))
            async with mux.subscribe("early") as early:
                server.go_down()
                late_subscribed = anyio.Event()
                late_events: list[object] = []

                async def late() -> None:
                    async with mux.subscribe("late") as sub:  # waits for the reconnect
                        late_subscribed.set()
                        async for item in sub:
                            late_events.append(item)
                            if isinstance(item, PubSubMessage):
                                return

                async with anyio.create_task_group() as clients:
                    clients.start_soon(late)
                    while server.refused < 3:  # noqa: ASYNC110 - a few failed reconnects
                        await anyio.sleep(0.005)
                    assert not late_subscribed.is_set()
                    server.up = True
                    assert await early.__anext__() == PubSubReconnected()
                    await late_subscribed.wait()
                    server.publish("late", b"x")
                    server.publish("early", b"y")
                assert late_events == [PubSubMessage("late", b"x")]
                assert await early.__anext__() == PubSubMessage("early", b"y")
            mux.close()
            tg.cancel_scope.cancel()


async def test_every_armed_subscriber_is_notified_of_every_reconnect() -> None:
    server = FakeServer()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            mux = PubSubMultiplexer(server.connect, tg, backoff=(0.01, 0.01))
            async with mux.subscribe("a") as first, mux.subscribe("a", "b") as second:
                for _ in range(2):
                    server.go_down()
                    server.up = True
                    assert await first.__anext__() == PubSubReconnected()
                    assert await second.__anext__() == PubSubReconnected()
                server.publish("b", b"z")
                assert await second.__anext__() == PubSubMessage("b", b"z")
            assert mux.reconnects == 2
            mux.close()
            tg.cancel_scope.cancel()


async def test_keepalive_replaces_a_connection_that_stopped_answering() -> None:
    server = FakeServer()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            mux = PubSubMultiplexer(server.connect, tg, keepalive=0.02, backoff=(0.01, 0.01))
            async with mux.subscribe("a") as sub:
                half_open = server.connections[0]
                half_open.silent = True  # its messages would never come either
                assert await sub.__anext__() == PubSubReconnected()
                assert mux.reconnects == 1
                assert half_open not in server.connections  # closed by the multiplexer
                server.publish("a", b"after")
                assert await sub.__anext__() == PubSubMessage("a", b"after")
            mux.close()
            tg.cancel_scope.cancel()


async def test_keepalive_keeps_a_quiet_connection_that_answers() -> None:
    server = FakeServer()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            mux = PubSubMultiplexer(server.connect, tg, keepalive=0.01, backoff=(0.01, 0.01))
            async with mux.subscribe("a") as sub:
                conn = server.connections[0]
                while conn.pings < 10:  # noqa: ASYNC110 - ten keepalive periods, no message
                    await anyio.sleep(0.01)
                server.publish("a", b"still here")
                assert await sub.__anext__() == PubSubMessage("a", b"still here")
                assert mux.reconnects == 0
                assert server.connections == [conn]
            mux.close()
            tg.cancel_scope.cancel()
