"""Prompts: ready-made instructions that point a model at the right tools."""

from __future__ import annotations

import mcp.types as types

from relayna.contracts import validate_identifier
from relayna.dlq import check_filter
from relayna.mcp._catalog import PROMPTS

__all__ = ["list_prompts", "render_prompt"]


def list_prompts() -> list[types.Prompt]:
    return [
        types.Prompt(
            name=p.name,
            title=p.title,
            description=p.description,
            arguments=[
                types.PromptArgument(name=n, description=d, required=True) for n, d in p.arguments
            ],
        )
        for p in PROMPTS
    ]


def _text(name: str, arguments: dict[str, str]) -> str:
    if name == "investigate_failed_task":
        task_id = arguments.get("task_id", "")
        validate_identifier(task_id)
        return (
            f"Investigate relayna task {task_id}. Call explain_task(task_id={task_id!r}) first. "
            "Say in two sentences why it failed (exception type, reason, attempts) and whether "
            "the cause looks transient. Read relayna://tasks/"
            f"{task_id}/history if the order of events matters. If a dead letter exists and the "
            "cause is fixed or transient, propose replay_dlq_message with its dlq_id, but do not "
            "call an operational tool without the user's go-ahead."
        )
    if name == "summarise_dlq":
        queue = check_filter("queue", arguments.get("queue", "") or "")
        return (
            f"Summarise the dead-letter queue {queue}. Call search_dlq(queue_name={queue!r}, "
            "limit=200) (follow next_cursor while it is not null), group the records by reason "
            "and exception_type, give counts and the oldest and newest dead_lettered_at per "
            "group, and propose one action per group (fix then replay, or discard). Do not "
            "replay anything yourself."
        )
    raise LookupError(f"unknown prompt {name!r}")


def render_prompt(name: str, arguments: dict[str, str]) -> types.GetPromptResult:
    """The prompt's messages.

    Raises:
        LookupError: unknown prompt. ContractError: an argument fails its rule.
    """
    text = _text(name, arguments)
    spec = next(p for p in PROMPTS if p.name == name)
    return types.GetPromptResult(
        description=spec.description,
        messages=[
            types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))
        ],
    )
