"""The task index scripts: put a document (compare-and-set), delete one, query one page."""

from __future__ import annotations

from relayna.transport import Script

__all__ = ["DELETE_DOC_SCRIPT", "PUT_DOC_SCRIPT", "QUERY_SCRIPT"]

_PUT_LUA = """
-- KEYS: doc, all, service set, by-last-seen, expiry,
--       old filter sets (n_old), new filter sets (n_new), old time sets (n_old), new time sets (n_new)
-- ARGV: expected ('' = must not exist), doc, docid, last_seen_ms, expires_ms, n_old, n_new
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if cur then return 0 end
elseif cur ~= ARGV[1] then
  return 0
end
local id, seen = ARGV[3], ARGV[4]
local n_old, n_new = tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], id)
redis.call('SADD', KEYS[3], id)
redis.call('ZADD', KEYS[4], seen, id)
redis.call('ZADD', KEYS[5], ARGV[5], id)
local b = 5
for i = b + 1, b + n_old do redis.call('SREM', KEYS[i], id) end
for i = b + n_old + 1, b + n_old + n_new do redis.call('SADD', KEYS[i], id) end
b = b + n_old + n_new
for i = b + 1, b + n_old do redis.call('ZREM', KEYS[i], id) end
for i = b + n_old + 1, b + n_old + n_new do redis.call('ZADD', KEYS[i], seen, id) end
return 1
"""


_DELETE_LUA = """
-- KEYS: doc, all, service set, by-last-seen, expiry, filter sets (n), time sets (n)
-- ARGV: docid, expected ('' = any), n
if ARGV[2] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
local n = tonumber(ARGV[3])
for i = 6, 5 + n do redis.call('SREM', KEYS[i], ARGV[1]) end
for i = 6 + n, 5 + 2 * n do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""


_QUERY_LUA = """
-- KEYS: by-last-seen, then per filter: its set, its time set
-- ARGV: max_ms, min_ms, need
-- Returns docid, score pairs, newest first, within [min, max]: the newest `need`
-- and every further one at the score of the last (a millisecond shared by
-- several tasks is never cut in two, so an id left out is strictly older than
-- every id returned). Walks the smallest time set newest first, checking the
-- other filters' sets, so a page costs about need / selectivity membership checks.
local maxs, mins, need = ARGV[1], ARGV[2], tonumber(ARGV[3])
if #KEYS == 1 then
  local out = redis.call('ZREVRANGEBYSCORE', KEYS[1], maxs, mins, 'WITHSCORES', 'LIMIT', 0, need)
  if #out < 2 * need then return out end
  local last = out[#out]
  local kept = 0
  for j = #out, 2, -2 do
    if out[j] ~= last then break end
    kept = kept + 1
  end
  local ties = redis.call('ZREVRANGEBYSCORE', KEYS[1], last, last, 'WITHSCORES')
  for j = 2 * kept + 1, #ties do out[#out + 1] = ties[j] end
  return out
end
local best, card = 3, redis.call('ZCARD', KEYS[3])
for i = 5, #KEYS, 2 do
  local c = redis.call('ZCARD', KEYS[i])
  if c < card then best, card = i, c end
end
local out = {}
if card == 0 then return out end
local offset, found, tie = 0, 0, nil
local chunk_size = math.max(64, math.min(1000, need * 4))
while true do
  local chunk = redis.call('ZREVRANGEBYSCORE', KEYS[best], maxs, mins, 'WITHSCORES', 'LIMIT', offset, chunk_size)
  if #chunk == 0 then break end
  for j = 1, #chunk, 2 do
    if tie ~= nil and chunk[j + 1] ~= tie then return out end
    local ok = true
    for i = 2, #KEYS, 2 do
      if i + 1 ~= best and redis.call('SISMEMBER', KEYS[i], chunk[j]) == 0 then ok = false break end
    end
    if ok then
      out[#out + 1] = chunk[j]
      out[#out + 1] = chunk[j + 1]
      found = found + 1
      if found == need then tie = chunk[j + 1] end
    end
  end
  offset = offset + chunk_size
end
return out
"""


def _bound(raw: bytes) -> float:
    text = raw.decode()
    return float("inf") if text == "+inf" else float("-inf") if text == "-inf" else float(text)


PUT_DOC_SCRIPT = Script(name="relayna_studio.search.put", lua=_PUT_LUA)
DELETE_DOC_SCRIPT = Script(name="relayna_studio.search.delete", lua=_DELETE_LUA)
QUERY_SCRIPT = Script(name="relayna_studio.search.query", lua=_QUERY_LUA)
