"""A complete small service: shared tasks topology, a worker, status over SSE.

What it shows
-------------
* ``SharedTasksSharedStatusTopology``: one tasks exchange/queue, one status
  exchange whose queue (a stream) feeds the ``StatusHub``.
* ``open_relayna_runtime``: store + broker + topology declaration + status hub
  in one task group. The worker (``TaskConsumer``) and the web app share the
  runtime's open broker. That matters on ``memory://``: every
  ``open_broker("memory://")`` is a new, private broker, so components of one
  process must share the *object*, not the URL.
* A Starlette app with ``status_routes()`` (``/status/{id}``,
  ``/events/{id}``, ``/history``) and a ``POST /tasks`` route, served by
  hypercorn. Its lifespan only exposes the already-open runtime as
  ``request.state.relayna``. With separate processes and real servers you
  would use ``relayna_lifespan(RuntimeConfig(...))`` instead (see
  docs/getting-started.md).
* The demo: ``POST /tasks``, then follow ``GET /events/{task_id}`` with httpx
  until the stream ends after ``completed``.

Run it::

    python examples/shared_tasks_sse.py                        # memory transports
    python examples/shared_tasks_sse.py --backend trio
    python examples/shared_tasks_sse.py --broker-url amqp://guest:guest@127.0.0.1:5672/ \\
                                        --store-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import attrs
import httpx
import orjson
from _common import MEMORY, cli, new_id, print_events, serve_http
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relayna.api import (
    ORJSONResponse,
    RelaynaRuntime,
    RuntimeConfig,
    error_response,
    open_relayna_runtime,
    status_routes,
)
from relayna.consumer import LifecycleStatuses, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.errors import ContractError
from relayna.rabbitmq import RelaynaClient, open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology

TOPOLOGY = SharedTasksSharedStatusTopology(
    tasks_exchange="examples.shared.tasks",
    tasks_queue="examples.shared.tasks",
    tasks_routing_key="task",
    status_exchange="examples.shared.status",
    status_queue="examples.shared.status",  # a RabbitMQ stream by default
    prefetch_count=8,
)


# -- the worker -------------------------------------------------------------------


async def handle(task: TaskEnvelope, ctx: TaskContext, *, step_seconds: float) -> None:
    """Report progress in a few steps. The consumer adds processing/completed."""
    steps = int(task.payload.get("steps", 3))
    for step in range(1, steps + 1):
        await anyio.sleep(step_seconds)  # the real work goes here
        await ctx.publish_status(
            status="running", message=f"step {step}/{steps}", meta={"progress": step / steps}
        )


# -- the web app ------------------------------------------------------------------


def build_app(runtime: RelaynaRuntime, client: RelaynaClient) -> Starlette:
    """Status routes + ``POST /tasks`` on an already-open runtime."""

    async def submit(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            task = await client.publish_task(
                {"task_id": new_id("task"), "payload": body.get("payload", {})}
            )
        except (orjson.JSONDecodeError, AttributeError):
            return error_response(400, "expected a JSON object")
        except ContractError as exc:
            return error_response(422, str(exc))
        return ORJSONResponse(
            {"task_id": task.task_id, "events_url": f"/events/{task.task_id}"}, status_code=202
        )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"relayna": runtime}  # what status_routes() read from request.state

    return Starlette(
        routes=[Route("/tasks", submit, methods=["POST"]), *status_routes()], lifespan=lifespan
    )


@attrs.frozen
class Service:
    runtime: RelaynaRuntime
    client: RelaynaClient
    consumer: TaskConsumer
    base_url: str


@asynccontextmanager
async def open_service(
    broker_url: str = MEMORY, store_url: str = MEMORY, *, step_seconds: float = 0.2
) -> AsyncIterator[Service]:
    """Runtime, worker and HTTP server in one task group; leaving it drains them.

    Order on exit: SSE streams end (``request_shutdown``), hypercorn stops,
    then the worker drains (in-flight tasks finish and are acked), then the
    hub, the broker and the store close.
    """
    config = RuntimeConfig(broker_url=broker_url, store_url=store_url, topology=TOPOLOGY)
    async with open_relayna_runtime(config) as runtime:
        assert runtime.broker is not None
        async with open_relayna_client(TOPOLOGY, runtime.broker, declare=False) as client:
            consumer = TaskConsumer(
                topology=TOPOLOGY,
                broker=runtime.broker,
                handler=partial(handle, step_seconds=step_seconds),
                statuses=LifecycleStatuses(enabled=True),  # processing / completed / failed
                drain_timeout=10.0,
            )
            async with anyio.create_task_group() as workers:
                await workers.start(consumer.run)  # returns after basic.consume-ok
                app = build_app(runtime, client)
                async with serve_http(app) as base_url:
                    try:
                        yield Service(runtime, client, consumer, base_url)
                    finally:
                        runtime.request_shutdown()  # end open SSE streams before hypercorn waits
                workers.cancel_scope.cancel()  # = graceful drain


# -- the demo client ----------------------------------------------------------------


async def follow_sse(http: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    """Read ``GET /events/{task_id}`` to its end; return the ``status`` frames' data."""
    events: list[dict[str, Any]] = []
    kind = None
    async with http.stream("GET", f"/events/{task_id}") as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:") and kind == "status":
                events.append(orjson.loads(line[5:]))
    return events  # the server ends the stream after the terminal status


async def main(
    *,
    broker_url: str = MEMORY,
    store_url: str = MEMORY,
    steps: int = 3,
    step_seconds: float = 0.2,
    time_limit: float = 30.0,
) -> list[dict[str, Any]]:
    """Submit one task over HTTP and return its statuses as read from SSE."""
    with anyio.fail_after(time_limit):
        async with open_service(broker_url, store_url, step_seconds=step_seconds) as service:
            async with httpx.AsyncClient(base_url=service.base_url) as http:
                response = await http.post("/tasks", json={"payload": {"steps": steps}})
                response.raise_for_status()
                task_id = response.json()["task_id"]
                print(f"submitted {task_id}; following {service.base_url}/events/{task_id}")
                events = await follow_sse(http, task_id)
                latest = (await http.get(f"/status/{task_id}")).json()["event"]["status"]
    print_events(f"SSE stream of {task_id} (GET /status says {latest!r}):", events)
    return events


if __name__ == "__main__":
    sys.exit(cli(main, __doc__))
