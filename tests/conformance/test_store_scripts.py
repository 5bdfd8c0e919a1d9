"""Differential test: every store script relayna ships, on real Redis and on the memory store.

Scripts are found by construction: every module of ``relayna`` (and of
``relayna_studio`` when installed) is imported and each module-level
:class:`~relayna.transport.Script` is collected, so a script added later is
covered without touching this file. For each script, Hypothesis generates
command sequences: calls of the script with keys and arguments drawn from
small pools (the keys; string literals of the script's own Lua; numbers;
the key names again, so arguments can name keys or channels) mixed with plain
writes that put values of every type under the same keys (to reach the
WRONGTYPE paths). The sequence runs on Redis and on a fresh memory store;
each call must give the same reply (or both fail with the same error code),
the same pubsub messages must be published, and afterwards every key must
hold the same type, value and TTL.

On the Redis Cluster (slow tier, fewer examples) every key of an example
carries one hash tag, as the cluster key layout tags a task's or a prefix's
keys: the script's keys share a slot. A script that reaches a key outside it
(a key name built from an argument that is not a tagged key) is refused by the
cluster ("non local key", "do not hash to the same slot"): that input is
outside the cluster layout's contract, so the example stops there and the
states both sides held before that call are compared (and the messages
published before it).

Time: the memory store's clock is frozen during each call (as Redis freezes
time inside a script). A key whose TTL is shorter than ``FRAGILE`` seconds
could expire between two steps on one side and not on the other, so when one
appears the sequence stops there: that key's TTL is checked on both sides at
once and it is left out of the final comparison.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayna.errors import ScriptError, StoreError
from relayna.status import WRITE_STATUS_SCRIPT
from relayna.transport import (
    MemoryStore,
    PubSubMessage,
    Script,
    ShardedPubSub,
    Store,
    open_store,
)
from relayna.transport._store_memory_core import ZsetBox

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

#: A TTL shorter than this (seconds) may run out between two steps.
FRAGILE = 5.0
KEY_POOL = 4
NUMBERS = [b"-1", b"0", b"1", b"2", b"3", b"10", b"1.5", b"100000", b"86400000", b"1000000000"]
SENTINEL = b"\x00relayna-differential-end"


def production_scripts() -> list[Script]:
    """Every module-level Script in relayna's packages (one per distinct Lua source)."""
    found: dict[str, Script] = {}
    for root in ("relayna", "relayna_studio"):
        try:
            package = importlib.import_module(root)
        except ModuleNotFoundError:
            continue
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if isinstance(value, Script):
                    found.setdefault(value.lua, value)
    return sorted(found.values(), key=lambda s: s.name)


SCRIPTS = production_scripts()


def test_discovery_finds_the_known_scripts() -> None:
    names = {s.name for s in SCRIPTS}
    known = {
        WRITE_STATUS_SCRIPT.name,
        "relayna.consumer.idempotency",
        "relayna.consumer.lease.acquire",
        "relayna.consumer.lease.renew",
        "relayna.consumer.lease.release",
        "relayna.consumer.heartbeat",
        "relayna.feed.append",
        "relayna.observations.write",
    }
    assert known <= names, known - names


# -- what a script looks like from outside --------------------------------------------


def _arity(lua: str, table: str) -> tuple[int, int]:
    """(fewest, most) entries of KEYS/ARGV a script reads; a script testing ``#KEYS`` takes fewer."""
    used = [int(n) for n in re.findall(rf"\b{table}\[(\d+)\]", lua)]
    most = max(used, default=0)
    return (0 if f"#{table}" in lua else most), most


def _literals(lua: str) -> list[bytes]:
    found = re.findall(r"'([^'\\\n]{0,40})'|\"([^\"\\\n]{0,40})\"", lua)
    return sorted({(a or b).encode() for a, b in found})


# A token is bytes (used as is) or an int i (the i-th key of this example).
Token = bytes | int


@st.composite
def sequences(draw: st.DrawFn, script: Script) -> list[tuple[Any, ...]]:
    keys_min, keys_max = _arity(script.lua, "KEYS")
    args_min, args_max = _arity(script.lua, "ARGV")
    key = st.integers(0, KEY_POOL - 1)
    value: st.SearchStrategy[Token] = st.one_of(
        st.sampled_from(_literals(script.lua) or [b"x"]), st.sampled_from(NUMBERS), key
    )
    steps: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.integers(0, 3)) == 0:
            kind = draw(st.sampled_from(["set", "rpush", "sadd", "zadd", "hset", "delete"]))
            steps.append(("write", kind, draw(key), draw(st.sampled_from(NUMBERS))))
        else:
            keys = draw(st.lists(key, min_size=keys_min, max_size=keys_max))
            args = draw(st.lists(value, min_size=args_min, max_size=args_max))
            steps.append(("script", keys, args))
    return steps


# -- running one example on both stores ------------------------------------------------


class FrozenClock:
    """The memory store's clock: set to the real time before each call, still during it."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def tick(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def _code(exc: ScriptError) -> str:
    """The Redis error code (first word of the server's text) inside a ScriptError."""
    return str(exc).split("failed: ", 1)[-1].split(" ", 1)[0]


#: How a Redis Cluster refuses a script reaching a key outside its slot.
_REFUSED = re.compile(r"non local key|do not hash to the same slot|CROSSSLOT")


async def _outcome(
    store: Store, script: Script, keys: list[str], args: list[bytes], *, cluster: bool = False
) -> Any:
    try:
        return ("ok", await store.run_script(script, keys, args))
    except ScriptError as exc:
        if cluster and _REFUSED.search(str(exc)):
            return ("refused",)
        return ("error", _code(exc))


async def _write(store: Store, kind: str, key: str, value: bytes) -> str:
    try:
        await _write_raw(store, kind, key, value)
    except StoreError as exc:  # WRONGTYPE: a write of another type onto the key
        return "WRONGTYPE" if "WRONGTYPE" in str(exc) else repr(exc)
    return "ok"


async def _write_raw(store: Store, kind: str, key: str, value: bytes) -> None:
    if kind == "set":
        await store.set(key, value)
    elif kind == "rpush":
        await store.rpush(key, value)
    elif kind == "sadd":
        await store.sadd(key, value)
    elif kind == "zadd":
        await store.zadd(key, {b"m" + value: float(value)})
    elif kind == "hset":
        await store.hset(key, {"f": value})
    else:
        await store.delete(key)


_DUMP = Script(
    name="tests.differential.dump",
    lua="""
local names = redis.call('KEYS', ARGV[1] .. '*')
for i = 2, #ARGV do table.insert(names, ARGV[i]) end
local out = {}
for _, k in ipairs(names) do
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'none' then
    local v
    if t == 'string' then v = {redis.call('GET', k)}
    elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
    elseif t == 'set' then v = redis.call('SMEMBERS', k)
    elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
    elseif t == 'hash' then v = redis.call('HGETALL', k)
    else v = {} end
    table.insert(out, {k, t, redis.call('PTTL', k), v})
  end
end
return out
""",
)


def _canonical(kind: str, raw: list[bytes]) -> Any:
    if kind == "string":
        return raw[0]
    if kind == "list":
        return list(raw)
    if kind == "set":
        return sorted(raw)
    if kind == "zset":
        return sorted((float(raw[i + 1]), raw[i]) for i in range(0, len(raw), 2))
    return sorted(zip(raw[0::2], raw[1::2], strict=True))


async def redis_keys(
    redis: Store, prefix: str, extra: list[bytes], route: list[str] | None = None
) -> dict[str, tuple[Any, ...]]:
    """key -> (type, canonical value, ms of TTL or -1) as Redis holds it
    (``route``: a key of the prefix's slot, on a cluster)."""
    rows = await redis.run_script(_DUMP, route or [], [prefix.encode(), *extra])
    return {
        row[0].decode(): (row[1].decode(), _canonical(row[1].decode(), row[3]), row[2])
        for row in rows
    }


def memory_keys(memory: MemoryStore, clock: FrozenClock) -> dict[str, tuple[Any, ...]]:
    """The same view of the memory store, read from its core's containers directly."""
    out: dict[str, tuple[Any, ...]] = {}
    core = memory.core
    for key in core.keys():
        value = core.live(key)
        if isinstance(value, bytes):
            kind, canonical = "string", value
        elif isinstance(value, list):
            kind, canonical = "list", list(value)
        elif isinstance(value, set):
            kind, canonical = "set", sorted(value)
        elif isinstance(value, ZsetBox):
            kind, canonical = "zset", sorted((s, m) for m, s in value.scores.items())
        else:
            kind, canonical = "hash", sorted(value.items())
        deadline = core.deadline(key)
        ttl = -1 if deadline is None else round((deadline - clock()) * 1000)
        out[key] = (kind, canonical, ttl)
    return out


def _same_ttl(redis_ms: int, memory_ms: int, elapsed: float) -> bool:
    if redis_ms == -1 or memory_ms == -1:
        return redis_ms == memory_ms
    return abs(redis_ms - memory_ms) <= (elapsed + 1) * 1000


_PUBLISH = Script(
    name="tests.differential.publish",
    lua="for i = 2, #ARGV do redis.call('PUBLISH', ARGV[i], ARGV[1]) end return 0",
)
_SPUBLISH = Script(
    name="tests.differential.spublish",
    lua="for i = 2, #ARGV do redis.call('SPUBLISH', ARGV[i], ARGV[1]) end return 0",
)


async def _messages(
    store: Store,
    sub: Any,
    channels: list[str],
    via: str | None = None,
    *,
    sharded: bool = False,
) -> list[tuple[str, bytes]]:
    if via is None:
        for channel in channels:
            if sharded:
                assert isinstance(store, ShardedPubSub)
                await store.spublish(channel, SENTINEL)
            else:
                await store.publish(channel, SENTINEL)
    else:  # a cluster: from the node the scripts published on, so after their messages
        script = _SPUBLISH if sharded else _PUBLISH
        await store.run_script(script, [via], [SENTINEL, *(c.encode() for c in channels)])
    got: list[tuple[str, bytes]] = []
    ended = 0
    with anyio.fail_after(10):
        async for event in sub:
            assert isinstance(event, PubSubMessage), event
            if event.data == SENTINEL:
                ended += 1
                if ended == len(channels):
                    return got
            else:
                got.append((event.channel, event.data))
    raise AssertionError("subscription ended")


@asynccontextmanager
async def _ssubscribe(store: Any, channels: list[str]) -> AsyncIterator[Any]:
    """A sharded subscription to ``channels``, or None when there are none."""
    if not channels:
        yield None
        return
    async with store.ssubscribe(*channels) as sub:
        yield sub


def _counter() -> Iterator[int]:
    n = 0
    while True:
        n += 1
        yield n


_EXAMPLES = _counter()


async def run_both(
    redis: Store, script: Script, steps: list[tuple[Any, ...]], *, cluster: bool = False
) -> bool:
    """Run ``steps`` on ``redis`` and a fresh memory store and compare; False when
    a cluster refused a call (the comparison then stops before it)."""
    name = f"relayna-diff:{time.time_ns()}:{next(_EXAMPLES)}"
    prefix = f"{{{name}}}:" if cluster else f"{name}:"  # one hash tag: one slot
    keys = [f"{prefix}k{i}" for i in range(KEY_POOL)]
    outside = sorted(set(_literals(script.lua)) | set(NUMBERS))  # names a script might use
    # on a cluster, names outside the slot are refused to scripts: not dumped
    dumped = [] if cluster else list(outside)
    route = [keys[0]] if cluster else None

    def resolve(token: Token) -> bytes:
        return keys[token].encode() if isinstance(token, int) else token

    clock = FrozenClock()
    memory = MemoryStore("memory://", clock=clock)
    channels = [*keys, *(o.decode() for o in outside)]
    started = time.monotonic()
    fragile: set[str] = set()
    before: tuple[dict[str, Any], dict[str, Any]] | None = None
    refused = False
    # Scripts that SPUBLISH are compared on sharded channels too (on a cluster
    # only the slot's own names: SPUBLISH elsewhere is refused to the script).
    sharded_names = keys if cluster else channels
    if "SPUBLISH" not in script.lua:
        sharded_names = []
    assert isinstance(redis, ShardedPubSub)
    try:
        async with (
            redis.subscribe(*channels) as rsub,
            memory.subscribe(*channels) as msub,
            _ssubscribe(redis, sharded_names) as rssub,
            _ssubscribe(memory, sharded_names) as mssub,
        ):
            for index, step in enumerate(steps):
                clock.tick()
                if step[0] == "write":
                    _, kind, key, value = step
                    on_redis = await _write(redis, kind, keys[key], value)
                    assert on_redis == await _write(memory, kind, keys[key], value), step
                    continue
                _, key_tokens, arg_tokens = step
                call_keys = [keys[k] for k in key_tokens]
                call_args = [resolve(t) for t in arg_tokens]
                if cluster:
                    before = (
                        await redis_keys(redis, prefix, dumped, route),
                        memory_keys(memory, clock),
                    )
                on_redis = await _outcome(redis, script, call_keys, call_args, cluster=cluster)
                if on_redis == ("refused",):  # outside the cluster layout: stop here
                    refused = True
                    break
                on_memory = await _outcome(memory, script, call_keys, call_args)
                assert on_redis == on_memory, (index, step, call_keys, call_args)
                for key, (_, _, ttl) in memory_keys(memory, clock).items():
                    if 0 <= ttl < FRAGILE * 1000:
                        fragile.add(key)
                if fragile:
                    for key in fragile:  # short on both sides (or already gone on Redis)
                        remaining = await redis.ttl(key)
                        if await redis.exists(key):
                            assert remaining is not None, key
                            assert remaining < FRAGILE + 1, (key, remaining)
                    break
            via = keys[0] if cluster else None
            kinds = [(rsub, msub, channels, False)]
            if sharded_names:
                kinds.append((rssub, mssub, sharded_names, True))
            for on_redis_sub, on_memory_sub, names, kind in kinds:
                on_redis_messages = await _messages(redis, on_redis_sub, names, via, sharded=kind)
                on_memory_messages = await _messages(
                    memory, on_memory_sub, names, via, sharded=kind
                )
                if refused:  # the refused call may have published before it was stopped
                    on_redis_messages = on_redis_messages[: len(on_memory_messages)]
                assert on_redis_messages == on_memory_messages, kind
        if refused:
            assert before is not None
            on_redis_keys, on_memory_keys = before
        else:
            on_redis_keys = await redis_keys(redis, prefix, dumped, route)
            on_memory_keys = memory_keys(memory, clock)
        for key in fragile:
            on_redis_keys.pop(key, None)
            on_memory_keys.pop(key, None)
        assert sorted(on_redis_keys) == sorted(on_memory_keys)
        elapsed = time.monotonic() - started
        for key, (kind, value, ttl) in on_redis_keys.items():
            m_kind, m_value, m_ttl = on_memory_keys[key]
            assert (kind, value) == (m_kind, m_value), key
            assert _same_ttl(ttl, m_ttl, elapsed), (key, ttl, m_ttl)
    finally:
        memory.close()
        await redis.delete(*keys, *(o.decode() for o in outside))
        leftovers = await redis_keys(redis, prefix, [], route)
        if leftovers:
            await redis.delete(*leftovers)
    return not refused


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_script_behaves_the_same_on_redis_and_memory(
    redis_url: str, script: Script, data: st.DataObject
) -> None:
    steps = data.draw(sequences(script), label="steps")
    with anyio.fail_after(60):
        async with open_store(redis_url) as redis:
            await run_both(redis, script, steps)


#: Examples per script on the cluster (the single Redis runs 30): the whole
#: file stays within a minute or two per backend on the shared box.
CLUSTER_EXAMPLES = 6


@pytest.mark.slow_tier
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
@settings(
    max_examples=CLUSTER_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_script_behaves_the_same_on_the_cluster_and_memory(
    redis_cluster_url: str, script: Script, data: st.DataObject
) -> None:
    steps = data.draw(sequences(script), label="steps")
    with anyio.fail_after(60):
        async with open_store(redis_cluster_url) as redis:
            await run_both(redis, script, steps, cluster=True)
