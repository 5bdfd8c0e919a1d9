"""Routing helpers: AMQP topic matching and stable shard hashing (pure functions)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

from relayna.errors import ContractError, TopologyError

__all__ = ["normalize_shards", "shard_for_key", "topic_matches"]


def topic_matches(pattern: str, key: str) -> bool:
    """Whether routing ``key`` matches topic binding ``pattern`` (AMQP semantics).

    Words are separated by ``.``; ``*`` matches exactly one word and ``#``
    matches zero or more words. Matching is exact otherwise (case-sensitive).
    As in RabbitMQ, the empty string has zero words (``#`` matches it, ``*``
    does not).
    """
    return _match(_words(pattern), _words(key))


def _words(value: str) -> tuple[str, ...]:
    return tuple(value.split(".")) if value else ()


@lru_cache(maxsize=1024)
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    # Dynamic programming over (pattern index, word index), iterative and
    # linear in len(pattern) * len(words): no exponential backtracking on '#'.
    m = len(words)
    reachable = [False] * (m + 1)
    reachable[0] = True
    for token in pattern:
        nxt = [False] * (m + 1)
        if token == "#":
            seen = False
            for j in range(m + 1):
                seen = seen or reachable[j]
                nxt[j] = seen
        else:
            for j in range(m):
                if reachable[j] and (token == "*" or token == words[j]):
                    nxt[j + 1] = True
        reachable = nxt
    return reachable[m]


def shard_for_key(key: str, shard_count: int) -> int:
    """The aggregation shard of ``key`` **[WIRE]**.

    ``int(sha256(key.encode("utf-8")).hexdigest(), 16) % shard_count``, as in
    the original, so that old and new processes agree on shard ownership.

    Raises:
        ContractError: ``key`` is empty (an aggregation event without
            ``meta.parent_task_id``).
        TopologyError: ``shard_count < 1``.
    """
    if shard_count < 1:
        raise TopologyError(f"shard_count must be >= 1, got {shard_count}")
    if not key:
        raise ContractError(
            "aggregation event has no shard key",
            errors=[("meta.parent_task_id", "required to route an aggregation event")],
        )
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % shard_count


def normalize_shards(shards: Iterable[int], shard_count: int) -> tuple[int, ...]:
    """Sorted unique shard numbers, each checked against ``0..shard_count-1``.

    Raises:
        TopologyError: no shard given, a non-integer, or one out of range.
    """
    values = list(shards)
    if not values:
        raise TopologyError("at least one aggregation shard must be selected")
    problems = [
        f"aggregation shard {s!r} is outside the configured range 0..{shard_count - 1}"
        for s in values
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < shard_count
    ]
    if problems:
        raise TopologyError(problems[0], problems=problems)
    return tuple(sorted(set(values)))
