"""W3C trace context crosses the broker with OpenTelemetry installed (both backends)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from opentelemetry import trace

from relayna.consumer import TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker

pytestmark = pytest.mark.anyio
Until = Callable[..., Awaitable[None]]


async def test_publisher_injects_and_consumer_extracts_the_active_trace(
    broker: Broker, topology: Any, running: Any, until: Until, span_exporter: Any
) -> None:
    tracer = trace.get_tracer("relayna-tests")
    seen: list[tuple[str | None, Any]] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        seen.append((ctx.trace.trace_id if ctx.trace else None, ctx.otel_context))

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            with tracer.start_as_current_span("produce") as span:
                expected = format(span.get_span_context().trace_id, "032x")
                await client.publish_task({"task_id": "traced-1"})
            await client.publish_task({"task_id": "untraced-1"})
            await until(lambda: len(seen) == 2)
    traced, untraced = seen
    assert traced[0] == expected
    remote = trace.get_current_span(traced[1]).get_span_context()
    assert format(remote.trace_id, "032x") == expected
    assert remote.is_remote
    # no active span: the publish's own producer span starts a new trace
    assert untraced[0] is not None
    assert untraced[0] != expected
