"""List, set and hash commands of the memory store's interpreter."""

from __future__ import annotations

from collections.abc import Sequence

from relayna.transport._store_cmd_base import (
    INT_MAX,
    INT_MIN,
    OK,
    CommandTable,
    Reply,
    ReplyError,
    key_of,
    parse_int,
)
from relayna.transport._store_memory_core import MemoryCore

__all__ = ["COLLECTION_COMMANDS"]

COLLECTION_COMMANDS = CommandTable()
command = COLLECTION_COMMANDS.command

# -- lists --------------------------------------------------------------------------


@command("LPUSH", -3)
def _lpush(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.lpush(key_of(args[0]), *args[1:])


@command("RPUSH", -3)
def _rpush(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.rpush(key_of(args[0]), *args[1:])


def _pop(core: MemoryCore, args: Sequence[bytes], left: bool) -> Reply:
    if len(args) > 2:
        raise ReplyError("ERR syntax error")
    count = None
    if len(args) == 2:
        count = parse_int(args[1], "ERR value is out of range, must be positive")
        if count < 0:
            raise ReplyError("ERR value is out of range, must be positive")
    key = key_of(args[0])
    items: list[bytes] | None = core.typed(key, list)
    if not items:
        return None
    n = 1 if count is None else count
    taken = items[:n] if left else items[::-1][:n]
    if left:
        del items[: len(taken)]
    else:
        del items[len(items) - len(taken) :]
    core.drop_if_empty(key)
    return taken[0] if count is None else taken


@command("LPOP", -2)
def _lpop(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _pop(core, args, left=True)


@command("RPOP", -2)
def _rpop(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _pop(core, args, left=False)


@command("LRANGE", 4)
def _lrange(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.lrange(key_of(args[0]), parse_int(args[1]), parse_int(args[2]))


@command("LTRIM", 4)
def _ltrim(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    core.ltrim(key_of(args[0]), parse_int(args[1]), parse_int(args[2]))
    return OK


@command("LLEN", 2)
def _llen(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.llen(key_of(args[0]))


@command("LINDEX", 3)
def _lindex(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.lindex(key_of(args[0]), parse_int(args[1]))


@command("LREM", 4)
def _lrem(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    key, count, value = key_of(args[0]), parse_int(args[1]), args[2]
    items: list[bytes] | None = core.typed(key, list)
    if not items:
        return 0
    order = range(len(items) - 1, -1, -1) if count < 0 else range(len(items))
    limit = abs(count) or len(items)
    doomed = [i for i in order if items[i] == value][:limit]
    for i in sorted(doomed, reverse=True):
        del items[i]
    core.drop_if_empty(key)
    return len(doomed)


# -- sets ---------------------------------------------------------------------------


@command("SADD", -3)
def _sadd(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.sadd(key_of(args[0]), *args[1:])


@command("SREM", -3)
def _srem(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.srem(key_of(args[0]), *args[1:])


@command("SMEMBERS", 2)
def _smembers(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return sorted(core.smembers(key_of(args[0])))


@command("SISMEMBER", 3)
def _sismember(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return int(args[1] in (core.typed(key_of(args[0]), set) or ()))


@command("SCARD", 2)
def _scard(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return len(core.typed(key_of(args[0]), set) or ())


def _members(core: MemoryCore, raw_key: bytes) -> set[bytes]:
    return core.typed(key_of(raw_key), set) or set()


@command("SINTER", -2)
def _sinter(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    sets = [_members(core, k) for k in args]  # every key is type-checked, as in Redis
    return sorted(set.intersection(*sets))


@command("SUNION", -2)
def _sunion(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return sorted(set().union(*(_members(core, k) for k in args)))


@command("SDIFF", -2)
def _sdiff(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    first, *rest = [_members(core, k) for k in args]
    return sorted(first.difference(*rest))


# -- hashes -------------------------------------------------------------------------


def _fields(core: MemoryCore, raw_key: bytes) -> dict[bytes, bytes]:
    return core.typed(key_of(raw_key), dict) or {}


@command("HSET", -4)
def _hset(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    if len(args) % 2 == 0:
        raise ReplyError("ERR wrong number of arguments for 'hset' command")
    fields: dict[bytes, bytes] = core.create(key_of(args[0]), dict)
    added = 0
    for i in range(1, len(args), 2):
        added += args[i] not in fields
        fields[args[i]] = args[i + 1]
    return added


@command("HSETNX", 4)
def _hsetnx(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    fields: dict[bytes, bytes] = core.create(key_of(args[0]), dict)
    if args[1] in fields:
        return 0
    fields[args[1]] = args[2]
    return 1


@command("HGET", 3)
def _hget(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _fields(core, args[0]).get(args[1])


@command("HMGET", -3)
def _hmget(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    fields = _fields(core, args[0])
    return [fields.get(f) for f in args[1:]]


@command("HDEL", -3)
def _hdel(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    key = key_of(args[0])
    fields: dict[bytes, bytes] | None = core.typed(key, dict)
    if fields is None:
        return 0
    removed = sum(fields.pop(f, None) is not None for f in args[1:])
    core.drop_if_empty(key)
    return removed


@command("HGETALL", 2)
def _hgetall(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return [part for item in _fields(core, args[0]).items() for part in item]


@command("HKEYS", 2)
def _hkeys(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return list(_fields(core, args[0]))


@command("HVALS", 2)
def _hvals(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return list(_fields(core, args[0]).values())


@command("HLEN", 2)
def _hlen(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return len(_fields(core, args[0]))


@command("HEXISTS", 3)
def _hexists(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return int(args[1] in _fields(core, args[0]))


@command("HINCRBY", 4)
def _hincrby(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    amount = parse_int(args[2])
    fields: dict[bytes, bytes] = core.create(key_of(args[0]), dict)
    current = fields.get(args[1])
    value = 0 if current is None else parse_int(current, "ERR hash value is not an integer")
    if not INT_MIN <= value + amount <= INT_MAX:
        raise ReplyError("ERR increment or decrement would overflow")
    fields[args[1]] = b"%d" % (value + amount)
    return value + amount
