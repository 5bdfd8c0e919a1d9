"""The DLQ store's atomic scripts (Lua in ``_lua``; the memory store runs the same Lua)."""

from __future__ import annotations

from relayna.dlq import _lua as lua
from relayna.transport import Script

__all__ = [
    "ABORT_SCRIPT",
    "ADD_SCRIPT",
    "ALL_SCRIPTS",
    "CLAIM_SCRIPT",
    "DELETE_SCRIPT",
    "FINISH_SCRIPT",
    "GET_SCRIPT",
    "INVESTIGATE_SCRIPT",
    "LIST_SCRIPT",
    "SUMMARY_SCRIPT",
]

ADD_SCRIPT = Script("relayna.dlq.add", lua.ADD_LUA)
GET_SCRIPT = Script("relayna.dlq.get", lua.GET_LUA)
LIST_SCRIPT = Script("relayna.dlq.list", lua.LIST_LUA)
CLAIM_SCRIPT = Script("relayna.dlq.claim", lua.CLAIM_LUA)
FINISH_SCRIPT = Script("relayna.dlq.finish", lua.FINISH_LUA)
ABORT_SCRIPT = Script("relayna.dlq.abort", lua.ABORT_LUA)
INVESTIGATE_SCRIPT = Script("relayna.dlq.investigate", lua.INVESTIGATE_LUA)
DELETE_SCRIPT = Script("relayna.dlq.delete", lua.DELETE_LUA)
SUMMARY_SCRIPT = Script("relayna.dlq.summary", lua.SUMMARY_LUA)

#: Every script, for stores that preload scripts.
ALL_SCRIPTS = (
    ADD_SCRIPT,
    GET_SCRIPT,
    LIST_SCRIPT,
    CLAIM_SCRIPT,
    FINISH_SCRIPT,
    ABORT_SCRIPT,
    INVESTIGATE_SCRIPT,
    DELETE_SCRIPT,
    SUMMARY_SCRIPT,
)
