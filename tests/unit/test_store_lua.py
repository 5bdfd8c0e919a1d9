"""The memory store's Lua host, without an event loop: what Redis cannot be compared on."""

from __future__ import annotations

import pytest

from relayna.transport import _store_lua
from relayna.transport._pubsub_fanout import Fanout
from relayna.transport._store_lua import LuaScripts, ScriptFailure
from relayna.transport._store_memory_core import MemoryCore


@pytest.fixture
def lua() -> LuaScripts:
    return LuaScripts(MemoryCore(lambda: 100.0, Fanout(), "memory://"))


def test_keys_and_argv_are_the_current_calls_only(lua: LuaScripts) -> None:
    script = "return {#KEYS, #ARGV, KEYS[2] or 'none'}"
    assert lua.run(script, ["a", "b"], [b"1", b"2", b"3"]) == [2, 3, b"b"]
    assert lua.run(script, ["a"], []) == [1, 0, b"none"]


def test_a_runaway_script_is_stopped(lua: LuaScripts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_store_lua, "SCRIPT_TIME_LIMIT", 0.05)
    with pytest.raises(ScriptFailure, match="ran out of time"):
        lua.run("while true do end", [], [])
    assert lua.run("return 1", [], []) == 1  # the runtime is usable afterwards


def test_scripts_cannot_reach_python_objects(lua: LuaScripts) -> None:
    with pytest.raises(ScriptFailure):
        lua.run("return tostring(bit.band.__globals__)", [], [])
    with pytest.raises(ScriptFailure, match="nonexistent global variable 'python'"):
        lua.run("return python", [], [])


def test_globals_stay_clean_between_scripts(lua: LuaScripts) -> None:
    with pytest.raises(ScriptFailure, match="create global variable 'leak'"):
        lua.run("leak = 1", [], [])
    with pytest.raises(ScriptFailure, match="nonexistent global variable 'leak'"):
        lua.run("return leak", [], [])


def test_a_compile_error_is_a_script_failure(lua: LuaScripts) -> None:
    with pytest.raises(ScriptFailure, match="Error compiling script"):
        lua.run("return (", [], [])


def test_writes_go_to_the_core(lua: LuaScripts) -> None:
    lua.run("redis.call('SET', KEYS[1], ARGV[1], 'PX', 1500)", ["k"], [b"v"])
    core = lua._core
    assert core.get("k") == b"v"
    assert core.deadline("k") == pytest.approx(101.5)
