"""Key, string, pubsub and server commands of the memory store's interpreter."""

from __future__ import annotations

import time
from collections.abc import Sequence

from relayna.transport._store_cmd_base import (
    INT_MAX,
    INT_MIN,
    OK,
    SYNTAX,
    CommandTable,
    Reply,
    ReplyError,
    Status,
    key_of,
    parse_int,
    ttl_ms,
    upper_words,
)
from relayna.transport._store_memory_core import MemoryCore

__all__ = ["KEY_COMMANDS"]

KEY_COMMANDS = CommandTable()
command = KEY_COMMANDS.command

# -- keys -------------------------------------------------------------------------

_TYPE_NAMES: dict[type, bytes] = {bytes: b"string", list: b"list", set: b"set", dict: b"hash"}


@command("DEL", -2)
def _del(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.delete(*map(key_of, args))


@command("EXISTS", -2)
def _exists(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return sum(core.exists(key_of(k)) for k in args)


@command("TYPE", 2)
def _type(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    value = core.live(key_of(args[0]))
    if value is None:
        return Status(b"none")
    return Status(_TYPE_NAMES.get(type(value), b"zset"))


def _expire(core: MemoryCore, args: Sequence[bytes], unit: int, cmd: str) -> Reply:
    key = key_of(args[0])
    ms = ttl_ms(args[1], unit, cmd)
    flags = set(upper_words(args[2:]))
    if not flags <= {b"NX", b"XX", b"GT", b"LT"} or (
        (b"NX" in flags and len(flags) > 1) or {b"GT", b"LT"} <= flags
    ):
        if b"NX" in flags and len(flags) > 1:
            raise ReplyError("ERR NX and XX, GT or LT options at the same time are not compatible")
        if {b"GT", b"LT"} <= flags:
            raise ReplyError("ERR GT and LT options at the same time are not compatible")
        raise ReplyError(f"ERR Unsupported option {args[2].decode(errors='replace')}")
    if core.live(key) is None:
        return 0
    current = core.deadline(key)
    at = core.now() + ms / 1000
    if b"NX" in flags and current is not None:
        return 0
    if b"XX" in flags and current is None:
        return 0
    if b"GT" in flags and (current is None or at <= current):
        return 0
    if b"LT" in flags and current is not None and at >= current:
        return 0
    if ms <= 0:
        core.delete(key)
    else:
        core.set_deadline(key, at)
    return 1


@command("EXPIRE", -3)
def _expire_s(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _expire(core, args, 1000, "expire")


@command("PEXPIRE", -3)
def _pexpire(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _expire(core, args, 1, "pexpire")


def _remaining_ms(core: MemoryCore, key: str) -> int:
    if core.live(key) is None:
        return -2
    deadline = core.deadline(key)
    if deadline is None:
        return -1
    return max(round((deadline - core.now()) * 1000), 0)


@command("PTTL", 2)
def _pttl(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _remaining_ms(core, key_of(args[0]))


@command("TTL", 2)
def _ttl(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    ms = _remaining_ms(core, key_of(args[0]))
    return ms if ms < 0 else (ms + 500) // 1000


@command("PERSIST", 2)
def _persist(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    key = key_of(args[0])
    if core.deadline(key) is None:
        return 0
    core.set_deadline(key, None)
    return 1


# -- strings ----------------------------------------------------------------------


@command("GET", 2)
def _get(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.get(key_of(args[0]))


@command("MGET", -2)
def _mget(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    values = [core.live(key_of(k)) for k in args]
    return [v if isinstance(v, bytes) else None for v in values]


@command("SET", -3)
def _set(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    key, value = key_of(args[0]), args[1]
    nx = xx = get = keep = False
    ttl: int | None = None
    options = args[2:]
    i = 0
    while i < len(options):
        word = options[i].upper()
        if word in (b"NX", b"XX", b"GET", b"KEEPTTL"):
            nx, xx = nx or word == b"NX", xx or word == b"XX"
            get, keep = get or word == b"GET", keep or word == b"KEEPTTL"
        elif word in (b"EX", b"PX") and i + 1 < len(options) and ttl is None:
            ttl = ttl_ms(options[i + 1], 1000 if word == b"EX" else 1, "set")
            if ttl <= 0:
                raise ReplyError("ERR invalid expire time in 'set' command")
            i += 1
        elif word in (b"EXAT", b"PXAT"):
            raise ReplyError("ERR the memory store has no wall clock: EXAT/PXAT are not offered")
        else:
            raise ReplyError(SYNTAX)
        i += 1
    if (nx and xx) or (keep and ttl is not None):
        raise ReplyError(SYNTAX)
    old = core.get(key) if get else core.live(key)
    if (nx and old is not None) or (xx and old is None):
        return old if get else None
    core.put(key, value, keep_ttl=keep)
    if ttl is not None:
        core.set_deadline(key, core.now() + ttl / 1000)
    return old if get else OK


@command("SETNX", 3)
def _setnx(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return int(core.set(key_of(args[0]), args[1], nx=True))


@command("GETDEL", 2)
def _getdel(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    key = key_of(args[0])
    value = core.get(key)
    if value is not None:
        core.delete(key)
    return value


@command("STRLEN", 2)
def _strlen(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return len(core.get(key_of(args[0])) or b"")


@command("APPEND", 3)
def _append(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    key = key_of(args[0])
    value = (core.get(key) or b"") + args[1]
    core.put(key, value, keep_ttl=True)
    return len(value)


def _incr_by(core: MemoryCore, raw_key: bytes, amount: int) -> Reply:
    key = key_of(raw_key)
    current = core.get(key)
    value = 0 if current is None else parse_int(current)
    if not INT_MIN <= value + amount <= INT_MAX:
        raise ReplyError("ERR increment or decrement would overflow")
    core.put(key, b"%d" % (value + amount), keep_ttl=True)
    return value + amount


@command("INCR", 2)
def _incr(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _incr_by(core, args[0], 1)


@command("DECR", 2)
def _decr(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _incr_by(core, args[0], -1)


@command("INCRBY", 3)
def _incrby(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _incr_by(core, args[0], parse_int(args[1]))


@command("DECRBY", 3)
def _decrby(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _incr_by(core, args[0], -parse_int(args[1]))


# -- pubsub and server ------------------------------------------------------------


@command("PUBLISH", 3)
def _publish(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.publish(key_of(args[0]), args[1])


@command("SPUBLISH", 3)
def _spublish(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.spublish(key_of(args[0]), args[1])


@command("TIME", 1)
def _time(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    micros = time.time_ns() // 1000
    return [b"%d" % (micros // 1_000_000), b"%d" % (micros % 1_000_000)]
