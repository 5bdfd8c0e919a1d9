"""The service event feed: one bounded, ordered feed of a service's status and
observation events, paged by a control plane (relayna-studio) with cursors.

Keys (``prefix`` defaults to ``relayna-service-events``)::

    {prefix}:feed                 list, oldest first, trimmed to feed_maxlen, TTL
    {prefix}:feed:seq             sequence of the newest entry, TTL
    {prefix}:feed:epoch           random id of this feed's life, TTL
    {prefix}:event:{event_key}    dedupe marker, TTL (``status:{task}:{event_id}``
                                  or ``observation:{sha256}``)

With ``cluster=True`` (Redis Cluster) the prefix is the keys' hash tag
(``{relayna-service-events}:feed`` ...), so one feed lives in one slot: every
append and read script touches that slot only. A feed is one list, so it does
not spread over the cluster; services that need more write throughput than one
slot's node give each service its own feed prefix.

Theory of operation. An append is one script: dedupe check, ``INCR`` of the
sequence, ``RPUSH``, ``LTRIM`` to the newest ``feed_maxlen``, TTLs, marker
last. Entries are therefore contiguous: the list holds sequences
``seq - len + 1 .. seq``, so the entry after cursor ``n`` is found by index
arithmetic, and a page is one ``LRANGE`` (O(page), never O(feed)). A cursor is
``{epoch}-{seq}``: monotonic within a feed's life and opaque to clients. A
feed that expired or was deleted starts a new epoch, so old cursors are
recognised. Reading after a cursor that fell off the retained window (or is
from another epoch) answers from the oldest retained entry with
``reset=True``: the reader learns that it missed events, never silently.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson

from relayna._validators import cluster_layout, key_prefix, positive
from relayna.contracts import is_valid_identifier
from relayna.errors import ContractError, StoreError
from relayna.observability._observation_codec import (
    encode_observation,
    encode_observation_feed_item,
)
from relayna.observability._observations import Observation
from relayna.transport import Script, Store, Value, run_script_calls, tag_prefix

__all__ = [
    "APPEND_FEED_SCRIPT",
    "FEED_APPEND_LUA_FUNCTION",
    "FEED_TYPE_CHECK_LUA",
    "FEED_MAX_LIMIT",
    "READ_FEED_SCRIPT",
    "FeedPage",
    "ServiceEventFeed",
    "ServiceEventFeedConfig",
    "encode_status_feed_item",
    "parse_feed_cursor",
    "status_feed_item",
]

#: Largest page a reader may ask for.
FEED_MAX_LIMIT = 500

#: A Lua function appending one entry (used by the append script and by the
#: status store's write-with-feed script). K: marker, feed, seq, epoch;
#: A: item, ttl_ms, maxlen, epoch_candidate. Returns the entry's sequence, 0
#: for a duplicate. The caller checks the feed key's type first.
FEED_APPEND_LUA_FUNCTION = """
local function relayna_feed_append(K, A)
  if redis.call('EXISTS', K[1]) == 1 then return 0 end
  if redis.call('EXISTS', K[2]) == 0 or redis.call('EXISTS', K[4]) == 0 then
    redis.call('SET', K[4], A[4])
    redis.call('SET', K[3], redis.call('LLEN', K[2]))
  end
  local seq = redis.call('INCR', K[3])
  redis.call('RPUSH', K[2], A[1])
  redis.call('LTRIM', K[2], -tonumber(A[3]), -1)
  redis.call('PEXPIRE', K[2], A[2])
  redis.call('PEXPIRE', K[3], A[2])
  redis.call('PEXPIRE', K[4], A[2])
  redis.call('SET', K[1], '1', 'PX', A[2])
  return seq
end
"""

#: Lua: fail (before any write) when the feed key is not a list.
FEED_TYPE_CHECK_LUA = """
local function relayna_feed_check(feed_key)
  local t = redis.call('TYPE', feed_key)['ok']
  if t ~= 'none' and t ~= 'list' then return redis.error_reply('WRONGTYPE feed key') end
  return nil
end
"""

_APPEND_LUA = (
    FEED_TYPE_CHECK_LUA
    + FEED_APPEND_LUA_FUNCTION
    + """
-- KEYS: marker, feed, seq, epoch   ARGV: item, ttl_ms, maxlen, epoch_candidate
local bad = relayna_feed_check(KEYS[2])
if bad then return bad end
return relayna_feed_append(KEYS, ARGV)
"""
)


APPEND_FEED_SCRIPT = Script(name="relayna.feed.append", lua=_APPEND_LUA)

_READ_LUA = """
-- KEYS: feed, seq, epoch   ARGV: after_epoch, after_seq, limit
local epoch = redis.call('GET', KEYS[3]) or ''
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local len = redis.call('LLEN', KEYS[1])
local head = seq - len + 1
local start = head
if ARGV[1] ~= '' and ARGV[1] == epoch then
  local after = tonumber(ARGV[2])
  if after >= head - 1 and after <= seq then start = after + 1 end
end
local first = start - head
local items = redis.call('LRANGE', KEYS[1], first, first + tonumber(ARGV[3]) - 1)
return {epoch, seq, head, start, items}
"""


READ_FEED_SCRIPT = Script(name="relayna.feed.read", lua=_READ_LUA)

_CURSOR = re.compile(r"([0-9a-f]{16})-([0-9]{1,18})")


def parse_feed_cursor(cursor: str) -> tuple[str, int]:
    """``(epoch, seq)`` of a cursor. Raises ContractError (reason ``invalid_cursor``)."""
    match = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise ContractError(
            "invalid feed cursor", errors=[("after", "not a feed cursor")], reason="invalid_cursor"
        )
    return match.group(1), int(match.group(2))


@attrs.frozen
class ServiceEventFeedConfig:
    """Feed location, retention and length (the original's defaults); ``cluster``
    selects the Redis Cluster key layout (the prefix as hash tag)."""

    prefix: str = attrs.field(default="relayna-service-events", validator=key_prefix)
    ttl_seconds: float = attrs.field(default=86400.0, validator=positive)
    feed_maxlen: int = attrs.field(default=5000, validator=positive)
    cluster: bool = attrs.field(default=False, validator=cluster_layout, kw_only=True)


@attrs.frozen
class FeedPage:
    """One page: ``items`` oldest first, each with its ``cursor``."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    reset: bool
    has_more: bool
    #: With ``reset``: how many events were missed, when known (same epoch).
    skipped: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": len(self.items),
            "items": self.items,
            "next_cursor": self.next_cursor,
            "reset": self.reset,
            "has_more": self.has_more,
            "skipped": self.skipped,
        }


def status_feed_item(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(event_key, item)`` for a stored status event, None when it lacks ids."""
    key_and_head = _status_head(event)
    if key_and_head is None:
        return None
    key, head = key_and_head
    head["payload"] = dict(event)
    return key, head


def _status_head(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    task_id, event_id = event.get("task_id"), event.get("event_id")
    if not is_valid_identifier(task_id) or not is_valid_identifier(event_id):
        return None
    meta = event.get("meta")
    parent = meta.get("parent_task_id") if isinstance(meta, dict) else None
    head = {
        "task_id": task_id,
        "event_type": f"status.{str(event.get('status')).lower()}",
        "source_kind": "status",
        "component": "status",
        "timestamp": event.get("timestamp"),
        "event_id": event_id,
        "correlation_id": event.get("correlation_id"),
        "parent_task_id": parent if isinstance(parent, str) else None,
    }
    return f"status:{task_id}:{event_id}", head


def encode_status_feed_item(event: Mapping[str, Any], payload: bytes) -> tuple[str, bytes] | None:
    """``(event_key, item JSON)`` reusing the event's already encoded JSON as the payload.

    The status write encodes the event once; the feed item embeds those bytes
    instead of encoding the event a second time.
    """
    key_and_head = _status_head(event)
    if key_and_head is None:
        return None
    key, head = key_and_head
    return key, orjson.dumps(head)[:-1] + b',"payload":' + payload + b"}"


class ServiceEventFeed:
    """Append status/observation events; read pages after a cursor (see the module doc)."""

    def __init__(self, store: Store, config: ServiceEventFeedConfig | None = None) -> None:
        self.store = store
        self.config = config or ServiceEventFeedConfig()
        self._ttl_ms = max(1, round(self.config.ttl_seconds * 1000))
        p = self._prefix = tag_prefix(self.config.prefix, self.config.cluster)
        self._feed, self._seq, self._epoch = f"{p}:feed", f"{p}:feed:seq", f"{p}:feed:epoch"
        self.bad_entries = 0
        self._epoch_base = secrets.token_hex(6)
        self._epochs = 0

    def _call(self, event_key: str, item: Mapping[str, Any]) -> tuple[list[str], list[Value]]:
        return self.append_call(event_key, orjson.dumps(item))

    def append_call(self, event_key: str, item: bytes) -> tuple[list[str], list[Value]]:
        """Keys and arguments of ``relayna_feed_append`` for one encoded entry."""
        keys = [f"{self._prefix}:event:{event_key}", self._feed, self._seq, self._epoch]
        return keys, [item, self._ttl_ms, self.config.feed_maxlen, self._epoch_candidate()]

    def batch_target(self) -> tuple[str, list[str], tuple[int, int, str]]:
        """For a script appending many entries at once: the marker key prefix
        (``+ event_key``), the feed, sequence and epoch keys, and the TTL (ms),
        maxlen and epoch candidate."""
        keys = [self._feed, self._seq, self._epoch]
        marker = f"{self._prefix}:event:"
        return marker, keys, (self._ttl_ms, self.config.feed_maxlen, self._epoch_candidate())

    def _epoch_candidate(self) -> str:
        """A fresh epoch id per call (used only when the feed is created): a random
        per-instance prefix and a counter, so no random bytes are drawn per append."""
        self._epochs += 1
        return f"{self._epoch_base}{self._epochs & 0xFFFF:04x}"

    async def append_many(
        self, entries: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[int | StoreError]:
        """Append ``(event_key, item)`` entries in one round trip.

        Each result is the entry's sequence, 0 for a duplicate, or the
        StoreError of that call. Raises StoreError when the round trip failed.
        """
        return await self._append([self._call(key, item) for key, item in entries])

    async def _append(self, calls: list[tuple[list[str], list[Value]]]) -> list[int | StoreError]:
        if not calls:
            return []
        results = await run_script_calls(self.store, APPEND_FEED_SCRIPT, calls)
        return [r if isinstance(r, StoreError) else int(r) for r in results]

    async def append_statuses(self, events: Sequence[Mapping[str, Any]]) -> list[int | StoreError]:
        return await self.append_many([e for e in map(status_feed_item, events) if e is not None])

    async def append_observations(
        self, events: Sequence[Observation | Mapping[str, Any]]
    ) -> list[int | StoreError]:
        """Append observations (those with a valid task id) in one round trip."""
        encoded = [e for e in map(encode_observation, events) if e is not None]
        return await self._append(
            [self.append_call(*encode_observation_feed_item(e)) for e in encoded]
        )

    async def read(self, after: str | None = None, limit: int = 100) -> FeedPage:
        """Events after ``after`` (None: from the oldest retained), oldest first.

        Raises:
            ContractError: a malformed cursor, a cursor ahead of the feed, or
                ``limit`` outside 1..FEED_MAX_LIMIT (reason ``invalid_cursor``
                / ``schema``).
            StoreError: the store failed.
        """
        window = await self._window(after, limit)
        items: list[dict[str, Any]] = []
        for position, entry in enumerate(window.entries, window.start):
            item = _load_object(entry)
            if item is None:
                self.bad_entries += 1
                continue
            item["cursor"] = f"{window.epoch}-{position}"
            items.append(item)
        return FeedPage(
            items=items,
            next_cursor=window.next_cursor,
            reset=window.reset,
            has_more=window.has_more,
            skipped=window.skipped,
        )

    async def read_json(self, after: str | None = None, limit: int = 100) -> bytes:
        """The page :meth:`read` answers, as the JSON of :meth:`FeedPage.to_dict`.

        Built from the stored bytes: each entry is parsed only to check that
        it is a JSON object (a bad entry is skipped and counted, as in
        :meth:`read`) and its ``cursor`` is spliced in; nothing is encoded
        again. Raises as :meth:`read`.
        """
        window = await self._window(after, limit)
        epoch = window.epoch.encode()
        parts: list[bytes] = []
        for position, entry in enumerate(window.entries, window.start):
            item = _load_object(entry)
            if item is None:
                self.bad_entries += 1
            elif item and "cursor" not in item:
                parts.append(b'%s,"cursor":"%s-%d"}' % (entry.rstrip()[:-1], epoch, position))
            else:  # {} or an entry that carries its own cursor: rare, encode it
                item["cursor"] = f"{window.epoch}-{position}"
                parts.append(orjson.dumps(item))
        tail = {
            "next_cursor": window.next_cursor,
            "reset": window.reset,
            "has_more": window.has_more,
            "skipped": window.skipped,
        }
        return b'{"count":%d,"items":[%s],%s' % (
            len(parts),
            b",".join(parts),
            orjson.dumps(tail)[1:],
        )

    async def _window(self, after: str | None, limit: int) -> _Window:
        if type(limit) is not int or not 1 <= limit <= FEED_MAX_LIMIT:
            raise ContractError(
                "invalid limit", errors=[("limit", f"must be 1..{FEED_MAX_LIMIT}")], reason="schema"
            )
        after_epoch, after_seq = ("", 0) if after is None else parse_feed_cursor(after)
        epoch_raw, seq, head, start, raw = await self.store.run_script(
            READ_FEED_SCRIPT,
            [self._feed, self._seq, self._epoch],
            [after_epoch, after_seq, limit],
        )
        epoch = epoch_raw.decode() if isinstance(epoch_raw, bytes) else str(epoch_raw or "")
        seq, head, start = int(seq), int(head), int(start)
        reset = False
        skipped: int | None = None
        if after is not None:
            if after_epoch == epoch and after_seq > seq:
                raise ContractError(
                    "feed cursor is ahead of the feed",
                    errors=[("after", "cursor from the future")],
                    reason="invalid_cursor",
                )
            reset = after_epoch != epoch or after_seq < head - 1
            if reset and after_epoch == epoch:
                skipped = head - 1 - after_seq
        entries = [e if isinstance(e, bytes) else str(e).encode() for e in raw]
        return _Window(epoch, seq, start, entries, reset, skipped)


@attrs.frozen
class _Window:
    """What one read script answered: the entries from ``start`` and the page's flags."""

    epoch: str
    seq: int
    start: int
    entries: list[bytes]
    reset: bool
    skipped: int | None

    @property
    def last(self) -> int:
        return self.start + len(self.entries) - 1

    @property
    def next_cursor(self) -> str | None:
        return f"{self.epoch}-{self.last}" if self.epoch else None  # empty feed: start over

    @property
    def has_more(self) -> bool:
        return self.last < self.seq


def _load_object(entry: bytes) -> dict[str, Any] | None:
    try:
        item = orjson.loads(entry)
    except orjson.JSONDecodeError:
        return None
    return item if isinstance(item, dict) else None
