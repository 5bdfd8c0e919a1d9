"""Lua snippets on real Redis and on the memory store: the sandbox, conversions, commands.

Each snippet runs with ``KEYS[1]`` a fresh key on both stores; the replies
must be equal, or both must fail with the same error code. This pins the
parts of Redis's scripting environment that the command-sequence test
(``test_store_scripts.py``) reaches only by chance: which globals exist,
LuaBitOp and lua-cjson details, argument and reply conversions, and command
edge cases. The known differences are asserted at the end.
"""

from __future__ import annotations

import anyio
import pytest

from relayna.errors import ScriptError
from relayna.transport import Script, Store, open_memory_store, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

SNIPPETS = [
    "return type(os)",
    "return type(io)",
    "return type(debug)",
    "return type(loadstring)",
    "return type(bit)",
    "return type(print)",
    "return type(require)",
    "return type(dofile)",
    "return type(load)",
    "return type(setfenv)",
    "return type(getfenv)",
    "return type(newproxy)",
    "return type(coroutine)",
    "return type(gcinfo)",
    "return type(collectgarbage)",
    "return cjson.encode({[1]=1,[20]=2})",
    "return cjson.encode({1,nil,3})",
    "return cjson.encode({a=1})",
    "return cjson.encode(0.1)",
    "return cjson.encode(1e20)",
    "return cjson.encode(1/0)",
    "return cjson.encode('\\0\\1\\127é')",
    "return cjson.encode({[1.5]=1})",
    "return cjson.encode({[true]=1})",
    "return cjson.decode('[1,2,3]')",
    "return cjson.decode('{\"a\":1}')['a']",
    "return cjson.decode('1e400')",
    "return cjson.decode('nope')",
    "return cjson.decode('\"x\"')",
    "return type(cjson.null)",
    "return redis.call('SET', KEYS[1], 0.1)",
    "redis.call('SET', KEYS[1], 0.1); return redis.call('GET', KEYS[1])",
    "redis.call('SET', KEYS[1], 1e17); return redis.call('GET', KEYS[1])",
    "return redis.call('SET', KEYS[1], true)",
    "return redis.call('SET', KEYS[1], nil)",
    "return redis.call()",
    "return redis.call('NOPE')",
    "return redis.call('get')",
    "return redis.call('GET', KEYS[1], 'x')",
    "return redis.pcall('NOPE')['err']",
    "return {err=1}",
    "return {ok=1}",
    "return 3.99",
    "return -0.5",
    "return redis.sha1hex('abc')",
    "return redis.REDIS_VERSION ~= nil",
    "x = 1",
    "return y",
    "return math.huge",
    "return tostring(math.huge)",
    "return string.format('%.3f', 1/3)",
    "return redis.error_reply('x y')",
    "return redis.status_reply('PONG')",
    "error('boom')",
    "error({err='CODE x'})",
    "return redis.call('PUBLISH', 'x-none-ch', 'x')",
    "return redis.call('EXISTS', KEYS[1], KEYS[1])",
    "return redis.call('ZADD', KEYS[1], 'nan', 'm')",
    "return redis.call('ZADD', KEYS[1], 'inf', 'm')",
    "return redis.call('ZADD', KEYS[1], '+inf', 'a', '-inf', 'b', '1e3', 'c', '.5', 'd')",
    "redis.call('ZADD', KEYS[1], 1, 'a', 1, 'b', 2, 'c'); return redis.call('ZRANGEBYSCORE', KEYS[1], '(1', '+inf', 'WITHSCORES')",
    "redis.call('ZADD', KEYS[1], 1.1, 'a'); return redis.call('ZSCORE', KEYS[1], 'a')",
    "redis.call('ZADD', KEYS[1], 1.5, 'a', 2, 'c'); return redis.call('ZMSCORE', KEYS[1], 'a', 'b', 'c')",
    "return redis.call('ZMSCORE', KEYS[1], 'a', 'b')",
    "redis.call('SET', KEYS[1], 'x'); return redis.call('ZMSCORE', KEYS[1], 'a')",
    "return redis.call('ZMSCORE', KEYS[1])",
    "return redis.call('INCRBY', KEYS[1], '01')",
    "return redis.call('INCRBY', KEYS[1], '+1')",
    "return redis.call('INCRBY', KEYS[1], ' 1')",
    "return redis.call('INCRBY', KEYS[1], '9223372036854775807')",
    "redis.call('SET', KEYS[1], 'v', 'EX', 0)",
    "return redis.call('SET', KEYS[1], 'v', 'NX', 'XX')",
    "return redis.call('SET', KEYS[1], 'v', 'GET')",
    "return redis.call('PEXPIRE', KEYS[1], 100, 'XX')",
    "redis.call('RPUSH', KEYS[1], 'a','b','c'); return redis.call('LPOP', KEYS[1], 2)",
    "return redis.call('LPOP', KEYS[1], 0)",
    "redis.call('RPUSH', KEYS[1], 'a'); return redis.call('LPOP', KEYS[1], 0)",
    "return redis.call('HSET', KEYS[1], 'a')",
    "return redis.call('TTL', KEYS[1])",
    "return redis.call('TYPE', KEYS[1])",
    "return redis.call('TIME')[1] ~= nil",
    "local t = {} for i=1,10 do t[i]=i end return #cjson.encode(t)",
    "return cjson.encode({{{{{}}}}})",
    "return unpack({1,2})",
    "return select('#', 1, 2)",
    "return bit.band(0xff, 0x0f, 0x3)",
    "return bit.bor(1, 2, 4)",
    "return bit.bxor(0xffffffff, 1)",
    "return bit.tohex(255)",
    "return bit.tohex(-1, -4)",
    "return bit.tohex(255, 2)",
    "return bit.lshift(1, 31)",
    "return bit.rshift(-1, 28)",
    "return bit.arshift(-256, 4)",
    "return bit.rol(0x12345678, 8)",
    "return bit.ror(0x12345678, 8)",
    "return bit.bswap(0x12345678)",
    "return bit.bnot(0)",
    "return bit.tobit(2^32 + 5)",
    "return bit.tobit(-1.7)",
    "return bit.lshift(1, 33)",
    "return type(loadstring('return 1'))",
    "return loadstring('return KEYS[1]')()",
    "local f = loadstring('return y'); return pcall(f)",
    "return coroutine.wrap(function() coroutine.yield(5) end)()",
    "return redis.call('ZRANGE', KEYS[1], 0, -1, 'REV')",
    "return redis.call('ZADD', KEYS[1], 'INCR', 1, 'a', 2, 'b')",
    "return redis.call('ZADD', KEYS[1], 'GT', 'LT', 1, 'a')",
    "return redis.call('EXPIRE', KEYS[1], 10, 'NX', 'XX')",
    "redis.call('SET', KEYS[1], 'x'); return redis.call('EXPIRE', KEYS[1], -1)",
    "return math.random() >= 0",
    "return string.rep('x', 3)",
]


async def _outcome(store: Store, lua: str, key: str) -> tuple[str, object]:
    try:
        return ("ok", await store.run_script(Script(name="snippet", lua=lua), [key], []))
    except ScriptError as exc:
        return ("error", str(exc).split("failed: ", 1)[1].split(" ", 1)[0])


async def test_snippets_behave_the_same_on_redis_and_memory(redis_url: str, unique: str) -> None:
    differences = []
    with anyio.fail_after(60):
        async with open_store(redis_url) as redis, open_memory_store() as memory:
            for index, lua in enumerate(SNIPPETS):
                key = f"relayna-test:{unique}:{index}"
                on_redis = await _outcome(redis, lua, key)
                on_memory = await _outcome(memory, lua, key)
                await redis.delete(key)
                if on_redis != on_memory:
                    differences.append((lua, on_redis, on_memory))
    assert differences == []


@pytest.mark.parametrize(
    "lua",
    [
        "return type(struct)",  # Redis bundles lua-struct; the memory store does not
        "return type(cmsgpack)",  # nor lua-cmsgpack
        "return redis.setresp(3)",  # nor RESP3 replies inside scripts
    ],
)
async def test_what_the_memory_store_does_not_offer_fails_loudly(lua: str) -> None:
    async with open_memory_store() as memory:
        with pytest.raises(ScriptError):
            await memory.run_script(Script(name="snippet", lua=lua), ["k"], [])
