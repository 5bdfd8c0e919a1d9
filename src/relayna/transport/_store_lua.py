"""Run a script's Lua in the memory store, as Redis runs it.

Theory of operation: each memory store owns one Lua 5.1 runtime (``lupa``'s
``lua51``, the Lua version Redis embeds). A script is compiled once per
source into a function whose environment is a Redis-like sandbox: the base
library, ``string``, ``table``, ``math``, ``coroutine``, ``cjson``, ``bit``
and a ``redis`` table
(``call``, ``pcall``, ``error_reply``, ``status_reply``, ``sha1hex``,
``log``, ...). Reading an undefined global or creating one is an error, as
in Redis. ``redis.call`` hands its arguments to the command interpreter
(:mod:`relayna.transport._store_commands`) over the store's synchronous
core, and the values cross the boundary with Redis's conversion rules:

* to Lua: integer → number, bulk → string, nil → ``false``, array → table,
  status → ``{ok = ...}``, error → ``{err = ...}`` (raised by ``call``,
  returned by ``pcall``);
* from Lua (the script's result): number → integer (truncated), string →
  bulk, ``true`` → 1, ``false``/``nil`` → nil, ``{ok = s}`` → status,
  ``{err = s}`` → error, other tables → array up to the first ``nil``.

Arguments Lua passes as numbers are formatted as Redis 7.0 formats them
(``%.17g``). So the memory store runs exactly the Lua that Redis runs, and a
script has one source of truth. A script that runs longer than
:data:`SCRIPT_TIME_LIMIT` seconds of CPU is stopped with an error (Redis
would keep the server busy until ``SCRIPT KILL``).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from typing import Any

import lupa.lua51 as lua

from relayna.transport._store_bit import BIT_FUNCTIONS
from relayna.transport._store_cjson import CjsonCodec
from relayna.transport._store_cmd_base import INT_MIN, Status
from relayna.transport._store_commands import ReplyError, execute
from relayna.transport._store_memory_core import MemoryCore

__all__ = ["SCRIPT_TIME_LIMIT", "LuaScripts", "ScriptFailure"]

log = logging.getLogger("relayna.transport.memory_store")

#: CPU seconds a script may run in the memory store before it is stopped.
SCRIPT_TIME_LIMIT = 5.0

_ARG_ERROR = b"ERR Lua redis lib command arguments must be strings or integers"

# Runs once per runtime with the Python bridges as arguments; returns
# ``compile(source)`` and ``run(fn, keys, argv, limit)``.
_BOOTSTRAP = """
local dispatch, sha1hex, log, json_encode, json_decode, bitops = ...
local G = _G
local env = {}
for _, name in ipairs({'assert', 'collectgarbage', 'error', 'gcinfo', 'getmetatable',
    'ipairs', 'next', 'pairs', 'pcall', 'rawequal', 'rawget', 'rawset', 'select',
    'setmetatable', 'tonumber', 'tostring', 'type', 'unpack', 'xpcall', '_VERSION'}) do
  env[name] = G[name]
end
local function copy(t) local c = {} for k, v in pairs(t) do c[k] = v end return c end
env.string, env.table, env.math, env.coroutine = copy(string), copy(table), copy(math), copy(coroutine)
local function sandboxed(loader)
  return function(...)
    local fn, err = loader(...)
    if fn then setfenv(fn, env) end
    return fn, err
  end
end
env.loadstring, env.load = sandboxed(loadstring), sandboxed(load)
env.bit = bitops

local null = newproxy(false)
local function unwrap(ok, value)
  if ok then return value end
  error(value, 3)
end
env.cjson = {
  null = null,
  encode = function(value) return unwrap(json_encode(value)) end,
  decode = function(text) return unwrap(json_decode(text, null)) end,
}

local redis = {
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = '7.0.0', REDIS_VERSION_NUM = 0x00070000,
}
function redis.call(...)
  local kind, value = dispatch(...)
  if kind == 0 then return value end
  if kind == 1 then return {ok = value} end
  error({err = value}, 0)
end
function redis.pcall(...)
  local kind, value = dispatch(...)
  if kind == 0 then return value end
  if kind == 1 then return {ok = value} end
  return {err = value}
end
function redis.error_reply(message) return {err = message} end
function redis.status_reply(message) return {ok = message} end
function redis.sha1hex(text) return sha1hex(text) end
function redis.log(level, message) log(level, message) end
function redis.setresp(version)
  if version ~= 2 then error('the memory store speaks RESP2 to scripts only', 2) end
end
function redis.set_repl(_) end
function redis.replicate_commands() return true end
function redis.breakpoint() return false end
function redis.debug(...) end
env.redis = redis
env._G = env

setmetatable(env, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __newindex = function(_, name)
    error("Script attempted to create global variable '" .. tostring(name) .. "'", 2)
  end,
})

local clock, deadline = os.clock, math.huge
debug.sethook(function()
  if clock() > deadline then
    deadline = math.huge
    error('script ran out of time in the memory store', 2)
  end
end, '', 100000)

local loadstring, setfenv, pcall, rawset = loadstring, setfenv, pcall, rawset
local function compile(source)
  local fn, err = loadstring(source, '@user_script')
  if not fn then return nil, err end
  setfenv(fn, env)
  return fn, false
end
local function run(fn, keys, argv, limit)
  rawset(env, 'KEYS', keys)
  rawset(env, 'ARGV', argv)
  deadline = clock() + limit
  local ok, result = pcall(fn)
  deadline = math.huge
  if ok then return true, result end
  if type(result) == 'table' and type(result.err) == 'string' then return false, result.err end
  return false, 'ERR ' .. tostring(result)
end
return compile, run
"""


class ScriptFailure(Exception):
    """A script failed (compile error, runtime error, or an error reply)."""


def _deny_attributes(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("scripts cannot reach Python objects")


class LuaScripts:
    """Runs scripts' Lua against one memory store core (see module docs)."""

    def __init__(self, core: MemoryCore) -> None:
        self._core = core
        self._lua = lua.LuaRuntime(
            encoding=None,
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_deny_attributes,
        )
        self._table = self._lua.table_from
        self._cjson = CjsonCodec(self._lua)
        self._compile, self._run = self._lua.execute(
            _BOOTSTRAP,
            self._dispatch,
            _sha1hex,
            _log,
            self._cjson.encode,
            self._cjson.decode,
            self._table(BIT_FUNCTIONS),
        )
        self._functions: dict[str, Any] = {}

    def run(self, source: str, keys: Sequence[str], args: Sequence[bytes]) -> Any:
        """Run ``source`` with ``KEYS``/``ARGV``; returns the reply as the RESP adapters do.

        Raises:
            ScriptFailure: the script did not compile, raised an error, or
                returned an error reply.
        """
        fn = self._functions.get(source)
        if fn is None:
            fn, error = self._compile(source.encode())
            if fn is None:
                raise ScriptFailure(f"ERR Error compiling script: {_text(error)}")
            self._functions[source] = fn
        self._core.freeze()
        try:
            ok, result = self._run(
                fn, self._table([k.encode() for k in keys]), self._table(args), SCRIPT_TIME_LIMIT
            )
        finally:
            self._core.thaw()
        if not ok:
            raise ScriptFailure(_text(result))
        return self._from_lua(result)

    # -- Lua -> Redis ------------------------------------------------------------
    def _dispatch(self, *words: Any) -> tuple[int, Any]:
        """``redis.call``: (0, value), (1, status text) or (2, error text)."""
        args: Sequence[bytes] = words
        for word in words:
            if word.__class__ is not bytes:
                converted = _arguments(words)
                if converted is None:
                    return 2, _ARG_ERROR
                args = converted
                break
        try:
            reply = execute(self._core, args)
        except ReplyError as exc:
            return 2, str(exc).encode()
        if reply is None:
            return 0, False
        if reply.__class__ is list:
            return 0, self._table([self._to_lua(item) for item in reply])
        if isinstance(reply, Status):
            return 1, bytes(reply)
        return 0, reply

    def _to_lua(self, reply: Any) -> Any:
        if reply is None:
            return False
        if isinstance(reply, Status):
            return self._table({b"ok": bytes(reply)})
        if isinstance(reply, list):
            return self._table([self._to_lua(item) for item in reply])
        return reply

    # -- Lua -> the caller -------------------------------------------------------
    def _from_lua(self, value: Any) -> Any:
        if value is None or value is False:
            return None
        if value is True:
            return 1
        if isinstance(value, bytes):
            return value
        if isinstance(value, (int, float)):
            # C's (long long) cast, as Redis does it; out of range gives LLONG_MIN on x86-64
            return int(value) if math.isfinite(value) and INT_MIN <= value < -INT_MIN else INT_MIN
        if lua.lua_type(value) != "table":
            return None
        err = value[b"err"]
        if isinstance(err, bytes):
            raise ScriptFailure(err.decode("utf-8", "replace"))
        ok = value[b"ok"]
        if isinstance(ok, bytes):
            return ok
        items = []
        index = 1
        while (item := value[index]) is not None:
            items.append(self._from_lua(item))
            index += 1
        return items


def _arguments(words: Sequence[object]) -> list[bytes] | None:
    """Command arguments as Redis 7.0 reads them from Lua (numbers as ``%.17g``)."""
    converted: list[bytes] = []
    for word in words:
        if isinstance(word, bytes):
            converted.append(word)
        elif isinstance(word, (int, float)) and not isinstance(word, bool):
            converted.append(b"%.17g" % float(word))
        else:
            return None
    return converted


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _sha1hex(text: object) -> bytes:
    data = text if isinstance(text, bytes) else str(text).encode()
    return hashlib.sha1(data).hexdigest().encode()


def _log(level: object, message: object) -> None:
    log.debug("script log (level %s): %s", level, _text(message))
