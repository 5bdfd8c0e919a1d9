"""A real failed task for the MCP tests: RabbitMQ + Redis, retry → DLQ, then the MCP server.

``failed_task(amqp_url, redis_url, unique)`` runs a worker whose handler
always raises (one retry, then dead-letter), publishes one task, waits for
its ``failed`` status and yields the open runtime (DLQ store, graphs) with
the task's id and its dead letter's id. The queues go on exit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs
import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from starlette.applications import Starlette

from relayna.api import RelaynaRuntime, RuntimeConfig, open_relayna_runtime, serving
from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.dlq import DLQStoreConfig
from relayna.mcp import MCPConfig, mcp_routes
from relayna.observability import ObservationStoreConfig, make_observation_sink
from relayna.rabbitmq import open_relayna_client
from relayna.status import StatusStoreConfig
from relayna.topology import SharedTasksSharedStatusTopology

TOKEN = "mcp-test-token-0123456789"


@attrs.frozen
class FailedTask:
    runtime: RelaynaRuntime
    config: RuntimeConfig
    task_id: str
    dlq_id: str
    tasks_queue: str


def runtime_config(amqp_url: str, redis_url: str, unique: str) -> RuntimeConfig:
    """The service's runtime config (the stdio test's target builds the same one)."""
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"mcp-tasks-{unique}",
        tasks_queue=f"mcp-tasks-{unique}",
        tasks_routing_key="task",
        status_exchange=f"mcp-status-{unique}",
        status_queue=f"mcp-status-{unique}",
        status_use_streams=False,
    )
    return RuntimeConfig(
        store_url=redis_url,
        broker_url=amqp_url,
        topology=topology,
        store=StatusStoreConfig(prefix=f"mcp-status:{unique}"),
        observations=ObservationStoreConfig(prefix=f"mcp-obs:{unique}"),
        dlq=DLQStoreConfig(prefix=f"mcp-dlq:{unique}"),
        heartbeat_prefix=f"mcp-hb:{unique}",
    )


async def _wait_failed(runtime: RelaynaRuntime, task_id: str) -> None:
    while True:  # the hub writes the worker's statuses; the caller's fail_after bounds this
        latest = await runtime.status.latest(task_id)
        if latest is not None and latest["status"] == "failed":
            return
        await anyio.sleep(0.05)


@asynccontextmanager
async def failed_task(amqp_url: str, redis_url: str, unique: str) -> AsyncIterator[FailedTask]:
    config = runtime_config(amqp_url, redis_url, unique)
    topology = config.topology
    assert isinstance(topology, SharedTasksSharedStatusTopology)
    task_id = f"job-{unique}"

    async def failing(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise RuntimeError("downstream is down")

    try:
        async with open_relayna_runtime(config) as runtime:
            assert runtime.broker is not None
            assert runtime.dlq is not None
            assert runtime.observations is not None
            consumer = TaskConsumer(
                topology=topology,
                broker=runtime.broker,
                handler=failing,
                consumer_name="mcp-test-worker",
                retry_policy=RetryPolicy(max_retries=1, delay_ms=100),
                statuses=LifecycleStatuses(enabled=True),
                dlq_recorder=runtime.dlq.store,
                observation_sink=make_observation_sink(runtime.observations, runtime.feed),
                drain_timeout=2.0,
            )
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                async with open_relayna_client(topology, runtime.broker, declare=False) as client:
                    await client.publish_task({"task_id": task_id, "task_type": "mcp.demo"})
                await _wait_failed(runtime, task_id)
                tg.cancel_scope.cancel()
            [record] = await runtime.dlq.records_for_task(task_id, 5)
            yield FailedTask(runtime, config, task_id, record["dlq_id"], topology.tasks_queue)
    finally:
        with anyio.CancelScope(shield=True):
            async with open_relayna_runtime(attrs.evolve(config, run_hub=False)) as cleanup:
                broker = cleanup.broker
                assert broker is not None
                for name in ("", ".retry", ".dlq"):
                    await broker.delete_queue(topology.tasks_queue + name)
                await broker.delete_queue(topology.status_queue)
                await broker.delete_exchange(topology.tasks_exchange)
                await broker.delete_exchange(topology.status_exchange)


@asynccontextmanager
async def http_server(
    runtime: RelaynaRuntime, config: MCPConfig | None = None, **options: Any
) -> AsyncIterator[tuple[str, Any]]:
    """``mcp_routes`` on a real loopback server; yields (endpoint URL, the routes)."""
    mcp = mcp_routes(runtime, config=config or MCPConfig(), **options)
    app = Starlette(routes=[*mcp])
    async with mcp.running(), serving(app, graceful_timeout=1.0) as base:
        yield f"{base}/mcp", mcp


@asynccontextmanager
async def http_session(
    url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """The SDK's client over streamable HTTP, initialized."""
    async with (
        create_mcp_http_client(headers=headers, timeout=httpx.Timeout(30)) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def subprocess_env() -> dict[str, str]:
    """The environment for a ``relayna mcp`` subprocess (the repo on PYTHONPATH)."""
    env = dict(os.environ)
    return env


HERE = Path(__file__).resolve().parent


def stdio_server(
    tmp_path: Path, backend: str, *extra: str, target: str = "mcp_target:config"
) -> StdioServerParameters:
    """``relayna mcp --app TARGET --backend BACKEND ...`` as a subprocess; TARGET's module
    is written into ``tmp_path`` by the test (the test helpers are importable too)."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "relayna.cli", "mcp", "--app", target, "--backend", backend, *extra],
        env={
            "PYTHONPATH": os.pathsep.join((str(tmp_path), str(HERE), str(HERE.parent))),
            "RELAYNA_LOG_LEVEL": "WARNING",
        },
        cwd=str(tmp_path),
    )
