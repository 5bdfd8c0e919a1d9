"""The native RESP client (relayna.transport.resp) against real and misbehaving servers.

What users rely on beyond the adapter-agnostic fault tests in
``test_redis_faults.py``: every caller of a store shares one pipelined
command connection, and a cancelled or timed-out command never lets its
reply reach another caller (a caller cancelled after its write leaves its
replies to be dropped and the connection is kept; one cancelled during its
write, a ``stream_timeout`` expiry or garbage from the server fail the
connection for every queued caller and the next command opens a fresh one);
concurrent callers get exactly their own results, scripts pipelines
included; idle connections the server closed are replaced before a write is
sent; ``db`` and unix sockets select the right database; pubsub, on its own
connection, keeps order and survives a killed connection.

Misbehaving servers are fakes built here with ``anyio.create_tcp_listener``
(with their own tiny command parser, independent of the client's). Anything
that kills clients runs on a private redis-server, never on the shared one.
Both anyio backends come from the ``anyio_backend`` fixture of
``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import pytest
import redis
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from _redis_server import admin, redis_server  # tests/ is on sys.path (rootdir conftest)
from relayna.errors import (
    ConfigurationError,
    ScriptError,
    StoreConnectionLost,
    StoreError,
)
from relayna.status import StatusStore, StatusStoreConfig
from relayna.transport import (
    PubSubMessage,
    PubSubReconnected,
    Script,
    Store,
    Subscription,
)
from relayna.transport.resp import NativeRespStore, _connect
from relayna.transport.resp import open_native_store as open_store  # every test: the native client
from relayna.transport.resp._connect import SharedConnection
from relayna.transport.resp._connection import RespConnection
from relayna.transport.resp._protocol import RespProtocolError
from relayna.transport.resp._url import RespParams

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

_ANYIO_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)

#: The error a connection fails with when a caller is cancelled during its write.
WRITE_CANCELLED = "a write to Redis was cancelled"

# -- helpers -----------------------------------------------------------------------


def native(store: Store) -> NativeRespStore:
    """The store as the native client's class (for ``_call`` and ``_connection``)."""
    assert isinstance(store, NativeRespStore)
    return store


def shared(store: Store) -> SharedConnection:
    return native(store)._connection


def current(store: Store) -> RespConnection:
    """The store's live command connection."""
    conn = shared(store).current
    assert conn is not None
    return conn


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


async def get_concurrently(store: Store, keys: Iterable[str]) -> dict[str, bytes | None]:
    """GET every key, each from its own task (all pipelined on the shared connection)."""
    results: dict[str, bytes | None] = {}

    async def get(key: str) -> None:
        results[key] = await store.get(key)

    async with anyio.create_task_group() as tg:
        for key in keys:
            tg.start_soon(get, key)
    return results


@attrs.define
class Opened:
    """The command connections a store opened (the pubsub one is not counted)."""

    connections: list[RespConnection] = attrs.field(factory=list)
    failed: int = 0  # opens that raised (a SELECT cancelled, ...)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Opened:
    """Record every connection :class:`SharedConnection` opens."""
    record = Opened()
    real = _connect.open_connection

    async def recording(params: RespParams) -> RespConnection:
        try:
            conn = await real(params)
        except BaseException:
            record.failed += 1
            raise
        record.connections.append(conn)
        return conn

    monkeypatch.setattr(_connect, "open_connection", recording)
    return record


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

    Commands of a connection are answered one after the other, in order.
    ``normal`` answers; ``silent`` reads and never answers; ``slow`` answers
    after ``delay`` seconds; ``garbage`` answers ``garbage`` instead;
    ``trailing`` sends ``garbage`` right after the answer. ``on_command`` is
    called with each command as it arrives (before it is answered). While
    ``read_gate`` is set and not yet set off, nothing is read (the client's
    writes block once the socket buffers are full). ``raw`` keeps every byte
    received, per connection.
    """

    port: int = 0
    mode: str = "normal"
    delay: float = 0.0
    garbage: bytes = b""
    on_command: Callable[[list[bytes]], None] | None = None
    read_gate: anyio.Event | None = None
    raw: dict[int, bytearray] = attrs.field(factory=dict)
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
        raw = self.raw[number] = bytearray()
        buf = bytearray()
        try:
            async with stream:
                while True:
                    if self.read_gate is not None:
                        await self.read_gate.wait()
                    chunk = await stream.receive()
                    raw += chunk
                    buf += chunk
                    for args in take_commands(buf):
                        self.commands.append((number, args))
                        if self.on_command is not None:
                            self.on_command(args)
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
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        sock = str(Path(d) / "redis.sock")
        with redis_server(
            "--unixsocketperm", "700",
            "--busy-reply-threshold", "100",  # a script busy for 100 ms makes Redis answer -BUSY
            port=port,
            unix_socket=sock,
            directory=d,
        ):  # fmt: skip
            yield PrivateServer(port=port, unix_path=sock)


# -- 1. cancellation never lets a reply reach another caller ---------------------------


async def test_cancelled_commands_late_replies_are_dropped() -> None:
    """The fake server answers 0.3 s late; two commands in a row are cancelled at
    0.1 s, after their writes. The connection is kept, and the next commands
    wait behind the late replies, which are read and dropped: no late reply is
    taken as the answer to a later command."""
    with anyio.fail_after(10):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            conn = current(store)
            assert await store.set("k", "stale") is True
            fake.mode, fake.delay = "slow", 0.3
            with anyio.move_on_after(0.1) as scope:
                await store.get("k")  # its late reply is b"stale"
            assert scope.cancelled_caught
            with anyio.move_on_after(0.1) as scope:
                await store.set("k3", "late")  # its late reply is +OK
            assert scope.cancelled_caught
            assert current(store) is conn
            assert not conn.broken
            assert not conn.idle  # the two replies are still due
            fake.mode = "normal"
            assert await store.set("k2", "fresh") is True
            assert await store.get("k2") == b"fresh"
            assert await store.get("missing") is None
            assert await store.get("k3") == b"late"  # the cancelled SET was sent: applied
            assert current(store) is conn
            assert conn.idle
            assert (fake.accepted, fake.open) == (1, 1)


async def test_cancellation_after_the_write_keeps_the_one_connection() -> None:
    """20 workers SET/GET their own key on a slow fake server; random commands
    are cancelled once the server has them (while their caller waits for its
    turn or reads for the others). The one connection is never replaced, and
    every GET returns the last value SET on its key (every SET was sent, so
    applied, cancelled or not)."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    workers, ops = 20, 30
    arrived: dict[tuple[bytes, ...], anyio.Event] = {}
    counts = {"cancelled": 0, "gets": 0}
    last: dict[str, bytes | None] = {}

    def on_command(args: list[bytes]) -> None:
        event = arrived.pop(tuple(args), None)
        if event is not None:
            event.set()

    async def cancel_when_sent(scope: anyio.CancelScope, sent: anyio.Event, delay: float) -> None:
        await sent.wait()
        if delay:
            await anyio.sleep(delay)
        scope.cancel()

    async def worker(store: Store, tg: anyio.abc.TaskGroup, i: int) -> None:
        key = f"key-{i}"
        last[key] = None
        for n in range(ops):
            value = f"{i}:{n}".encode()
            is_set = rng.random() < 0.5
            args = (b"SET", key.encode(), value) if is_set else (b"GET", key.encode())
            with anyio.CancelScope() as scope:
                if rng.random() < 0.4:
                    sent = arrived[args] = anyio.Event()
                    delay = rng.choice((0, 0, 0.0005, 0.002, 0.005))
                    tg.start_soon(cancel_when_sent, scope, sent, delay)
                if is_set:
                    assert await store.set(key, value) is True, f"seed {seed}"
                else:
                    got = await store.get(key)
                    assert got == last[key], f"seed {seed}: worker {i} read {got!r}"
                    counts["gets"] += 1
            if scope.cancelled_caught:
                counts["cancelled"] += 1
            if is_set:
                last[key] = value

    with anyio.fail_after(30):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            conn = current(store)
            fake.on_command = on_command
            fake.mode, fake.delay = "slow", 0.001
            async with anyio.create_task_group() as tg:
                for i in range(workers):
                    tg.start_soon(worker, store, tg, i)
            assert counts["cancelled"] >= workers, f"seed {seed}: too few cancellations"
            assert counts["gets"] > 0
            fake.mode = "normal"
            assert await get_concurrently(store, last) == last, f"seed {seed}"
            assert current(store) is conn
            assert not conn.broken
            assert (fake.accepted, fake.open) == (1, 1)


async def test_random_cancellation_never_mixes_up_replies(
    redis_url: str, unique: str, opened: Opened
) -> None:
    """16 workers GET/SET their own key, all on the one shared connection, while
    random commands are cancelled at random points (before, during or after
    their write, waiting for their turn, reading). Every completed GET returns
    its own key's value. A cancellation during a write breaks the connection
    (every queued caller gets StoreConnectionLost, tolerated here); that is
    the only reason a connection is ever replaced."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    workers, ops = 16, 60
    keys: list[str] = []
    counts = {"cancelled": 0, "lost": 0, "gets": 0}

    async def cancel_later(scope: anyio.CancelScope, checkpoints: int, delay: float) -> None:
        for _ in range(checkpoints):
            await anyio.lowlevel.checkpoint()
        if delay:
            await anyio.sleep(delay)
        scope.cancel()

    async def worker(store: Store, tg: anyio.abc.TaskGroup, i: int) -> None:
        key = f"relayna-test:{unique}:chaos:{i}"
        last_set: bytes | None = None  # value of the last SET that completed
        maybe: set[bytes] = set()  # values of cancelled or lost SETs: applied or not
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
                try:
                    if is_set:
                        assert await store.set(key, value) is True, f"seed {seed}"
                        last_set = value  # cancelled SETs (in maybe) may still land late
                    else:
                        got = await store.get(key)
                        assert got == last_set or got in maybe, (
                            f"seed {seed}: worker {i} read {got!r}, expected {last_set!r} or {maybe}"
                        )
                        counts["gets"] += 1
                except StoreConnectionLost:  # another caller's write was cancelled
                    counts["lost"] += 1
                    if is_set:
                        maybe.add(value)
            if scope.cancelled_caught:
                counts["cancelled"] += 1
                if is_set:
                    maybe.add(value)
        keys.append(key)

    with anyio.fail_after(30):
        async with (
            # replies 1 ms late: a cancelled command's reply must not reach the next caller
            counting_proxy(*host_port(redis_url), reply_delay=0.001) as proxy,
            # db 1: connections opened during the chaos run SELECT, which may be cancelled too
            open_store(f"redis://127.0.0.1:{proxy.port}/1") as store,
        ):
            async with anyio.create_task_group() as tg:
                for i in range(workers):
                    tg.start_soon(worker, store, tg, i)
            assert counts["cancelled"] >= workers, f"seed {seed}: too few cancellations"
            assert counts["gets"] > 0
            # Settled: one final SET per key, then every GET answers its own key.
            for key in keys:
                assert await store.set(key, key) is True
            results = await get_concurrently(store, keys)
            assert results == {key: key.encode() for key in keys}, f"seed {seed}"
            assert await store.delete(*keys) == workers

            conns = opened.connections
            assert conns[-1] is current(store)
            assert not conns[-1].broken
            # Each connection replaced was broken by a write cancelled midway,
            # never by a cancellation after the write.
            for conn in conns[:-1]:
                assert WRITE_CANCELLED in str(conn.error), f"seed {seed}: {conn.error}"
            # Most cancellations come after the write and cost no connection (a
            # run has ~300 cancellations and ~10 replacements).
            assert len(conns) - 1 <= counts["cancelled"] // 4, f"seed {seed}: {counts}"
            # (an open cancelled while connecting may not have reached the proxy)
            assert len(conns) <= proxy.total <= len(conns) + opened.failed
            await wait_until(lambda: proxy.open == 1, "replaced connections are closed")


async def test_cancelled_blpop_reply_is_dropped(redis_url: str, unique: str) -> None:
    """A BLPOP (server timeout 0.3 s) cancelled at 0.1 s keeps its place on the
    shared connection: the next GET waits behind it on the server, the BLPOP's
    nil reply is read and dropped, the GET gets its own value, and the
    connection is not replaced."""
    key = f"relayna-test:{unique}:blpop"
    other = f"relayna-test:{unique}:other"
    with anyio.fail_after(10):
        async with (
            counting_proxy(*host_port(redis_url)) as proxy,
            open_store(f"redis://127.0.0.1:{proxy.port}/0") as store,
        ):
            conn = current(store)
            assert await store.set(other, "own value") is True
            started = anyio.current_time()
            with anyio.move_on_after(0.1) as scope:
                await native(store)._call("read", b"BLPOP", key, 0.3)
            assert scope.cancelled_caught
            assert not conn.idle  # the BLPOP's reply is still due
            assert await store.get(other) == b"own value"
            assert anyio.current_time() - started >= 0.25  # Redis held the GET behind the BLPOP
            assert conn.idle
            assert await store.rpush(key, "item") == 1
            assert await store.lrange(key, 0, -1) == [b"item"]  # no BLPOP left to pop it
            assert await store.ping() is None
            assert current(store) is conn
            assert not conn.broken
            assert (proxy.open, proxy.total) == (1, 1)
            await store.delete(key, other)


async def test_reader_survives_a_write_cancelled_before_it_was_sent() -> None:
    """One caller waits (as the reader) for a slow GET; another issues a SET in
    an already-cancelled scope, so its write is cancelled before a byte is
    sent. The SET raises the cancellation; the GET must still return its value
    (after StoreConnectionLost a read is retried on a new connection)."""
    outcome: dict[str, object] = {}
    with anyio.fail_after(10):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            assert await store.set("k", "v") is True
            fake.mode, fake.delay = "slow", 0.3

            async def read() -> None:
                try:
                    outcome["got"] = await store.get("k")
                except StoreError as exc:
                    outcome["got"] = exc

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await wait_until(lambda: len(fake.sent(b"GET")) == 1, "the GET was sent")
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await store.set("other", "x")
                assert scope.cancelled_caught
            assert [args for _, args in fake.sent(b"SET")] == [[b"SET", b"k", b"v"]]
    got = outcome["got"]
    if isinstance(got, Exception):
        raise got
    assert got == b"v"


async def test_no_write_follows_a_write_cancelled_midway() -> None:
    """A 16 MB SET blocks in its write (the server does not read) and is cancelled
    midway; a second caller waiting to write meanwhile must not write on that
    connection (it may get StoreConnectionLost, or use a fresh connection):
    its bytes would complete the cut command on the server (or, on asyncio
    where the whole SET is buffered, run a command whose caller was told the
    connection was lost)."""
    big = b"x" * (16 << 20)
    outcome: dict[str, object] = {}
    with anyio.fail_after(20):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            fake.read_gate = anyio.Event()

            async def second() -> None:
                try:
                    outcome["second"] = await store.set("second", "y")
                except StoreError as exc:
                    outcome["second"] = exc

            async with anyio.create_task_group() as tg:
                with anyio.move_on_after(0.3) as scope:
                    tg.start_soon(second)  # waits for the send lock behind the big SET
                    await store.set("big", big)
                assert scope.cancelled_caught
                assert current(store).broken
                await anyio.sleep(0.1)
                fake.read_gate.set()
            second = outcome["second"]
            assert second is True or isinstance(second, StoreConnectionLost), second
            received = -1
            while received != len(fake.raw[1]):  # until the server has read it all
                received = len(fake.raw[1])
                await anyio.sleep(0.2)
            on_failed_connection = bytes(fake.raw[1])
            assert await store.set("k", "v") is True  # on a fresh connection
            assert await store.get("k") == b"v"
            assert fake.accepted == 2
    assert b"second" not in on_failed_connection


# -- 2. one shared connection -----------------------------------------------------------


@pytest.mark.parametrize("subscribed", [False, True], ids=["commands", "with-pubsub"])
async def test_concurrent_commands_share_one_connection(
    redis_url: str, unique: str, subscribed: bool
) -> None:
    """200 concurrent commands (100 SET, 100 GET, distinct keys) are answered
    correctly over exactly one server connection (plus the pubsub one when
    subscribed), pipelined: with every reply chunk held back 20 ms they take
    far less than 200 round trips. Closing the store closes its connections
    and later commands fail instead of connecting again."""
    set_keys = [f"relayna-test:{unique}:set:{i}" for i in range(100)]
    get_keys = [f"relayna-test:{unique}:get:{i}" for i in range(100)]
    channel = f"relayna-test:{unique}:chan"
    connections = 2 if subscribed else 1
    await admin(redis_url, "MSET", *(x for i, k in enumerate(get_keys) for x in (k, f"g{i}")))
    with anyio.fail_after(15):
        async with counting_proxy(*host_port(redis_url), reply_delay=0.02) as proxy:
            async with (
                open_store(f"redis://127.0.0.1:{proxy.port}/0") as store,
                contextlib.AsyncExitStack() as stack,
            ):
                if subscribed:
                    sub = await stack.enter_async_context(store.subscribe(channel))
                conn = current(store)
                sets: dict[str, bool] = {}
                gets: dict[str, bytes | None] = {}

                async def do_set(i: int) -> None:
                    sets[set_keys[i]] = await store.set(set_keys[i], f"s{i}")

                async def do_get(i: int) -> None:
                    gets[get_keys[i]] = await store.get(get_keys[i])

                started = anyio.current_time()
                async with anyio.create_task_group() as tg:
                    for i in range(100):
                        tg.start_soon(do_set, i)
                        tg.start_soon(do_get, i)
                elapsed = anyio.current_time() - started
                assert sets == dict.fromkeys(set_keys, True)
                assert gets == {k: f"g{i}".encode() for i, k in enumerate(get_keys)}
                assert elapsed < 2.0, f"not pipelined: {elapsed:.2f}s"
                assert await store.mget(set_keys) == [f"s{i}".encode() for i in range(100)]
                if subscribed:
                    assert await store.publish(channel, "hello") == 1
                    async for event in sub:
                        assert event == PubSubMessage(channel, b"hello")
                        break
                assert current(store) is conn
                assert (proxy.max_open, proxy.total) == (connections, connections)
                assert await store.delete(*set_keys, *get_keys) == 200
            await wait_until(lambda: proxy.open == 0, "closing the store closes its connections")
            with pytest.raises(StoreError):
                await store.get(set_keys[0])
            assert proxy.total == connections


async def test_max_connections_is_an_unknown_option(redis_url: str) -> None:
    """The pool is gone, and so is its option: a URL still carrying it is refused."""
    host, port = host_port(redis_url)
    with anyio.fail_after(10), pytest.raises(ConfigurationError, match="max_connections"):
        async with open_store(f"redis://{host}:{port}/0?max_connections=2"):
            pass


# -- 3. stream_timeout ------------------------------------------------------------------


async def test_stream_timeout_fails_the_shared_connection_and_recovers() -> None:
    """The first caller whose reply is late fails the shared connection: every
    caller queued on it gets StoreConnectionLost at that moment (not at its
    own deadline), the connection is closed, and the next command opens a
    fresh one; a reply arriving after the timeout never reaches a later
    command."""
    with anyio.fail_after(15):
        async with (
            fake_redis() as fake,
            open_store(f"redis://127.0.0.1:{fake.port}/0?stream_timeout=0.3") as store,
        ):
            fake.mode, fake.delay = "slow", 0.1  # slow but within the timeout: fine
            assert await store.set("k", "v1") is True
            first = current(store)

            fake.mode = "silent"
            raised_at: dict[str, float] = {}
            started = anyio.current_time()

            async def write(name: str, after: float) -> None:
                await anyio.sleep(after)
                with pytest.raises(StoreConnectionLost, match="stream_timeout"):
                    await store.set(name, "x")  # a write: not retried
                raised_at[name] = anyio.current_time() - started

            async with anyio.create_task_group() as tg:
                tg.start_soon(write, "a", 0)  # times out at 0.3 s
                tg.start_soon(write, "b", 0.15)  # would time out at 0.45 s
                tg.start_soon(write, "c", 0.2)  # would time out at 0.5 s
            assert set(raised_at) == {"a", "b", "c"}
            assert all(0.25 <= t < 0.43 for t in raised_at.values()), raised_at
            assert first.broken
            assert fake.accepted == 1
            await wait_until(lambda: fake.open == 0, "the timed-out connection is closed")

            fake.mode = "normal"
            assert await store.set("k", "v3") is True
            assert await store.get("k") == b"v3"
            assert current(store) is not first
            assert fake.accepted == 2

            fake.mode = "silent"
            started = anyio.current_time()
            with pytest.raises(StoreConnectionLost, match="stream_timeout"):
                await store.get("k")  # a read: retried once on a new connection, then raised
            assert 0.55 <= anyio.current_time() - started < 1.5
            assert fake.accepted == 3
            await wait_until(lambda: fake.open == 0, "the timed-out connections are closed")

            fake.mode, fake.delay = "slow", 0.5  # a late reply after the timeout
            with pytest.raises(StoreConnectionLost, match="stream_timeout"):
                await store.set("k", "late")
            fake.mode = "normal"
            # The late +OK is due on the closed connection, not on the fresh one:
            # read as GET's answer it would give b"OK".
            assert await store.set("k2", "v4") is True
            assert await store.get("k2") == b"v4"
            # The fake drops the timed-out connection only once its late reply was
            # sent (and failed): then nothing late can arrive any more.
            await wait_until(lambda: fake.open == 1, "the late reply went to the closed connection")
            assert await store.get("k2") == b"v4"
            assert fake.accepted == 5


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


@pytest.mark.parametrize(
    ("reset", "says"),
    [(False, "Redis closed the connection"), (True, "Redis connection lost while reading")],
    ids=["fin", "rst"],
)
async def test_connection_lost_while_waiting_for_a_reply_says_so(reset: bool, says: str) -> None:
    """The server goes away after reading a command: the caller gets a
    StoreConnectionLost that names what happened, and the next command works."""
    with anyio.fail_after(5):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            fake.mode = "silent"
            got_set = anyio.Event()
            fake.on_command = lambda args: got_set.set() if args[0] == b"SET" else None
            async with anyio.create_task_group() as tg:

                async def close_when_asked() -> None:
                    await got_set.wait()
                    await fake.close_all(reset=reset)

                tg.start_soon(close_when_asked)
                with pytest.raises(StoreConnectionLost, match=says) as info:
                    await store.set("k", "v")
            assert str(fake.port) in str(info.value)  # the (redacted) URL is named
            fake.mode = "normal"
            assert await store.set("k", "v") is True


@pytest.mark.parametrize("garbage", GARBAGE)
async def test_garbage_reply_fails_fast(garbage: bytes) -> None:
    """No stream_timeout: a reply that is not RESP must fail at once, not hang,
    and fail the connection; the next command opens a fresh one."""
    with anyio.fail_after(5):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            first = current(store)
            fake.mode, fake.garbage = "garbage", garbage
            with pytest.raises(RespProtocolError):
                await store.set("k", "v")
            assert first.broken
            with pytest.raises(StoreConnectionLost):
                await store.get("k")  # a read: retried once, garbage again
            assert current(store).broken
            assert fake.accepted == 3
            fake.mode = "normal"
            assert await store.set("k", "v") is True
            assert await store.get("k") == b"v"
            assert not current(store).broken
            assert fake.accepted == 4
            await wait_until(lambda: fake.open == 1, "the broken connections are closed")


# -- 5. idle connections closed by the server -----------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_write_after_server_closed_idle_connection(reset: bool) -> None:
    """The server closed the idle shared connection: the next write goes out
    once, on a new connection, and does not raise."""
    with anyio.fail_after(10):
        async with fake_redis() as fake, open_store(f"redis://127.0.0.1:{fake.port}/0") as store:
            assert await store.set("k", "v1") is True
            first = current(store)
            assert fake.accepted == 1
            await fake.close_all(reset=reset)
            await wait_until(lambda: first.closed_by_peer(), "the client can see the close")
            assert await store.set("k", "v2") is True
            assert fake.sent(b"SET") == [(1, [b"SET", b"k", b"v1"]), (2, [b"SET", b"k", b"v2"])]
            assert fake.data[b"k"] == b"v2"
            assert current(store) is not first
            assert (fake.accepted, fake.open) == (2, 1)


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
            conn = current(store)
            await wait_until(lambda: conn.closed_by_peer(), "the unasked bytes are readable")
            assert await store.get("k") == b"v1"
            assert await store.get("k") == b"v1"
            assert fake.accepted == 2


async def test_writes_after_client_kill_on_real_redis(
    private_server: PrivateServer, unique: str, opened: Opened
) -> None:
    """CLIENT KILL of the shared connection, then concurrent writes (no read first
    to trigger a retry): all succeed, each applied exactly once, over one new
    connection."""
    url = private_server.url()
    counter = f"relayna-test:{unique}:counter"
    writes = [f"relayna-test:{unique}:w{n}" for n in range(10)]
    with anyio.fail_after(10):
        async with open_store(url) as store:
            assert await store.incr(counter) == 1
            assert len(opened.connections) == 1
            first = current(store)
            killed = await admin(url, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            assert killed == 1
            await anyio.sleep(0.05)

            async def write(n: int) -> None:
                assert await store.set(writes[n], n) is True

            async with anyio.create_task_group() as tg:
                for n in range(len(writes)):
                    tg.start_soon(write, n)
            second = current(store)
            assert second is not first
            assert await store.incr(counter) == 2  # applied once
            assert await admin(url, "GET", counter) == b"2"
            for n, key in enumerate(writes):
                assert await admin(url, "GET", key) == str(n).encode()
            assert current(store) is second
            assert opened.connections == [first, second]
            await store.delete(counter, *writes)


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
    """The connection opened after the first one was killed selects the db again."""
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
            first = current(store)
            await admin(admin_db0, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await wait_until(lambda: first.closed_by_peer(), "the client can see the kill")
            assert await store.set(k2, "2") is True  # on a new connection
            assert current(store) is not first
            assert await store.mget([k1, k2]) == [b"1", b"2"]
        assert await admin(admin_db2, "MGET", k1, k2) == [b"1", b"2"]
        assert await admin(admin_db0, "EXISTS", k1, k2) == 0
        await admin(admin_db2, "DEL", k1, k2)


async def test_large_and_binary_values(redis_url: str, unique: str) -> None:
    """Values spanning many socket reads, every byte value, CRLF and RESP-looking
    data; then the large value read by concurrent callers, pipelined with
    small commands, each reply split across reads and callers."""
    key = f"relayna-test:{unique}:big"
    values = [
        bytes(range(256)) * 4,
        b"\r\n$-1\r\n*2\r\n+OK\r\n",
        b"",
        random.Random(1).randbytes(3 * 1024 * 1024),
    ]
    with anyio.fail_after(20):
        async with open_store(redis_url) as store:
            for value in values:
                assert await store.set(key, value) is True
                assert await store.get(key) == value
            results: dict[int, bytes | None] = {}

            async def read(n: int) -> None:
                results[n] = await store.get(key if n % 2 else key + ":missing")

            async with anyio.create_task_group() as tg:
                for n in range(8):
                    tg.start_soon(read, n)
            assert results == {n: values[-1] if n % 2 else None for n in range(8)}
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
    then the next 100 flow, and the command connection was not disturbed."""
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
            conn = current(store)
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
            assert current(store) is conn  # the command connection was never replaced
            assert not conn.broken


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


# -- 8. concurrent callers under pipelining ---------------------------------------------


async def test_pipelined_callers_get_exact_results(
    redis_url: str, unique: str, opened: Opened
) -> None:
    """20 tasks, each 50 INCRs on its own key, interleaved with pipelined
    ``run_script_many`` batches (a new script: NOSCRIPT, SCRIPT LOAD and the
    retry race between tasks; one call of each batch fails) and
    ``StatusStore.write_many`` batches (stored, then deduplicated), all on the
    one shared connection: every result is exactly the caller's own."""
    tasks, incrs = 20, 50
    prefix = f"relayna-test:{unique}"
    script = Script(
        name=f"test.incr-echo.{unique}",
        # the unique comment makes the SHA new to the server: the first batches get NOSCRIPT
        lua=(
            f"-- {unique}\n"
            "if ARGV[1] == 'fail' then return redis.error_reply('boom ' .. ARGV[2]) end\n"
            "return {redis.call('INCRBY', KEYS[1], ARGV[1]), ARGV[2]}\n"
        ),
    )
    config = StatusStoreConfig(prefix=prefix, ttl_seconds=60)
    script_totals: dict[int, int] = {}
    written: dict[int, list[str]] = {}

    async def caller(store: Store, status: StatusStore, i: int) -> None:
        counter, scripted = f"{prefix}:incr:{i}", f"{prefix}:script:{i}"
        task_id = f"task-{i}"
        total = 0
        ids: list[str] = []
        for n in range(incrs):
            assert await store.incr(counter) == n + 1
            if n % 5 == 0:
                calls: list[tuple[list[str], list[Any]]] = [
                    ([scripted], [i + 1, f"{i}-{n}-a"]),
                    ([scripted], ["fail", f"{i}-{n}"]),
                    ([scripted], [2, f"{i}-{n}-b"]),
                ]
                got = await store.run_script_many(script, calls)
                assert len(got) == 3
                assert got[0] == [total + i + 1, f"{i}-{n}-a".encode()]
                assert isinstance(got[1], ScriptError)
                assert f"boom {i}-{n}" in str(got[1])
                assert got[2] == [total + i + 3, f"{i}-{n}-b".encode()]
                total += i + 3
            elif n % 5 == 2:
                events = [
                    {"task_id": task_id, "event_id": f"e{n}-{k}", "n": n, "k": k} for k in range(3)
                ]
                assert await status.write_many(events) == [True, True, True]
                assert await status.write_many(events[1:]) == [False, False]  # duplicates
                ids += [f"e{n}-{k}" for k in range(3)]
        script_totals[i] = total
        written[i] = ids

    with anyio.fail_after(30):
        async with (
            counting_proxy(*host_port(redis_url)) as proxy,
            open_store(f"redis://127.0.0.1:{proxy.port}/0") as store,
        ):
            status = StatusStore(store, config)
            async with anyio.create_task_group() as tg:
                for i in range(tasks):
                    tg.start_soon(caller, store, status, i)
            for i in range(tasks):
                assert await store.get(f"{prefix}:incr:{i}") == str(incrs).encode()
                assert await store.get(f"{prefix}:script:{i}") == str(script_totals[i]).encode()
                history = await status.history(f"task-{i}")
                assert [e["event_id"] for e in history] == written[i][::-1]
            assert (proxy.max_open, proxy.total) == (1, 1)
            assert len(opened.connections) == 1
            assert opened.connections[0] is current(store)
            await store.delete(
                *(f"{prefix}:{kind}:{i}" for kind in ("incr", "script") for i in range(tasks)),
                *(status.history_key(f"task-{i}") for i in range(tasks)),
            )
