"""The Studio event store: one script call per batch of events (dedupe, histories,
latest times, pubsub).

Theory of operation: :data:`INSERT_SCRIPT` takes up to :data:`BATCH` events of
one service and, for each in order, in one atomic step

1. answers 0 (duplicate) when ``{p}:event:{dedupe_key}`` exists;
2. compares the event's timestamp with the task's latest one, which sets
   ``out_of_order``;
3. writes the event, pushes its dedupe key onto the service and task
   histories, advances the latest-timestamp keys, refreshes the task keys'
   TTLs, and publishes the event on the service and task channels;

then trims the service history once, sets the latest-ingested time,
refreshes the service keys' TTLs and, for a pull sync, stores the feed
cursor of the page (so the cursor moves with exactly the events it covers). The result is the same as inserting the
events one by one (a duplicate inside one batch is a duplicate), in one
round trip and one script call: per event it sends five short arguments
(the document, its dedupe key, timestamp, source kind and task id); the
key names are built in the script from the prefix, as in seed 002.

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
from relayna_studio._event_model import dedupe_key, fixed_time, normalize_event_json, sort_key
from relayna_studio._timefmt import now_utc

__all__ = [
    "BATCH",
    "INSERT_SCRIPT",
    "INSERT_SCRIPT_SHARDED",
    "EventStore",
    "IngestResult",
    "Prepared",
]

log = logging.getLogger("relayna_studio.events")

#: Events per script call (a feed page): Redis runs one call at a time, so a
#: call stays short (about a millisecond).
BATCH = 200

_INSERT_LUA = """
-- KEYS: 1 service history, 2 latest-status, 3 latest-observation, 4 latest-ingested,
--       5 pull cursor (optional)
-- ARGV: 1 ttl_ms (0: none), 2 maxlen, 3 ingested_at, 4 service channel, 5 prefix {p},
--       6 service id as in key names ({sid} in the cluster layout), 7 pull cursor
--       ('' with no key 5), 8 length of the service id (the dedupe key's head),
--       then per event: doc tail, dedupe key, timestamp ('' if none), source kind, task id
local ttl = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[2])
local p = ARGV[5]
local sid = ARGV[6]
local head = p .. ':event:' .. sid
local cut = tonumber(ARGV[8]) + 1
local out = {}
local stored = 0
for i = 9, #ARGV, 5 do
  local key, ts, source, tid = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local event = head .. string.sub(key, cut)
  if redis.call('EXISTS', event) == 1 then
    out[#out + 1] = 0
  else
    local task = p .. ':task:' .. sid .. ':' .. tid
    local task_latest = task .. ':latest-timestamp'
    local latest = redis.call('GET', task_latest)
    local ooo = (latest ~= false and ts ~= '' and ts < latest)
    local doc = '{"out_of_order":' .. (ooo and 'true' or 'false') .. ARGV[i]
    redis.call('LPUSH', KEYS[1], key)
    redis.call('LPUSH', task .. ':history', key)
    redis.call('LTRIM', task .. ':history', 0, maxlen - 1)
    if ts ~= '' and (latest == false or ts > latest) then redis.call('SET', task_latest, ts) end
    local kind = nil
    if source == 'status' then kind = KEYS[2] elseif source == 'observation' then kind = KEYS[3] end
    if kind and ts ~= '' then
      local current = redis.call('GET', kind)
      if current == false or ts > current then redis.call('SET', kind, ts) end
    end
    if ttl > 0 then
      redis.call('SET', event, doc, 'PX', ttl)
      redis.call('PEXPIRE', task .. ':history', ttl)
      if redis.call('EXISTS', task_latest) == 1 then redis.call('PEXPIRE', task_latest, ttl) end
    else
      redis.call('SET', event, doc)
    end
    redis.call('PUBLISH', ARGV[4], doc)
    redis.call('PUBLISH', p .. ':channel:task:' .. sid .. ':' .. tid, doc)
    out[#out + 1] = ooo and 2 or 1
    stored = stored + 1
  end
end
if stored > 0 then
  redis.call('LTRIM', KEYS[1], 0, maxlen - 1)
  redis.call('SET', KEYS[4], ARGV[3])
  if ttl > 0 then
    for k = 1, 4 do
      if redis.call('EXISTS', KEYS[k]) == 1 then redis.call('PEXPIRE', KEYS[k], ttl) end
    end
  end
end
if KEYS[5] then redis.call('SET', KEYS[5], ARGV[7]) end
return out
"""


INSERT_SCRIPT = Script(name="relayna_studio.events.insert_batch", lua=_INSERT_LUA)
#: The same in the cluster key layout: the channels are sharded (``SPUBLISH``;
#: both are in the service's slot), so a publish goes to the slot's primary
#: instead of being broadcast over the cluster bus to every node.
INSERT_SCRIPT_SHARDED = Script(
    name="relayna_studio.events.insert_batch_sharded",
    lua=_INSERT_LUA.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',"),
)


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


class Prepared:
    """Validated events, ready for :meth:`EventStore.insert`."""

    __slots__ = ("args", "docs", "ingested_at", "invalid")

    def __init__(self, ingested_at: str) -> None:
        self.ingested_at = ingested_at
        self.docs: list[dict[str, Any]] = []
        self.args: list[list[Any]] = []
        self.invalid = 0


class EventStore:
    def __init__(
        self,
        store: Store,
        prefix: str = "studio:events",
        *,
        ttl_seconds: float | None = 86400.0,
        maxlen: int = 5000,
        cluster: bool = False,
    ) -> None:
        self.store = store
        self.keys = EventKeys(prefix, cluster)
        #: The insert script: sharded channels in the cluster layout.
        self.script = INSERT_SCRIPT_SHARDED if cluster else INSERT_SCRIPT
        self.ttl_ms = 0 if ttl_seconds is None else max(1, round(ttl_seconds * 1000))
        self.maxlen = maxlen

    def prepare(
        self, service_id: str, raw: object, ingest_method: str, ingested_at: str | None = None
    ) -> tuple[dict[str, Any], list[Any]]:
        """Validate one event; its document and its five script arguments.

        Raises:
            ContractError: the event is invalid.
        """
        event, payload = normalize_event_json(raw)
        key = dedupe_key(service_id, event)
        event.pop("_cursor", None)
        doc = {
            "service_id": service_id,
            "ingest_method": ingest_method,
            "ingested_at": ingested_at or fixed_time(now_utc()),
            "dedupe_key": key,
            **event,
        }
        # the payload is the last field: its JSON from the validation is reused
        del doc["payload"]
        head = orjson.dumps(doc)
        doc["payload"] = event["payload"]
        tail = b"," + head[1:-1] + b',"payload":' + payload + b"}"
        args = [tail, key, event["timestamp"] or "", event["source_kind"], event["task_id"]]
        return doc, args

    def prepare_many(self, service_id: str, raws: Sequence[object], ingest_method: str) -> Prepared:
        """Validate events (the CPU part of an insert, done before the round trip)."""
        prepared = Prepared(fixed_time(now_utc()))
        for raw in raws:
            try:
                doc, args = self.prepare(service_id, raw, ingest_method, prepared.ingested_at)
            except ContractError:
                prepared.invalid += 1
                continue
            prepared.docs.append(doc)
            prepared.args.append(args)
        return prepared

    def batch_calls(
        self,
        service_id: str,
        events: Sequence[list[Any]],
        ingested_at: str,
        cursor: str | None = None,
    ) -> list[tuple[list[str], list[Any]]]:
        """The script calls for prepared events (:meth:`prepare`), :data:`BATCH` per
        call; ``cursor`` (a pull sync's) is stored by the last call."""
        k = self.keys
        keys = [
            k.service_history(service_id),
            k.latest_status(service_id),
            k.latest_observation(service_id),
            k.latest_ingested(service_id),
        ]
        head = [
            self.ttl_ms,
            self.maxlen,
            ingested_at,
            k.service_channel(service_id),
            k.prefix,
            k.sid(service_id),
            "",
            len(service_id.encode()),
        ]
        starts = range(0, max(len(events), 1), BATCH)
        calls = []
        for start in starts:
            args = list(head)
            call_keys = keys
            if cursor is not None and start == starts[-1]:
                call_keys = [*keys, k.pull_cursor(service_id)]
                args[6] = cursor
            for event_args in events[start : start + BATCH]:
                args += event_args
            calls.append((call_keys, args))
        return calls

    async def insert_many(
        self, service_id: str, raws: Sequence[object], ingest_method: str
    ) -> IngestResult:
        """Validate and insert events in order, in one round trip (see :meth:`insert`)."""
        return await self.insert(service_id, self.prepare_many(service_id, raws, ingest_method))

    async def insert(
        self, service_id: str, prepared: Prepared, *, cursor: str | None = None
    ) -> IngestResult:
        """Insert prepared events in one round trip; with ``cursor``, store it as the
        service's pull cursor in the same script call (even when no event is left).

        Invalid events are counted (never stored, never raise); a store
        failure of one batch counts its events as invalid and is logged.

        Raises:
            StoreError: the round trip itself failed (nothing is known to be
                stored; inserting again is safe: duplicates are skipped).
        """
        result = IngestResult()
        result.invalid = prepared.invalid
        docs = prepared.docs
        if not docs and cursor is None:
            return result
        calls = self.batch_calls(service_id, prepared.args, prepared.ingested_at, cursor)
        replies = await self.store.run_script_many(self.script, calls)
        for start, reply in zip(range(0, max(len(docs), 1), BATCH), replies, strict=True):
            batch = docs[start : start + BATCH]
            if isinstance(reply, StoreError) or not isinstance(reply, list):
                if isinstance(reply, StoreError) and cursor is not None:
                    raise reply  # the cursor must not move past events that were not stored
                log.warning("%d events of %s not stored: %s", len(batch), service_id, reply)
                result.invalid += len(batch)
                continue
            for doc, code in zip(batch, reply, strict=True):
                if int(code) == 0:
                    result.duplicate += 1
                else:
                    doc["out_of_order"] = int(code) == 2
                    result.inserted += 1
                    result.stored.append(doc)
        return result

    async def _load(self, service_id: str, history_key: str) -> list[dict[str, Any]]:
        keys = await self.store.lrange(history_key, 0, self.maxlen - 1)
        if not keys:
            return []
        raws = await self.store.mget([self.keys.event(service_id, k.decode()) for k in keys])
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
        events = await self._load(service_id, history)
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
        return (await self._load(service_id, self.keys.service_history(service_id)))[::-1]
