"""The observation store: per-task observation history on a Store (memory or Redis).

Keys (``prefix`` defaults to ``relayna-observations``, as the original)::

    {prefix}:history:{task_id}         list, newest first, trimmed to history_maxlen, TTL
    {prefix}:event:{task_id}:{token}   dedupe marker, TTL; token = sha256 of the
                                       normalised event (sorted-key JSON)

One write is one :class:`~relayna.transport.Script` (dedupe check, push, trim,
TTL, marker last, like the status store), so a failed write leaves no marker
and can be retried. :meth:`ObservationStore.write_many` sends many writes in
one round trip (the sink's batches). Entries that do not decode on read are
skipped and counted (:attr:`ObservationStore.bad_entries`), never raised.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson

from relayna._validators import key_prefix, positive
from relayna.contracts import is_valid_identifier, validate_identifier
from relayna.errors import StoreError
from relayna.observability._graph_model import format_timestamp
from relayna.observability._observations import Observation
from relayna.transport import Script, Store, Value

__all__ = [
    "WRITE_OBSERVATION_SCRIPT",
    "ObservationStore",
    "ObservationStoreConfig",
    "observation_record",
]

log = logging.getLogger("relayna.observability")

_WRITE_LUA = """
-- KEYS: marker, history   ARGV: payload, ttl_ms, maxlen
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'list' then return redis.error_reply('WRONGTYPE history key') end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return 1
"""


#: The atomic observation write (see the module docstring).
WRITE_OBSERVATION_SCRIPT = Script(name="relayna.observations.write", lua=_WRITE_LUA)


@attrs.frozen
class ObservationStoreConfig:
    """Where observations live and for how long (the original's defaults)."""

    prefix: str = attrs.field(default="relayna-observations", validator=key_prefix)
    ttl_seconds: float = attrs.field(default=86400.0, validator=positive)
    history_maxlen: int = attrs.field(default=500, validator=positive)


def observation_record(event: Observation | Mapping[str, Any]) -> dict[str, Any]:
    """The stored JSON shape: the event's fields, ``event_type``, ``timestamp`` (UTC, ms)."""
    if isinstance(event, Observation):
        data = attrs.asdict(event, recurse=False)
        data["timestamp"] = format_timestamp(event.timestamp)
        data["event_type"] = event.event_type
        return data
    return dict(event)


def observation_token(record: Mapping[str, Any]) -> str:
    """sha256 of the normalised record (sorted keys): the dedupe token."""
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ObservationStore:
    """Observation history per task (reader and writer).

    Args:
        store: an open :class:`~relayna.transport.Store`.
        config: prefix, TTL and history length.
    """

    def __init__(self, store: Store, config: ObservationStoreConfig | None = None) -> None:
        self.store = store
        self.config = config or ObservationStoreConfig()
        self._ttl_ms = max(1, round(self.config.ttl_seconds * 1000))
        self.bad_entries = 0
        self.skipped_without_task = 0

    def history_key(self, task_id: str) -> str:
        return f"{self.config.prefix}:history:{validate_identifier(task_id)}"

    def _call(self, record: Mapping[str, Any]) -> tuple[list[str], list[Value]] | None:
        task_id = record.get("task_id")
        if not is_valid_identifier(task_id):
            return None
        payload = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        token = hashlib.sha256(payload).hexdigest()
        keys = [
            f"{self.config.prefix}:event:{task_id}:{token}",
            f"{self.config.prefix}:history:{task_id}",
        ]
        return keys, [payload, self._ttl_ms, self.config.history_maxlen]

    async def write(self, event: Observation | Mapping[str, Any]) -> bool:
        """Store one observation; False when it is a duplicate or has no valid task id.

        Raises:
            StoreError: nothing (no marker) was written; retrying is safe.
        """
        call = self._call(observation_record(event))
        if call is None:
            self.skipped_without_task += 1
            return False
        return bool(int(await self.store.run_script(WRITE_OBSERVATION_SCRIPT, *call)))

    async def write_many(
        self, events: Sequence[Observation | Mapping[str, Any]]
    ) -> list[bool | StoreError]:
        """Store several observations in one round trip (one script call each, in order).

        Entries without a valid task id are not sent (their result is False).

        Raises:
            StoreError: the round trip failed; retrying every event is safe.
        """
        calls: list[tuple[list[str], list[Value]]] = []
        index: list[int | None] = []
        for event in events:
            call = self._call(observation_record(event))
            if call is None:
                self.skipped_without_task += 1
                index.append(None)
            else:
                index.append(len(calls))
                calls.append(call)
        results: list[Any] = []
        if calls:
            many = getattr(self.store, "run_script_many", None)
            if many is not None:
                results = await many(WRITE_OBSERVATION_SCRIPT, calls)
            else:
                for keys, args in calls:
                    try:
                        results.append(
                            await self.store.run_script(WRITE_OBSERVATION_SCRIPT, keys, args)
                        )
                    except StoreError as exc:
                        results.append(exc)
        out: list[bool | StoreError] = []
        for i in index:
            if i is None:
                out.append(False)
            else:
                r = results[i]
                out.append(r if isinstance(r, StoreError) else bool(int(r)))
        return out

    async def history(self, task_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The task's observations, newest first; undecodable entries are skipped and counted."""
        if limit is not None and limit <= 0:
            return []
        raw = await self.store.lrange(
            self.history_key(task_id), 0, -1 if limit is None else limit - 1
        )
        out: list[dict[str, Any]] = []
        for entry in raw:
            try:
                value = orjson.loads(entry)
            except orjson.JSONDecodeError:
                value = None
            if not isinstance(value, dict) or not isinstance(value.get("event_type"), str):
                self.bad_entries += 1
                log.warning("skipping an undecodable observation entry of task %s", task_id)
                continue
            out.append(value)
        return out
