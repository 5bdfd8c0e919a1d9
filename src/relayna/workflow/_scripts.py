"""The workflow runtime's store scripts: each step of a stage is one atomic round trip.

Theory of operation
-------------------
Three keys per task and stage hold the workflow's durable state
(:class:`~relayna.workflow.WorkflowKeys`):

* the **run** hash ``{p}:workflow:run:{task}``: ``run`` (JSON: created,
  updated, terminal, last error), ``s:{stage}`` (JSON: the stage's status,
  attempts, timestamps, last error, fan-in progress, queued message ids),
  ``m:{stage}`` (the last envelope that entered the stage, for replay),
  ``d:{stage}:{message_id}`` (that message completed the stage) and
  ``l:{message_id}`` (JSON lineage of every message seen);
* the **in-flight** hash ``{p}:workflow:contract:{stage}:inflight:{task}``:
  one guard per message (``msg:{id}``), per dedup signature (``sig:{sig}``)
  or per join (``join``), valued ``owner|expires_ms``. A guard held by
  another owner and not expired answers ``busy`` (a concurrent duplicate
  waits); an expired one (its worker died) is taken over;
* the **dedup marker** ``{p}:workflow:contract:{stage}:dedup:{task}:{sig}``,
  set (with a TTL) when a stage with ``dedup_key_fields`` *completes*;
* the **fan-in** hash ``{p}:workflow:fanin:{task}:{stage}``: ``b:{branch}``
  (the branch's envelope, first arrival wins), ``i:{branch}`` (its arrival
  index), ``n`` (branches so far), ``done`` (the join completed).

:data:`STAGE_ENTER_SCRIPT` runs before a handler (completed? duplicate?
guard, run state "running"); :data:`FANIN_ARRIVE_SCRIPT` records a branch of
a join and, when the last expected branch is in, claims the join's guard and
returns every branch; :data:`STAGE_SETTLE_SCRIPT` runs after it (completion
markers, hand-offs marked queued, or the failure, and the guard released) in
the same step; it answers 0 when the guard was no longer this worker's (it
expired and another worker took the message over: both may have run it).
:data:`STAGE_STEPS_SCRIPT` runs any number of enter and settle steps (of a
consumer's concurrent deliveries) in one call, each as atomic as alone, in
order (:class:`~relayna.workflow._batch.StageStepBatcher`); the enter and
settle bodies are the same Lua functions in both forms. Timestamps are the
caller's wall clock in ms (``ARGV``), so workers need synchronised clocks
(NTP) for guard expiry across hosts.
"""

from __future__ import annotations

from relayna.transport import Script

__all__ = [
    "FANIN_ARRIVE_SCRIPT",
    "GUARD_RELEASE_SCRIPT",
    "GUARD_RENEW_SCRIPT",
    "RUN_CANCEL_SCRIPT",
    "RUN_REPLAY_SCRIPT",
    "STAGE_ENTER_SCRIPT",
    "STAGE_SETTLE_SCRIPT",
    "STAGE_STEPS_SCRIPT",
]

#: Shared helpers: JSON records in the run hash, guards in the in-flight hash.
_PRELUDE = """
local function wf_check(key, kind)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= kind then
    return redis.error_reply('WRONGTYPE workflow key ' .. key .. ' holds a ' .. t)
  end
  return nil
end
local function wf_load(key, field)
  local raw = redis.call('HGET', key, field)
  if raw then
    local ok, value = pcall(cjson.decode, raw)
    if ok and type(value) == 'table' then return value end
  end
  return nil
end
local function wf_save(key, field, value)
  redis.call('HSET', key, field, cjson.encode(value))
end
local function wf_guard_free(key, field, owner, now)
  local held = redis.call('HGET', key, field)
  if not held then return true end
  local sep = string.find(held, '|', 1, true)
  if not sep then return true end
  if string.sub(held, 1, sep - 1) == owner then return true end
  local expires = tonumber(string.sub(held, sep + 1))
  return expires == nil or expires <= now
end
local function wf_guard_take(key, field, owner, now, ttl)
  redis.call('HSET', key, field, owner .. '|' .. string.format('%d', now + ttl))
  redis.call('PEXPIRE', key, ttl)
end
local function wf_guard_drop(key, field, owner)
  local held = redis.call('HGET', key, field)
  if held and string.sub(held, 1, #owner + 1) == owner .. '|' then
    redis.call('HDEL', key, field)
    return 1
  end
  return 0
end
local function wf_stage(run, stage, now)
  local rec = wf_load(run, 's:' .. stage)
  if not rec then rec = {attempts = 0, deliveries = 0, first_at = now} end
  rec.updated_at = now
  return rec
end
local function wf_unqueue(rec, mid)
  if type(rec.queued) ~= 'table' then return end
  local keep = {}
  for _, v in ipairs(rec.queued) do
    if v ~= mid then keep[#keep + 1] = v end
  end
  if #keep == 0 then rec.queued = nil else rec.queued = keep end
end
local function wf_run(run, now)
  local r = wf_load(run, 'run')
  if not r then r = {created_at = now} end
  r.updated_at = now
  return r
end
local function wf_received(run, mid)
  local l = wf_load(run, 'l:' .. mid)
  return l ~= nil and l.state ~= 'published'
end
local function wf_lineage(run, mid, raw, state, now)
  local l = wf_load(run, 'l:' .. mid)
  if not l then
    local ok, value = pcall(cjson.decode, raw)
    if not ok or type(value) ~= 'table' then return end
    l = value
    l.first_at = now
  end
  l.state = state
  l.at = now
  wf_save(run, 'l:' .. mid, l)
end
"""

#: Before a handler: ``wf_enter(K, A)`` with K = run, inflight, dedup marker and
#: A = stage, message_id, guard field, owner, now_ms, guard_ttl_ms, run_ttl_ms,
#: envelope, lineage json, check marker ('1'/'0'). Returns ``(reply, nil)`` or
#: ``(nil, wrongtype error text)`` (nothing written then).
_ENTER_FN = """
local function wf_enter(K, A)
  for i, kind in ipairs({'hash', 'hash', 'string'}) do
    local bad = wf_check(K[i], kind)
    if bad then return nil, bad.err end
  end
  local stage, mid, guard, owner = A[1], A[2], A[3], A[4]
  local now, guard_ttl = tonumber(A[5]), tonumber(A[6])
  if redis.call('HEXISTS', K[1], 'd:' .. stage .. ':' .. mid) == 1 then
    return {'duplicate', 'message'}
  end
  if A[10] == '1' and redis.call('EXISTS', K[3]) == 1 then
    return {'duplicate', 'dedup'}
  end
  if not wf_guard_free(K[2], guard, owner, now) then
    return {'busy', guard}
  end
  wf_guard_take(K[2], guard, owner, now, guard_ttl)
  local rec = wf_stage(K[1], stage, now)
  rec.status = 'running'
  rec.attempts = (tonumber(rec.attempts) or 0) + 1
  rec.deliveries = (tonumber(rec.deliveries) or 0) + 1
  rec.last_message_id = mid
  rec.started_at = now
  wf_unqueue(rec, mid)
  wf_save(K[1], 's:' .. stage, rec)
  redis.call('HSET', K[1], 'm:' .. stage, A[8])
  wf_lineage(K[1], mid, A[9], 'received', now)
  local r = wf_run(K[1], now)
  wf_save(K[1], 'run', r)
  redis.call('PEXPIRE', K[1], tonumber(A[7]))
  return {'go', tostring(rec.attempts)}
end
"""


def _alone(function: str, name: str) -> str:
    """A script running one step: the prelude, the step's function, and its call."""
    return (
        _PRELUDE
        + function
        + f"""
local reply, bad = {name}(KEYS, ARGV)
if bad then return redis.error_reply(bad) end
return reply
"""
    )


_ENTER_LUA = _alone(_ENTER_FN, "wf_enter")

_FANIN_LUA = (
    _PRELUDE
    + """
-- KEYS: fan-in, run, inflight
-- ARGV: stage, branch, message_id, envelope, expected count, fan-in ttl_ms, owner,
--       now_ms, guard_ttl_ms, run_ttl_ms, lineage json
for i, kind in ipairs({'hash', 'hash', 'hash'}) do
  local bad = wf_check(KEYS[i], kind)
  if bad then return bad end
end
local stage, branch, mid = ARGV[1], ARGV[2], ARGV[3]
local expected, fanin_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local owner, now, guard_ttl = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
if redis.call('HEXISTS', KEYS[1], 'done') == 1 then
  -- a late copy: counted and kept in the lineage, never joined again
  local rec = wf_load(KEYS[2], 's:' .. stage)
  if rec then
    rec.deliveries = (tonumber(rec.deliveries) or 0) + 1
    wf_save(KEYS[2], 's:' .. stage, rec)
    wf_lineage(KEYS[2], mid, ARGV[11], 'received', now)
  end
  return {'done', redis.call('HGET', KEYS[1], 'n') or '0', '0'}
end
local new = redis.call('HSETNX', KEYS[1], 'b:' .. branch, ARGV[4])
local n
if new == 1 then
  n = redis.call('HINCRBY', KEYS[1], 'n', 1)
  redis.call('HSET', KEYS[1], 'i:' .. branch, n)
else
  n = tonumber(redis.call('HGET', KEYS[1], 'n')) or 0
end
redis.call('PEXPIRE', KEYS[1], fanin_ttl)
local rec = wf_stage(KEYS[2], stage, now)
rec.deliveries = (tonumber(rec.deliveries) or 0) + 1
local fan = rec.fan_in
if type(fan) ~= 'table' then fan = {} end
if new == 1 then
  local arrived = fan.branches
  if type(arrived) ~= 'table' or n == 1 then arrived = {} end
  arrived[#arrived + 1] = branch
  fan.branches = arrived
end
fan.arrived = n
fan.expected = expected
fan.expires_at = now + fanin_ttl
rec.fan_in = fan
wf_unqueue(rec, mid)
wf_lineage(KEYS[2], mid, ARGV[11], 'received', now)
local state = 'waiting'
if n >= expected then
  if not wf_guard_free(KEYS[3], 'join', owner, now) then
    state = 'busy'
  else
    state = 'release'
    wf_guard_take(KEYS[3], 'join', owner, now, guard_ttl)
    rec.attempts = (tonumber(rec.attempts) or 0) + 1
    rec.started_at = now
    rec.status = 'running'
    rec.last_message_id = mid
  end
end
if state == 'waiting' then rec.status = 'waiting' end
wf_save(KEYS[2], 's:' .. stage, rec)
redis.call('HSET', KEYS[2], 'm:' .. stage, ARGV[4])
wf_save(KEYS[2], 'run', wf_run(KEYS[2], now))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[10]))
local out = {state, tostring(n), tostring(new)}
if state == 'release' then
  local all = redis.call('HGETALL', KEYS[1])
  local order = {}
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == 'i:' then
      order[#order + 1] = {tonumber(all[i + 1]), string.sub(f, 3)}
    end
  end
  table.sort(order, function(a, b) return a[1] < b[1] end)
  for _, item in ipairs(order) do
    out[#out + 1] = item[2]
    out[#out + 1] = redis.call('HGET', KEYS[1], 'b:' .. item[2])
  end
end
return out
"""
)

#: After a handler: ``wf_settle(K, A)`` with K = run, inflight, dedup marker, fan-in
#: and A = verb (complete/fail), stage, message_id, guard field, owner, now_ms,
#: run_ttl_ms, dedup_ttl_ms (0: no marker), failure status, error json,
#: hand-offs json [[target, message_id, lineage json]...], terminal ('1'/'0'),
#: join done ('1'/'0'). Returns ``(1 or 0, nil)`` (1: the guard was still the
#: owner's) or ``(nil, wrongtype error text)`` (nothing written then).
_SETTLE_FN = """
local function wf_settle(K, A)
  for i, kind in ipairs({'hash', 'hash', 'string', 'hash'}) do
    local bad = wf_check(K[i], kind)
    if bad then return nil, bad.err end
  end
  local verb, stage, mid, owner = A[1], A[2], A[3], A[5]
  local now = tonumber(A[6])
  local held = wf_guard_drop(K[2], A[4], owner)
  local rec = wf_stage(K[1], stage, now)
  local r = wf_run(K[1], now)
  if verb == 'complete' then
    redis.call('HSET', K[1], 'd:' .. stage .. ':' .. mid, '1')
    local dedup_ttl = tonumber(A[8]) or 0
    if dedup_ttl > 0 then redis.call('SET', K[3], '1', 'PX', dedup_ttl) end
    if A[13] == '1' then
      redis.call('HSET', K[4], 'done', string.format('%d', now))
    end
    rec.status = 'completed'
    rec.completed_at = now
    rec.last_error = nil
    local ok, handoffs = pcall(cjson.decode, A[11])
    if ok and type(handoffs) == 'table' then
      for _, h in ipairs(handoffs) do
        local target, hmid = h[1], h[2]
        -- the hand-off was confirmed before this script: its target may have
        -- received it (and even settled it) already; then nothing is queued
        if not wf_received(K[1], hmid) then
          if target == stage then
            local q = rec.queued
            if type(q) ~= 'table' then q = {} end
            if #q < 64 then q[#q + 1] = hmid end
            rec.queued = q
            rec.status = 'queued'
          else
            local t = wf_stage(K[1], target, now)
            if t.status ~= 'running' and t.status ~= 'waiting' then t.status = 'queued' end
            local q = t.queued
            if type(q) ~= 'table' then q = {} end
            if #q < 64 then q[#q + 1] = hmid end
            t.queued = q
            wf_save(K[1], 's:' .. target, t)
          end
          wf_lineage(K[1], hmid, h[3], 'published', now)
        end
      end
    end
    if A[12] == '1' then
      r.terminal = true
      r.terminal_stage = stage
      r.completed_at = now
    end
  else
    rec.status = A[9]
    local ok, err = pcall(cjson.decode, A[10])
    if ok and type(err) == 'table' then
      err.at = now
      err.stage = stage
      rec.last_error = err
      r.last_error = err
    end
  end
  wf_save(K[1], 's:' .. stage, rec)
  wf_save(K[1], 'run', r)
  redis.call('PEXPIRE', K[1], tonumber(A[7]))
  return held
end
"""

_SETTLE_LUA = _alone(_SETTLE_FN, "wf_settle")

#: Several enter and settle steps (of concurrent deliveries) in one call, each as
#: atomic as alone and run in order. Per step: 4 KEYS (run, inflight, dedup
#: marker, fan-in; enter ignores the 4th) and ARGV ``verb, argc, args...``
#: (verb ``enter`` or ``settle``). Reply: two items per step, ``verdict,
#: detail`` for enter, ``held`` ('1'/'0'), '' for settle, ``'error', text``
#: for a step refused by a key of the wrong type (that step wrote nothing).
_STEPS_LUA = (
    _PRELUDE
    + _ENTER_FN
    + _SETTLE_FN
    + """
local out, a = {}, 1
for i = 0, math.floor(#KEYS / 4) - 1 do
  local verb, argc = ARGV[a], tonumber(ARGV[a + 1])
  local args = {}
  for j = 1, argc do args[j] = ARGV[a + 1 + j] end
  a = a + 2 + argc
  local keys = {KEYS[i * 4 + 1], KEYS[i * 4 + 2], KEYS[i * 4 + 3], KEYS[i * 4 + 4]}
  local reply, bad
  if verb == 'enter' then
    reply, bad = wf_enter(keys, args)
  else
    reply, bad = wf_settle(keys, args)
  end
  if bad then
    out[#out + 1] = 'error'
    out[#out + 1] = bad
  elseif verb == 'enter' then
    out[#out + 1] = reply[1]
    out[#out + 1] = reply[2]
  else
    out[#out + 1] = tostring(reply)
    out[#out + 1] = ''
  end
end
return out
"""
)

_RENEW_LUA = """
-- KEYS: inflight   ARGV: guard field, owner, now_ms, ttl_ms
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and string.sub(held, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then
  local ttl = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. string.format('%d', tonumber(ARGV[3]) + ttl))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
return 0
"""

_RELEASE_LUA = """
-- KEYS: inflight   ARGV: guard field, owner
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and string.sub(held, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

_REPLAY_LUA = (
    _PRELUDE
    + """
-- KEYS: run   ARGV: stage, message_id, now_ms, run_ttl_ms, lineage json, reason
local bad = wf_check(KEYS[1], 'hash')
if bad then return bad end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local stage, mid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rec = wf_stage(KEYS[1], stage, now)
rec.replays = (tonumber(rec.replays) or 0) + 1
rec.last_replay_reason = ARGV[6]
local r = wf_run(KEYS[1], now)
-- published (and confirmed) before this script: a worker may have taken it
-- already, and then its own scripts tell the stage's state
if not wf_received(KEYS[1], mid) then
  rec.status = 'queued'
  local q = rec.queued
  if type(q) ~= 'table' then q = {} end
  if #q < 64 then q[#q + 1] = mid end
  rec.queued = q
  wf_lineage(KEYS[1], mid, ARGV[5], 'published', now)
  r.terminal = nil
  r.terminal_stage = nil
  r.completed_at = nil
  r.reopened_at = now
end
wf_save(KEYS[1], 's:' .. stage, rec)
wf_save(KEYS[1], 'run', r)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""
)

#: The run was cancelled: ``run.cancelled_at`` / ``run.cancel_reason`` (first cancel
#: wins); the run's ending itself is decided by the cancellation steps
#: (:data:`~relayna.rabbitmq.CANCEL_SCRIPT`), this records it for the run state.
_CANCEL_LUA = (
    _PRELUDE
    + """
-- KEYS: run   ARGV: now_ms, run_ttl_ms, reason
local bad = wf_check(KEYS[1], 'hash')
if bad then return bad end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local now = tonumber(ARGV[1])
local r = wf_run(KEYS[1], now)
if r.cancelled_at == nil then
  r.cancelled_at = now
  r.cancel_reason = ARGV[3]
end
wf_save(KEYS[1], 'run', r)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
)

STAGE_ENTER_SCRIPT = Script(name="relayna.workflow.stage_enter", lua=_ENTER_LUA)
FANIN_ARRIVE_SCRIPT = Script(name="relayna.workflow.fanin_arrive", lua=_FANIN_LUA)
STAGE_SETTLE_SCRIPT = Script(name="relayna.workflow.stage_settle", lua=_SETTLE_LUA)
STAGE_STEPS_SCRIPT = Script(name="relayna.workflow.stage_steps", lua=_STEPS_LUA)
GUARD_RENEW_SCRIPT = Script(name="relayna.workflow.guard_renew", lua=_RENEW_LUA)
GUARD_RELEASE_SCRIPT = Script(name="relayna.workflow.guard_release", lua=_RELEASE_LUA)
RUN_REPLAY_SCRIPT = Script(name="relayna.workflow.run_replay", lua=_REPLAY_LUA)
RUN_CANCEL_SCRIPT = Script(name="relayna.workflow.run_cancel", lua=_CANCEL_LUA)
