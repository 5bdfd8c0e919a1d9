"""The audit record of an operational MCP call: an observation and a log line."""

from __future__ import annotations

import logging

import attrs

from relayna.observability import Observation, observation_to_dict

__all__ = ["AUDIT_LOGGER", "MCPOperationCalled", "audit_log"]

#: The logger of the audit lines (one per operational call, allowed or not).
AUDIT_LOGGER = "relayna.mcp.audit"
_log = logging.getLogger(AUDIT_LOGGER)


@attrs.frozen(kw_only=True)
class MCPOperationCalled(Observation):
    """Who called which operational tool with what, and what came of it.

    ``outcome``: ``ok``, ``denied`` (disabled, or a missing/wrong token) or
    ``error`` (refused by relayna, e.g. a DLQ conflict; ``detail`` says why).
    ``arguments`` is the call's JSON (cut at 2,000 characters).
    """

    component: str = "mcp"
    tool: str
    caller: str
    transport: str
    client: str | None = None
    arguments: str
    outcome: str
    detail: str | None = None
    task_id: str | None = None
    dlq_id: str | None = None


def audit_log(event: MCPOperationCalled) -> None:
    """One structured line (the JSON log format shows every field)."""
    fields = observation_to_dict(event)
    _log.info(
        "mcp %s %s by %s: %s",
        event.tool,
        event.outcome,
        event.caller,
        event.detail or "done",
        extra={"audit": fields},
    )
