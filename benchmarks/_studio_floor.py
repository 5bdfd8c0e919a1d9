"""References for ``python -m benchmarks studio`` (b): the same event writes without a pull.

Two floors, both measured in the run that reports the pull rate:

* :func:`per_event_floor`: the keys one event writes (event document,
  service and task histories, latest timestamps, pubsub), one script call
  per event, pipelined in pages of 200 (``run_script_many``). This is the
  reference earlier runs reported as "raw pipelined writes" (it was Studio's
  own insert until inserts were batched), kept here so the numbers stay
  comparable across runs.
* :func:`batch_floor`: Studio's batched insert script (one call per 200
  events) on events prepared beforehand: no HTTP, no validation, no search
  index; what the pull would reach if everything but the store were free.
"""

from __future__ import annotations

import time
from typing import Any

from relayna.transport import Script, Store
from relayna_studio._events import EventStore

__all__ = ["batch_floor", "per_event_floor"]

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


_PER_EVENT = Script(name="benchmarks.studio.insert_one", lua=_INSERT_LUA)


async def per_event_floor(store: Store, prefix: str, feed: list[dict[str, Any]]) -> float:
    """Events/s: one script call per event, 200 calls per round trip."""
    es = EventStore(store, prefix, maxlen=len(feed))
    k = es.keys
    calls = []
    for raw in feed:
        doc, (tail, key, ts, source, tid) = es.prepare("svc", dict(raw), "pull")
        keys = [
            k.event("svc", key),
            k.service_history("svc"),
            k.task_history("svc", tid),
            k.task_latest("svc", tid),
            k.latest_status("svc"),
            k.latest_observation("svc"),
            k.latest_ingested("svc"),
        ]
        args = [tail, es.ttl_ms, es.maxlen, key, ts, doc["ingested_at"], source,
                k.service_channel("svc"), k.task_channel("svc", tid)]  # fmt: skip
        calls.append((keys, args))
    t0 = time.perf_counter()
    for i in range(0, len(calls), 200):
        await store.run_script_many(_PER_EVENT, calls[i : i + 200])
    return len(calls) / (time.perf_counter() - t0)


async def batch_floor(
    store: Store, prefix: str, feed: list[dict[str, Any]], *, cluster: bool = False
) -> float:
    """Events/s: Studio's batched insert on prepared events, one call per 200
    (``cluster``: in the Redis Cluster key layout)."""
    es = EventStore(store, prefix, maxlen=len(feed), cluster=cluster)
    prepared = [es.prepare("svc", dict(raw), "pull")[1] for raw in feed]
    calls = es.batch_calls("svc", prepared, "2026-05-01T00:00:00.000Z")
    t0 = time.perf_counter()
    for call in calls:
        await store.run_script_many(es.script, [call])
    return len(prepared) / (time.perf_counter() - t0)
