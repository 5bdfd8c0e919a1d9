"""OpenTelemetry spans (``relayna[otel]``: the API only; the app installs an SDK).

* **Producer** span per publish (``relayna.rabbitmq.publish_*``, kind
  PRODUCER); its context replaces any ``traceparent``/``tracestate`` in the
  outgoing headers, so a retry copy carries the retry publish, not the
  original one.
* **Consumer** span per delivery (``relayna.consumer.task_message``, kind
  CONSUMER): child of the producer context found in the (validated) headers
  and linked to it, so a task's producer → worker → retry → worker → status
  hops are one trace.
* **Hub** span per stored status event (``relayna.status_hub.write``, kind
  CONSUMER), child of the status message's producer context.

Attributes follow the messaging semantic conventions (``messaging.system``,
``messaging.operation.type``, ``messaging.destination.name``,
``messaging.message.id``, ``messaging.message.conversation_id`` = the
correlation id, ``messaging.rabbitmq.destination.routing_key``) plus
``relayna.task_id`` and ``relayna.retry_attempt``. No URL or credential is
ever an attribute.

Cost: until an SDK tracer provider is installed (the API's default proxy
provider is in place) every helper returns at once, so an untraced worker
pays one ``isinstance`` per message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from relayna.observability import _trace_context
from relayna.observability._trace_context import extract_trace_context

__all__ = [
    "active_trace_ids",
    "consumer_span",
    "hub_write_span",
    "inject_span_headers",
    "producer_span",
    "tracing_enabled",
]

_propagate = _trace_context.otel_propagate
_trace = _trace_context.otel_trace

_TRACER_NAME = "relayna"
_PROVIDER_ENV = "OTEL_PYTHON_TRACER_PROVIDER"  # opentelemetry.environment_variables
_UNKNOWN: Any = object()


#: Whether the process started with ``OTEL_PYTHON_TRACER_PROVIDER`` set (the API
#: then loads that provider on its first use). Read once: ``name in os.environ``
#: raises and catches a ``KeyError`` when the name is absent (~2 µs), and
#: :func:`tracing_enabled` runs several times per message.
_PROVIDER_FROM_ENV = _PROVIDER_ENV in os.environ


def tracing_enabled() -> bool:
    """True when ``opentelemetry-api`` is installed and an SDK provider is set.

    Reads the provider the API keeps once ``set_tracer_provider`` ran (a
    module attribute, ~20 ns) instead of ``get_tracer_provider()``, which
    looks the environment up on every call while none is set (~2 µs, paid by
    every untraced message several times). A provider named by
    ``OTEL_PYTHON_TRACER_PROVIDER`` in the environment the process started
    with is loaded through the API as before.
    """
    if _trace is None:
        return False
    provider = getattr(_trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None:
        if not _PROVIDER_FROM_ENV:
            return False
        provider = _trace.get_tracer_provider()
    elif provider is _UNKNOWN:  # an API version without the attribute: ask it
        provider = _trace.get_tracer_provider()
    return not isinstance(provider, _trace.ProxyTracerProvider)


#: ``(provider, tracer)``: the SDK builds a new Tracer (scope, resource, span
#: limits) on every ``get_tracer`` call, which cost more than the span itself;
#: relayna asks once per installed provider.
_cached_tracer: tuple[Any, Any] = (None, None)


def _tracer() -> Any:
    global _cached_tracer
    assert _trace is not None
    provider = _trace.get_tracer_provider()
    cached_provider, tracer = _cached_tracer
    if cached_provider is not provider:
        tracer = provider.get_tracer(_TRACER_NAME)
        _cached_tracer = (provider, tracer)
    return tracer


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def active_trace_ids() -> tuple[str | None, str | None]:
    """``(trace_id, span_id)`` of the active span as hex, or ``(None, None)``."""
    if _trace is None:
        return None, None
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def inject_span_headers(headers: dict[str, Any]) -> None:
    """Write the active context into ``headers``, replacing older trace headers."""
    if _propagate is None:
        return
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    if carrier:
        headers.pop("traceparent", None)
        headers.pop("tracestate", None)
        headers.update(carrier)


@contextmanager
def producer_span(
    name: str,
    *,
    exchange: str,
    routing_key: str,
    message_id: str | None = None,
    correlation_id: str | None = None,
    task_id: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> Iterator[bool]:
    """A PRODUCER span around one publish; yields whether a span is recording.

    The parent is the active span; without one, a valid ``traceparent`` the
    caller put in ``headers`` (the trace the message belongs to). Inject the
    headers (:func:`inject_span_headers`) inside the block.
    """
    if not tracing_enabled():
        yield False
        return
    parent = None
    if headers and not _trace.get_current_span().get_span_context().is_valid:
        parent, _ = _remote_parent(headers)
    attributes = _clean(
        {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": exchange or routing_key,
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "messaging.message.id": message_id,
            "messaging.message.conversation_id": correlation_id,
            "relayna.task_id": task_id,
        }
    )
    kind = _trace.SpanKind.PRODUCER
    with _tracer().start_as_current_span(name, context=parent, kind=kind, attributes=attributes):
        yield True


def _remote_parent(headers: Mapping[str, Any] | None) -> tuple[Any, list[Any]]:
    """The validated producer context of a message and a link to it (or a new root)."""
    context = extract_trace_context(headers)
    if context is None or _trace is None:
        return None, []
    span_context = _trace.get_current_span(context).get_span_context()
    return context, [_trace.Link(span_context)] if span_context.is_valid else []


@contextmanager
def consumer_span(
    name: str,
    *,
    headers: Mapping[str, Any] | None,
    queue: str,
    consumer: str,
    task_id: str | None = None,
    correlation_id: str | None = None,
    message_id: str | None = None,
    retry_attempt: int | None = None,
) -> Iterator[None]:
    """A CONSUMER span around processing one delivery (a no-op when untraced)."""
    if not tracing_enabled():
        yield
        return
    parent, links = _remote_parent(headers)
    attributes = _clean(
        {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.operation.name": "consume",
            "messaging.destination.name": queue,
            "messaging.consumer.group.name": consumer,
            "messaging.message.id": message_id,
            "messaging.message.conversation_id": correlation_id,
            "relayna.task_id": task_id,
            "relayna.retry_attempt": retry_attempt,
        }
    )
    kind = _trace.SpanKind.CONSUMER
    with _tracer().start_as_current_span(
        name, context=parent, kind=kind, links=links, attributes=attributes
    ):
        yield


def hub_write_span(
    headers: Mapping[str, Any] | None,
    *,
    queue: str,
    task_id: str,
    event_id: str | None,
    stored: bool,
    start_time_ns: int,
) -> None:
    """Record one status event's store write (already done) as a CONSUMER span."""
    if not tracing_enabled():
        return
    parent, links = _remote_parent(headers)
    attributes = _clean(
        {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": event_id,
            "relayna.task_id": task_id,
            "relayna.duplicate": not stored,
        }
    )
    span = _tracer().start_span(
        "relayna.status_hub.write",
        context=parent,
        kind=_trace.SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
        start_time=start_time_ns,
    )
    span.end()
