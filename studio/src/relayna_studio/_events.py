"""The Studio event store: one script per insert (dedupe, histories, latest times, pubsub).

Theory of operation: :data:`INSERT_SCRIPT` checks the event's key first and
writes it *last* among the durable keys' checks — in one atomic step it

1. answers 0 (duplicate) when ``{p}:event:{dedupe_key}`` exists;
2. compares the event's timestamp with the task's latest one, which sets
   ``out_of_order``;
3. writes the event, pushes its dedupe key onto the service and task
   histories (trimmed to ``maxlen``), advances the latest-timestamp keys,
   sets the latest-ingested time, refreshes TTLs, and publishes the event on
   the service and task channels.

The original did a SET NX and then a separate pipeline, so a failed
pipeline left a marker without an event (lost on retry); here nothing is
written unless everything is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from relayna.contracts import loads
from relayna.errors import ContractError, StoreError
from relayna.transport import Script, Store
from relayna_studio._event_keys import EventKeys
from relayna_studio._event_model import dedupe_key, fixed_time, normalize_event, sort_key
from relayna_studio._timefmt import now_utc

__all__ = ["INSERT_SCRIPT", "EventStore", "IngestResult"]

log = logging.getLogger("relayna_studio.events")

_INSERT_LUA = """
-- KEYS: 1 event, 2 service history, 3 task history, 4 task latest, 5 latest-status,
--       6 latest-observation, 7 latest-ingested
-- ARGV: 1 doc tail, 2 ttl_ms (0: none), 3 maxlen, 4 dedupe key, 5 timestamp ('' if none),
--       6 ingested_at, 7 source_kind, 8 service channel, 9 task channel
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local ts = ARGV[5]
local latest = redis.call('GET', KEYS[4])
local ooo = (latest ~= false and ts ~= '' and ts < latest)
local doc = '{"out_of_order":' .. (ooo and 'true' or 'false') .. ARGV[1]
local ttl = tonumber(ARGV[2])
local maxlen = tonumber(ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, maxlen - 1)
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, maxlen - 1)
if ts ~= '' and (latest == false or ts > latest) then redis.call('SET', KEYS[4], ts) end
local kind = nil
if ARGV[7] == 'status' then kind = KEYS[5] elseif ARGV[7] == 'observation' then kind = KEYS[6] end
if kind and ts ~= '' then
  local current = redis.call('GET', kind)
  if current == false or ts > current then redis.call('SET', kind, ts) end
end
redis.call('SET', KEYS[7], ARGV[6])
if ttl > 0 then
  redis.call('SET', KEYS[1], doc, 'PX', ttl)
  for i = 2, 7 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
else
  redis.call('SET', KEYS[1], doc)
end
redis.call('PUBLISH', ARGV[8], doc)
redis.call('PUBLISH', ARGV[9], doc)
if ooo then return 2 end
return 1
"""


INSERT_SCRIPT = Script(name="relayna_studio.events.insert", lua=_INSERT_LUA)


class IngestResult:
    __slots__ = ("duplicate", "inserted", "invalid", "stored")

    def __init__(self) -> None:
        self.inserted = 0
        self.duplicate = 0
        self.invalid = 0
        #: Newly stored events (for the search index).
        self.stored: list[dict[str, Any]] = []

    def to_json(self) -> dict[str, int]:
        return {"inserted": self.inserted, "duplicate": self.duplicate, "invalid": self.invalid}


class EventStore:
    def __init__(
        self,
        store: Store,
        prefix: str = "studio:events",
        *,
        ttl_seconds: float | None = 86400.0,
        maxlen: int = 5000,
    ) -> None:
        self.store = store
        self.keys = EventKeys(prefix)
        self.ttl_ms = 0 if ttl_seconds is None else max(1, round(ttl_seconds * 1000))
        self.maxlen = maxlen

    def prepare(
        self, service_id: str, raw: object, ingest_method: str
    ) -> tuple[dict[str, Any], list[str], list[Any]]:
        """Validate one event and build its script call.

        Raises:
            ContractError: the event is invalid.
        """
        event = normalize_event(raw)
        key = dedupe_key(service_id, event)
        event.pop("_cursor", None)
        ingested_at = fixed_time(now_utc())
        doc = {
            "service_id": service_id,
            "ingest_method": ingest_method,
            "ingested_at": ingested_at,
            "dedupe_key": key,
            **event,
        }
        body = orjson.dumps(doc)
        tid = event["task_id"]
        k = self.keys
        keys = [
            k.event(key),
            k.service_history(service_id),
            k.task_history(service_id, tid),
            k.task_latest(service_id, tid),
            k.latest_status(service_id),
            k.latest_observation(service_id),
            k.latest_ingested(service_id),
        ]
        args = [
            b"," + body[1:],
            self.ttl_ms,
            self.maxlen,
            key,
            event["timestamp"] or "",
            ingested_at,
            event["source_kind"],
            k.service_channel(service_id),
            k.task_channel(service_id, tid),
        ]
        return doc, keys, args

    async def insert_many(
        self, service_id: str, raws: Sequence[object], ingest_method: str
    ) -> IngestResult:
        """Validate and insert events in order, in one round trip.

        Invalid events are counted (never stored, never raise); a store
        failure of one call counts that event as invalid and is logged.

        Raises:
            StoreError: the round trip itself failed (nothing is known to be
                stored; inserting again is safe: duplicates are skipped).
        """
        result = IngestResult()
        calls: list[tuple[list[str], list[Any]]] = []
        docs: list[dict[str, Any]] = []
        for raw in raws:
            try:
                doc, keys, args = self.prepare(service_id, raw, ingest_method)
            except ContractError:
                result.invalid += 1
                continue
            docs.append(doc)
            calls.append((keys, args))
        if not calls:
            return result
        replies = await self.store.run_script_many(INSERT_SCRIPT, calls)
        for doc, reply in zip(docs, replies, strict=True):
            if isinstance(reply, StoreError):
                log.warning("event %s of %s not stored: %s", doc["dedupe_key"], service_id, reply)
                result.invalid += 1
            elif int(reply) == 0:
                result.duplicate += 1
            else:
                doc["out_of_order"] = int(reply) == 2
                result.inserted += 1
                result.stored.append(doc)
        return result

    async def _load(self, history_key: str) -> list[dict[str, Any]]:
        keys = await self.store.lrange(history_key, 0, self.maxlen - 1)
        if not keys:
            return []
        raws = await self.store.mget([self.keys.event(k.decode()) for k in keys])
        events = []
        for raw in raws:
            if raw is None:
                continue
            try:
                value = loads(raw)
            except ContractError:
                continue
            if isinstance(value, dict) and isinstance(value.get("dedupe_key"), str):
                events.append(value)
        events.sort(key=sort_key, reverse=True)
        return events

    async def page(
        self,
        service_id: str,
        *,
        task_id: str | None,
        filters: Mapping[str, str],
        time_from: str | None,
        time_to: str | None,
        before: str | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; ``before`` is the dedupe key of the last item of the previous page."""
        history = (
            self.keys.service_history(service_id)
            if task_id is None
            else self.keys.task_history(service_id, task_id)
        )
        events = await self._load(history)
        if before is not None:
            index = next((i for i, e in enumerate(events) if e["dedupe_key"] == before), None)
            events = [] if index is None else events[index + 1 :]
        out: list[dict[str, Any]] = []
        for event in events:
            if (
                task_id is None
                and "task_id" in filters
                and event.get("task_id") != filters["task_id"]
            ):
                continue
            if any(event.get(k) != v for k, v in filters.items() if k != "task_id"):
                continue
            stamp = event.get("timestamp") or event.get("ingested_at") or ""
            if time_from is not None and stamp < time_from:
                continue
            if time_to is not None and stamp > time_to:
                continue
            out.append(event)
            if len(out) > limit:
                break
        more = len(out) > limit
        out = out[:limit]
        return out, (out[-1]["dedupe_key"] if more and out else None)

    async def history_for_backfill(self, service_id: str) -> list[dict[str, Any]]:
        return (await self._load(self.keys.service_history(service_id)))[::-1]
