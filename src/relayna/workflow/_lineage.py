"""``build_lineage``: which message caused which, from message ids (pure).

The original took a message's ``correlation_id`` for its parent, so every
edge pointed at the task. relayna's envelopes carry ``parent_message_id``
(set by ``WorkflowContext.publish_to_stage``), and that is what an edge's
parent is; a message without one is a root (entered from outside).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from relayna.contracts import WorkflowEnvelope

from ._state import LineageMessage

__all__ = ["LineageEdge", "build_lineage"]


@attrs.frozen
class LineageEdge:
    """``message_id`` (in ``target_stage``) was published by the handler of
    ``parent_message_id`` (in ``source_stage``); parent None: a root."""

    parent_message_id: str | None
    message_id: str
    source_stage: str | None
    target_stage: str | None
    correlation_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "parent_message_id": self.parent_message_id,
            "message_id": self.message_id,
            "source_stage": self.source_stage,
            "target_stage": self.target_stage,
            "correlation_id": self.correlation_id,
        }


def _field(message: Any, name: str) -> Any:
    if isinstance(message, Mapping):
        return message.get(name)
    return getattr(message, name, None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def build_lineage(
    messages: Iterable[WorkflowEnvelope | LineageMessage | Mapping[str, Any]],
) -> tuple[LineageEdge, ...]:
    """One edge per message with a ``message_id`` (others are skipped), in
    input order, duplicates (same message id) once."""
    edges: list[LineageEdge] = []
    seen: set[str] = set()
    for message in messages:
        message_id = _text(_field(message, "message_id"))
        if message_id is None or message_id in seen:
            continue
        seen.add(message_id)
        edges.append(
            LineageEdge(
                parent_message_id=_text(_field(message, "parent_message_id")),
                message_id=message_id,
                source_stage=_text(_field(message, "origin_stage")),
                target_stage=_text(_field(message, "stage")),
                correlation_id=_text(_field(message, "correlation_id")),
            )
        )
    return tuple(edges)
