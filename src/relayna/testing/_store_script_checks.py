"""Store conformance, part two: scripts.

A store runs relayna's own scripts (the production ones, not copies) and
converts between Lua and replies the way Redis does. Same shape as the other
checks: ``async def check_xxx(store, prefix) -> None``.
"""

from __future__ import annotations

import time

import anyio

from relayna.consumer import (
    HeartbeatSnapshot,
    Idempotency,
    LeaseStore,
    WorkerHeartbeats,
    list_worker_heartbeats,
)
from relayna.errors import ScriptError
from relayna.status import WRITE_STATUS_SCRIPT
from relayna.transport import PubSubMessage, Script, Store, Value

__all__ = [
    "check_script_atomicity",
    "check_script_error",
    "check_script_heartbeat",
    "check_script_idempotency",
    "check_script_leases",
    "check_script_many",
    "check_script_replies",
    "check_script_status_write",
]

_FAIL_SCRIPT = Script(
    name="relayna.testing.fail",
    lua="redis.call('SET', KEYS[1], 'x'); return redis.call('INCR', KEYS[1])",
)

# One probe per Redis <-> Lua conversion rule; ARGV[1] picks it.
_PROBE_SCRIPT = Script(
    name="relayna.testing.probe",
    lua="""
local mode = ARGV[1]
if mode == 'types' then
  return {1, 'two', 3.9, -3.9, true, false, {'nested', 7}, redis.status_reply('FINE'), nil, 'cut'}
elseif mode == 'status' then
  return redis.status_reply('FINE')
elseif mode == 'error' then
  return redis.error_reply('MYERR it failed')
elseif mode == 'pcall' then
  redis.call('SET', KEYS[1], 'x')
  local reply = redis.pcall('INCR', KEYS[1])
  return {type(reply), string.sub(reply['err'], 1, 4)}
elseif mode == 'replies' then
  redis.call('SET', KEYS[1], 'v')
  local status = redis.call('TYPE', KEYS[1])
  local missing = redis.call('GET', KEYS[1] .. ':missing')
  local list = redis.call('MGET', KEYS[1], KEYS[1] .. ':missing')
  return {type(status), status['ok'], type(missing), tostring(missing), #list, tostring(list[2])}
elseif mode == 'numbers' then
  redis.call('SET', KEYS[1], 1.5)
  redis.call('SET', KEYS[1] .. ':n', 3)
  return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[1] .. ':n'),
          redis.call('INCRBY', KEYS[1] .. ':n', 2.0)}
elseif mode == 'arguments' then
  return {#KEYS, #ARGV, KEYS[1], ARGV[2]}
elseif mode == 'json' then
  return {cjson.encode(cjson.decode(ARGV[2])), cjson.encode({}), cjson.encode('a/b'),
          cjson.encode(3.5), cjson.encode({1, 2, 'x'}), tostring(cjson.decode('[null]')[1] == cjson.null)}
elseif mode == 'global' then
  undefined_thing = 1
  return 1
elseif mode == 'undefined' then
  return nothing_here
end
return redis.error_reply('ERR unknown probe')
""",
)


async def _probe(store: Store, prefix: str, mode: str, *more: Value) -> object:
    return await store.run_script(_PROBE_SCRIPT, [prefix + "probe"], [mode, *more])


async def _raises_script_error(
    script: Script, store: Store, keys: list[str], args: list[Value]
) -> str:
    try:
        await store.run_script(script, keys, args)
    except ScriptError as exc:
        return str(exc)
    raise AssertionError(f"{script.name} {args!r} must raise ScriptError")


async def check_script_replies(store: Store, prefix: str) -> None:
    """Lua values become replies, and replies Lua values, as in Redis."""
    assert await _probe(store, prefix, "types") == [
        1, b"two", 3, -3, 1, None, [b"nested", 7], b"FINE",
    ]  # fmt: skip
    assert await _probe(store, prefix, "status") == b"FINE"
    assert "MYERR it failed" in await _raises_script_error(
        _PROBE_SCRIPT, store, [prefix + "probe"], ["error"]
    )
    assert await _probe(store, prefix, "pcall") == [b"table", b"ERR "]
    assert await _probe(store, prefix, "replies") == [
        b"table", b"string", b"boolean", b"false", 2, b"false",
    ]  # fmt: skip
    assert await _probe(store, prefix, "numbers") == [b"1.5", b"3", 5]
    binary = bytes(range(256))
    assert await _probe(store, prefix, "arguments", binary) == [
        1,
        2,
        (prefix + "probe").encode(),
        binary,
    ]
    document = b'{"a":[1,2.5,{"b":null}]}'
    assert await _probe(store, prefix, "json", document) == [
        document, b"{}", b'"a\\/b"', b"3.5", b'[1,2,"x"]', b"true",
    ]  # fmt: skip
    await _raises_script_error(_PROBE_SCRIPT, store, [prefix + "probe"], ["global"])
    await _raises_script_error(_PROBE_SCRIPT, store, [prefix + "probe"], ["undefined"])
    await store.delete(prefix + "probe", prefix + "probe:n")


async def check_script_status_write(store: Store, prefix: str) -> None:
    """The production status write: dedupe, trim, TTL, children, publish; no marker on failure."""
    history, children, channel = prefix + "history", prefix + "children", prefix + "events"

    def call(event: str, *, child: bool = True) -> tuple[list[str], list[Value]]:
        keys = [f"{prefix}marker:{event}", history] + ([children] if child else [])
        return keys, [f"payload-{event}", 5000, 2, channel, f"task-{event}"]

    async with store.subscribe(channel) as sub:
        assert await store.run_script(WRITE_STATUS_SCRIPT, *call("e1")) == 1
        assert await store.run_script(WRITE_STATUS_SCRIPT, *call("e1")) == 0  # duplicate
        with anyio.fail_after(5):
            async for event in sub:
                assert event == PubSubMessage(channel=channel, data=b"payload-e1")
                break
    for name in ("e2", "e3"):
        assert await store.run_script(WRITE_STATUS_SCRIPT, *call(name)) == 1
    assert await store.run_script(WRITE_STATUS_SCRIPT, *call("e4", child=False)) == 1
    assert await store.lrange(history, 0, -1) == [b"payload-e4", b"payload-e3"]  # trimmed to 2
    assert await store.smembers(children) == {b"task-e1", b"task-e2", b"task-e3"}
    for key in (history, children, f"{prefix}marker:e1"):
        ttl = await store.ttl(key)
        assert ttl is not None
        assert 0 < ttl <= 5
    await store.set(prefix + "wrong", "a string")
    keys, args = call("e5")
    for bad in (1, 2):  # history, then children, of the wrong type
        wrong = list(keys)
        wrong[bad] = prefix + "wrong"
        assert "WRONGTYPE" in await _raises_script_error(WRITE_STATUS_SCRIPT, store, wrong, args)
        assert await store.exists(keys[0]) is False  # no marker: a retry writes it again
    assert await store.lrange(history, 0, -1) == [b"payload-e4", b"payload-e3"]
    await store.delete(
        history, children, prefix + "wrong", *(f"{prefix}marker:e{i}" for i in range(1, 6))
    )


async def check_script_error(store: Store, prefix: str) -> None:
    """An error inside a script raises ScriptError; what ran before it stays done (as in Redis)."""
    assert "ERR" in await _raises_script_error(_FAIL_SCRIPT, store, [prefix + "x"], [])
    assert await store.get(prefix + "x") == b"x"
    await store.delete(prefix + "x")


async def check_script_many(store: Store, prefix: str) -> None:
    """``run_script_many``: replies in call order, a failing call is its own entry."""
    history, channel = prefix + "history", prefix + "events"

    def call(i: int) -> tuple[list[str], list[Value]]:
        return [f"{prefix}marker:e{i % 3}", history], [f"e{i}", 5000, 10, channel, "t"]

    assert await store.run_script_many(WRITE_STATUS_SCRIPT, [call(0), call(1)]) == [1, 1]
    results = await store.run_script_many(_FAIL_SCRIPT, [([prefix + "fail"], [])])
    assert len(results) == 1
    assert isinstance(results[0], ScriptError), results
    await store.set(prefix + "wrong", "x")
    bad_call: tuple[list[str], list[Value]] = (
        [f"{prefix}marker:w", prefix + "wrong"],
        ["w", 5000, 10, channel, "t"],
    )
    mixed = [call(2), bad_call]
    results = await store.run_script_many(WRITE_STATUS_SCRIPT, [*mixed, call(3), call(4)])
    assert results[0] == 1
    assert isinstance(results[1], ScriptError), results
    assert results[2:] == [0, 0]  # e3, e4 reuse the markers of e0, e1
    assert await store.lrange(history, 0, -1) == [b"e2", b"e1", b"e0"]
    assert await store.run_script_many(WRITE_STATUS_SCRIPT, []) == []
    await store.delete(
        history, prefix + "fail", prefix + "wrong", *(f"{prefix}marker:e{i}" for i in range(3))
    )


async def check_script_atomicity(store: Store, prefix: str) -> None:
    """Many concurrent status writes: each one's LPUSH, LTRIM, SADD happen together."""
    history, children = prefix + "history", prefix + "children"

    async def write(i: int) -> None:
        keys = [f"{prefix}marker:{i}", history, children]
        args: list[Value] = [f"e{i}", 5000, 1000, prefix + "none", f"c{i}"]
        assert await store.run_script(WRITE_STATUS_SCRIPT, keys, args) == 1

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(write, i)
    assert await store.llen(history) == 50
    assert len(await store.smembers(children)) == 50
    await store.delete(history, children, *(f"{prefix}marker:{i}" for i in range(50)))


async def check_script_leases(store: Store, prefix: str) -> None:
    """The production lease scripts (through LeaseStore): one owner; only the owner
    renews or releases."""
    leases = LeaseStore(store, prefix=prefix + "lease")
    assert await leases.acquire("l", "a", 5) is True
    assert await leases.acquire("l", "b", 5) is False
    assert await leases.acquire("l", "a", 5) is True  # the owner again: refreshed
    assert await leases.renew("l", "b", 5) is False
    assert await leases.renew("l", "a", 5) is True
    assert await leases.release("l", "b") is False
    assert await leases.owner("l") == "a"
    assert await leases.release("l", "a") is True
    assert await store.exists(leases.key("l")) is False
    assert await leases.renew("l", "a", 5) is False
    assert await leases.acquire("l", "b", 5) is True
    await store.delete(leases.key("l"))


async def check_script_idempotency(store: Store, prefix: str) -> None:
    """The production idempotency script (through Idempotency): a completed key stays
    completed for its TTL."""
    idempotency = Idempotency(store, ttl_seconds=5, prefix=prefix + "idem")
    key = f"{prefix}idem:k"
    assert await idempotency.is_completed(key) is False
    await idempotency.mark_completed(key)
    assert await idempotency.is_completed(key) is True
    ttl = await store.ttl(key)
    assert ttl is not None
    assert 0 < ttl <= 5
    await store.delete(key)


async def check_script_heartbeat(store: Store, prefix: str) -> None:
    """The production heartbeat script (through WorkerHeartbeats): expired workers
    leave the index, and the index expires with its latest entry."""
    beats = prefix + "beats"
    index = f"{beats}:workers"
    snapshot = HeartbeatSnapshot(
        consumer_name="c", queue_name="q", in_flight=0, processed=0, state="running"
    )
    await store.zadd(index, {"old": time.time() - 1})  # already expired: removed by a write
    for worker, ttl in (("w1", 20.0), ("w2", 120.0)):
        writer = WorkerHeartbeats(store=store, prefix=beats, interval=1, ttl=ttl, worker_id=worker)
        await writer.write(snapshot, started_at=time.time())
    assert await store.zrange(index, 0, -1) == [b"w1", b"w2"]
    assert [hb.worker_id for hb in await list_worker_heartbeats(store, beats)] == ["w1", "w2"]
    index_ttl = await store.ttl(index)
    assert index_ttl is not None
    assert 60 < index_ttl <= 120  # w2's expiry, not w1's (20 s)
    await store.delete(index, *(f"{index}:{w}" for w in ("w1", "w2")))
