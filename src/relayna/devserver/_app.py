"""The dev service's Starlette app: the status routes, ``POST /tasks`` and the page.

``POST /tasks`` answers 202 with the task's URLs; 409 when the task id
already exists (``if_exists="error"``: it was published, or has statuses);
422 for a body or a demo payload that does not fit (an unknown ``mode``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from relayna.api import (
    BodyError,
    ORJSONResponse,
    RelaynaRuntime,
    cancel_routes,
    capabilities_routes,
    dlq_routes,
    document,
    error_response,
    execution_routes,
    feed_routes,
    health_routes,
    metrics_routes,
    openapi_route,
    read_json_body,
    status_routes,
    worker_health_routes,
    workflow_routes,
)
from relayna.contracts import TaskEnvelope
from relayna.devserver._demo import DEMO_TASK_TYPES, check_demo_payload
from relayna.devserver._docs import page_operation, submit_links, submit_operation
from relayna.devserver._workflow import WORKFLOW_TASK_TYPE, check_workflow_payload
from relayna.dlq import DLQService
from relayna.errors import ContractError, DuplicateTaskError, RelaynaError, TopologyError
from relayna.rabbitmq import RelaynaClient
from relayna.topology import SharedStatusWorkflowTopology

__all__ = ["MAX_BODY_BYTES", "SUBMIT_ROUTE_ID", "build_app", "task_page_routes"]

#: The capability id of ``POST /tasks`` (Studio submits tasks through it).
SUBMIT_ROUTE_ID = "tasks.submit"

#: Publishes a task mapping and returns the envelope (``RelaynaClient.publish_task``).
Publish = Callable[[dict[str, Any]], Awaitable[TaskEnvelope]]

MAX_BODY_BYTES = 1024 * 1024
_ENVELOPE_FIELDS = ("task_id", "task_type", "correlation_id", "priority", "service")


def _page(config: Mapping[str, Any]) -> str:
    text = resources.files("relayna.devserver").joinpath("page.html").read_text("utf-8")
    # "</" cannot end the script element from inside a JSON string.
    data = orjson.dumps(dict(config)).decode().replace("</", "<\\/")
    return text.replace("/*RELAYNA_PAGE*/null", data)


async def _read_json(request: Request) -> Any:
    try:
        return await read_json_body(request, max_bytes=MAX_BODY_BYTES, invalid_json_status=400)
    except BodyError as exc:
        raise _HTTPError(exc.status, exc.detail) from None


class _HTTPError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def task_from_body(data: Any, default_task_type: str) -> dict[str, Any]:
    """``{"payload": {...}, ...envelope fields}`` → a task mapping (id generated)."""
    if not isinstance(data, dict):
        raise _HTTPError(422, [{"loc": ["body"], "msg": "expected a JSON object"}])
    payload = data.get("payload", {})
    if not isinstance(payload, dict):
        raise _HTTPError(422, [{"loc": ["body", "payload"], "msg": "expected an object"}])
    unknown = sorted(set(data) - {"payload", *_ENVELOPE_FIELDS})
    if unknown:
        raise _HTTPError(422, [{"loc": ["body", k], "msg": "unknown field"} for k in unknown])
    task = {k: data[k] for k in _ENVELOPE_FIELDS if data.get(k) is not None}  # null = absent
    task["payload"] = payload
    task.setdefault("task_id", uuid.uuid4().hex)
    task.setdefault("task_type", default_task_type)
    return task


def _submit_endpoint(
    publish: Publish, default_task_type: str, graph: bool
) -> Callable[[Request], Awaitable[Response]]:
    async def submit(request: Request) -> Response:
        try:
            task = task_from_body(await _read_json(request), default_task_type)
            errors = []
            if task["task_type"] in DEMO_TASK_TYPES:
                errors = check_demo_payload(task["payload"])
            elif task["task_type"] == WORKFLOW_TASK_TYPE:
                errors = check_workflow_payload(task["payload"])
            if errors:
                raise ContractError("invalid demo payload", errors=errors)
            published = await publish(task)
        except _HTTPError as exc:
            return error_response(exc.status, exc.detail)
        except DuplicateTaskError as exc:
            return error_response(409, str(exc))
        except ContractError as exc:
            detail = [{"loc": ["body", *path.split(".")], "msg": msg} for path, msg in exc.errors]
            return error_response(422, detail or str(exc))
        except TopologyError as exc:  # e.g. a task_type this topology does not route
            return error_response(422, str(exc))
        except RelaynaError as exc:
            return error_response(503, f"could not publish: {exc}")
        task_id = published.task_id
        body = {
            "task_id": task_id,
            "task_type": published.task_type,
            "status_url": f"/status/{task_id}",
            "events_url": f"/events/{task_id}",
        }
        if graph:
            body["graph_url"] = f"/executions/{task_id}/graph"
        return ORJSONResponse(body, status_code=202)

    return submit


def task_page_routes(
    publish: Publish,
    task_types: Sequence[str],
    *,
    page: Mapping[str, Any],
    graph: bool = False,
    dlq: bool = False,
) -> list[BaseRoute]:
    """``GET /`` (the page that submits tasks and follows them over SSE) and ``POST /tasks``.

    Args:
        publish: publishes a task mapping (e.g. ``RelaynaClient.publish_task``).
        task_types: the types ``POST /tasks`` documents; the first is the default.
        page: ``{"title": str, "task_types": [...]}`` shows a task-type select
            and a JSON payload box; ``{"form": "demo"}`` the demo's form.
        graph: the app serves the execution routes: answers carry ``graph_url``.
        dlq: the app serves the DLQ routes (the answer's OpenAPI links name them).
    """
    html = _page(page)

    async def index(_request: Request) -> Response:
        return HTMLResponse(html)

    default = task_types[0] if task_types else ""
    return [
        document(Route("/", index), get=page_operation()),
        document(
            Route(
                "/tasks",
                _submit_endpoint(publish, default, graph),
                methods=["POST"],
                name=SUBMIT_ROUTE_ID,
            ),
            post=submit_operation(task_types, submit_links(graph=graph, dlq=dlq)),
        ),
    ]


def build_app(
    runtime: RelaynaRuntime,
    client: RelaynaClient,
    *,
    default_task_type: str = "demo.process",
    dlq: DLQService | None = None,
    mcp: Sequence[BaseRoute] = (),
    workflow: tuple[SharedStatusWorkflowTopology, Publish] | None = None,
) -> Starlette:
    """The app serving an already-open runtime (its lifespan just exposes it).

    The one place the dev service's routes are assembled: the page, ``POST
    /tasks``, the status routes, ``POST /tasks/{task_id}/cancel``, ``/healthz``
    + ``/readyz``, the DLQ and failed-task routes (with ``dlq``), the MCP
    endpoint (``mcp``: the routes of :func:`relayna.mcp.mcp_routes`, run by
    the caller) and the OpenAPI document. With ``workflow`` (the workflow
    topology and the publish of ``demo.workflow`` tasks), ``POST /tasks``
    also starts workflow runs and the workflow routes are served.
    """

    async def publish(task: dict[str, Any]) -> TaskEnvelope:
        if workflow is not None and task["task_type"] == WORKFLOW_TASK_TYPE:
            return await workflow[1](task)
        return await client.publish_task(task, if_exists="error")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"relayna": runtime}

    types = [default_task_type, *(t for t in DEMO_TASK_TYPES if t != default_task_type)]
    if workflow is not None:
        types.append(WORKFLOW_TASK_TYPE)
    routes = [
        *task_page_routes(
            publish,
            types,
            page={"form": "demo", "title": "relayna dev"},
            graph=True,
            dlq=dlq is not None,
        ),
        *feed_routes(),  # before the status routes: /events/feed is not a task id
        *execution_routes(),
        *worker_health_routes(),
        *capabilities_routes(service_title="relayna dev", extra_route_ids=(SUBMIT_ROUTE_ID,)),
        *metrics_routes(),
        *status_routes(),
        *cancel_routes(),
        *health_routes(),
    ]
    if dlq is not None:
        routes += dlq_routes(service=dlq)
    if workflow is not None:
        routes += workflow_routes(workflow[0])
    routes += mcp
    routes.append(openapi_route(title="relayna dev"))
    return Starlette(routes=routes, lifespan=lifespan)
