"""Connection failures and bad peers for the native client (asyncio + trio)."""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute
from pamqp import commands
from pamqp import frame as pamqp_frame

from relayna._supervise import Backoff, supervise
from relayna.errors import (
    AuthenticationError,
    BrokerConnectionError,
    ConnectionLost,
    ProtocolError,
    PublishNacked,
)
from relayna.transport import open_aiormq_broker
from relayna.transport._broker import QueueSpec
from relayna.transport.amqp import open_amqp_broker, open_connection

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]


def _with_password(url: str, user: str, password: str, path: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, path=path if path is not None else parts.path))


async def test_wrong_credentials(amqp_url: str) -> None:
    url = _with_password(amqp_url, "guest", "s3cret-wrong")
    calls = 0

    async def run() -> None:
        nonlocal calls
        calls += 1
        async with open_amqp_broker(url):
            pass

    with anyio.fail_after(10), pytest.raises(AuthenticationError) as info:
        await supervise(run, backoff=Backoff(initial=0.01))
    assert calls == 1  # no retry storm
    assert "s3cret-wrong" not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_wrong_credentials_aiormq(amqp_url: str) -> None:
    url = _with_password(amqp_url, "guest", "s3cret-wrong")
    with anyio.fail_after(10), pytest.raises(AuthenticationError) as info:
        async with open_aiormq_broker(url):
            pass
    assert "s3cret-wrong" not in str(info.value)


async def test_unknown_vhost(amqp_url: str) -> None:
    url = _with_password(amqp_url, "guest", "guest", path="/no-such-vhost")
    with anyio.fail_after(10), pytest.raises(BrokerConnectionError) as info:
        async with open_connection(url):
            pass
    assert not isinstance(info.value, AuthenticationError)
    assert "530" in str(info.value)
    assert "***" in str(info.value)


async def test_connection_refused() -> None:
    with anyio.fail_after(10), pytest.raises(BrokerConnectionError) as info:
        async with open_connection("amqp://u:topsecret@127.0.0.1:1/"):
            pass
    assert "topsecret" not in str(info.value)


@asynccontextmanager
async def fake_server(
    handler: Callable[[anyio.abc.SocketStream], Awaitable[None]],
) -> AsyncIterator[str]:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:

            async def serve_one(stream: anyio.abc.SocketStream) -> None:
                async with stream:
                    try:
                        await handler(stream)
                    except (
                        anyio.EndOfStream,
                        anyio.BrokenResourceError,
                        anyio.ClosedResourceError,
                    ):
                        pass  # the client went away: that is what these tests provoke

            tg.start_soon(listener.serve, serve_one)
            yield f"amqp://guest:hunter2@127.0.0.1:{port}/?connection_timeout=3"
            tg.cancel_scope.cancel()


async def _read_some(stream: anyio.abc.SocketStream) -> bytes:
    return await stream.receive()


def _method(ch: int, method: object) -> bytes:
    return pamqp_frame.marshal(method, ch)  # type: ignore[arg-type]


_START = commands.Connection.Start(
    server_properties={"product": "fake"}, mechanisms="PLAIN", locales="en_US"
)


async def test_peer_sends_garbage() -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await _read_some(stream)
        await stream.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await anyio.sleep(5)

    async with fake_server(handler) as url:
        with anyio.fail_after(5), pytest.raises(ProtocolError) as info:
            async with open_connection(url):
                pass
    assert "hunter2" not in str(info.value)


async def test_peer_closes_mid_frame() -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await _read_some(stream)
        await stream.send(_method(0, _START)[:20])

    async with fake_server(handler) as url:
        with anyio.fail_after(5), pytest.raises(BrokerConnectionError) as info:
            async with open_connection(url):
                pass
    assert "hunter2" not in str(info.value)


async def test_peer_silent_handshake_times_out() -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await anyio.sleep(10)

    async with fake_server(handler) as url:
        with anyio.fail_after(6), pytest.raises(BrokerConnectionError):
            async with open_connection(
                url.replace("connection_timeout=3", "connection_timeout=0.5")
            ):
                pass


async def _handshake(stream: anyio.abc.SocketStream, frame_max: int, heartbeat: int = 0) -> None:
    await _read_some(stream)  # protocol header
    await stream.send(_method(0, _START))
    await _read_some(stream)  # start-ok
    await stream.send(
        _method(
            0, commands.Connection.Tune(channel_max=10, frame_max=frame_max, heartbeat=heartbeat)
        )
    )
    data = b""
    while b"\xce" not in data or len(data) < 30:  # tune-ok + open
        data += await _read_some(stream)
        if data.count(b"\xce") >= 2:
            break
    await stream.send(_method(0, commands.Connection.OpenOk()))


async def test_peer_frame_larger_than_frame_max() -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await _handshake(stream, frame_max=4096)
        await stream.send(struct.pack(">BHI", 3, 1, 10_000) + b"\x00" * 100)
        await anyio.sleep(5)

    async with fake_server(handler) as url:
        with anyio.fail_after(5):
            async with open_connection(url) as conn:
                await conn.closed.wait()
                assert isinstance(conn.error, ProtocolError)
                assert "frame-max" in str(conn.error)
                with pytest.raises(ProtocolError):
                    await conn.open_channel()


async def test_missed_heartbeats_close_connection() -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await _handshake(stream, frame_max=131072, heartbeat=1)
        await anyio.sleep(10)  # never sends a heartbeat

    async with fake_server(handler) as url:
        with anyio.fail_after(6):
            async with open_connection(url + "&heartbeat=1") as conn:
                await conn.closed.wait()
                assert isinstance(conn.error, ConnectionLost)
                assert "heartbeat" in str(conn.error)


async def test_server_close_connection_then_supervise_resumes(
    amqp_url: str, unique: str, services: object
) -> None:
    q = f"t.kill.{unique}"
    name = f"relayna-kill-{unique}"
    url = f"{amqp_url}?connection_name={name}"
    received: list[bytes] = []
    errors: list[BaseException] = []
    ready = anyio.Event()

    async def run() -> None:
        async with open_amqp_broker(url) as broker:
            await broker.declare_queue(QueueSpec(q, durable=False))
            async with broker.consume(q, prefetch=5) as consumer:
                ready.set()
                async for d in consumer:
                    received.append(d.body)
                    await d.ack()
                    if d.body == b"stop":
                        return

    def kill() -> None:
        out = services.rabbitmqctl("list_connections", "-q", "pid", "client_properties")  # type: ignore[attr-defined]
        for line in out.stdout.splitlines():
            if f'"connection_name","{name}"' in line:
                services.rabbitmqctl("close_connection", line.split()[0], "test kill")  # type: ignore[attr-defined]

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(
                lambda task_status: supervise(
                    run,
                    backoff=Backoff(initial=0.05, maximum=0.5),
                    on_retry=lambda e, n, d: errors.append(e),
                    task_status=task_status,
                )
            )
            await ready.wait()
            async with open_amqp_broker(amqp_url) as pub:
                await pub.publish("", q, b"one")
                while b"one" not in received:  # noqa: ASYNC110 - polling a plain list
                    await anyio.sleep(0.02)
                ready = anyio.Event()
                await anyio.to_thread.run_sync(kill)
                await ready.wait()
                await pub.publish("", q, b"two")
                await pub.publish("", q, b"stop")
        async with open_amqp_broker(amqp_url) as b:
            await b.delete_queue(q)
    assert received[0] == b"one"
    assert received[-2:] == [b"two", b"stop"]
    assert errors
    assert isinstance(errors[0], ConnectionLost)
    assert errors[0].reply_code == 320


def test_only_adapters_import_asyncio() -> None:
    root = os.path.join(os.path.dirname(__file__), "../../../src/relayna/transport/amqp")
    for fname in os.listdir(root):
        if fname.endswith(".py"):
            text = open(os.path.join(root, fname)).read()
            assert "import asyncio" not in text, fname
            assert "import trio" not in text, fname
    assert sys.version_info >= (3, 11)


async def test_a_nacked_publish_moves_publishing_to_a_new_channel(
    anyio_backend: str, amqp_url: str, unique: str
) -> None:
    # RabbitMQ can keep nacking on one channel (a quorum queue whose leader died
    # under it); the native client then publishes on a fresh channel. A full
    # reject-publish queue is a nack we can cause on demand.
    queue = f"t.fo.full.{unique}"
    full = QueueSpec(
        queue, durable=False, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    with anyio.fail_after(20):
        async with open_amqp_broker(amqp_url) as broker:
            await broker.declare_queue(full)
            await broker.publish("", queue, b"fits")
            first = await broker._publish_channel()
            with pytest.raises(PublishNacked):
                await broker.publish("", queue, b"rejected: the queue is full")
            assert not first.is_open  # closed: nothing else waited on it
            await broker.purge_queue(queue)
            await broker.publish("", queue, b"on the new channel")
            assert await broker._publish_channel() is not first
            assert (await broker.inspect_queue(queue)).message_count == 1
            await broker.delete_queue(queue)
