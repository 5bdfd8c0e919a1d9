"""The status store: history, latest, children, dedupe and pubsub on a Store.

Key families (``prefix`` defaults to ``relayna``)::

    {prefix}:history:{task_id}          list, newest first, LTRIM to max_history, TTL
    {prefix}:channel:{task_id}          pubsub channel (the SSE live path)
    {prefix}:event:{task_id}:{event_id} dedupe marker, TTL
    {prefix}:children:{parent_task_id}  set of child task ids, TTL

Theory of operation: one write is one :class:`~relayna.transport.Script`
(the same Lua on Redis and on the memory store), so it is one atomic round
trip. The script checks the marker first and writes it *last*: a write that
fails part-way (a key of the wrong type, a server error) never leaves a
marker behind, so the hub's retry writes the event again instead of dropping
it as a duplicate. (The original wrote the marker with SET NX *before* a
separate pipeline, so a failed pipeline lost the event.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from relayna._validators import key_prefix, positive
from relayna.errors import ContractError, StoreError
from relayna.observability import (
    FEED_APPEND_LUA_FUNCTION,
    FEED_TYPE_CHECK_LUA,
    ServiceEventFeed,
    encode_status_feed_item,
)
from relayna.status._event import EventDict, dumps_event, loads_stored, validate_identifier
from relayna.transport import Script, Store, Value

__all__ = [
    "WRITE_STATUS_AND_FEED_SCRIPT",
    "WRITE_STATUS_SCRIPT",
    "StatusStore",
    "StatusStoreConfig",
]

log = logging.getLogger("relayna.status")

_WRITE_LUA = """
-- KEYS: marker, history, [children]   ARGV: payload, ttl_ms, max_history, channel, task_id
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'list' then return redis.error_reply('WRONGTYPE history key') end
if #KEYS >= 3 then
  local c = redis.call('TYPE', KEYS[3])['ok']
  if c ~= 'none' and c ~= 'set' then return redis.error_reply('WRONGTYPE children key') end
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if #KEYS >= 3 then
  redis.call('SADD', KEYS[3], ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return 1
"""


#: The atomic status write (see the module docstring).
WRITE_STATUS_SCRIPT = Script(name="relayna.status.write", lua=_WRITE_LUA)


_WRITE_WITH_FEED_LUA = (
    FEED_TYPE_CHECK_LUA
    + FEED_APPEND_LUA_FUNCTION
    + """
-- KEYS: marker, history, children (the history key again when ARGV[6] ~= '1'),
--       feed marker, feed, feed seq, feed epoch
-- ARGV: payload, ttl_ms, max_history, channel, task_id, has_children,
--       feed item, feed ttl_ms, feed maxlen, feed epoch candidate
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'list' then return redis.error_reply('WRONGTYPE history key') end
local kids = ARGV[6] == '1'
if kids then
  local c = redis.call('TYPE', KEYS[3])['ok']
  if c ~= 'none' and c ~= 'set' then return redis.error_reply('WRONGTYPE children key') end
end
local bad = relayna_feed_check(KEYS[5])
if bad then return bad end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if kids then
  redis.call('SADD', KEYS[3], ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[1])
relayna_feed_append({KEYS[4], KEYS[5], KEYS[6], KEYS[7]}, {ARGV[7], ARGV[8], ARGV[9], ARGV[10]})
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return 1
"""
)


#: The status write that also appends the event to the service event feed, in
#: the same atomic round trip (used when the store has a feed).
WRITE_STATUS_AND_FEED_SCRIPT = Script(
    name="relayna.status.write_with_feed", lua=_WRITE_WITH_FEED_LUA
)


@attrs.frozen
class StatusStoreConfig:
    """Where and how long status data lives.

    Attributes:
        prefix: key prefix (the anchor's lifespan default ``relayna``).
        ttl_seconds: TTL of history, children and dedupe markers.
        max_history: history length kept per task (older entries are trimmed).
    """

    prefix: str = attrs.field(default="relayna", validator=key_prefix)
    ttl_seconds: float = attrs.field(default=86400.0, validator=positive)
    max_history: int = attrs.field(default=50, validator=positive)


class StatusStore:
    """Status history, latest status, children and the live channel of tasks.

    Works on any :class:`~relayna.transport.Store` (memory or Redis). Every
    ``task_id`` is validated before it is used in a key.
    """

    def __init__(
        self,
        store: Store,
        config: StatusStoreConfig | None = None,
        *,
        feed: ServiceEventFeed | None = None,
    ) -> None:
        self.store = store
        self.config = config or StatusStoreConfig()
        self.feed = feed
        self._script = WRITE_STATUS_SCRIPT if feed is None else WRITE_STATUS_AND_FEED_SCRIPT
        self._bad_entries = 0
        self._ttl_ms = max(1, round(self.config.ttl_seconds * 1000))

    # -- keys ------------------------------------------------------------------

    def history_key(self, task_id: str) -> str:
        return self._history_key(validate_identifier(task_id))

    def channel(self, task_id: str) -> str:
        return self._channel(validate_identifier(task_id))

    def event_key(self, task_id: str, event_id: str) -> str:
        return self._event_key(
            validate_identifier(task_id), validate_identifier(event_id, "event_id")
        )

    # The key formats, for identifiers already validated (the write path
    # validates each once per event).
    def _history_key(self, task_id: str) -> str:
        return f"{self.config.prefix}:history:{task_id}"

    def _channel(self, task_id: str) -> str:
        return f"{self.config.prefix}:channel:{task_id}"

    def _event_key(self, task_id: str, event_id: str) -> str:
        return f"{self.config.prefix}:event:{task_id}:{event_id}"

    def children_key(self, parent_task_id: str) -> str:
        return (
            f"{self.config.prefix}:children:{validate_identifier(parent_task_id, 'parent_task_id')}"
        )

    @property
    def bad_entries(self) -> int:
        """Stored entries skipped on read because they were not valid events."""
        return self._bad_entries

    # -- writes ----------------------------------------------------------------

    async def prepare(self) -> None:
        """Load the write script into the server now (stores that cache
        scripts), so the first status write is one round trip, not three.

        Raises:
            StoreError: the store failed.
        """
        load = getattr(self.store, "load_script", None)
        if load is not None:
            await load(self._script)

    async def write(self, event: Mapping[str, Any]) -> bool:
        """Store one event atomically; ``True`` if stored, ``False`` if a duplicate.

        ``event`` is a wire dict with a valid ``task_id`` and ``event_id``. A
        valid ``meta.parent_task_id`` different from ``task_id`` adds the task
        to the parent's children set.

        Raises:
            ContractError: invalid ``task_id`` / ``event_id``.
            StoreError: the store failed; nothing (in particular no dedupe
                marker) was written, so retrying is safe.
        """
        keys, args = self._script_call(event)
        result = await self.store.run_script(self._script, keys, args)
        return bool(int(result))

    async def write_many(self, events: Sequence[Mapping[str, Any]]) -> list[bool | StoreError]:
        """Store several events in one round trip (one script call each, in order).

        Each entry is what :meth:`write` would return for that event, or the
        :class:`StoreError` it failed with (nothing of that event was written).
        Stores without ``run_script_many`` get one ``run_script`` per event.

        Raises:
            ContractError: an invalid ``task_id`` / ``event_id`` (nothing sent).
            StoreError: the round trip failed; retrying every event is safe.
        """
        calls = [self._script_call(event) for event in events]
        many = getattr(self.store, "run_script_many", None)
        if many is None:
            out: list[bool | StoreError] = []
            for keys, args in calls:
                try:
                    out.append(bool(int(await self.store.run_script(self._script, keys, args))))
                except StoreError as exc:
                    out.append(exc)
            return out
        results = await many(self._script, calls)
        return [r if isinstance(r, StoreError) else bool(int(r)) for r in results]

    def _script_call(self, event: Mapping[str, Any]) -> tuple[list[str], list[Value]]:
        task_id = validate_identifier(event.get("task_id"))
        event_id = validate_identifier(event.get("event_id"), "event_id")
        keys = [self._event_key(task_id, event_id), self._history_key(task_id)]
        meta = event.get("meta")
        if meta:
            parent = meta.get("parent_task_id") if isinstance(meta, Mapping) else None
            if isinstance(parent, str) and parent != task_id:
                keys.append(self.children_key(parent))
        payload = dumps_event(event)
        args: list[Value] = [
            payload,
            self._ttl_ms,
            self.config.max_history,
            self._channel(task_id),
            task_id,
        ]
        if self.feed is not None:
            item = encode_status_feed_item(event, payload)
            assert item is not None  # task_id and event_id were validated above
            feed_keys, feed_args = self.feed.append_call(*item)
            args.append(b"1" if len(keys) == 3 else b"0")
            if len(keys) == 2:
                keys.append(keys[1])  # placeholder: no children key
            keys.extend(feed_keys)
            args.extend(feed_args)
        return keys, args

    # -- reads -----------------------------------------------------------------

    def _parse(self, raw: bytes, task_id: str) -> EventDict | None:
        try:
            event = loads_stored(raw)
        except ContractError as exc:
            self._bad_entries += 1
            log.warning("skipping a malformed status entry for task %s: %s", task_id, exc)
            return None
        return event

    async def history(self, task_id: str, limit: int | None = None) -> list[EventDict]:
        """The task's stored events, **newest first**, at most ``limit``."""
        stop = -1 if limit is None else max(limit, 0) - 1
        if stop == -1 and limit is not None:
            return []
        raw = await self.store.lrange(self.history_key(task_id), 0, stop)
        return [e for e in (self._parse(r, task_id) for r in raw) if e is not None]

    async def latest(self, task_id: str) -> EventDict | None:
        """The newest stored event of the task, or ``None``."""
        raw = await self.store.lindex(self.history_key(task_id), 0)
        return None if raw is None else self._parse(raw, task_id)

    async def children(self, parent_task_id: str, limit: int | None = None) -> list[str]:
        """Child task ids of ``parent_task_id``, sorted, at most ``limit``."""
        raw = await self.store.smembers(self.children_key(parent_task_id))
        members = sorted(m.decode() for m in raw)
        return members if limit is None else members[: max(limit, 0)]
