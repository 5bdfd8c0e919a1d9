"""Auto-pipelining of the native Redis client, on the real Redis.

Commands issued while a write is in flight go out together in the next write
(one socket write per batch, not one per command) and their replies are
matched in order. Cancellation never desynchronises the connection: a caller
cancelled while its commands still wait for the writer takes them back (they
never reach the server); a writer cancelled while it writes other callers'
commands finishes that write for them.

The connection's stream is wrapped in :class:`Tap`, which records every
socket write and can hold a write back, so each interleaving is made
deterministic rather than hoped for. Both anyio backends (the
``anyio_backend`` fixture).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

from _polling import wait_until  # tests/ is on sys.path (rootdir conftest)
from relayna.transport import Store, open_store
from relayna.transport.resp import NativeRespStore
from relayna.transport.resp._connection import RespConnection

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


class Tap(anyio.abc.ByteStream):
    """A byte stream that records each write and may run ``before_write`` first."""

    def __init__(self, inner: anyio.abc.ByteStream) -> None:
        self.inner = inner
        self.writes: list[bytes] = []
        self.before_write: Callable[[int], Awaitable[None]] | None = None

    async def send(self, item: bytes) -> None:
        self.writes.append(bytes(item))
        if self.before_write is not None:
            await self.before_write(len(self.writes))
        await self.inner.send(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Any:
        return self.inner.extra_attributes


async def tapped(store: Store) -> tuple[RespConnection, Tap]:
    assert isinstance(store, NativeRespStore)
    await store.ping()  # the shared connection is open
    conn = store._connection.current
    assert conn is not None
    tap = Tap(conn.stream)
    conn.stream = tap
    return conn, tap


async def test_concurrent_commands_share_socket_writes(redis_url: str, unique: str) -> None:
    """200 concurrent SETs and GETs get their own replies, in far fewer writes than commands."""
    keys = [f"relayna-test:{unique}:ap:{i}" for i in range(100)]
    with anyio.fail_after(15):
        async with open_store(redis_url, adapter="native") as store:
            conn, tap = await tapped(store)
            got: dict[str, bytes | None] = {}

            async def set_then_get(key: str) -> None:
                assert await store.set(key, key) is True
                got[key] = await store.get(key)

            async with anyio.create_task_group() as tg:
                for key in keys:
                    tg.start_soon(set_then_get, key)
            assert got == {key: key.encode() for key in keys}
            commands = sum(write.count(b"*") for write in tap.writes)
            assert commands >= 200
            assert len(tap.writes) <= 200 // 4, f"{len(tap.writes)} writes for 200 commands"
            assert not conn.broken
            assert await store.delete(*keys) == 100


async def test_a_caller_cancelled_before_its_write_sends_nothing(
    redis_url: str, unique: str
) -> None:
    """A's write is held back; B and C queue behind it and B is cancelled. B's
    SET never reaches Redis, C's goes out in the next write and C gets its own
    reply; the connection is kept."""
    a, b, c = (f"relayna-test:{unique}:{n}" for n in "abc")
    gate = anyio.Event()
    outcome: dict[str, object] = {}
    with anyio.fail_after(15):
        async with open_store(redis_url, adapter="native") as store:
            conn, tap = await tapped(store)

            async def hold_first(number: int) -> None:
                if number == 1:
                    await gate.wait()

            tap.before_write = hold_first

            async def set_key(name: str, key: str, scope: anyio.CancelScope) -> None:
                with scope:
                    outcome[name] = await store.set(key, name)

            scopes = {n: anyio.CancelScope() for n in "abc"}
            async with anyio.create_task_group() as tg:
                tg.start_soon(set_key, "a", a, scopes["a"])
                await wait_until(lambda: len(tap.writes) == 1, "A is writing")
                tg.start_soon(set_key, "b", b, scopes["b"])
                await wait_until(lambda: conn.unsent == 1, "B is queued")
                tg.start_soon(set_key, "c", c, scopes["c"])
                await wait_until(lambda: conn.unsent == 2, "C is queued")
                scopes["b"].cancel()
                await wait_until(lambda: conn.unsent == 1, "B took its SET back")
                gate.set()
            assert outcome == {"a": True, "c": True}
            assert scopes["b"].cancelled_caught
            assert len(tap.writes) == 2
            assert c.encode() in tap.writes[1]
            assert b.encode() not in b"".join(tap.writes)
            assert await store.mget([a, b, c]) == [b"a", None, b"c"]
            assert store._connection.current is conn
            assert not conn.broken
            await store.delete(a, c)


async def test_a_writer_cancelled_mid_batch_still_writes_the_others(
    redis_url: str, unique: str
) -> None:
    """A writes its SET; B and C queue meanwhile. A is cancelled just as it
    starts the write carrying B's and C's commands: that write completes
    (shielded), B and C get their replies, A raises its cancellation (or has
    its reply already), the connection is kept and no later reply is mixed up."""
    a, b, c = (f"relayna-test:{unique}:{n}" for n in "abc")
    first_held = anyio.Event()
    outcome: dict[str, object] = {}
    scope_a = anyio.CancelScope()
    with anyio.fail_after(15):
        async with open_store(redis_url, adapter="native") as store:
            conn, tap = await tapped(store)

            async def before(number: int) -> None:
                if number == 1:
                    await first_held.wait()
                elif number == 2:
                    scope_a.cancel()  # the writer's caller is cancelled during the batch
                    await anyio.lowlevel.checkpoint()

            tap.before_write = before

            async def set_key(name: str, key: str) -> None:
                outcome[name] = await store.set(key, name)

            async def writer() -> None:
                with scope_a:
                    outcome["a"] = await store.set(a, "a")

            async with anyio.create_task_group() as tg:
                tg.start_soon(writer)
                await wait_until(lambda: len(tap.writes) == 1, "A is writing")
                tg.start_soon(set_key, "b", b)
                tg.start_soon(set_key, "c", c)
                await wait_until(lambda: conn.unsent == 2, "B and C are queued")
                first_held.set()
            # A's own reply may have been read for it before it waited again:
            # then it completed instead of raising its cancellation.
            assert scope_a.cancelled_caught or outcome.pop("a") is True
            assert outcome == {"b": True, "c": True}
            assert len(tap.writes) == 2
            assert b.encode() in tap.writes[1]
            assert c.encode() in tap.writes[1]
            assert await store.mget([a, b, c]) == [b"a", b"b", b"c"]  # A's SET had gone out
            assert store._connection.current is conn
            assert not conn.broken
            await store.delete(a, b, c)
