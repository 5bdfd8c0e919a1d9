"""Sorted-set commands of the memory store's interpreter.

Members are ordered by ``(score, member bytes)`` as in Redis; ``REV`` walks
that order backwards. Scores in replies are formatted as Redis 7.0 does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from relayna.transport._store_cmd_base import (
    SYNTAX,
    CommandTable,
    Reply,
    ReplyError,
    format_double,
    key_of,
    parse_float,
    parse_int,
    upper_words,
)
from relayna.transport._store_memory_core import MemoryCore, ZsetBox

__all__ = ["ZSET_COMMANDS"]

ZSET_COMMANDS = CommandTable()
command = ZSET_COMMANDS.command

_Bound = tuple[float, bool]  # (value, exclusive)


def _scores(core: MemoryCore, raw_key: bytes) -> dict[bytes, float]:
    box = core.typed(key_of(raw_key), ZsetBox)
    return box.scores if box is not None else {}


def _ordered(scores: dict[bytes, float], rev: bool) -> list[tuple[float, bytes]]:
    return sorted(((s, m) for m, s in scores.items()), reverse=rev)


def _bound(raw: bytes) -> _Bound:
    exclusive = raw.startswith(b"(")
    value = parse_float(raw[1:] if exclusive else raw, "ERR min or max is not a float")
    return value, exclusive


def _above(score: float, low: _Bound) -> bool:
    return score > low[0] if low[1] else score >= low[0]


def _below(score: float, high: _Bound) -> bool:
    return score < high[0] if high[1] else score <= high[0]


def _index_slice(length: int, start: int, stop: int) -> slice:
    if start < 0:
        start = max(length + start, 0)
    if stop < 0:
        stop = length + stop
    if start > stop or start >= length:
        return slice(0, 0)
    return slice(start, min(stop, length - 1) + 1)


def _reply(items: list[tuple[float, bytes]], withscores: bool) -> list[bytes]:
    if not withscores:
        return [m for _, m in items]
    return [part for s, m in items for part in (m, format_double(s))]


def _limit(items: list[tuple[float, bytes]], offset: int, count: int) -> list[tuple[float, bytes]]:
    if offset < 0:
        return []
    return items[offset:] if count < 0 else items[offset : offset + count]


@command("ZADD", -4)
def _zadd(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    flags: set[bytes] = set()
    i = 1
    while i < len(args) and args[i].upper() in (b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"):
        flags.add(args[i].upper())
        i += 1
    pairs = args[i:]
    if not pairs or len(pairs) % 2:
        raise ReplyError(SYNTAX)
    if {b"NX", b"XX"} <= flags:
        raise ReplyError("ERR XX and NX options at the same time are not compatible")
    if (b"NX" in flags and flags & {b"GT", b"LT"}) or {b"GT", b"LT"} <= flags:
        raise ReplyError("ERR GT, LT, and/or NX options at the same time are not compatible")
    if b"INCR" in flags and len(pairs) > 2:
        raise ReplyError("ERR INCR option supports a single increment-element pair")
    updates = [(parse_float(pairs[j]), pairs[j + 1]) for j in range(0, len(pairs), 2)]
    key = key_of(args[0])
    box = core.typed(key, ZsetBox)
    if box is None:
        if b"XX" in flags:
            return None if b"INCR" in flags else 0
        box = core.create(key, ZsetBox)
    scores, added, changed = box.scores, 0, 0
    result: float | None = None
    for score, member in updates:
        old = scores.get(member)
        if (b"NX" in flags and old is not None) or (b"XX" in flags and old is None):
            continue
        new = score + old if b"INCR" in flags and old is not None else score
        if math.isnan(new):
            core.drop_if_empty(key)
            raise ReplyError("ERR resulting score is not a number (NaN)")
        if old is not None and ((b"GT" in flags and new <= old) or (b"LT" in flags and new >= old)):
            continue
        result = new
        if old is None:
            added += 1
        elif old != new:
            changed += 1
        scores[member] = new
    core.drop_if_empty(key)
    if b"INCR" in flags:
        return None if result is None else format_double(result)
    return added + changed if b"CH" in flags else added


@command("ZINCRBY", 4)
def _zincrby(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    amount = parse_float(args[1])
    scores = core.create(key_of(args[0]), ZsetBox).scores
    new = scores.get(args[2], 0.0) + amount
    if math.isnan(new):
        core.drop_if_empty(key_of(args[0]))
        raise ReplyError("ERR resulting score is not a number (NaN)")
    scores[args[2]] = new
    return format_double(new)


@command("ZREM", -3)
def _zrem(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return core.zrem(key_of(args[0]), *args[1:])


@command("ZSCORE", 3)
def _zscore(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    score = _scores(core, args[0]).get(args[1])
    return None if score is None else format_double(score)


@command("ZMSCORE", -3)
def _zmscore(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    scores = _scores(core, args[0])
    return [None if (s := scores.get(m)) is None else format_double(s) for m in args[1:]]


@command("ZCARD", 2)
def _zcard(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return len(_scores(core, args[0]))


@command("ZCOUNT", 4)
def _zcount(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    low, high = _bound(args[1]), _bound(args[2])
    return sum(_above(s, low) and _below(s, high) for s in _scores(core, args[0]).values())


def _by_score(
    core: MemoryCore, raw_key: bytes, low: _Bound, high: _Bound, rev: bool
) -> list[tuple[float, bytes]]:
    items = _ordered(_scores(core, raw_key), rev)
    return [(s, m) for s, m in items if _above(s, low) and _below(s, high)]


def _range_options(options: Sequence[bytes], *, limit_ok: bool) -> tuple[bool, int, int]:
    withscores, offset, count = False, 0, -1
    i = 0
    while i < len(options):
        word = options[i].upper()
        if word == b"WITHSCORES":
            withscores = True
        elif word == b"LIMIT" and limit_ok and i + 2 < len(options):
            offset, count = parse_int(options[i + 1]), parse_int(options[i + 2])
            i += 2
        else:
            raise ReplyError(SYNTAX)
        i += 1
    return withscores, offset, count


@command("ZRANGE", -4)
def _zrange(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    words = upper_words(args[3:])
    if b"BYLEX" in words:
        raise ReplyError("ERR the memory store does not offer ZRANGE BYLEX")
    by_score, rev = b"BYSCORE" in words, b"REV" in words
    rest = [a for a, w in zip(args[3:], words, strict=True) if w not in (b"BYSCORE", b"REV")]
    withscores, offset, count = _range_options(rest, limit_ok=by_score)
    if b"LIMIT" in words and not by_score:
        raise ReplyError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    if by_score:
        low, high = (
            (_bound(args[2]), _bound(args[1])) if rev else (_bound(args[1]), _bound(args[2]))
        )
        items = _limit(_by_score(core, args[0], low, high, rev), offset, count)
        return _reply(items, withscores)
    start, stop = parse_int(args[1]), parse_int(args[2])
    items = _ordered(_scores(core, args[0]), rev)
    return _reply(items[_index_slice(len(items), start, stop)], withscores)


@command("ZREVRANGE", -4)
def _zrevrange(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    withscores, _, _ = _range_options(args[3:], limit_ok=False)
    start, stop = parse_int(args[1]), parse_int(args[2])
    items = _ordered(_scores(core, args[0]), rev=True)
    return _reply(items[_index_slice(len(items), start, stop)], withscores)


def _range_by_score(core: MemoryCore, args: Sequence[bytes], rev: bool) -> Reply:
    first, second = _bound(args[1]), _bound(args[2])
    low, high = (second, first) if rev else (first, second)  # ZREVRANGEBYSCORE takes max min
    withscores, offset, count = _range_options(args[3:], limit_ok=True)
    items = _limit(_by_score(core, args[0], low, high, rev=rev), offset, count)
    return _reply(items, withscores)


@command("ZRANGEBYSCORE", -4)
def _zrangebyscore(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _range_by_score(core, args, rev=False)


@command("ZREVRANGEBYSCORE", -4)
def _zrevrangebyscore(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _range_by_score(core, args, rev=True)


@command("ZREMRANGEBYSCORE", 4)
def _zremrangebyscore(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    doomed = _by_score(core, args[0], _bound(args[1]), _bound(args[2]), rev=False)
    return core.zrem(key_of(args[0]), *(m for _, m in doomed)) if doomed else 0


@command("ZREMRANGEBYRANK", 4)
def _zremrangebyrank(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    start, stop = parse_int(args[1]), parse_int(args[2])
    items = _ordered(_scores(core, args[0]), rev=False)
    doomed = items[_index_slice(len(items), start, stop)]
    return core.zrem(key_of(args[0]), *(m for _, m in doomed)) if doomed else 0


def _rank(core: MemoryCore, args: Sequence[bytes], rev: bool) -> Reply:
    if len(args) > 2:
        raise ReplyError(SYNTAX)
    for index, (_, member) in enumerate(_ordered(_scores(core, args[0]), rev)):
        if member == args[1]:
            return index
    return None


@command("ZRANK", -3)
def _zrank(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _rank(core, args, rev=False)


@command("ZREVRANK", -3)
def _zrevrank(core: MemoryCore, args: Sequence[bytes]) -> Reply:
    return _rank(core, args, rev=True)
