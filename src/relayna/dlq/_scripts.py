"""The DLQ store's atomic scripts: Lua (``_lua``) with their Python twins (``_twins``)."""

from __future__ import annotations

from relayna.dlq import _lua as lua
from relayna.dlq import _twins as twins
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

ADD_SCRIPT = Script("relayna.dlq.add", lua.ADD_LUA, twins.add_twin)
GET_SCRIPT = Script("relayna.dlq.get", lua.GET_LUA, twins.get_twin)
LIST_SCRIPT = Script("relayna.dlq.list", lua.LIST_LUA, twins.list_twin)
CLAIM_SCRIPT = Script("relayna.dlq.claim", lua.CLAIM_LUA, twins.claim_twin)
FINISH_SCRIPT = Script("relayna.dlq.finish", lua.FINISH_LUA, twins.finish_twin)
ABORT_SCRIPT = Script("relayna.dlq.abort", lua.ABORT_LUA, twins.abort_twin)
INVESTIGATE_SCRIPT = Script("relayna.dlq.investigate", lua.INVESTIGATE_LUA, twins.investigate_twin)
DELETE_SCRIPT = Script("relayna.dlq.delete", lua.DELETE_LUA, twins.delete_twin)
SUMMARY_SCRIPT = Script("relayna.dlq.summary", lua.SUMMARY_LUA, twins.summary_twin)

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
