"""Prometheus metrics: the label allowlist, what a worker exports, and a scrape by a
real Prometheus (Debian's package, started for the test) of a worker on the real
RabbitMQ, both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _topologies import shared_topology
from services import start_prometheus  # scripts/ is on sys.path (tests/conftest.py)

from relayna.api import serve_metrics
from relayna.consumer import RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.errors import ConfigurationError
from relayna.observability import RelaynaMetrics
from relayna.rabbitmq import open_relayna_client
from relayna.transport import open_broker

SECRET_IDS = [f"customer-4711-invoice-{i}" for i in range(6)]


@pytest.mark.parametrize("name", ["task_id", "correlation_id", "message_id", "whatever"])
def test_label_names_outside_the_allowlist_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError):
        RelaynaMetrics().histogram("relayna_x_seconds", "x", ("queue", name), (1.0,))


async def _work(broker_url: str, unique: str, metrics: RelaynaMetrics) -> TaskConsumer:
    topology = shared_topology(f"mx.{unique}")

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        if ctx.attempt == 0 and task.task_id.endswith(("0", "1")):
            raise RuntimeError(f"fails once: {task.task_id}")

    async with open_broker(broker_url) as broker:
        consumer = TaskConsumer(
            topology=topology,
            broker=broker,
            handler=handler,
            consumer_name="metrics-w",
            metrics=metrics,
            retry_policy=RetryPolicy(max_retries=1, delay_ms=20),
        )

        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            async with open_relayna_client(topology, broker) as client:
                await client.publish_tasks([{"task_id": t} for t in SECRET_IDS])
            while consumer.stats.acked < len(SECRET_IDS):  # noqa: ASYNC110 - test polling
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        for suffix in ("", ".retry", ".dlq"):
            await broker.delete_queue(topology.tasks_queue + suffix)
    return consumer


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


@pytest.mark.anyio
async def test_worker_metrics_never_carry_a_task_id(unique: str) -> None:
    metrics = RelaynaMetrics(service="billing")
    with anyio.fail_after(30):
        await _work("memory://", unique, metrics)
    text = metrics.exposition().decode()
    assert _value(text, "relayna_tasks_received_total") == 8  # 6 tasks, 2 retried
    assert _value(text, "relayna_tasks_acked_total") == 6
    assert _value(text, "relayna_tasks_retried_total") == 2
    assert _value(text, "relayna_handler_duration_seconds_count") in (6, 2)  # per outcome
    assert 'outcome="failed"' in text
    # the two retry copies were published with confirms, and timed
    assert 'relayna_publish_confirm_duration_seconds_count{kind="publish_raw"' in text
    assert _value(text, "relayna_publish_confirm_duration_seconds_count") == 2
    assert 'queue="mx.' in text
    assert 'service="billing"' in text
    for task_id in SECRET_IDS:
        assert task_id not in text
    assert "customer-4711" not in text


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Path:
    return tmp_path / "prometheus"


@pytest.mark.anyio
@pytest.mark.rabbitmq
async def test_a_real_prometheus_scrapes_the_worker(
    amqp_url: str, unique: str, prometheus_dir: Path
) -> None:
    metrics = RelaynaMetrics(service="billing")
    stop = anyio.Event()
    proc: Any = None
    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            url = await tg.start(
                lambda task_status: serve_metrics(
                    metrics,
                    host="127.0.0.1",
                    port=0,
                    shutdown_trigger=stop.wait,
                    task_status=task_status,
                )
            )
            target = url.removeprefix("http://")
            proc, prom = await anyio.to_thread.run_sync(start_prometheus, prometheus_dir, [target])
            try:
                await _work(amqp_url, unique, metrics)
                async with httpx.AsyncClient(base_url=prom, timeout=5) as client:
                    while True:  # scraped every second: wait for the final values
                        r = await client.get(
                            "/api/v1/query", params={"query": "relayna_tasks_acked_total"}
                        )
                        result = r.json()["data"]["result"]
                        if result and float(result[0]["value"][1]) == len(SECRET_IDS):
                            break
                        await anyio.sleep(0.2)
                    labels = result[0]["metric"]
                    assert labels["service"] == "billing"
                    assert labels["consumer"] == "metrics-w"
                    assert set(labels) <= {
                        "__name__",
                        "service",
                        "queue",
                        "consumer",
                        "instance",
                        "job",
                    }
                    up = (await client.get("/api/v1/query", params={"query": "up"})).json()
                    assert up["data"]["result"][0]["value"][1] == "1"
                    series = (await client.get("/api/v1/label/__name__/values")).json()["data"]
                    assert "relayna_handler_duration_seconds_bucket" in series
            finally:
                proc.terminate()
                await anyio.to_thread.run_sync(proc.wait)
                stop.set()
