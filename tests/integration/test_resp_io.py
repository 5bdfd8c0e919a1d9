"""The native Redis client's byte streams per backend, on the real Redis.

On asyncio the connection reads through a ``Protocol`` that keeps reading
(``_io_asyncio``); on trio it uses the socket itself, non-blocking
(``_io_trio``); TLS keeps anyio's stream (tests/integration/test_redis_tls.py).
What the connection above relies on: the backend's stream is the one in use;
``receive(n)`` never returns more than ``n`` bytes and loses none; replies far
larger than the read-ahead limit and the socket buffers arrive whole (asyncio
pauses reading past ``HIGH_WATER`` unread bytes and resumes it); a write
larger than the socket buffer completes; closing the stream wakes a task
waiting to receive with ``ClosedResourceError`` (the stream_timeout watchdog
relies on it); the stream_timeout watchdog does not leave the store.
Both anyio backends (the ``anyio_backend`` fixture).
"""

from __future__ import annotations

import os

import anyio
import pytest

from _polling import wait_until  # tests/ is on sys.path (rootdir conftest)
from relayna.transport import open_store
from relayna.transport.resp import NativeRespStore, parse_resp_url
from relayna.transport.resp._connect import open_connection
from relayna.transport.resp._io_asyncio import HIGH_WATER, ProtocolStream
from relayna.transport.resp._io_trio import SocketStream
from relayna.transport.resp._protocol import encode_command

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

STREAMS = {"asyncio": ProtocolStream, "trio": SocketStream}


async def test_the_store_uses_the_backends_own_stream(
    redis_url: str, anyio_backend: str, unique: str
) -> None:
    with anyio.fail_after(10):
        async with open_store(redis_url, adapter="native") as store:
            assert isinstance(store, NativeRespStore)
            await store.set(f"relayna-test:{unique}:k", "v", ttl=60)
            conn = store._connection.current
            assert conn is not None
            assert type(conn.stream) is STREAMS[anyio_backend]
            assert await store.get(f"relayna-test:{unique}:k") == b"v"


async def test_receive_returns_at_most_max_bytes_and_loses_none(redis_url: str) -> None:
    with anyio.fail_after(10):
        conn = await open_connection(parse_resp_url(redis_url))
        try:
            await conn.stream.send(encode_command((b"ECHO", b"x" * 100)))
            expected = b"$100\r\n" + b"x" * 100 + b"\r\n"
            got = b""
            while len(got) < len(expected):
                chunk = await conn.stream.receive(7)
                assert 0 < len(chunk) <= 7
                got += chunk
            assert got == expected
        finally:
            await conn.aclose()


async def test_a_reply_beyond_the_read_ahead_limit_arrives_whole(
    redis_url: str, anyio_backend: str, unique: str
) -> None:
    """A value several times HIGH_WATER (and the socket buffers), written and read
    back; on asyncio the reply is left unread until reading paused, then read."""
    key = f"relayna-test:{unique}:big"
    value = os.urandom(3 * HIGH_WATER + 12345)
    with anyio.fail_after(20):
        async with open_store(redis_url, adapter="native") as store:
            assert await store.set(key, value, ttl=60) is True  # larger than the send buffer
            assert await store.get(key) == value
        conn = await open_connection(parse_resp_url(redis_url))
        try:
            await conn.stream.send(encode_command((b"GET", key)))
            stream = conn.stream
            if isinstance(stream, ProtocolStream):
                protocol = stream._protocol
                await wait_until(lambda: protocol.paused_reading, "reading paused")
                assert protocol.unread >= HIGH_WATER
            assert await conn.read_reply() == value
            if isinstance(stream, ProtocolStream):
                assert not stream._protocol.paused_reading  # resumed once read
            await conn.stream.send(encode_command((b"PING",)))
            assert await conn.read_reply() == b"PONG"
        finally:
            await conn.aclose()


async def test_closing_the_stream_wakes_a_waiting_receiver(redis_url: str) -> None:
    with anyio.fail_after(10):
        conn = await open_connection(parse_resp_url(redis_url))
        stream = conn.stream
        caught: list[BaseException] = []
        waiting = anyio.Event()

        async def receiver() -> None:
            waiting.set()
            try:
                await stream.receive()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
                caught.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            await waiting.wait()
            await anyio.wait_all_tasks_blocked()
            await stream.aclose()
        assert len(caught) == 1
        assert isinstance(caught[0], anyio.ClosedResourceError)
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"*1\r\n$4\r\nPING\r\n")


async def test_the_server_closing_is_end_of_stream(redis_url: str) -> None:
    with anyio.fail_after(10):
        conn = await open_connection(parse_resp_url(redis_url))
        try:
            await conn.stream.send(encode_command((b"QUIT",)))
            assert await conn.stream.receive() == b"+OK\r\n"
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await conn.stream.receive()
        finally:
            await conn.aclose()


async def test_the_stream_timeout_watchdog_runs_only_with_the_store(redis_url: str) -> None:
    """The watchdog starts with the store (its round trips then open no cancel
    scope of their own) and stops with it."""
    with anyio.fail_after(10):
        async with open_store(f"{redis_url}?stream_timeout=5", adapter="native") as store:
            assert isinstance(store, NativeRespStore)
            assert store._connection._watched
            await store.ping()
        assert not store._connection._watched


async def test_replies_left_by_a_cancelled_caller_do_not_time_the_connection_out(
    redis_url: str, unique: str
) -> None:
    """A caller cancelled after its write leaves its reply unread while nobody
    else waits: the stream_timeout watchdog leaves the connection alone
    (nobody waits on it), and the next caller drops that reply before its own."""
    with anyio.fail_after(10):
        async with open_store(f"{redis_url}?stream_timeout=0.3", adapter="native") as store:
            assert isinstance(store, NativeRespStore)
            await store.ping()
            conn = store._connection.current
            assert conn is not None
            with anyio.CancelScope() as scope:

                async def cancel_once_blocked() -> None:
                    await anyio.wait_all_tasks_blocked()
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_once_blocked)
                    # Redis answers after 0.1 s: the caller is blocked, then cancelled.
                    await conn.roundtrip(((b"BLPOP", f"relayna-test:{unique}:none", b"0.1"),))
            assert scope.cancelled_caught
            assert not conn.idle  # its reply is due, and nobody reads it
            await anyio.sleep(0.8)  # letting time pass: well beyond stream_timeout
            assert not conn.broken
            assert await store.set(f"relayna-test:{unique}:probe", "v", ttl=10) is True
            assert store._connection.current is conn
            assert conn.idle
