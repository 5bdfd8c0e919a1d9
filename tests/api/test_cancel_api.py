"""``POST /tasks/{task_id}/cancel`` over a real socket, both backends (issue 27)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

import relayna
from relayna.api import (
    TASK_CANCEL,
    ORJSONResponse,
    cancel_routes,
    health_routes,
    operations_of,
    status_routes,
)
from relayna.consumer import TaskContext
from relayna.contracts import ContractAliasConfig

pytestmark = pytest.mark.anyio

Serve = Callable[[Any], Any]


def make_app(unique: str) -> tuple[relayna.App, anyio.Event]:
    app = relayna.App(name=f"api-{unique}", broker="memory://", store="memory://")
    started = anyio.Event()

    @app.task("slow")
    async def slow(ctx: TaskContext, payload: dict[str, Any]) -> None:
        started.set()
        await anyio.sleep(60)

    @app.task("quick")
    async def quick(ctx: TaskContext, payload: dict[str, Any]) -> int:
        return 1

    return app, started


@asynccontextmanager
async def served(
    serve: Serve, app: relayna.App, **route_options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    @asynccontextmanager
    async def lifespan(_web: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"relayna": app.runtime}

    web = Starlette(
        routes=[*status_routes(), *cancel_routes(**route_options), *health_routes()],
        lifespan=lifespan,
    )
    async with (
        app.open(worker=True),
        serve(web) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        yield client


async def final_status(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    while True:
        response = await client.get(f"/status/{task_id}")
        if response.status_code == 200 and response.json()["event"]["status"] in (
            "completed",
            "cancelled",
        ):
            return dict(response.json()["event"])
        await anyio.sleep(0.01)


async def test_cancel_a_running_task_then_conflict_then_unknown(
    anyio_backend: str, serve: Serve, unique: str
) -> None:
    app, started = make_app(unique)
    with anyio.fail_after(20):
        async with served(serve, app) as client:
            handle = await app.publish("slow")
            await started.wait()
            url = f"/tasks/{handle.task_id}/cancel"
            response = await client.post(url, json={"reason": "from the API"})
            assert response.status_code == 202
            assert response.json() == {
                "task_id": handle.task_id,
                "state": "requested",
                "reason": "from the API",
                "status": None,
            }
            event = await final_status(client, handle.task_id)
            assert (event["status"], event["message"]) == ("cancelled", "from the API")
            again = await client.post(url)  # no body: default reason
            assert again.status_code == 409
            assert again.json() == {
                "task_id": handle.task_id,
                "state": "terminal",
                "status": "cancelled",
                "detail": f"Task '{handle.task_id}' already ended with status 'cancelled'.",
            }
            done = await app.publish("quick")
            await final_status(client, done.task_id)
            conflict = await client.post(f"/tasks/{done.task_id}/cancel")
            assert (conflict.status_code, conflict.json()["status"]) == (409, "completed")
            missing = await client.post("/tasks/no-such-task/cancel")
            assert missing.status_code == 404
            assert missing.json() == {"detail": "No task found for task_id 'no-such-task'."}


async def test_cancelling_twice_is_idempotent(
    anyio_backend: str, serve: Serve, unique: str
) -> None:
    app, _ = make_app(unique)
    with anyio.fail_after(20):
        async with served(serve, app) as client:
            # a batch id has no status of its own: ?batch=true records the cancel anyway
            unset = await client.post(f"/tasks/u-{unique}/cancel?batch=true", json={"reason": None})
            assert (unset.status_code, unset.json()["reason"]) == (202, "cancelled")
            first = await client.post(f"/tasks/b-{unique}/cancel?batch=true", json={"reason": "a"})
            second = await client.post(f"/tasks/b-{unique}/cancel?batch=1", json={"reason": "b"})
            assert (first.status_code, first.json()["state"]) == (202, "requested")
            assert (second.status_code, second.json()["state"], second.json()["reason"]) == (
                202,
                "pending",
                "a",
            )


@pytest.mark.parametrize(
    ("path", "kwargs", "status"),
    [
        ("/tasks/t1/cancel", {"json": {"reason": "r" * 501}}, 422),
        ("/tasks/t1/cancel", {"json": {"reason": "two\nlines"}}, 422),
        ("/tasks/t1/cancel", {"json": {"reason": 5}}, 422),
        ("/tasks/t1/cancel", {"json": {"why": "x"}}, 422),
        ("/tasks/t1/cancel", {"json": ["reason"]}, 422),
        # JSON null is not "no body" (schemathesis found it answered 202)
        ("/tasks/t1/cancel", {"content": b"null", "headers": {"content-type": "application/json"}},
         422),
        ("/tasks/t1/cancel?batch=true",
         {"content": b"null", "headers": {"content-type": "application/json"}}, 422),
        ("/tasks/t1/cancel", {"content": b"{bad", "headers": {"content-type": "application/json"}},
         422),
        ("/tasks/t1/cancel", {"content": b"reason=x", "headers": {"content-type": "text/plain"}},
         415),
        ("/tasks/t1/cancel", {"json": {"reason": "x" * (2 << 20)}}, 413),
        ("/tasks/a%20b/cancel", {}, 422),
        ("/tasks/" + "x" * 300 + "/cancel", {}, 422),
        ("/tasks/t1/cancel?batch=maybe", {}, 422),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_before_anything_is_written(
    anyio_backend: str, serve: Serve, unique: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    app, _ = make_app(unique)
    with anyio.fail_after(20):
        async with served(serve, app) as client:
            response = await client.post(path, **kwargs)
            assert response.status_code == status, response.text
            assert "detail" in response.json()
            assert (await app.cancel("t1")).state == "unknown"  # nothing was recorded


async def test_the_authorization_hook_runs_first_and_aliases_name_the_field(
    anyio_backend: str, serve: Serve, unique: str
) -> None:
    app, started = make_app(unique)
    seen: list[str] = []

    async def authorize(request: Request, route_id: str) -> Response | None:
        seen.append(route_id)
        if request.headers.get("authorization") == "Bearer admin":
            return None
        return ORJSONResponse({"detail": "forbidden"}, status_code=403)

    aliases = ContractAliasConfig(field_aliases={"task_id": "documentId"})
    with anyio.fail_after(20):
        async with served(serve, app, authorize=authorize, aliases=aliases) as client:
            handle = await app.publish("slow")
            await started.wait()
            url = f"/tasks/{handle.task_id}/cancel"
            assert (await client.post(url)).status_code == 403
            assert (await handle.status() or {}).get("status") != "cancelled"
            ok = await client.post(url, headers={"authorization": "Bearer admin"})
            assert ok.status_code == 202
            assert ok.json()["documentId"] == handle.task_id
            assert seen == [TASK_CANCEL, TASK_CANCEL]


def test_the_route_is_documented_with_every_answer() -> None:
    (route,) = cancel_routes(authorize=lambda request, route_id: None)
    operations = operations_of(route)
    post = operations["post"]
    assert set(post.responses) == {202, 401, 403, 404, 409, 413, 415, 422, 503}
    assert getattr(route, "name", None) == TASK_CANCEL
