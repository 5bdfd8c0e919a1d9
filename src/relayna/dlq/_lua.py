"""The Lua of the DLQ store's scripts (Redis and the memory store both run it).

Every script gets the same three leading arguments (the *context*)::

    ARGV[1] "{p}:dlq:", the base of every key name (index:, record:, replay-lock:, records)
    ARGV[2] ttl in ms (0 = records never expire)
    ARGV[3] cutoff: scores below it are expired

Theory of operation
-------------------
A record is *live* while its score (dead-letter time, ms) is at or above the
cutoff (now - ttl, on the store's clock); the record key also carries a PEXPIRE
for the same moment, so Redis frees it by itself. Index entries are removed
with the record (delete, eviction), trimmed by score whenever an index is
written, and an index key expires ``ttl`` after its last write, so no index
outlives its records. A listing that meets an id whose record is gone
removes it from the indexes it read (and never returns it).

State moves between index keys (``state:*``, ``investigation:*``) in the same
script that changes the field, so a listing by state never sees a record in
two states. A republish (replay, manual retry) is claimed with a lock and an
*intent* in one script; :func:`resolve` turns an intent whose lock expired (the
process died between publishing and recording) into ``unconfirmed_*`` fields.

These scripts compute some key names (index, lock and record keys) from the
context, so they need every DLQ key in one hash slot: on a Redis Cluster the
cluster key layout (``DLQStoreConfig(cluster=True)``) tags them all with the prefix.
"""

from __future__ import annotations

__all__ = [
    "ABORT_LUA",
    "ADD_LUA",
    "CLAIM_LUA",
    "DELETE_LUA",
    "FINISH_LUA",
    "GET_LUA",
    "INVESTIGATE_LUA",
    "LIST_LUA",
    "SUMMARY_LUA",
]

_PRELUDE = r"""
local dlq = ARGV[1]
local base, lock_base = dlq .. 'index:', dlq .. 'replay-lock:'
local record_base, records = dlq .. 'record:', dlq .. 'records'
local ttl, cutoff = tonumber(ARGV[2]), tonumber(ARGV[3])
local function index_add(key, score, id)
  redis.call('ZADD', key, score, id)
  if ttl > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff - 1)
    redis.call('PEXPIRE', key, ttl)
  end
end
local function move(id, field, old, new, score)
  if old == new then return end
  if old then redis.call('ZREM', base .. field .. ':' .. old, id) end
  if new then index_add(base .. field .. ':' .. new, score, id) end
end
local function remove_record(id)
  local rkey = record_base .. id
  local f = redis.call('HMGET', rkey, 'ix', 'state', 'investigation_status')
  if f[1] then
    for key in string.gmatch(f[1], '[^\n]+') do redis.call('ZREM', key, id) end
  end
  if f[2] then redis.call('ZREM', base .. 'state:' .. f[2], id) end
  if f[3] then redis.call('ZREM', base .. 'investigation:' .. f[3], id) end
  redis.call('ZREM', records, id)
  redis.call('DEL', rkey)
end
local function live(id)
  local score = redis.call('HGET', record_base .. id, 'score')
  if not score then return false end
  if ttl > 0 and tonumber(score) < cutoff then
    remove_record(id)
    return false
  end
  return score
end
local function resolve(id)
  local rkey = record_base .. id
  local f = redis.call('HMGET', rkey, 'intent_kind', 'intent_token', 'intent_at',
                       'intent_target', 'state', 'score')
  if not f[1] then return end
  if redis.call('EXISTS', lock_base .. id) == 1 then return end
  redis.call('HSET', rkey, 'unconfirmed_kind', f[1], 'unconfirmed_token', f[2] or '',
             'unconfirmed_at', f[3] or '', 'unconfirmed_target', f[4] or '')
  redis.call('HDEL', rkey, 'intent_kind', 'intent_token', 'intent_at', 'intent_target')
  if f[5] == 'replaying' then
    redis.call('HSET', rkey, 'state', 'dead_lettered')
    move(id, 'state', 'replaying', 'dead_lettered', f[6])
  end
end
"""

# KEYS: record, global, queues hash, DLQ queue index, other immutable indexes...,
#       state index, investigation index
# ARGV: context, id, score, queue name, max records, facts, state, replay_count,
#       investigation_status, retry_status[, body]
# The record's ``ix`` (the immutable indexes it is in, for removal) is KEYS[4..#KEYS-2].
ADD_LUA = (
    _PRELUDE
    + r"""
local id, score = ARGV[4], tonumber(ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local life = 0
if ttl > 0 then
  life = score - cutoff
  if life <= 0 then return -1 end
end
local ix = table.concat(KEYS, '\n', 4, #KEYS - 2)
if ARGV[13] then
  redis.call('HSET', KEYS[1], 'score', ARGV[5], 'ix', ix, 'facts', ARGV[8], 'state', ARGV[9],
             'replay_count', ARGV[10], 'investigation_status', ARGV[11],
             'retry_status', ARGV[12], 'body', ARGV[13])
else
  redis.call('HSET', KEYS[1], 'score', ARGV[5], 'ix', ix, 'facts', ARGV[8], 'state', ARGV[9],
             'replay_count', ARGV[10], 'investigation_status', ARGV[11],
             'retry_status', ARGV[12])
end
if life > 0 then redis.call('PEXPIRE', KEYS[1], life) end
redis.call('HSET', KEYS[3], ARGV[6], KEYS[4])
index_add(KEYS[2], score, id)
for i = 4, #KEYS do index_add(KEYS[i], score, id) end
local cap = tonumber(ARGV[7])
if cap > 0 then
  local evicted = 0
  while evicted < 8 and redis.call('ZCARD', records) > cap do
    remove_record(redis.call('ZRANGE', records, 0, 0)[1])
    evicted = evicted + 1
  end
end
return 1
"""
)

# KEYS: record.  ARGV: context, id.  Returns HGETALL (empty when missing).
GET_LUA = (
    _PRELUDE
    + r"""
local id = ARGV[4]
if not live(id) then return {} end
resolve(id)
return redis.call('HGETALL', KEYS[1])
"""
)

# KEYS: global, filter indexes...
# ARGV: context, max score, cursor id, min score, limit, budget,
#       d, d (field, default) pairs, w, w watched fields, detail fields...
# Returns {more, cursor score, cursor id, (id, facts, n, n (field, value) pairs)...}.
# more: 0 = the end, 1 = another page, 2 = the scan budget ran out first.
#
# A record's pairs are its state fields that are set and differ from a new
# record's: an untouched record is three elements. One HMGET per record reads
# facts, the intent, the fields with a default and the watched ones (set only
# by a change); the detail fields (replayed_at, investigated_by, ...) are only
# ever set together with one of those, so they are read, by a second HMGET,
# only for a record where one of those changed (see STATE_DEFAULTS in _codec).
# EXISTS only for a missing ``facts`` and for the record after a full page;
# resolve() only for a record with an intent. The driver (the smallest index)
# is read in batches that double, ids only (Redis formats a score as text for
# every one it replies: only the cursor's is asked for); the other filters are
# one ZMSCORE per batch.
LIST_LUA = (
    _PRELUDE
    + r"""
local maxs, cid, mins = ARGV[4], ARGV[5], ARGV[6]
local limit, budget = tonumber(ARGV[7]), tonumber(ARGV[8])
local fields, defaults, detail = {'facts', 'intent_kind'}, {}, {}
local at = 10
for _ = 1, tonumber(ARGV[9]) do
  fields[#fields + 1] = ARGV[at]
  defaults[#fields] = ARGV[at + 1]
  at = at + 2
end
at = at + 1
for _ = 1, tonumber(ARGV[at - 1]) do
  fields[#fields + 1] = ARGV[at]
  at = at + 1
end
for i = at, #ARGV do detail[#detail + 1] = ARGV[i] end
local nf = #fields
local n = #KEYS
local driver = 1
if n > 1 then
  local best = -1
  for i = 2, n do
    local c = redis.call('ZCARD', KEYS[i])
    if best < 0 or c < best then best, driver = c, i end
  end
end
local res = {0, false, false}
local found, scanned, stop = 0, 0, false
local first_chunk = math.max(math.min(limit + 1, budget), 16)
local last_id, last_score = false, false
local function dangling(id)
  for i = 1, n do redis.call('ZREM', KEYS[i], id) end
end
-- One candidate (its score when known: the cursor needs the last one's).
local function visit(id, sc, member, k)
  scanned = scanned + 1
  local skip = false
  for i = 2, n do
    if i ~= driver and not member[i][k] then skip = true break end
  end
  if not skip then
    local rkey = record_base .. id
    if found == limit then
      if redis.call('EXISTS', rkey) == 1 then
        res[1] = 1
        stop = true
        return
      end
      sc = sc or redis.call('ZSCORE', KEYS[driver], id)
      dangling(id)
    else
      local vals = redis.call('HMGET', rkey, unpack(fields))
      if not vals[1] and redis.call('EXISTS', rkey) == 0 then
        sc = sc or redis.call('ZSCORE', KEYS[driver], id)
        dangling(id)
      else
        if vals[2] then
          resolve(id)
          vals = redis.call('HMGET', rkey, unpack(fields))
        end
        found = found + 1
        res[#res + 1] = id
        res[#res + 1] = vals[1]
        local slot, count, changed = #res + 1, 0, false
        res[slot] = '0'
        for f = 3, nf do
          local v, default = vals[f] or nil, defaults[f]
          if v ~= default then
            changed = true
            if v then
              res[#res + 1] = fields[f]
              res[#res + 1] = v
              count = count + 1
            end
          end
        end
        if changed and #detail > 0 then
          local more = redis.call('HMGET', rkey, unpack(detail))
          for f = 1, #detail do
            if more[f] then
              res[#res + 1] = detail[f]
              res[#res + 1] = more[f]
              count = count + 1
            end
          end
        end
        res[slot] = tostring(count)
      end
    end
  end
  last_id, last_score = id, sc
  if scanned >= budget then
    res[1] = 2
    stop = true
  end
end
-- Walk the driver from high to low, ids only (scores are formatted only when
-- needed); ``sc`` is the score every id of the range has, or nil.
local function walk(high, low, sc)
  local offset, chunk = 0, first_chunk
  while not stop do
    local ids = redis.call('ZREVRANGEBYSCORE', KEYS[driver], high, low, 'LIMIT', offset, chunk)
    if #ids == 0 then return end
    offset = offset + #ids
    local member = {}
    if n > 2 then
      for i = 2, n do
        if i ~= driver then member[i] = redis.call('ZMSCORE', KEYS[i], unpack(ids)) end
      end
    end
    for k = 1, #ids do
      local id = ids[k]
      if sc == nil or cid == '' or id < cid then  -- at the cursor's score: after its id
        visit(id, sc, member, k)
        if stop then return end
      end
    end
    chunk = math.min(chunk * 2, budget)
  end
end
if cid ~= '' then
  -- the cursor's own score first (ids at or after the cursor's were returned),
  -- then everything below it
  if mins == '-inf' or tonumber(mins) <= tonumber(maxs) then walk(maxs, maxs, maxs) end
  walk('(' .. maxs, mins, nil)
else
  walk(maxs, mins, nil)
end
if res[1] ~= 0 then
  res[2] = last_score or redis.call('ZSCORE', KEYS[driver], last_id)
  res[3] = last_id
end
return res
"""
)

# KEYS: record.  ARGV: context, id, token, kind (replay|retry), force, now, target, lock ms.
# Returns {code} or {'claimed', HGETALL...}.
CLAIM_LUA = (
    _PRELUDE
    + r"""
local id, token, kind, force = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if not live(id) then return {'missing'} end
local lock = lock_base .. id
if redis.call('EXISTS', lock) == 1 then return {'in_progress'} end
resolve(id)
local f = redis.call('HMGET', KEYS[1], 'state', 'unconfirmed_kind', 'retry_status', 'score')
if force ~= '1' then
  if f[2] then return {'unconfirmed_republish'} end
  if kind == 'replay' and f[1] == 'replayed' then return {'already_replayed'} end
  if kind == 'retry' and f[3] == 'retried' then return {'already_retried'} end
end
redis.call('SET', lock, token, 'PX', ARGV[10])
redis.call('HSET', KEYS[1], 'intent_kind', kind, 'intent_token', token,
           'intent_at', ARGV[8], 'intent_target', ARGV[9])
if kind == 'replay' then
  redis.call('HSET', KEYS[1], 'state', 'replaying')
  move(id, 'state', f[1], 'replaying', f[4])
end
local out = {'claimed'}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do out[#out + 1] = all[i] end
return out
"""
)

_CLEAR_INTENT = r"""
local function clear_intent(rkey)
  redis.call('HDEL', rkey, 'intent_kind', 'intent_token', 'intent_at', 'intent_target')
end
local function release(id, token)
  local lock = lock_base .. id
  if redis.call('GET', lock) == token then redis.call('DEL', lock) end
end
"""

# KEYS: record.  ARGV: context, id, token, now, target, retried_by, retried_task_id, note.
FINISH_LUA = (
    _PRELUDE
    + _CLEAR_INTENT
    + r"""
local id, token, now, target = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local f = redis.call('HMGET', KEYS[1], 'intent_token', 'intent_kind', 'unconfirmed_token',
                     'unconfirmed_kind', 'state', 'score')
local kind
if f[1] == token then kind = f[2] elseif f[3] == token then kind = f[4] else
  release(id, token)
  return 'lost'
end
if kind == 'replay' then
  redis.call('HSET', KEYS[1], 'state', 'replayed', 'replayed_at', now,
             'replay_target_queue_name', target)
  redis.call('HINCRBY', KEYS[1], 'replay_count', 1)
  move(id, 'state', f[5], 'replayed', f[6])
else
  redis.call('HSET', KEYS[1], 'retry_status', 'retried', 'retried_at', now,
             'retry_target_queue', target)
  local names = {'retried_by', 'retried_task_id', 'retry_note'}
  for i = 1, 3 do
    local v = ARGV[7 + i]
    if v == '' then redis.call('HDEL', KEYS[1], names[i])
    else redis.call('HSET', KEYS[1], names[i], v) end
  end
end
clear_intent(KEYS[1])
redis.call('HDEL', KEYS[1], 'unconfirmed_kind', 'unconfirmed_token', 'unconfirmed_at',
           'unconfirmed_target')
release(id, token)
return 'done'
"""
)

# KEYS: record.  ARGV: context, id, token, unknown ('1': the publish may have happened).
ABORT_LUA = (
    _PRELUDE
    + _CLEAR_INTENT
    + r"""
local id, token = ARGV[4], ARGV[5]
local f = redis.call('HMGET', KEYS[1], 'intent_token', 'intent_kind', 'intent_at',
                     'intent_target', 'state', 'score')
if f[1] == token then
  if ARGV[6] == '1' then
    redis.call('HSET', KEYS[1], 'unconfirmed_kind', f[2] or '', 'unconfirmed_token', token,
               'unconfirmed_at', f[3] or '', 'unconfirmed_target', f[4] or '')
  end
  clear_intent(KEYS[1])
  if f[5] == 'replaying' then
    redis.call('HSET', KEYS[1], 'state', 'dead_lettered')
    move(id, 'state', 'replaying', 'dead_lettered', f[6])
  end
end
release(id, token)
return 'ok'
"""
)

# KEYS: record.  ARGV: context, id, status, at, by, note ('' = none).
INVESTIGATE_LUA = (
    _PRELUDE
    + r"""
local id = ARGV[4]
local score = live(id)
if not score then return 'missing' end
local old = redis.call('HGET', KEYS[1], 'investigation_status')
redis.call('HSET', KEYS[1], 'investigation_status', ARGV[5])
local names = {'investigated_at', 'investigated_by', 'investigation_note'}
for i = 1, 3 do
  local v = ARGV[5 + i]
  if v == '' then redis.call('HDEL', KEYS[1], names[i])
  else redis.call('HSET', KEYS[1], names[i], v) end
end
move(id, 'investigation', old, ARGV[5], score)
return 'ok'
"""
)

# KEYS: record.  ARGV: context, id.
DELETE_LUA = (
    _PRELUDE
    + r"""
local id = ARGV[4]
if not live(id) then return 'missing' end
if redis.call('EXISTS', lock_base .. id) == 1 then return 'in_progress' end
remove_record(id)
return 'deleted'
"""
)

# KEYS: queues hash.  ARGV: context.  Returns {queue, count, newest score, ...}.
SUMMARY_LUA = (
    _PRELUDE
    + r"""
local res = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local queue, key = all[i], all[i + 1]
  if ttl > 0 then redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff - 1) end
  local count = redis.call('ZCARD', key)
  if count == 0 then
    redis.call('HDEL', KEYS[1], queue)
  else
    res[#res + 1] = queue
    res[#res + 1] = count
    res[#res + 1] = redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES')[2]
  end
end
return res
"""
)
