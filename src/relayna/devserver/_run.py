"""Run the dev service: runtime, demo worker and web app in one task group."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import anyio
import attrs
from anyio.abc import TaskStatus

from relayna._urls import redact_url
from relayna.api import RelaynaRuntime, RuntimeConfig, open_relayna_runtime, serve_asgi
from relayna.consumer import (
    AggregationConsumer,
    LifecycleStatuses,
    RetryPolicy,
    TaskConsumer,
    TaskContext,
    WorkerHeartbeats,
)
from relayna.contracts import StatusEvent, TaskEnvelope
from relayna.devserver._app import build_app
from relayna.devserver._demo import SHARDS, demo_handler, demo_topology
from relayna.devserver._fanout import FanoutResults, aggregate_child
from relayna.devserver._studio import DevStudioConfig, run_dev_studio
from relayna.devserver._workflow import (
    demo_workflow_topology,
    run_demo_workflow,
    workflow_publisher,
)
from relayna.dlq import DLQService, DLQStoreConfig, PeekDLQInspector
from relayna.errors import unwrap_groups
from relayna.observability import make_observation_sink
from relayna.rabbitmq import CancelStore, TaskIds, open_relayna_client
from relayna.transport import SupportsPeek

__all__ = ["DevComponent", "DevConfig", "DevUrls", "run_dev", "run_dev_system"]

logger = logging.getLogger("relayna.dev")


#: A long-running part that joins the dev service's worker task group:
#: ``await component(runtime, task_status=...)`` is started with ``tg.start``
#: after the demo worker consumes, and cancelled (drained) with it (the
#: demo's own two-stage workflow and aggregation consumer run the same way).
DevComponent = Callable[..., Coroutine[Any, Any, None]]


@attrs.frozen
class DevConfig:
    """Options of ``relayna dev`` (see ``relayna dev --help``).

    ``components`` are started in the worker task group with the open
    runtime (see :data:`DevComponent`).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    broker_url: str = "memory://"
    store_url: str = "memory://"
    drain_timeout: float = 10.0
    max_retries: int = 2
    retry_delay_ms: int = 1500
    step_seconds: float = 0.4
    prefix: str = "relayna.dev"
    access_log: bool = False
    components: tuple[DevComponent, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


@attrs.frozen
class DevUrls:
    """Where ``relayna dev`` serves: the demo service, and Studio's task list (or None)."""

    service: str
    studio: str | None


def _mcp_routes(runtime: RelaynaRuntime) -> Any:
    """``/mcp`` with the read tools (operational tools stay off in dev), or None
    without the optional SDK (``pip install 'relayna[mcp]'``)."""
    try:
        from relayna.mcp import mcp_routes
    except ImportError:
        logger.info("no /mcp: install relayna[mcp] for the MCP endpoint")
        return None
    return mcp_routes(runtime)


async def _wait_listening(host: str, port: int) -> None:
    while True:
        try:
            stream = await anyio.connect_tcp(host, port)
        except OSError:
            await anyio.sleep(0.05)
            continue
        await stream.aclose()
        return


async def run_dev(
    config: DevConfig,
    shutdown: anyio.Event,
    *,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` is set, then end SSE streams, stop HTTP, drain the worker.

    Reports the page URL through ``task_status`` once the server accepts
    connections and the worker and hub consume.
    """
    topology = demo_topology(config.prefix)
    runtime_config = RuntimeConfig(
        store_url=config.store_url,
        broker_url=config.broker_url,
        topology=topology,
        dlq=DLQStoreConfig(),
    )
    async with open_relayna_runtime(runtime_config) as runtime:
        assert runtime.broker is not None
        assert runtime.dlq is not None
        task_ids = TaskIds(  # POST /tasks refuses an id that exists (409)
            runtime.store,
            prefix=runtime_config.store.prefix,
            ttl_seconds=runtime_config.store.ttl_seconds,
            cluster=runtime_config.store.cluster,
        )
        cancels = CancelStore(
            runtime.store, prefix=runtime_config.store.prefix, cluster=runtime_config.store.cluster
        )
        workflow_topology = demo_workflow_topology(config.prefix)
        async with (
            open_relayna_client(
                topology, runtime.broker, declare=False, task_ids=task_ids, cancels=cancels
            ) as client,
            open_relayna_client(workflow_topology, runtime.broker) as workflow_client,
        ):

            async def handler(task: TaskEnvelope, ctx: TaskContext) -> dict[str, Any]:
                return await demo_handler(task, ctx, step_seconds=config.step_seconds)

            sink = (
                make_observation_sink(runtime.observations, runtime.feed)
                if runtime.observations is not None
                else None
            )
            retry_policy = RetryPolicy(
                max_retries=config.max_retries, delay_ms=config.retry_delay_ms
            )
            consumer = TaskConsumer(
                topology=topology,
                broker=runtime.broker,
                handler=handler,
                consumer_name="relayna-dev-worker",
                retry_policy=retry_policy,
                # the handler publishes "completed": a fan-out's comes from its last child
                statuses=LifecycleStatuses(enabled=True, completed=None),
                drain_timeout=config.drain_timeout,
                observation_sink=sink,
                heartbeats=WorkerHeartbeats(
                    store=runtime.store,
                    interval=5.0,
                    ttl=15.0,
                    cluster=runtime_config.store.cluster,
                ),
                metrics=runtime.metrics,
                dlq_recorder=runtime.dlq.store,
                cancels=cancels,
            )
            broker = runtime.broker
            dlq = DLQService(
                runtime.dlq.store,
                broker,
                status=runtime.status,
                inspector=PeekDLQInspector(broker) if isinstance(broker, SupportsPeek) else None,
                broker_queue_names=[consumer.retry_policy.dead_letter_queue(topology.tasks_queue)]
                if consumer.retry_policy
                else (),
            )
            results = FanoutResults(runtime.store, prefix=runtime_config.store.prefix)

            async def child(event: StatusEvent, ctx: TaskContext) -> None:
                await aggregate_child(event, ctx, results=results, step_seconds=config.step_seconds)

            aggregator = AggregationConsumer(
                topology=topology,
                broker=runtime.broker,
                handler=child,
                shards=range(SHARDS),
                consumer_name="relayna-dev-aggregator",
                retry_policy=retry_policy,
                drain_timeout=config.drain_timeout,
                observation_sink=sink,
                dlq_recorder=runtime.dlq.store,
            )
            mcp = _mcp_routes(runtime)
            app = build_app(
                runtime,
                client,
                dlq=dlq,
                mcp=mcp or (),
                workflow=(workflow_topology, workflow_publisher(workflow_client, task_ids)),
            )
            http_stopped = anyio.Event()

            async def stop_http() -> None:
                await shutdown.wait()
                runtime.request_shutdown()  # SSE streams end before hypercorn waits on them

            async def serve() -> None:
                try:
                    await serve_asgi(
                        app,
                        host=config.host,
                        port=config.port,
                        shutdown_trigger=stop_http,
                        access_log=config.access_log,
                    )
                finally:
                    http_stopped.set()

            async with anyio.create_task_group() as workers:
                await workers.start(consumer.run)
                await workers.start(aggregator.run)
                await workers.start(
                    partial(
                        run_demo_workflow,
                        runtime,
                        topology=workflow_topology,
                        step_seconds=config.step_seconds,
                        retry_policy=retry_policy,
                        drain_timeout=config.drain_timeout,
                    )
                )
                for component in config.components:
                    await workers.start(partial(component, runtime))
                async with anyio.create_task_group() as web:
                    if mcp is not None:  # MCP sessions live in this group and end with it
                        await web.start(mcp.run)
                    web.start_soon(serve)
                    with anyio.fail_after(15):
                        await _wait_listening(config.host, config.port)
                    logger.info(
                        "broker %s, store %s",
                        redact_url(config.broker_url),
                        redact_url(config.store_url),
                    )
                    task_status.started(config.url)
                    await http_stopped.wait()
                    web.cancel_scope.cancel()  # HTTP is done: end the MCP sessions
                logger.info("HTTP stopped; draining the worker (up to %.0fs)", config.drain_timeout)
                workers.cancel_scope.cancel()
            stats = consumer.stats
            logger.info(
                "worker drained: received=%d acked=%d retried=%d dead_lettered=%d",
                stats.received,
                stats.acked,
                stats.retried,
                stats.dead_lettered,
            )


async def run_dev_system(
    config: DevConfig,
    shutdown: anyio.Event,
    *,
    studio: DevStudioConfig | None = None,
    task_status: TaskStatus[DevUrls] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """``relayna dev``: the demo service (:func:`run_dev`) and, with ``studio``,
    Studio with that service registered, in one task group until ``shutdown``.

    Reports :class:`DevUrls` once both accept connections (and Studio has
    read the service's capability document). A part that cannot start (a
    port in use: ``OSError``) stops the others and is raised as itself.
    """
    with unwrap_groups():
        async with anyio.create_task_group() as tg:
            service_url: str = await tg.start(run_dev, config, shutdown)
            studio_url: str | None = None
            if studio is not None:
                studio_url = await tg.start(
                    partial(
                        run_dev_studio,
                        studio,
                        store_url=config.store_url,
                        service_url=service_url,
                        shutdown=shutdown,
                    )
                )
            task_status.started(DevUrls(service_url, studio_url))
