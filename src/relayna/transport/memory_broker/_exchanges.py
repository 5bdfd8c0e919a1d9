"""Exchanges and routing of the in-memory broker (pure, synchronous)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from relayna.errors import PreconditionFailed
from relayna.transport._broker import BindingSpec, ExchangeSpec, QueueSpec
from relayna.transport.memory_broker._tables import (
    KNOWN_QUEUE_ARGUMENTS,
    freeze,
    headers_match,
    topic_matches,
)

__all__ = ["PREDECLARED", "Exchange", "check_exchange_equivalent", "check_queue_equivalent"]

#: Exchanges every RabbitMQ vhost has.
PREDECLARED = (
    ExchangeSpec("amq.direct", "direct"),
    ExchangeSpec("amq.fanout", "fanout"),
    ExchangeSpec("amq.topic", "topic"),
    ExchangeSpec("amq.headers", "headers"),
    ExchangeSpec("amq.match", "headers"),
)


class Exchange:
    """A declared exchange and its bindings."""

    def __init__(self, spec: ExchangeSpec) -> None:
        self.spec = spec
        self.bindings: dict[tuple[str, str, Any], BindingSpec] = {}

    def bind(self, binding: BindingSpec) -> None:
        key = (binding.queue, binding.routing_key, freeze(binding.arguments))
        self.bindings.setdefault(key, binding)

    def unbind_queue(self, queue: str) -> None:
        for key in [k for k in self.bindings if k[0] == queue]:
            del self.bindings[key]

    def match(self, routing_keys: Iterable[str], headers: Mapping[str, Any]) -> list[str]:
        """Names of the queues a message with these keys/headers goes to (no duplicates)."""
        keys = list(routing_keys)
        kind = self.spec.type
        found: dict[str, None] = {}
        for binding in self.bindings.values():
            if kind == "fanout":
                hit = True
            elif kind == "direct":
                hit = binding.routing_key in keys
            elif kind == "topic":
                hit = any(topic_matches(binding.routing_key, key) for key in keys)
            else:
                hit = headers_match(binding.arguments, headers)
            if hit:
                found[binding.queue] = None
        return list(found)


def _value_text(value: Any) -> str:
    return "none" if value is None else f"the value '{value}'"


def _inequivalent(
    kind: str, name: str, field: str, requested: Any = None, current: Any = None
) -> PreconditionFailed:
    # The same wording as RabbitMQ (without the AMQP type names), so one parser
    # explains both brokers' refusals.
    text = (
        f"inequivalent arg '{field}' for {kind} '{name}' in vhost '/': "
        f"received {_value_text(requested)} but current is {_value_text(current)}"
    )
    return PreconditionFailed(text, reply_code=406, reply_text=f"PRECONDITION_FAILED - {text}")


def check_exchange_equivalent(existing: ExchangeSpec, spec: ExchangeSpec) -> None:
    """Raise 406 like RabbitMQ when a redeclare does not match the exchange."""
    for field in ("type", "durable", "auto_delete", "internal"):
        if getattr(existing, field) != getattr(spec, field):
            raise _inequivalent(
                "exchange", spec.name, field, getattr(spec, field), getattr(existing, field)
            )
    key = "alternate-exchange"
    if freeze(existing.arguments.get(key)) != freeze(spec.arguments.get(key)):
        raise _inequivalent(
            "exchange", spec.name, key, spec.arguments.get(key), existing.arguments.get(key)
        )


def check_queue_equivalent(existing: QueueSpec, spec: QueueSpec) -> None:
    """Raise 406 like RabbitMQ when a redeclare does not match the queue."""
    for field in ("durable", "exclusive", "auto_delete"):
        if getattr(existing, field) != getattr(spec, field):
            raise _inequivalent(
                "queue", spec.name, field, getattr(spec, field), getattr(existing, field)
            )
    for key in sorted(KNOWN_QUEUE_ARGUMENTS):
        old = existing.arguments.get(key)
        new = spec.arguments.get(key)
        if key == "x-queue-type":
            old, new = old or "classic", new or "classic"
        if freeze(old) != freeze(new):
            raise _inequivalent("queue", spec.name, key, new, old)
