"""The status store's scripts (see :mod:`relayna.status._store` for the design)."""

from __future__ import annotations

from relayna.observability import FEED_APPEND_LUA_FUNCTION, FEED_TYPE_CHECK_LUA
from relayna.transport import Script

__all__ = [
    "ADD_CHILD_SCRIPT",
    "SHARDED_WRITE_STATUS_SCRIPT",
    "WRITE_STATUS_AND_FEED_SCRIPT",
    "WRITE_STATUS_SCRIPT",
]

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

#: The same write for the cluster key layout: the event goes out with
#: ``SPUBLISH`` on the task's sharded channel (in the task's slot, so only the
#: node owning it carries the message, instead of a broadcast to every node).
SHARDED_WRITE_STATUS_SCRIPT = Script(
    name="relayna.status.write_sharded",
    lua=_WRITE_LUA.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',"),
)


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


_ADD_CHILD_LUA = """
-- KEYS: children   ARGV: child task_id, ttl_ms
local c = redis.call('TYPE', KEYS[1])['ok']
if c ~= 'none' and c ~= 'set' then return redis.error_reply('WRONGTYPE children key') end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

#: The cluster layout's second write: the child into its parent's children
#: set, in the parent's slot (idempotent, so repeating it is harmless).
ADD_CHILD_SCRIPT = Script(name="relayna.status.add_child", lua=_ADD_CHILD_LUA)
