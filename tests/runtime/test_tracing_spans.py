"""OpenTelemetry spans: one task across producer → worker → retry → worker → status
hub is one trace, with the expected span kinds, parents and links (the SDK's
in-memory exporter; memory transports; both backends)."""

from __future__ import annotations

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relayna.api import RuntimeConfig, open_relayna_runtime
from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.observability import MemoryObservationCollector, TaskMessageReceived
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology

pytestmark = pytest.mark.anyio


def _hex(value: int) -> str:
    return format(value, "032x")


async def test_one_task_is_one_trace(span_exporter: InMemorySpanExporter, unique: str) -> None:
    exporter = span_exporter
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"tx.{unique}",
        tasks_queue=f"tq.{unique}",
        tasks_routing_key="task",
        status_exchange=f"sx.{unique}",
        status_queue=f"sq.{unique}",
        status_use_streams=False,
    )
    config = RuntimeConfig(store_url="memory://", broker_url="memory://", topology=topology)
    collector = MemoryObservationCollector()

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        if ctx.attempt == 0:
            raise RuntimeError("first attempt fails")

    task_id = f"traced-{unique}"
    with anyio.fail_after(20):
        async with open_relayna_runtime(config) as runtime:
            assert runtime.broker is not None
            worker = TaskConsumer(
                topology=topology,
                broker=runtime.broker,
                handler=handler,
                retry_policy=RetryPolicy(max_retries=1, delay_ms=10),
                statuses=LifecycleStatuses(enabled=True),
                observation_sink=collector,
            )
            async with anyio.create_task_group() as tg:
                await tg.start(worker.run)
                async with open_relayna_client(topology, runtime.broker, declare=False) as client:
                    with trace.get_tracer("test").start_as_current_span("request") as root:
                        await client.publish_task({"task_id": task_id})
                while ((await runtime.status.latest(task_id)) or {}).get(  # noqa: ASYNC110
                    "status"
                ) != "completed":
                    await anyio.sleep(0.01)
                while (  # noqa: ASYNC110 - polling the exporter
                    len(
                        [
                            s
                            for s in exporter.get_finished_spans()
                            if s.name == "relayna.status_hub.write"
                            and (s.attributes or {}).get("relayna.task_id") == task_id
                        ]
                    )
                    < 4
                ):
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
    trace_id = root.get_span_context().trace_id
    spans: list[ReadableSpan] = [
        s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id
    ]
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    [publish] = by_name["relayna.rabbitmq.publish_task"]
    consumed = sorted(by_name["relayna.consumer.task_message"], key=lambda s: s.start_time or 0)
    [retry] = by_name["relayna.rabbitmq.publish_raw"]
    statuses = by_name["relayna.rabbitmq.publish_status"]
    hub = by_name["relayna.status_hub.write"]
    assert publish.kind is trace.SpanKind.PRODUCER
    assert publish.parent is not None
    assert publish.parent.span_id == root.get_span_context().span_id
    assert [s.kind for s in consumed] == [trace.SpanKind.CONSUMER] * 2
    first, second = consumed
    # attempt 1 is the child of the publish, linked to it
    assert first.parent is not None
    assert first.parent.span_id == publish.context.span_id
    assert [link.context.span_id for link in first.links] == [publish.context.span_id]
    # the retry copy is published from attempt 1; attempt 2 continues from it
    assert retry.kind is trace.SpanKind.PRODUCER
    assert retry.parent is not None
    assert retry.parent.span_id == first.context.span_id
    assert second.parent is not None
    assert second.parent.span_id == retry.context.span_id
    attrs0, attrs1 = dict(first.attributes or {}), dict(second.attributes or {})
    assert attrs0["messaging.system"] == "rabbitmq"
    assert attrs0["messaging.operation.type"] == "process"
    assert attrs0["messaging.destination.name"] == topology.tasks_queue
    assert attrs0["messaging.message.conversation_id"] == task_id
    assert (attrs0["relayna.retry_attempt"], attrs1["relayna.retry_attempt"]) == (0, 1)
    # statuses are published from the attempts and written by the hub, same trace
    assert len(statuses) >= 4  # processing, retrying, processing, completed
    assert {s.parent.span_id for s in statuses if s.parent} <= {
        first.context.span_id,
        second.context.span_id,
    }
    assert all(s.kind is trace.SpanKind.CONSUMER for s in hub)
    assert {s.parent.span_id for s in hub if s.parent} <= {s.context.span_id for s in statuses}
    # observations made inside a span carry its ids
    received = collector.of_type(TaskMessageReceived)
    assert {o.trace_id for o in received} == {_hex(trace_id)}  # type: ignore[attr-defined]
    assert {o.span_id for o in received} == {  # type: ignore[attr-defined]
        format(s.context.span_id, "016x") for s in consumed
    }
