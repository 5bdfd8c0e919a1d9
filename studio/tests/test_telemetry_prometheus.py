"""Metrics through Studio on a real Prometheus (Debian's package, started for the test).

Prometheus scrapes (1) a small exporter serving Kubernetes-shaped series
(cAdvisor and kube-state-metrics names, duplicate and ``_conflictN``
ownership series, a label value with quotes, backslashes, a newline and
non-ASCII text) and (2) relayna's own ``/metrics`` of a real worker on the
real RabbitMQ. Every PromQL Studio builds is then evaluated by the real
engine, and its numbers are checked against what the exporter served and
what the worker did. Both backends.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from services import start_prometheus  # scripts/ is on sys.path (tests/conftest.py)

from relayna.api import serve_metrics
from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.observability import RelaynaMetrics
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import open_broker
from relayna_studio._promql import GROUPS
from studio_support import Studio, TableResolver, open_test_studio, settings_for
from telemetry_servers import KubeExporter, serve_on

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]

MiB = 1024 * 1024
WEIRD = 'a"b\\c\nd ü'


def exporter() -> KubeExporter:
    k = KubeExporter()
    pods = {  # pod: (namespace, ownership label sets, cpu/s, memory, ready)
        "checkout-1": ("shop", [{"label_service": "checkout", "label_version": "1", "uid": "u1"},
                                {"label_service": "checkout", "label_version": "1", "uid": "u1-dup"}],
                       0.25, 100 * MiB, 1.0),
        "checkout-2": ("shop", [{"label_service_conflict1": "checkout", "uid": "u2"}], 0.5, 50 * MiB, 0.0),
        "other-1": ("shop", [{"label_service": "other", "uid": "u3"}], 1.0, 1024 * MiB, 1.0),
        "checkout-x": ("staging", [{"label_service": "checkout", "uid": "u4"}], 2.0, 7 * MiB, 1.0),
        "weird-1": ("shop", [{"label_team": WEIRD, "uid": "u5"}], 0.125, 3 * MiB, 1.0),
    }  # fmt: skip
    for pod, (ns, ownership, cpu, memory, ready) in pods.items():
        base = {"namespace": ns, "pod": pod}
        for labels in ownership:
            k.gauge("kube_pod_labels", {**base, **labels}, 1)
        app = {**base, "container": "app", "image": "registry.test/app:1"}
        k.counter("container_cpu_usage_seconds_total", app, cpu)
        k.counter("container_cpu_usage_seconds_total", {**base, "container": "", "image": ""}, 9.0)
        k.gauge("container_memory_working_set_bytes", app, memory)
        k.gauge(
            "container_memory_working_set_bytes", {**base, "container": "", "image": ""}, 999 * MiB
        )
        k.gauge(
            "container_memory_working_set_bytes",
            {**base, "container": "POD", "image": "pause"},
            MiB,
        )
        k.gauge(
            "kube_pod_container_resource_requests",
            {**app, "resource": "cpu", "unit": "core"},
            cpu * 2,
        )
        k.gauge(
            "kube_pod_container_resource_limits",
            {**app, "resource": "cpu", "unit": "core"},
            cpu * 4,
        )
        k.gauge("kube_pod_container_resource_requests",
                {**app, "resource": "memory", "unit": "byte"}, memory * 2)  # fmt: skip
        k.gauge("kube_pod_container_resource_limits",
                {**app, "resource": "memory", "unit": "byte"}, memory * 4)  # fmt: skip
        k.counter("kube_pod_container_status_restarts_total", app, 0.0)
        k.gauge("kube_pod_container_status_last_terminated_reason",
                {**app, "reason": "OOMKilled"}, 1.0 if pod == "checkout-2" else 0.0)  # fmt: skip
        for phase in ("Running", "Pending", "Failed"):
            k.gauge(
                "kube_pod_status_phase",
                {**base, "phase": phase},
                1.0 if phase == "Running" else 0.0,
            )
        k.gauge("kube_pod_status_ready", {**base, "condition": "true"}, ready)
        k.gauge("kube_pod_status_ready", {**base, "condition": "false"}, 1 - ready)
        k.counter(
            "container_network_receive_bytes_total", {**base, "interface": "eth0"}, 1000 * cpu
        )
        k.counter("container_network_transmit_bytes_total", {**base, "interface": "eth0"}, 10 * cpu)
    return k


async def run_worker(amqp_url: str, name: str, metrics: RelaynaMetrics, ready: Any) -> None:
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"{name}.tasks", tasks_queue=f"{name}.tasks", tasks_routing_key="task",
        status_exchange=f"{name}.status", status_queue=f"{name}.status", status_use_streams=False,
    )  # fmt: skip
    seen: list[str] = []

    async def sink(event: Any) -> None:
        seen.append(type(event).__name__)

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        if task.task_id.startswith("dead"):
            raise RuntimeError("always fails")
        if ctx.attempt == 0 and task.task_id.endswith("1"):
            raise RuntimeError("fails once")
        await anyio.sleep(0.02)

    async with open_broker(amqp_url) as broker:
        consumer = TaskConsumer(
            topology=topology, broker=broker, handler=handler, consumer_name="checkout-w",
            metrics=metrics, retry_policy=RetryPolicy(max_retries=1, delay_ms=20),
            statuses=LifecycleStatuses(enabled=True), observation_sink=sink,
        )  # fmt: skip
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            async with open_relayna_client(topology, broker) as client:
                # one task first, so that every series (histograms appear with their first
                # observation) has a sample before the work a rate must see
                await client.publish_tasks([{"task_id": "warm-0"}])
                await ready()
                ids = [f"t-{i}" for i in range(12)] + ["dead-1", "dead-2"]
                await client.publish_tasks([{"task_id": t} for t in ids])
            while consumer.stats.acked + consumer.stats.dead_lettered < 15:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        for suffix in ("", ".retry", ".dlq"):
            await broker.delete_queue(topology.tasks_queue + suffix)
        await broker.delete_queue(topology.status_queue)
    assert seen


async def prom_value(prom: httpx.AsyncClient, query: str) -> float | None:
    result = (await prom.get("/api/v1/query", params={"query": query})).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def last_values(body: dict[str, Any], group: str) -> dict[str, float | None]:
    out = {}
    for series in body["series"]:
        if series["metric"] == group:
            values = [p["value"] for p in series["points"] if p["value"] is not None]
            key = ",".join(f"{k}={v}" for k, v in sorted(series["labels"].items()))
            out[key] = values[-1] if values else None
    return out


async def register(studio: Studio, service_id: str, **extra: Any) -> None:
    response = await studio.client.post(
        "/studio/services",
        json={"service_id": service_id, "name": service_id, "environment": "test",
              "base_url": f"http://svc.test:9/{service_id}", "auth_mode": "internal_network", **extra},
    )  # fmt: skip
    assert response.status_code == 201, response.text


async def test_every_group_on_a_real_prometheus(
    anyio_backend: str, amqp_url: str, unique: str, tmp_path: Path
) -> None:
    metrics = RelaynaMetrics(service="checkout-runtime")
    kube = exporter()
    stop = anyio.Event()
    with anyio.fail_after(100):
        async with anyio.create_task_group() as tg, serve_on(kube.app(), "127.0.0.1") as kube_port:
            worker_url = await tg.start(
                lambda task_status: serve_metrics(metrics, host="127.0.0.1", port=0,
                                                  shutdown_trigger=stop.wait, task_status=task_status)
            )  # fmt: skip
            targets = [f"127.0.0.1:{kube_port}", worker_url.removeprefix("http://")]
            proc, prom_url = await anyio.to_thread.run_sync(
                start_prometheus, tmp_path / "prom", targets
            )
            try:
                async with httpx.AsyncClient(base_url=prom_url, timeout=5) as prom:

                    async def scraped(query: str, want: float | None = None) -> None:
                        while True:
                            value = await prom_value(prom, query)
                            if value is not None and (want is None or value >= want):
                                return
                            await anyio.sleep(0.2)

                    async def worker_seen() -> None:
                        await scraped(
                            'relayna_publish_confirm_duration_seconds_count{service="checkout-runtime"}'
                        )
                        await scraped(
                            'relayna_handler_duration_seconds_count{service="checkout-runtime"}'
                        )

                    await run_worker(amqp_url, f"prom.{unique}", metrics, worker_seen)
                    await scraped(
                        'relayna_tasks_dead_lettered_total{service="checkout-runtime"}', 2
                    )
                    await scraped(
                        'count_over_time(container_memory_working_set_bytes{pod="checkout-1",container="app"}[1m])',
                        12,
                    )
                    await check_studio(prom_url, anyio_backend)
            finally:
                proc.terminate()
                await anyio.to_thread.run_sync(proc.wait)
                stop.set()


async def check_studio(prom_url: str, backend: str) -> None:
    port = int(prom_url.rsplit(":", 1)[1])
    settings = settings_for(
        "memory://", f"prom:{uuid.uuid4().hex[:8]}", allowed_hosts=(".test",),
        allowed_networks=("127.0.0.1/32",), telemetry_timeout_seconds=10.0,
    )  # fmt: skip
    resolver = TableResolver({"prom.test": ["127.0.0.1"], "dead.test": ["127.0.0.1"]})
    config = {"base_url": f"http://prom.test:{port}", "namespace": "shop",
              "service_selector_labels": {"service": "checkout"},
              "runtime_service_label_value": "checkout-runtime", "step_seconds": 5,
              "rate_window_seconds": 10}  # fmt: skip
    async with open_test_studio(settings, resolver=resolver) as studio:
        await register(studio, "checkout", metrics_config=config)
        weird = {**config, "service_selector_labels": {"team": WEIRD}}
        await register(studio, "weird", metrics_config=weird)
        client = studio.client
        now = time.time()
        window = {"from": str(int(now - 60)), "to": str(int(now)), "step": "5"}
        answer = await client.get("/studio/services/checkout/metrics", params=window)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["errors"], body["warnings"]) == ([], [])
        assert body["approximate"] is False
        assert body["step_seconds"] == 5
        assert {s["metric"] for s in body["series"]} == set(GROUPS)
        exact = {
            "memory_usage": 150 * MiB,  # owned pods only; no cgroup/pause rows, no duplicate join
            "cpu_requests": 1.5,
            "cpu_limits": 3.0,
            "memory_requests": 300 * MiB,
            "memory_limits": 600 * MiB,
            "restarts": 0.0,
            "oom_killed": 1.0,
            "readiness": 1.0,
            "active_tasks": 0.0,
        }
        for group, want in exact.items():
            assert last_values(body, group) == {"": want}, group
        approx = {"cpu_usage": 0.75, "network_receive": 750.0, "network_transmit": 7.5}
        for group, want in approx.items():
            (value,) = last_values(body, group).values()
            assert abs((value or 0.0) - want) < want * 0.05, (group, value)
        assert last_values(body, "pod_phase") == {
            "phase=Failed": 0.0,
            "phase=Pending": 0.0,
            "phase=Running": 2.0,
        }
        for group in ("tasks_started_rate", "tasks_failed_rate", "tasks_retried_rate",
                      "tasks_dlq_rate", "queue_publish_rate", "status_events_rate",
                      "observation_events_rate", "task_duration_p95"):  # fmt: skip
            values = [p["value"] for s in body["series"] if s["metric"] == group
                      for p in s["points"] if p["value"]]  # fmt: skip
            assert max(values, default=0) > 0, group
        (heartbeat,) = last_values(body, "worker_heartbeat").values()
        assert heartbeat is not None
        assert now - 60 < heartbeat <= now + 5
        units = {s["metric"]: s["unit"] for s in body["series"]}
        assert units["memory_usage"] == "bytes"
        assert units["cpu_usage"] == "cores"
        assert units["worker_heartbeat"] == "unix_seconds"
        assert units["tasks_dlq_rate"] == "per_second"

        split = await client.get("/studio/services/checkout/metrics",
                                 params={**window, "group": "memory_usage,cpu_requests", "split_by_pod": "true"})  # fmt: skip
        assert last_values(split.json(), "memory_usage") == {
            "pod=checkout-1": 100 * MiB,
            "pod=checkout-2": 50 * MiB,
        }
        one = await client.get("/studio/services/checkout/metrics",
                               params={**window, "group": "memory_usage", "pod": "checkout-2"})  # fmt: skip
        assert last_values(one.json(), "memory_usage") == {"pod=checkout-2": 50 * MiB}
        odd = await client.get(
            "/studio/services/weird/metrics", params={**window, "group": "memory_usage"}
        )
        assert last_values(odd.json(), "memory_usage") == {"": 3 * MiB}, odd.text

        pods = (await client.get("/studio/services/checkout/pods")).json()
        assert pods["count"] == 2
        assert [(p["name"], p["namespace"], p["phase"]) for p in pods["pods"]] == [
            ("checkout-1", "shop", "Running"), ("checkout-2", "shop", "Running"),
        ]  # fmt: skip
        assert pods["pods"][0]["labels"] == {"service": "checkout", "version": "1"}
        assert pods["pods"][1]["labels"] == {"service_conflict1": "checkout"}
        weird_pods = (await client.get("/studio/services/weird/pods")).json()
        assert [(p["name"], p["labels"]) for p in weird_pods["pods"]] == [
            ("weird-1", {"team": WEIRD})
        ]

        task = await client.get("/studio/tasks/checkout/t-1/metrics",
                                params={**window, "group": "memory_usage"})  # fmt: skip
        assert task.json()["approximate"] is True
        assert task.json()["warnings"][0].startswith("pod-level approximation")
        fallback = await client.get(
            "/studio/tasks/checkout/t-1/metrics", params={"group": "memory_usage"}
        )
        assert fallback.status_code == 200, fallback.text
        assert "no task lifecycle found; showing the last hour" in fallback.json()["warnings"]
        assert last_values(fallback.json(), "memory_usage") == {"": 150 * MiB}

        # a group Prometheus refuses fails alone; a dead Prometheus fails the request
        bad_step = await client.get("/studio/services/checkout/metrics",
                                    params={"from": str(int(now - 86400 * 2)), "to": str(int(now)), "step": "5"})  # fmt: skip
        assert bad_step.status_code == 422
        await register(studio, "dead", metrics_config={**config, "base_url": "http://dead.test:1"})
        dead = await client.get("/studio/services/dead/metrics", params=window)
        assert dead.status_code == 502, dead.text
        assert dead.json()["code"] == "upstream_transport_error"
        assert backend in ("asyncio", "trio")
