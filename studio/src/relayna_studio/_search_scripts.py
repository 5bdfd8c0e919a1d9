"""The task index scripts: put a document (compare-and-set), delete one, query one page."""

from __future__ import annotations

from typing import Any

from relayna.transport import Script, ScriptOps

__all__ = ["DELETE_DOC_SCRIPT", "PUT_DOC_SCRIPT", "QUERY_SCRIPT"]

_PUT_LUA = """
-- KEYS: doc, all, service set, by-last-seen, expiry, old filter keys..., new filter keys...
-- ARGV: expected ('' = must not exist), doc, docid, last_seen_ms, expires_ms, n_old
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if cur then return 0 end
elseif cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[3])
local n_old = tonumber(ARGV[6])
for i = 6, 5 + n_old do redis.call('SREM', KEYS[i], ARGV[3]) end
for i = 6 + n_old, #KEYS do redis.call('SADD', KEYS[i], ARGV[3]) end
return 1
"""


def _put_python(ops: ScriptOps, keys: list[str], args: list[bytes]) -> int:
    expected, doc, docid, last_seen, expires, n_old_raw = args
    current = ops.get(keys[0])
    if expected == b"":
        if current is not None:
            return 0
    elif current != expected:
        return 0
    ops.set(keys[0], doc)
    ops.sadd(keys[1], docid)
    ops.sadd(keys[2], docid)
    ops.zadd(keys[3], {docid: float(last_seen)})
    ops.zadd(keys[4], {docid: float(expires)})
    n_old = int(n_old_raw)
    for key in keys[5 : 5 + n_old]:
        ops.srem(key, docid)
    for key in keys[5 + n_old :]:
        ops.sadd(key, docid)
    return 1


_DELETE_LUA = """
-- KEYS: doc, all, service set, by-last-seen, expiry, filter keys...   ARGV: docid, expected ('' = any)
if ARGV[2] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
for i = 6, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
return 1
"""


def _delete_python(ops: ScriptOps, keys: list[str], args: list[bytes]) -> int:
    docid, expected = args
    if expected != b"" and ops.get(keys[0]) != expected:
        return 0
    ops.delete(keys[0])
    ops.srem(keys[1], docid)
    ops.srem(keys[2], docid)
    ops.zrem(keys[3], docid)
    ops.zrem(keys[4], docid)
    for key in keys[5:]:
        ops.srem(key, docid)
    return 1


_QUERY_LUA = """
-- KEYS: by-last-seen, filter keys...   ARGV: max_ms, min_ms, need, budget
-- Returns docid, score pairs, newest first, at most `need`, within [min, max].
-- Plan: no filter -> the time index; a small smallest filter set -> intersect,
-- score and sort; otherwise walk the time index checking membership.
local maxs, mins = ARGV[1], ARGV[2]
local need, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
if #KEYS == 1 then
  return redis.call('ZREVRANGEBYSCORE', KEYS[1], maxs, mins, 'WITHSCORES', 'LIMIT', 0, need)
end
local card = redis.call('SCARD', KEYS[2])
for i = 3, #KEYS do
  local c = redis.call('SCARD', KEYS[i])
  if c < card then card = c end
end
if card == 0 then return out end
local hi, lo = tonumber(maxs) or math.huge, tonumber(mins) or -math.huge
if maxs == '+inf' then hi = math.huge end
if mins == '-inf' then lo = -math.huge end
if card <= budget then
  local sets = {}
  for i = 2, #KEYS do sets[#sets + 1] = KEYS[i] end
  local members = redis.call('SINTER', unpack(sets))
  local hits = {}
  for _, m in ipairs(members) do
    local s = redis.call('ZSCORE', KEYS[1], m)
    if s then
      s = tonumber(s)
      if s <= hi and s >= lo then hits[#hits + 1] = {m, s} end
    end
  end
  table.sort(hits, function(a, b) return a[2] > b[2] end)
  for i = 1, math.min(need, #hits) do
    out[#out + 1] = hits[i][1]
    out[#out + 1] = string.format('%d', hits[i][2])
  end
  return out
end
local offset, found = 0, 0
while found < need do
  local chunk = redis.call('ZREVRANGEBYSCORE', KEYS[1], maxs, mins, 'WITHSCORES', 'LIMIT', offset, 500)
  if #chunk == 0 then break end
  for j = 1, #chunk, 2 do
    local ok = true
    for i = 2, #KEYS do
      if redis.call('SISMEMBER', KEYS[i], chunk[j]) == 0 then ok = false break end
    end
    if ok then
      out[#out + 1] = chunk[j]
      out[#out + 1] = chunk[j + 1]
      found = found + 1
      if found >= need then break end
    end
  end
  offset = offset + 500
end
return out
"""


def _bound(raw: bytes) -> float:
    text = raw.decode()
    return float("inf") if text == "+inf" else float("-inf") if text == "-inf" else float(text)


def _query_python(ops: ScriptOps, keys: list[str], args: list[bytes]) -> list[Any]:
    hi, lo = _bound(args[0]), _bound(args[1])
    need = int(args[2])
    out: list[Any] = []
    if len(keys) == 1:
        for m in ops.zrangebyscore(keys[0], lo, hi, count=need, desc=True):
            out += [m, str(int(ops.zscore(keys[0], m) or 0)).encode()]
        return out
    sets = [ops.smembers(k) for k in keys[1:]]
    members = set.intersection(*sets)
    hits = []
    for m in members:
        score = ops.zscore(keys[0], m)
        if score is not None and lo <= score <= hi:
            hits.append((m, score))
    hits.sort(key=lambda h: -h[1])
    for m, score in hits[:need]:
        out += [m, str(int(score)).encode()]
    return out


PUT_DOC_SCRIPT = Script(name="relayna_studio.search.put", lua=_PUT_LUA, python=_put_python)
DELETE_DOC_SCRIPT = Script(
    name="relayna_studio.search.delete", lua=_DELETE_LUA, python=_delete_python
)
QUERY_SCRIPT = Script(name="relayna_studio.search.query", lua=_QUERY_LUA, python=_query_python)
