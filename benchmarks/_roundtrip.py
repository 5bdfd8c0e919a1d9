"""Client CPU per Redis round trip: relayna's native client against its floors.

``python -m benchmarks store --part roundtrip``. Each case makes ``n`` round
trips of a trivial command (``EVALSHA`` of ``return 1``, answered ``:1``, or
``GET`` of a one-byte value) with 1 caller or 16 concurrent callers, and
reports the client process's CPU time per round trip (``time.process_time``:
the Redis server is another process, and CPU time varies much less than wall
time on a shared machine). Cases, in one run:

* relayna's native store (``store.run_script`` / ``store.get``) on asyncio and trio;
* redis-py with hiredis on asyncio (a connection pool: 16 callers, 16 connections);
* a minimal ``asyncio.Protocol`` client: one connection, callers' futures in a
  deque, ``data_received`` resolving them (the floor of CPython on asyncio);
* a minimal trio client: one raw socket; a lone caller sends and reads itself,
  16 callers queue an event each and one reader task sets them (trio's floor).

The floors parse only the two reply shapes they ask for; they do nothing
relayna must (cancellation safety, error mapping, NOSCRIPT handling).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio

from benchmarks._rounds import rotated
from relayna.transport import Script, open_store
from relayna.transport._store_util import script_sha

ONE = Script("relayna.bench.one", "return 1")
SHA = script_sha(ONE).encode()
OPS = ("evalsha", "get")


def _command(op: str, key: str) -> bytes:
    if op == "evalsha":
        return b"*3\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n0\r\n" % SHA
    k = key.encode()
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k)


def _reply_end(buf: bytes | bytearray, pos: int) -> int:
    """Where the reply at ``pos`` ends (``:``/``+``/``-`` lines and ``$`` bulks only); -1: partial."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return -1
    if buf[pos] != 36:  # not $
        return end + 2
    n = int(buf[pos + 1 : end])
    stop = end + 2 + max(n, 0) + (2 if n >= 0 else 0)
    return stop if len(buf) >= stop else -1


async def _drive(call: Callable[[], Awaitable[Any]], n: int, callers: int) -> float:
    """CPU µs per call of ``call``, ``n`` calls spread over ``callers`` tasks."""
    per = n // callers

    async def caller() -> None:
        for _ in range(per):
            await call()

    for _ in range(50):
        await call()
    c0 = time.process_time()
    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(caller)
    return (time.process_time() - c0) / (per * callers) * 1e6


async def relayna_native(url: str, op: str, key: str, n: int, callers: int) -> float:
    async with open_store(url, adapter="native") as store:
        if op == "evalsha":
            return await _drive(lambda: store.run_script(ONE, (), ()), n, callers)
        return await _drive(lambda: store.get(key), n, callers)


async def redispy_hiredis(url: str, op: str, key: str, n: int, callers: int) -> float:
    import redis.asyncio as aredis
    from redis.utils import HIREDIS_AVAILABLE

    if not HIREDIS_AVAILABLE:
        raise SystemExit("the roundtrip part needs hiredis: pip install hiredis")
    client = aredis.Redis.from_url(url, max_connections=64)
    try:
        await client.script_load(ONE.lua)
        if op == "evalsha":
            return await _drive(lambda: client.evalsha(SHA.decode(), 0), n, callers)
        return await _drive(lambda: client.get(key), n, callers)
    finally:
        await client.aclose()


class _FloorProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.waiters: deque[asyncio.Future[bytes]] = deque()
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos = 0
        while pos < len(buf):
            end = _reply_end(buf, pos)
            if end < 0:
                break
            self.waiters.popleft().set_result(buf[pos:end])
            pos = end
        self.buf = buf[pos:]

    async def call(self, command: bytes) -> bytes:
        future = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        self.transport.write(command)
        reply: bytes = await future
        return reply


async def asyncio_floor(url: str, op: str, key: str, n: int, callers: int) -> float:
    where = urlsplit(url)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(
        _FloorProtocol, where.hostname or "127.0.0.1", where.port or 6379
    )
    try:
        command = _command(op, key)
        return await _drive(lambda: proto.call(command), n, callers)
    finally:
        transport.close()


async def trio_floor(url: str, op: str, key: str, n: int, callers: int) -> float:
    import trio

    where = urlsplit(url)
    sock = trio.socket.socket()
    await sock.connect((where.hostname, where.port or 6379))
    command = _command(op, key)
    waiters: deque[trio.Event] = deque()

    async def alone() -> None:
        await sock.send(command)
        buf = b""
        while _reply_end(buf, 0) < 0:
            buf += await sock.recv(65536)

    async def reader() -> None:
        buf = b""
        while True:
            buf += await sock.recv(65536)
            pos = 0
            while pos < len(buf) and (end := _reply_end(buf, pos)) >= 0:
                waiters.popleft().set()
                pos = end
            buf = buf[pos:]

    async def shared() -> None:
        done = trio.Event()
        waiters.append(done)
        await sock.send(command)
        await done.wait()

    try:
        if callers == 1:
            return await _drive(alone, n, callers)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            cpu = await _drive(shared, n, callers)
            nursery.cancel_scope.cancel()
        return cpu
    finally:
        sock.close()


Case = tuple[str, Callable[..., Awaitable[float]], str]
CASES: list[Case] = [
    ("relayna native asyncio", relayna_native, "asyncio"),
    ("relayna native trio", relayna_native, "trio"),
    ("redis-py+hiredis asyncio", redispy_hiredis, "asyncio"),
    ("asyncio Protocol floor", asyncio_floor, "asyncio"),
    ("trio socket floor", trio_floor, "trio"),
]


def run(url: str, n: int, repeat: int) -> None:
    key = f"relayna-bench:{uuid.uuid4().hex[:8]}:v"

    async def setup() -> None:
        async with open_store(url, adapter="native") as store:
            await store.set(key, b"v", ttl=600)
            await store.load_script(ONE)  # type: ignore[attr-defined]

    anyio.run(setup)
    print(
        f"client CPU per round trip (µs, time.process_time): {n} round trips per case,"
        f" median (range) of {repeat} interleaved rounds, {url}"
    )
    header = f"{'op':<8} {'callers':>7}  {'case':<25} {'µs/rt':>7} {'range':>13}  ratio"
    print(header)
    print("-" * (len(header) + 30))
    for op in OPS:
        for callers in (1, 16):
            samples: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
            for r in range(repeat):
                for name, fn, backend in rotated(CASES, r):
                    samples[name].append(anyio.run(fn, url, op, key, n, callers, backend=backend))
            m = {name: statistics.median(v) for name, v in samples.items()}
            floors = {"asyncio": m["asyncio Protocol floor"], "trio": m["trio socket floor"]}
            for name, _, backend in CASES:
                v = samples[name]
                ratio = f"{m[name] / floors[backend]:.2f}x {backend} floor"
                if name == "relayna native asyncio":
                    ratio += f"; {m[name] / m['redis-py+hiredis asyncio']:.2f}x redis-py+hiredis"
                spread = f"{min(v):.1f}-{max(v):.1f}"
                print(f"{op:<8} {callers:>7}  {name:<25} {m[name]:>7.1f} {spread:>13}  {ratio}")
