"""The native RESP client (relayna.transport.resp) against real and misbehaving servers.

What users rely on beyond the adapter-agnostic fault tests in
``test_redis_faults.py``: a cancelled or timed-out command never leaves its
connection out of step with the server (no reply reaches the wrong caller),
``max_connections`` bounds the connections, ``stream_timeout`` bounds a
command, garbage from the server fails fast, idle connections the server
closed are replaced before a write is sent, ``db`` and unix sockets select
the right database, and pubsub keeps order and survives a killed connection.

Misbehaving servers are fakes built here with ``anyio.create_tcp_listener``
(with their own tiny command parser, independent of the client's). Anything
that kills clients runs on a private redis-server, never on the shared one.
Both anyio backends come from the ``anyio_backend`` fixture of
``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import pytest
import redis
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from relayna.errors import StoreConnectionLost, StoreError
from relayna.transport import (
    PubSubMessage,
    PubSubReconnected,
    Store,
    Subscription,
    open_store,
)
from relayna.transport.resp import NativeRespStore
from relayna.transport.resp._connection import ConnectionPool
from relayna.transport.resp._protocol import RespProtocolError

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

_ANYIO_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


# -- helpers -----------------------------------------------------------------------


def native(store: Store) -> NativeRespStore:
    """The store as the native client's class (for ``_call`` and ``_pool``)."""
    assert isinstance(store, NativeRespStore)
    return store


def pool_of(store: Store) -> ConnectionPool:
    return native(store)._pool


async def wait_until(condition: Callable[[], bool], what: str, within: float = 3.0) -> None:
    deadline = anyio.current_time() + within
    while not condition():
        if anyio.current_time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await anyio.sleep(0.01)


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _admin(url: str, *command: object) -> object:
    with redis.Redis.from_url(url) as client:
        return client.execute_command(*command)


async def admin(url: str, *command: object) -> object:
    """A command from a separate (redis-py, sync) client."""
    return await anyio.to_thread.run_sync(lambda: _admin(url, *command))


def take_commands(buf: bytearray) -> list[list[bytes]]:
    """Remove the complete RESP commands (arrays of bulk strings) from ``buf``."""
    commands = []
    while True:
        pos = 0
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return commands
        assert buf[0:1] == b"*", bytes(buf[:40])
        count = int(buf[1:end])
        pos = end + 2
        args = []
        for _ in range(count):
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return commands
            assert buf[pos : pos + 1] == b"$"
            size = int(buf[pos + 1 : end])
            start = end + 2
            if len(buf) < start + size + 2:
                return commands
            args.append(bytes(buf[start : start + size]))
            pos = start + size + 2
        del buf[:pos]
        commands.append(args)


def bulk(value: bytes | None) -> bytes:
    return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)


@attrs.define
class FakeRedis:
    """A scripted Redis look-alike: PING, SET, GET, DEL, and a switchable ``mode``.

    ``normal`` answers; ``silent`` reads and never answers; ``slow`` answers
    after ``delay`` seconds; ``garbage`` answers ``garbage`` instead;
    ``trailing`` sends ``garbage`` right after the answer.
    """

    port: int = 0
    mode: str = "normal"
    delay: float = 0.0
    garbage: bytes = b""
    data: dict[bytes, bytes] = attrs.field(factory=dict)
    commands: list[tuple[int, list[bytes]]] = attrs.field(factory=list)
    streams: dict[int, anyio.abc.SocketStream] = attrs.field(factory=dict)
    send_locks: dict[int, anyio.Lock] = attrs.field(factory=dict)
    accepted: int = 0

    @property
    def open(self) -> int:
        return len(self.streams)

    def reply(self, args: list[bytes]) -> bytes:
        name = args[0].upper()
        if name == b"PING":
            return b"+PONG\r\n"
        if name == b"SET":
            self.data[args[1]] = args[2]
            return b"+OK\r\n"
        if name == b"GET":
            return bulk(self.data.get(args[1]))
        if name == b"DEL":
            return b":%d\r\n" % sum(self.data.pop(k, None) is not None for k in args[1:])
        return b"-ERR unknown command\r\n"

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        number = self.accepted
        self.streams[number] = stream
        lock = self.send_locks[number] = anyio.Lock()
        buf = bytearray()
        try:
            async with stream:
                while True:
                    buf += await stream.receive()
                    for args in take_commands(buf):
                        self.commands.append((number, args))
                        if self.mode == "silent":
                            continue
                        if self.mode == "slow":
                            await anyio.sleep(self.delay)
                        if self.mode == "garbage":
                            answer = self.garbage
                        elif self.mode == "trailing":  # the reply, then more, in one write
                            answer = self.reply(args) + self.garbage
                        else:
                            answer = self.reply(args)
                        async with lock:
                            await stream.send(answer)
        except _ANYIO_ERRORS:
            pass
        finally:
            self.streams.pop(number, None)

    async def close_all(self, *, reset: bool) -> None:
        """Close every connection: a FIN, or with ``reset`` a TCP RST."""
        for number, stream in list(self.streams.items()):
            async with self.send_locks[number]:
                if reset:
                    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                await stream.aclose()

    async def push_unasked(self, data: bytes) -> None:
        for number, stream in list(self.streams.items()):
            async with self.send_locks[number]:  # the handler may still be in its send
                await stream.send(data)

    def sent(self, name: bytes) -> list[tuple[int, list[bytes]]]:
        return [(n, args) for n, args in self.commands if args[0].upper() == name]


@asynccontextmanager
async def fake_redis() -> AsyncIterator[FakeRedis]:
    fake = FakeRedis()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    fake.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, fake.handle)
        try:
            yield fake
        finally:
            tg.cancel_scope.cancel()


@attrs.define
class CountingProxy:
    """A TCP proxy in front of a real server that counts the client's connections."""

    port: int = 0
    open: int = 0
    max_open: int = 0
    total: int = 0


@asynccontextmanager
async def counting_proxy(
    host: str, port: int, *, reply_delay: float = 0.0
) -> AsyncIterator[CountingProxy]:
    """``reply_delay`` holds back each chunk from the server (replies arrive late)."""
    proxy = CountingProxy()

    async def pump(src: anyio.abc.ByteStream, dst: anyio.abc.ByteStream, delay: float) -> None:
        try:
            async for chunk in src:
                if delay:
                    await anyio.sleep(delay)
                await dst.send(chunk)
        except _ANYIO_ERRORS:
            pass

    async def handle(client: anyio.abc.SocketStream) -> None:
        proxy.total += 1
        proxy.open += 1
        proxy.max_open = max(proxy.max_open, proxy.open)
        try:
            async with client, await anyio.connect_tcp(host, port) as upstream:
                async with anyio.create_task_group() as tg:

                    async def one_way(
                        src: anyio.abc.ByteStream, dst: anyio.abc.ByteStream, delay: float
                    ) -> None:
                        await pump(src, dst, delay)
                        tg.cancel_scope.cancel()  # either side closing ends both

                    tg.start_soon(one_way, client, upstream, 0.0)
                    tg.start_soon(one_way, upstream, client, reply_delay)
        except _ANYIO_ERRORS:
            pass
        finally:
            proxy.open -= 1

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    proxy.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()


@attrs.frozen
class PrivateServer:
    port: int
    unix_path: str

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="module")
def private_server() -> Iterator[PrivateServer]:
    """A throwaway redis-server on TCP and a unix socket (the shared one is not touched)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        sock = str(Path(d) / "redis.sock")
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--unixsocket",
                sock,
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--busy-reply-threshold",  # a script busy for 100 ms makes Redis answer -BUSY
                "100",
                "--dir",
                d,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(sock)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield PrivateServer(port=port, unix_path=sock)
        finally:
            proc.terminate()
            proc.wait(10)


# -- 1. cancellation never desynchronises a connection --------------------------------


async def test_cancelled_blocking_command_closes_its_connection(
    redis_url: str, unique: str
) -> None:
    """A BLPOP cancelled while Redis holds it: the connection is closed, not pooled,
    so no server-side BLPOP survives to steal a later push and no late reply
    reaches the next caller."""
    key = f"relayna-test:{unique}:blpop"
    with anyio.fail_after(10):
        async with (
            counting_proxy(*host_port(redis_url)) as proxy,
            open_store(f"redis://127.0.0.1:{proxy.port}/0") as store,
        ):
            pool = pool_of(store)
            assert (pool.idle, proxy.open) == (1, 1)  # the PING at open
            with anyio.move_on_after(0.2) as scope:
                await native(store)._call("read", b"BLPOP", key, 5)
            assert scope.cancelled_caught
            assert pool.idle == 0
            await wait_until(lambda: proxy.open == 0, "the cancelled connection is closed")
            await anyio.sleep(0.05)  # let Redis notice the close
            assert await store.rpush(key, "item") == 1
            await anyio.sleep(0.05)
            assert await store.lrange(key, 0, -1) == [b"item"]  # not popped by a ghost BLPOP
            assert await store.ping() is None
            assert (pool.idle, proxy.open, proxy.total) == (1, 1, 2)
            await store.delete(key)


async def test_cancelled_command_never_gets_a_late_reply() -> None:
    """The fake server answers 0.3 s late: the caller cancelled at 0.1 s; the late
    reply must not be read as the answer to the next commands."""
    with anyio.fail_after(10):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            pool = pool_of(store)
            fake.mode, fake.delay = "slow", 0.3
            with anyio.move_on_after(0.1) as scope:
                await store.set("k", "late")
            assert scope.cancelled_caught
            assert pool.idle == 0
            await wait_until(lambda: fake.open == 0, "the cancelled connection is closed")
            fake.mode = "normal"
            await anyio.sleep(0.3)  # the late +OK went to the closed connection
            assert await store.set("k2", "fresh") is True
            assert await store.get("k2") == b"fresh"
            assert await store.get("missing") is None
            assert pool.idle == 1
            assert fake.accepted == 2


async def test_random_cancellation_never_mixes_up_replies(redis_url: str, unique: str) -> None:
    """Many workers GET/SET their own key through a 4-connection pool while random
    commands are cancelled at random points (waiting for a slot, before or after
    sending, while reading). Every completed command returns its own reply."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    workers, ops = 8, 60
    keys: list[str] = []

    async def cancel_later(scope: anyio.CancelScope, checkpoints: int, delay: float) -> None:
        for _ in range(checkpoints):
            await anyio.lowlevel.checkpoint()
        if delay:
            await anyio.sleep(delay)
        scope.cancel()

    async def worker(store: Store, tg: anyio.abc.TaskGroup, i: int) -> None:
        key = f"relayna-test:{unique}:chaos:{i}"
        last_set: bytes | None = None  # value of the last SET that completed
        maybe: set[bytes] = set()  # values of cancelled SETs: applied or not
        for n in range(ops):
            value = f"{i}:{n}".encode()
            is_set = rng.random() < 0.5
            with anyio.CancelScope() as scope:
                if rng.random() < 0.35:
                    tg.start_soon(
                        cancel_later,
                        scope,
                        rng.randrange(6),
                        rng.choice((0, 0, 0.0005, 0.001, 0.002)),
                    )
                if is_set:
                    assert await store.set(key, value) is True, f"seed {seed}"
                    last_set = value  # cancelled SETs (in maybe) may still land late
                else:
                    got = await store.get(key)
                    assert got == last_set or got in maybe, (
                        f"seed {seed}: worker {i} read {got!r}, expected {last_set!r} or {maybe}"
                    )
            if scope.cancelled_caught and is_set:
                maybe.add(value)
        keys.append(key)

    with anyio.fail_after(20):
        async with (
            # replies 1 ms late: a cancelled command's reply must not reach the next caller
            counting_proxy(*host_port(redis_url), reply_delay=0.001) as proxy,
            # db 1: connections opened during the chaos run SELECT, which may be cancelled too
            open_store(f"redis://127.0.0.1:{proxy.port}/1?max_connections=4") as store,
        ):
            pool = pool_of(store)
            async with anyio.create_task_group() as tg:
                for i in range(workers):
                    tg.start_soon(worker, store, tg, i)
            # (proxy.max_open is not checked here: the proxy may count a closed
            # connection until it sees the FIN, after its replacement connected.)
            assert proxy.total > 4, "no cancellation hit a connection mid-exchange"
            # Every connection not in the pool was closed: none leaks, none desynced.
            assert pool.idle <= 4
            await wait_until(lambda: proxy.open == pool.idle, "broken connections are closed")
            # Settled: one final SET per key, then every GET answers its own key.
            for key in keys:
                assert await store.set(key, key) is True
            async with anyio.create_task_group() as tg:

                async def check(key: str) -> None:
                    assert await store.get(key) == key.encode(), f"seed {seed}"

                for key in keys:
                    tg.start_soon(check, key)
            assert await store.delete(*keys) == workers


# -- 2. max_connections -----------------------------------------------------------------


async def test_max_connections_bounds_the_connections(redis_url: str, unique: str) -> None:
    """50 concurrent commands over ?max_connections=2: all answered correctly, the
    server never sees more than 2 connections and none is replaced; closing the
    store closes them and later commands fail instead of connecting again."""
    keys = [f"relayna-test:{unique}:mc:{i}" for i in range(50)]
    with anyio.fail_after(10):
        async with counting_proxy(*host_port(redis_url)) as proxy:
            async with open_store(f"redis://127.0.0.1:{proxy.port}/0?max_connections=2") as store:
                await _fifty_concurrent(store, proxy, keys)
            await wait_until(lambda: proxy.open == 0, "closing the store closes its connections")
            with pytest.raises(StoreError):
                await store.get(keys[0])
            assert proxy.total == 2


async def _fifty_concurrent(store: Store, proxy: CountingProxy, keys: list[str]) -> None:
    results: dict[str, bytes | None] = {}

    async def one(i: int) -> None:
        assert await store.set(keys[i], f"value-{i}") is True
        results[keys[i]] = await store.get(keys[i])

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)
    assert results == {k: f"value-{i}".encode() for i, k in enumerate(keys)}
    assert proxy.max_open == 2
    assert proxy.total == 2
    assert pool_of(store).idle == 2
    assert await store.delete(*keys) == 50


async def test_cancelled_waiters_do_not_leak_connection_slots(redis_url: str, unique: str) -> None:
    """Callers cancelled while waiting for one of the 2 connections give nothing
    back twice and take nothing with them: 2 commands still run in parallel."""
    k = [f"relayna-test:{unique}:slot:{n}" for n in range(4)]
    results: dict[str, object] = {}
    with anyio.fail_after(10):
        async with (
            counting_proxy(*host_port(redis_url)) as proxy,
            open_store(f"redis://127.0.0.1:{proxy.port}/0?max_connections=2") as store,
        ):
            pool = pool_of(store)

            async def blpop(name: str, key: str, seconds: float) -> None:
                results[name] = await native(store)._call("read", b"BLPOP", key, seconds)

            async with anyio.create_task_group() as tg:
                tg.start_soon(blpop, "a", k[0], 5)
                tg.start_soon(blpop, "b", k[1], 5)
                await wait_until(lambda: proxy.open == 2 and pool.idle == 0, "both held")
                with anyio.move_on_after(0.2) as scope:
                    async with anyio.create_task_group() as waiters:
                        for n in range(10):
                            waiters.start_soon(store.get, f"relayna-test:{unique}:w{n}")
                assert scope.cancelled_caught  # they never got a connection
                await admin(redis_url, "RPUSH", k[0], "x")
                await admin(redis_url, "RPUSH", k[1], "y")
            assert results == {"a": [k[0].encode(), b"x"], "b": [k[1].encode(), b"y"]}
            started = anyio.current_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(blpop, "c", k[2], 0.4)
                tg.start_soon(blpop, "d", k[3], 0.4)
            assert anyio.current_time() - started < 0.75  # in parallel, not one after the other
            assert results["c"] is None
            assert results["d"] is None
            assert (proxy.max_open, proxy.total, pool.idle) == (2, 2, 2)


# -- 3. stream_timeout ------------------------------------------------------------------


async def test_stream_timeout_drops_the_connection_and_recovers() -> None:
    with anyio.fail_after(15):
        async with (
            fake_redis() as fake,
            open_store(f"redis://127.0.0.1:{fake.port}/0?stream_timeout=0.3") as store,
        ):
            pool = pool_of(store)
            fake.mode, fake.delay = "slow", 0.1  # slow but within the timeout: fine
            assert await store.set("k", "v1") is True

            fake.mode = "silent"
            started = anyio.current_time()
            with pytest.raises(StoreConnectionLost, match="stream_timeout"):
                await store.set("k", "v2")  # a write: not retried
            assert 0.25 <= anyio.current_time() - started < 1.0
            assert pool.idle == 0
            await wait_until(lambda: fake.open == 0, "the timed-out connection is closed")

            fake.mode = "normal"
            assert await store.set("k", "v3") is True
            assert await store.get("k") == b"v3"

            fake.mode = "silent"
            started = anyio.current_time()
            with pytest.raises(StoreConnectionLost, match="stream_timeout"):
                await store.get("k")  # a read: retried once on a new connection, then raised
            assert 0.25 <= anyio.current_time() - started < 1.5
            await wait_until(lambda: fake.open == 0, "the timed-out connections are closed")

            fake.mode, fake.delay = "slow", 0.5  # a late reply after the timeout
            with pytest.raises(StoreConnectionLost):
                await store.set("k", "late")
            fake.mode = "normal"
            await anyio.sleep(0.3)
            assert await store.set("k", "v4") is True
            assert await store.get("k") == b"v4"
            assert pool.idle == 1


# -- 4. garbage from the server -----------------------------------------------------


GARBAGE = [
    pytest.param(b"!bogus\r\n", id="unknown-type"),
    pytest.param(b"$abc\r\n", id="bad-length"),
    pytest.param(b"$3\r\nabcde\r\n", id="bulk-without-crlf"),
    pytest.param(b":12x\r\n", id="bad-integer"),
    pytest.param(b"$999999999999\r\n", id="huge-bulk"),
    pytest.param(b"*1\r\n" * 40, id="too-deep"),
    pytest.param(b"x" * 70_000, id="endless-header"),
]


@pytest.mark.parametrize("garbage", GARBAGE)
async def test_garbage_reply_fails_fast(garbage: bytes) -> None:
    """No stream_timeout: a reply that is not RESP must fail at once, not hang."""
    with anyio.fail_after(5):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            pool = pool_of(store)
            fake.mode, fake.garbage = "garbage", garbage
            with pytest.raises(RespProtocolError):
                await store.set("k", "v")
            with pytest.raises(StoreConnectionLost):
                await store.get("k")
            assert pool.idle == 0
            await wait_until(lambda: fake.open == 0, "the connections are closed")
            fake.mode = "normal"
            assert await store.set("k", "v") is True
            assert await store.get("k") == b"v"


# -- 5. idle connections closed by the server -----------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_write_after_server_closed_idle_connections(reset: bool) -> None:
    """The server closed the pooled connections while idle: the next write goes out
    once, on a new connection, and does not raise."""
    with anyio.fail_after(10):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            pool = pool_of(store)
            assert await store.set("k", "v1") is True
            assert (pool.idle, fake.accepted) == (1, 1)
            await fake.close_all(reset=reset)
            await anyio.sleep(0.05)
            assert await store.set("k", "v2") is True
            assert fake.sent(b"SET") == [(1, [b"SET", b"k", b"v1"]), (2, [b"SET", b"k", b"v2"])]
            assert fake.data[b"k"] == b"v2"
            assert (pool.idle, fake.accepted) == (1, 2)


@pytest.mark.parametrize("when", ["while-idle", "after-reply"])
async def test_unasked_bytes_are_never_a_reply(when: str) -> None:
    """Bytes the server wrote unasked (to an idle connection, or right behind a
    reply) are never taken as the reply to the next command: that connection
    is dropped."""
    with anyio.fail_after(10):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            if when == "after-reply":
                fake.mode, fake.garbage = "trailing", b"$5\r\nwrong\r\n"
            assert await store.set("k", "v1") is True
            fake.mode = "normal"
            if when == "while-idle":
                await fake.push_unasked(b"$5\r\nwrong\r\n")
            await anyio.sleep(0.05)
            assert await store.get("k") == b"v1"
            assert await store.get("k") == b"v1"
            assert fake.accepted == 2


async def test_writes_after_client_kill_on_real_redis(
    private_server: PrivateServer, unique: str
) -> None:
    """CLIENT KILL of all pooled connections, then concurrent writes (no read first
    to trigger a retry): all succeed, each applied exactly once."""
    url = private_server.url()
    counter = f"relayna-test:{unique}:counter"
    with anyio.fail_after(10):
        async with open_store(url) as store:
            pool = pool_of(store)

            async def hold() -> None:
                await native(store)._call("read", b"BLPOP", f"relayna-test:{unique}:none", 0.1)

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(hold)
            assert pool.idle == 3
            assert await store.incr(counter) == 1
            killed = await admin(url, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            assert killed == 3
            await anyio.sleep(0.05)

            async def write(n: int) -> None:
                assert await store.set(f"relayna-test:{unique}:w{n}", n) is True

            async with anyio.create_task_group() as tg:
                for n in range(3):
                    tg.start_soon(write, n)
            assert await store.incr(counter) == 2  # applied once
            assert await admin(url, "GET", counter) == b"2"
            for n in range(3):
                assert await admin(url, "GET", f"relayna-test:{unique}:w{n}") == str(n).encode()
            assert pool.idle <= 3
            await store.delete(counter, *(f"relayna-test:{unique}:w{n}" for n in range(3)))


# -- 6. db selection, unix sockets ----------------------------------------------------


async def test_db_in_url_selects_the_database(redis_url: str, unique: str) -> None:
    host, port = host_port(redis_url)
    key = f"relayna-test:{unique}:db"
    with anyio.fail_after(10):
        for url in (f"redis://{host}:{port}/3", f"redis://{host}:{port}?db=3"):
            async with open_store(url) as store:
                assert await store.set(key, url) is True
                assert await store.get(key) == url.encode()
            assert await admin(f"redis://{host}:{port}/3", "GET", key) == url.encode()
            assert await admin(f"redis://{host}:{port}/0", "EXISTS", key) == 0
            assert await admin(f"redis://{host}:{port}/3", "DEL", key) == 1


@pytest.mark.parametrize("transport", ["tcp", "unix"])
async def test_db_survives_reconnect(
    private_server: PrivateServer, unique: str, transport: str
) -> None:
    """Connections opened after the first ones were killed select the db again."""
    url = (
        private_server.url(db=2)
        if transport == "tcp"
        else f"unix://{private_server.unix_path}?db=2"
    )
    admin_db2 = private_server.url(db=2)
    admin_db0 = private_server.url(db=0)
    k1, k2 = f"relayna-test:{unique}:before", f"relayna-test:{unique}:after"
    with anyio.fail_after(10):
        async with open_store(url) as store:
            assert await store.set(k1, "1") is True
            await admin(admin_db0, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await anyio.sleep(0.05)
            assert await store.set(k2, "2") is True  # on a new connection
            assert await store.mget([k1, k2]) == [b"1", b"2"]
        assert await admin(admin_db2, "MGET", k1, k2) == [b"1", b"2"]
        assert await admin(admin_db0, "EXISTS", k1, k2) == 0
        await admin(admin_db2, "DEL", k1, k2)


async def test_large_and_binary_values(redis_url: str, unique: str) -> None:
    """Values spanning many socket reads, every byte value, CRLF and RESP-looking data."""
    key = f"relayna-test:{unique}:big"
    values = [
        bytes(range(256)) * 4,
        b"\r\n$-1\r\n*2\r\n+OK\r\n",
        b"",
        random.Random(1).randbytes(3 * 1024 * 1024),
    ]
    with anyio.fail_after(15):
        async with open_store(redis_url) as store:
            for value in values:
                assert await store.set(key, value) is True
                assert await store.get(key) == value
            await store.delete(key)
            assert await store.rpush(key, *values, *(str(n) for n in range(5000))) == 5004
            items = await store.lrange(key, 0, -1)
            assert items[:4] == values
            assert items[4:] == [str(n).encode() for n in range(5000)]
            assert await store.get(key + ":missing") is None
            await store.delete(key)


# -- 7. pubsub -----------------------------------------------------------------------


async def test_pubsub_order_and_reconnect(private_server: PrivateServer, unique: str) -> None:
    """100 messages on two channels arrive in publish order (large and RESP-looking
    payloads included); after CLIENT KILL TYPE pubsub a PubSubReconnected arrives,
    then the next 100 flow, and the command connections were not disturbed."""
    url = private_server.url()
    a, b = f"relayna-test:{unique}:a", f"relayna-test:{unique}:b"

    def batch(tag: str) -> list[PubSubMessage]:
        out = []
        for n in range(100):
            data = f"{tag}-{n}".encode()
            if n == 7:
                data = b"*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$1\r\ny\r\n"
            elif n == 8:
                data = b"x" * 300_000
            elif n == 9:
                data = b""
            out.append(PubSubMessage(a if n % 3 else b, data))
        return out

    async def receive(sub: Subscription, count: int) -> list[object]:
        got = []
        async for event in sub:
            got.append(event)
            if len(got) == count:
                break
        return got

    with anyio.fail_after(15):
        async with open_store(url) as store, store.subscribe(a, b) as sub:
            pool = pool_of(store)
            first = batch("before")
            for message in first:
                assert await store.publish(message.channel, message.data) == 1
            assert await receive(sub, 100) == first

            killed = await admin(url, "CLIENT", "KILL", "TYPE", "pubsub")
            assert killed == 1
            assert await receive(sub, 1) == [PubSubReconnected()]

            second = batch("after")
            for message in second:
                assert await store.publish(message.channel, message.data) == 1
            assert await receive(sub, 100) == second
            assert pool.idle == 1  # the command connection was never replaced


async def test_error_reply_on_pubsub_connection_does_not_crash_the_store(
    private_server: PrivateServer, unique: str
) -> None:
    """While a Lua script keeps Redis busy, a new SUBSCRIBE is answered -BUSY on the
    pubsub connection. That subscribe may fail, but the store and the existing
    subscription must survive (as they do with adapter="coredis")."""
    url = private_server.url()
    a, b = f"relayna-test:{unique}:a", f"relayna-test:{unique}:b"
    script_done = anyio.Event()

    async def busy_script() -> None:
        try:
            with pytest.raises(redis.exceptions.ResponseError):  # ended by SCRIPT KILL
                await admin(url, "EVAL", "while true do end", 0)
        finally:
            script_done.set()

    async def kill_script() -> None:
        while not script_done.is_set():
            with contextlib.suppress(redis.exceptions.ResponseError):  # NOTBUSY: not yet
                await admin(url, "SCRIPT", "KILL")
            await anyio.sleep(0.05)

    with anyio.fail_after(15):
        async with open_store(url) as store, store.subscribe(a) as sub:
            async with anyio.create_task_group() as tg:
                tg.start_soon(busy_script)
                try:
                    await anyio.sleep(0.4)  # past busy-reply-threshold
                    with anyio.move_on_after(1), contextlib.suppress(StoreError):
                        async with store.subscribe(b):
                            pass
                finally:
                    with anyio.CancelScope(shield=True):
                        await kill_script()
            assert await store.ping() is None
            async for event in sub:  # the -BUSY answers were connection losses:
                assert event == PubSubReconnected()  # back and re-subscribed
                break
            assert await store.publish(a, "after") == 1
            async for event in sub:
                assert event == PubSubMessage(a, b"after")
                break
