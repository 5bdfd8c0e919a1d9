"""Stored messages and dead-lettering bookkeeping (``x-death``), as RabbitMQ does it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import attrs

from relayna.errors import PreconditionFailed
from relayna.transport._broker import Properties
from relayna.transport.memory_broker._tables import copy_table, copy_value

__all__ = [
    "DeathReason",
    "Message",
    "copy_properties",
    "is_cycle",
    "parse_expiration",
    "with_death",
]

DeathReason = Literal["rejected", "expired", "maxlen", "delivery_limit"]


@attrs.define(eq=False)
class Message:
    """One copy of a message as a queue holds it (each queue gets its own copy)."""

    body: bytes
    properties: Properties
    exchange: str
    routing_keys: list[str]
    seq: int = 0
    priority: int = 0
    expires_at: float | None = None
    redelivered: bool = False
    delivery_count: int = 0

    @property
    def routing_key(self) -> str:
        return self.routing_keys[0] if self.routing_keys else ""

    def copy(self) -> Message:
        return Message(
            body=self.body,
            properties=copy_properties(self.properties),
            exchange=self.exchange,
            routing_keys=list(self.routing_keys),
        )


def copy_properties(properties: Properties) -> Properties:
    """A copy whose headers share nothing with ``properties``.

    Built field by field rather than with ``attrs.evolve``: this runs once per
    delivery, and evolve's field introspection cost more than the rest of a
    delivery together.
    """
    p = properties
    timestamp = p.timestamp
    return Properties(
        content_type=p.content_type,
        content_encoding=p.content_encoding,
        headers=copy_table(p.headers) if p.headers else {},
        delivery_mode=p.delivery_mode,
        priority=p.priority,
        correlation_id=p.correlation_id,
        reply_to=p.reply_to,
        expiration=p.expiration,
        message_id=p.message_id,
        timestamp=None if timestamp is None else copy_value(timestamp),
        type=p.type,
        user_id=p.user_id,
        app_id=p.app_id,
    )


def parse_expiration(expiration: str | None) -> int | None:
    """Validate a per-message ``expiration`` (milliseconds as a string)."""
    if expiration is None:
        return None
    text = str(expiration)
    if not text.isdigit():
        raise PreconditionFailed(
            f"invalid expiration {expiration!r}: expected a non-negative integer",
            reply_code=406,
            reply_text="PRECONDITION_FAILED - invalid expiration",
        )
    return int(text)


def with_death(message: Message, *, queue: str, reason: DeathReason) -> Properties:
    """Properties for the dead-lettered copy: updated ``x-death``, no ``expiration``.

    ``x-death`` is a list of tables, most recent first, one per (queue, reason)
    with a ``count``; ``x-first-death-*`` headers record the first death.
    """
    headers = copy_table(message.properties.headers)
    deaths: list[Any] = [
        entry for entry in headers.get("x-death", []) or [] if isinstance(entry, dict)
    ]
    for index, entry in enumerate(deaths):
        if entry.get("queue") == queue and entry.get("reason") == reason:
            entry["count"] = int(entry.get("count", 0)) + 1
            deaths.insert(0, deaths.pop(index))
            break
    else:
        entry = {
            "count": 1,
            "reason": reason,
            "queue": queue,
            "time": datetime.now(UTC).replace(microsecond=0),
            "exchange": message.exchange,
            "routing-keys": list(message.routing_keys),
        }
        if message.properties.expiration is not None:
            entry["original-expiration"] = message.properties.expiration
        deaths.insert(0, entry)
    headers["x-death"] = deaths
    headers.setdefault("x-first-death-reason", reason)
    headers.setdefault("x-first-death-queue", queue)
    headers.setdefault("x-first-death-exchange", message.exchange)
    return attrs.evolve(message.properties, headers=headers, expiration=None)


def is_cycle(target_queue: str, headers: dict[str, Any]) -> bool:
    """RabbitMQ's cycle rule: drop a dead-letter that returns to a queue it died in
    unless a client rejection happened along the way."""
    deaths = [entry for entry in headers.get("x-death", []) or [] if isinstance(entry, dict)]
    for index, entry in enumerate(deaths):
        if entry.get("queue") == target_queue:
            path = deaths[: index + 1]
            return all(step.get("reason") != "rejected" for step in path)
    return False
