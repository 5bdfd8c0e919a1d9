"""The public store conformance suite: every Store adapter must pass it.

Each check is ``async def check_xxx(store, prefix) -> None``; ``prefix`` is a
unique key/channel prefix (checks delete what they create). Run them all
with :data:`STORE_CHECKS`, e.g. in pytest::

    @pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__)
    async def test_store(check):
        async with open_my_store() as store:
            await check(store, f"t:{uuid4().hex[:8]}:")

Checks needing server control (CLIENT KILL, SCRIPT FLUSH) are not here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from relayna.errors import SlowSubscriberError
from relayna.testing._store_script_checks import (
    check_script_atomicity,
    check_script_error,
    check_script_heartbeat,
    check_script_idempotency,
    check_script_leases,
    check_script_many,
    check_script_replies,
    check_script_status_write,
)
from relayna.testing._store_sharded_checks import (
    check_sharded_awkward_payloads,
    check_sharded_namespace,
    check_sharded_refcount,
    check_sharded_script,
)
from relayna.transport import PubSubMessage, Store

__all__ = ["STORE_CHECKS", "StoreCheck", "check_store"]  # + deprecated STATUS_WRITE_SCRIPT

StoreCheck = Callable[[Store, str], Awaitable[None]]


async def check_strings(store: Store, prefix: str) -> None:
    k = prefix + "s"
    assert await store.get(k) is None
    assert await store.set(k, "v1") is True
    assert await store.get(k) == b"v1"
    assert await store.set(k, "v2", nx=True) is False
    assert await store.get(k) == b"v1"
    assert await store.set(k, 42) is True
    assert await store.get(k) == b"42"
    assert await store.mget([k, prefix + "missing"]) == [b"42", None]
    assert await store.exists(k) is True
    assert await store.incr(prefix + "n") == 1
    assert await store.incr(prefix + "n", 5) == 6
    assert await store.delete(k, prefix + "n", prefix + "missing") == 2
    assert await store.exists(k) is False
    await store.ping()


async def check_ttl(store: Store, prefix: str) -> None:
    k, p = prefix + "t", prefix + "persist"
    assert await store.set(k, "x", ttl=0.2)
    remaining = await store.ttl(k)
    assert remaining is not None
    assert 0 < remaining <= 0.2
    await store.set(p, "y")
    assert await store.ttl(p) is None
    assert await store.ttl(prefix + "missing") is None
    assert await store.expire(prefix + "missing", 1) is False
    assert await store.expire(p, 0.2) is True
    await store.rpush(prefix + "l", "a")
    assert await store.expire(prefix + "l", 0.2) is True
    await anyio.sleep(0.35)
    assert await store.get(k) is None
    assert await store.get(p) is None
    assert await store.exists(prefix + "l") is False
    assert await store.set(k, "again", nx=True) is True  # an expired key is free for NX
    await store.delete(k)


async def check_lists(store: Store, prefix: str) -> None:
    k = prefix + "l"
    assert await store.lpush(k, "b", "a") == 2  # LPUSH b then a → [a, b]
    assert await store.rpush(k, "c", "d") == 4
    assert await store.lrange(k, 0, -1) == [b"a", b"b", b"c", b"d"]
    assert await store.lrange(k, 1, 2) == [b"b", b"c"]
    assert await store.lrange(k, -2, 100) == [b"c", b"d"]
    assert await store.lrange(k, 3, 1) == []
    assert await store.lindex(k, 0) == b"a"
    assert await store.lindex(k, -1) == b"d"
    assert await store.lindex(k, 10) is None
    await store.ltrim(k, 0, 2)
    assert await store.lrange(k, 0, -1) == [b"a", b"b", b"c"]
    assert await store.llen(k) == 3
    await store.ltrim(k, 5, 10)
    assert await store.llen(k) == 0
    assert await store.exists(k) is False
    assert await store.lrange(prefix + "missing", 0, -1) == []


async def check_sets(store: Store, prefix: str) -> None:
    k = prefix + "set"
    assert await store.sadd(k, "a", "b", "a") == 2
    assert await store.sadd(k, "b", "c") == 1
    assert await store.smembers(k) == {b"a", b"b", b"c"}
    assert await store.srem(k, "a", "zz") == 1
    assert await store.smembers(k) == {b"b", b"c"}
    assert await store.smembers(prefix + "missing") == set()
    await store.delete(k)


async def check_sorted_sets(store: Store, prefix: str) -> None:
    k = prefix + "z"
    assert await store.zadd(k, {"a": 1, "b": 2, "c": 3, "d": 4}) == 4
    assert await store.zadd(k, {"a": 5}) == 0
    assert await store.zrange(k, 0, -1) == [b"b", b"c", b"d", b"a"]
    assert await store.zrange(k, 0, 1, desc=True) == [b"a", b"d"]
    assert await store.zrangebyscore(k, 2, 4) == [b"b", b"c", b"d"]
    assert await store.zrangebyscore(k, 2, 4, offset=1, count=1) == [b"c"]
    assert await store.zrangebyscore(k, 2, 4, desc=True) == [b"d", b"c", b"b"]
    assert await store.zrangebyscore(k, float("-inf"), float("inf"), offset=3) == [b"a"]
    assert await store.zscore(k, "a") == 5.0
    assert await store.zscore(k, "zz") is None
    assert await store.zcard(k) == 4
    assert await store.zrem(k, "a", "zz") == 1
    assert await store.zcard(k) == 3
    await store.delete(k)


async def check_hashes(store: Store, prefix: str) -> None:
    k = prefix + "h"
    assert await store.hset(k, {"f1": "v1", "f2": 2}) == 2
    assert await store.hset(k, {"f1": "v1b", "f3": "v3"}) == 1
    assert await store.hget(k, "f1") == b"v1b"
    assert await store.hget(k, "nope") is None
    assert await store.hgetall(k) == {b"f1": b"v1b", b"f2": b"2", b"f3": b"v3"}
    assert await store.hdel(k, "f1", "nope") == 1
    assert await store.hgetall(prefix + "missing") == {}
    await store.delete(k)


async def check_pubsub_fanout(store: Store, prefix: str) -> None:
    a, b = prefix + "a", prefix + "b"
    received: dict[int, list[tuple[str, bytes]]] = {}

    async def reader(i: int, sub_ready: anyio.Event, channels: tuple[str, ...], n: int) -> None:
        async with store.subscribe(*channels) as sub:
            sub_ready.set()
            got = received.setdefault(i, [])
            async for event in sub:
                assert isinstance(event, PubSubMessage)
                got.append((event.channel, event.data))
                if len(got) == n:
                    return

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            ready = []
            for i in range(10):
                ev = anyio.Event()
                ready.append(ev)
                tg.start_soon(reader, i, ev, (a, b) if i % 2 else (a,), 40 if i % 2 else 20)
            for ev in ready:
                await ev.wait()
            for j in range(20):
                await store.publish(a, f"a{j}")
                await store.publish(b, f"b{j}")
    for i, got in received.items():
        assert [d for c, d in got if c == a] == [f"a{j}".encode() for j in range(20)]
        if i % 2:
            assert [d for c, d in got if c == b] == [f"b{j}".encode() for j in range(20)]


async def check_pubsub_slow_subscriber(store: Store, prefix: str) -> None:
    ch = prefix + "flood"
    total = 3000
    with anyio.fail_after(15):
        async with store.subscribe(ch) as slow, store.subscribe(ch) as fast:
            done = anyio.Event()
            count = 0

            async def drain() -> None:
                nonlocal count
                async for _ in fast:
                    count += 1
                    if count == total:
                        done.set()
                        return

            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                for j in range(total):
                    await store.publish(ch, b"%d" % j)
                await done.wait()
            try:
                async for _ in slow:
                    pass
            except SlowSubscriberError:
                pass
            else:
                raise AssertionError("the slow subscriber must get SlowSubscriberError")
            assert count == total


async def check_pubsub_refcount(store: Store, prefix: str) -> None:
    ch = prefix + "rc"
    with anyio.fail_after(10):
        async with store.subscribe(ch) as one:
            async with store.subscribe(ch):
                pass  # the second leaves; the first must keep receiving
            await store.publish(ch, "still")
            async for event in one:
                assert event == PubSubMessage(channel=ch, data=b"still")
                break
        async with store.subscribe(ch) as again:  # re-subscribe after the last left
            await store.publish(ch, "back")
            async for event in again:
                assert event == PubSubMessage(channel=ch, data=b"back")
                break


STORE_CHECKS: list[StoreCheck] = [
    check_strings,
    check_ttl,
    check_lists,
    check_sets,
    check_sorted_sets,
    check_hashes,
    check_script_replies,
    check_script_status_write,
    check_script_error,
    check_script_many,
    check_script_atomicity,
    check_script_leases,
    check_script_idempotency,
    check_script_heartbeat,
    check_pubsub_fanout,
    check_pubsub_slow_subscriber,
    check_pubsub_refcount,
    check_sharded_namespace,
    check_sharded_refcount,
    check_sharded_script,
    check_sharded_awkward_payloads,
]


async def check_store(store: Store, prefix: str) -> None:
    """Run every check in :data:`STORE_CHECKS` against ``store``.

    Each check uses keys under ``prefix`` and raises ``AssertionError`` naming
    what differs from the contract.
    """
    for index, check in enumerate(STORE_CHECKS):
        await check(store, f"{prefix}:{index}")


# The suite's old copy of a status write, kept only for ``STATUS_WRITE_SCRIPT``.
_LEGACY_STATUS_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) == false then
  return {0, redis.call('LLEN', KEYS[2])}
end
local n = redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local added = redis.call('SADD', KEYS[3], ARGV[4])
local receivers = redis.call('PUBLISH', ARGV[5], ARGV[2])
return {1, n, added, redis.call('LLEN', KEYS[2]), ARGV[2]}
"""


def __getattr__(name: str) -> object:
    if name == "STATUS_WRITE_SCRIPT":
        import warnings

        from relayna.transport import Script

        warnings.warn(
            "relayna.testing.STATUS_WRITE_SCRIPT is deprecated: the store checks run the "
            "production script, relayna.status.WRITE_STATUS_SCRIPT",
            DeprecationWarning,
            stacklevel=2,
        )
        return Script(name="relayna.testing.status_write", lua=_LEGACY_STATUS_LUA)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
