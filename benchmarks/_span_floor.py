"""What OpenTelemetry's SDK alone costs per span: the floor under a traced worker.

The observability benchmark's traced worker runs with the SDK's
``TracerProvider`` and a ``BatchSpanProcessor`` (what a deployment
configures) exporting to an exporter that drops everything. This module
installs that provider with an exporter that also **counts** the spans it is
handed (so a round can report spans per task), and measures in the same
process what one span costs the SDK with nothing of relayna around it: a
``start_as_current_span`` with the nine attributes of relayna's consumer span,
its processor hand-off included. Spans per task times that cost is the CPU a
traced task pays whatever relayna does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

__all__ = ["SpanCounter", "install_counting_provider", "sdk_span_cpu_us"]

#: The attributes of relayna's consumer span (see relayna.observability._tracing).
_ATTRIBUTES = {
    "messaging.system": "rabbitmq",
    "messaging.operation.type": "process",
    "messaging.operation.name": "consume",
    "messaging.destination.name": "bench-queue",
    "messaging.consumer.group.name": "relayna-task-consumer",
    "messaging.message.id": "0f" * 16,
    "messaging.message.conversation_id": "t12345",
    "relayna.task_id": "t12345",
    "relayna.retry_attempt": 0,
}


class SpanCounter:
    """The exported span count of the provider :func:`install_counting_provider` set."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.exported = 0

    def flushed(self) -> int:
        """Spans exported so far, after handing everything queued to the exporter."""
        self.provider.force_flush()
        return self.exported


def install_counting_provider() -> SpanCounter:
    """Install the SDK provider + ``BatchSpanProcessor`` + a counting, dropping exporter."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    provider = TracerProvider()
    counter = SpanCounter(provider)

    class _CountAndDrop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            counter.exported += len(spans)
            return SpanExportResult.SUCCESS

    # what a deployment configures: spans are exported off the handler's path
    provider.add_span_processor(BatchSpanProcessor(_CountAndDrop()))
    trace.set_tracer_provider(provider)
    return counter


def sdk_span_cpu_us(spans: int = 20_000) -> float:
    """CPU µs per span of the installed provider alone (no relayna code around it)."""
    from opentelemetry import trace

    tracer = trace.get_tracer_provider().get_tracer("bench-floor")
    kind = trace.SpanKind.CONSUMER
    started = time.process_time()
    for _ in range(spans):
        with tracer.start_as_current_span("floor", kind=kind, attributes=_ATTRIBUTES):
            pass
    return (time.process_time() - started) / spans * 1e6
