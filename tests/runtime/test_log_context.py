"""Log records made while a worker handles a task carry the task's ids (both backends)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from relayna.consumer import TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.observability import LogContextFilter, current_log_context, log_context
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker

pytestmark = pytest.mark.anyio


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(LogContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_handler_logs_carry_task_and_correlation_ids(
    broker: Broker, topology: Any, running: Any, until: Any
) -> None:
    logger = logging.getLogger(f"test.handler.{id(topology)}")
    capture = _Capture()
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        await anyio.lowlevel.checkpoint()
        logger.info("handling %s", task.task_id)

    consumer = TaskConsumer(topology=topology, broker=broker, handler=handler, prefetch=4)
    try:
        with anyio.fail_after(10):
            async with open_relayna_client(topology, broker) as client, running(consumer):
                await client.publish_tasks(
                    [{"task_id": "log-1", "correlation_id": "order-9"}, {"task_id": "log-2"}]
                )
                await until(lambda: consumer.stats.acked == 2)
    finally:
        logger.removeHandler(capture)
    seen = sorted((r.task_id, r.correlation_id) for r in capture.records)  # type: ignore[attr-defined]
    assert seen == [("log-1", "order-9"), ("log-2", "log-2")]
    # outside a delivery the fields are there, and empty
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    LogContextFilter().filter(outside)
    assert outside.task_id is None  # type: ignore[attr-defined]


def test_log_context_nests_and_restores() -> None:
    with log_context(task_id="a", correlation_id="c"):
        with log_context(task_id="b"):
            assert current_log_context()["task_id"] == "b"
        assert current_log_context()["correlation_id"] == "c"
    assert current_log_context()["task_id"] is None
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.task_id = "explicit"  # type: ignore[attr-defined]
    with log_context(task_id="ctx"):
        LogContextFilter().filter(record)
    assert record.task_id == "explicit"  # type: ignore[attr-defined]
