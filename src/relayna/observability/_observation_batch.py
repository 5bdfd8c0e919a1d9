"""One script per batch of observations (the sink's writes).

A busy worker emits ~5 observations per task. Written one script each, the
Redis server ran ~15 commands per observation (dedupe check, type check,
push, trim, TTL, marker; the same again for the feed entry) and each call
paid the script dispatch: on a 2-core host Redis then took as much CPU as
the worker itself. The batch script does per observation only what is per
observation (dedupe check, push, marker) and per batch what can be shared:
one type check and one trim + TTL per history key, one feed append (one
``INCRBY``, one ``RPUSH`` of every new entry, one trim, one set of TTLs).

It keeps the single write's rules: duplicates (already stored, or twice in
the batch) are not stored again, a history key of the wrong type fails only
its own observations (result ``-1``), a feed key of the wrong type fails the
whole batch before any write, and markers are set **last** (a script that
fails part-way leaves no marker, so a retry stores everything once).

KEYS: ``n`` markers, ``n`` history keys, then with a feed ``n`` feed markers
and the feed, its sequence and epoch keys. ARGV: ttl_ms, history maxlen,
``n``, has_feed (``1``/``0``), feed ttl_ms, feed maxlen, feed epoch
candidate, ``n`` payloads, then with a feed ``n`` feed items. Returns one
result per observation: ``1`` stored, ``0`` duplicate, ``-1`` wrong history
key type.
"""

from __future__ import annotations

from collections.abc import Sequence

from relayna.observability._feed import FEED_TYPE_CHECK_LUA, ServiceEventFeed
from relayna.observability._observation_codec import (
    EncodedObservation,
    encode_observation_feed_item,
)
from relayna.transport import Script, Value

__all__ = ["WRITE_OBSERVATIONS_SCRIPT", "batch_call"]

_BATCH_LUA = (
    FEED_TYPE_CHECK_LUA
    + """
local ttl, maxlen, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local has_feed = ARGV[4] == '1'
if has_feed then
  local bad = relayna_feed_check(KEYS[3 * n + 1])
  if bad then return bad end
end
local result, seen, usable, touched = {}, {}, {}, {}
for i = 1, n do
  local marker, history = KEYS[i], KEYS[n + i]
  if usable[history] == nil then
    local t = redis.call('TYPE', history)['ok']
    usable[history] = (t == 'none' or t == 'list')
  end
  if not usable[history] then
    result[i] = -1
  elseif seen[marker] or redis.call('EXISTS', marker) == 1 then
    result[i] = 0
  else
    seen[marker] = true
    result[i] = 1
    redis.call('LPUSH', history, ARGV[7 + i])
    if not touched[history] then
      touched[history] = true
      touched[#touched + 1] = history
    end
  end
end
for j = 1, #touched do
  redis.call('LTRIM', touched[j], 0, maxlen - 1)
  redis.call('PEXPIRE', touched[j], ttl)
end
if has_feed then
  local feed, seq, epoch = KEYS[3 * n + 1], KEYS[3 * n + 2], KEYS[3 * n + 3]
  local fttl = ARGV[5]
  local items, marks, fseen = {}, {}, {}
  for i = 1, n do
    local mark = KEYS[2 * n + i]
    if result[i] == 1 and not fseen[mark] and redis.call('EXISTS', mark) == 0 then
      fseen[mark] = true
      items[#items + 1] = ARGV[7 + n + i]
      marks[#marks + 1] = mark
    end
  end
  if #items > 0 then
    if redis.call('EXISTS', feed) == 0 or redis.call('EXISTS', epoch) == 0 then
      redis.call('SET', epoch, ARGV[7])
      redis.call('SET', seq, redis.call('LLEN', feed))
    end
    redis.call('INCRBY', seq, #items)
    redis.call('RPUSH', feed, unpack(items))
    redis.call('LTRIM', feed, -tonumber(ARGV[6]), -1)
    redis.call('PEXPIRE', feed, fttl)
    redis.call('PEXPIRE', seq, fttl)
    redis.call('PEXPIRE', epoch, fttl)
    for j = 1, #marks do redis.call('SET', marks[j], '1', 'PX', fttl) end
  end
end
for i = 1, n do
  if result[i] == 1 then redis.call('SET', KEYS[i], '1', 'PX', ttl) end
end
return result
"""
)

#: The batched observation write (see the module docstring).
WRITE_OBSERVATIONS_SCRIPT = Script(name="relayna.observations.write_batch", lua=_BATCH_LUA)


def batch_call(
    prefix: str,
    ttl_ms: int,
    maxlen: int,
    batch: Sequence[EncodedObservation],
    feed: ServiceEventFeed | None,
    *,
    cluster: bool = False,
) -> tuple[list[str], list[Value]]:
    """Keys and arguments of one :data:`WRITE_OBSERVATIONS_SCRIPT` call.

    With ``cluster`` the task id is each key's hash tag (the caller passes one
    task's observations and no feed, so the call touches one slot).
    """
    o, c = ("{", "}") if cluster else ("", "")
    markers = [f"{prefix}:event:{o}{e.task_id}{c}:{e.token}" for e in batch]
    histories = [f"{prefix}:history:{o}{e.task_id}{c}" for e in batch]
    keys = markers + histories
    args: list[Value] = [ttl_ms, maxlen, len(batch), b"0", 1, 1, b""]
    args.extend(e.payload for e in batch)
    if feed is not None:
        marker_prefix, feed_keys, (feed_ttl, feed_maxlen, epoch) = feed.batch_target()
        for e in batch:
            event_key, item = encode_observation_feed_item(e)
            keys.append(marker_prefix + event_key)
            args.append(item)
        keys.extend(feed_keys)
        args[3:7] = [b"1", feed_ttl, feed_maxlen, epoch]
    return keys, args
