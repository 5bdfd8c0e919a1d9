"""Cancelling a task through Studio (issue 27), against a real relayna app on loopback.

The service is a :class:`relayna.App` on the memory broker and store with its worker in
this process, serving its own routes (``POST /tasks/{task_id}/cancel`` among them) and
the capability document. Studio runs with auth on: a reader is refused, an operator
cancels a running task (its ``finally`` runs), the service's 409 for an ended task comes
through as a 409, and a service whose capability document lacks ``tasks.cancel`` is
never called.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette

import relayna
from relayna.api import capabilities_routes, serving, status_routes
from relayna.consumer import TaskContext
from studio_support import Studio, TableResolver, open_test_studio, settings_for

pytestmark = pytest.mark.anyio

HOST = "127.0.0.2"


@asynccontextmanager
async def served(app: relayna.App, *, cancel: bool = True) -> AsyncIterator[str]:
    """The app's routes (or only its status routes) and its capability document."""
    routes = app.routes() if cancel else status_routes()
    asgi = Starlette(routes=[*routes, *capabilities_routes()], lifespan=app.lifespan(worker=True))
    async with serving(asgi, host=HOST, graceful_timeout=0.5) as url:
        yield url


@asynccontextmanager
async def studio_with_roles(prefix: str) -> AsyncIterator[tuple[Studio, dict[str, dict[str, str]]]]:
    settings = settings_for(
        "memory://",
        f"cancel:{prefix}",
        allowed_hosts=(".test",),
        allowed_networks=(f"{HOST}/32",),
        auth_enabled=True,
    )
    resolver = TableResolver({"svc.test": [HOST]})
    async with open_test_studio(settings, resolver=resolver) as studio:
        yield studio, await studio.role_headers()


def slow_app(effects: list[str], started: anyio.Event) -> relayna.App:
    app = relayna.App(name=f"cancel-{uuid.uuid4().hex[:8]}", cancel_grace=1.0)

    @app.task("slow")
    async def slow(ctx: TaskContext, payload: dict[str, Any]) -> None:
        started.set()
        try:
            await anyio.sleep_forever()  # only a cancel ends it
        finally:
            effects.append("finally")

    return app


async def test_an_operator_cancels_a_running_task_through_studio() -> None:
    effects: list[str] = []
    started = anyio.Event()
    app = slow_app(effects, started)
    with anyio.fail_after(30):
        async with (
            served(app) as url,
            studio_with_roles(uuid.uuid4().hex[:8]) as (studio, who),
        ):
            await studio.register("svc", url, who["admin"])
            refreshed = await studio.client.post(
                "/studio/services/svc/refresh", headers=who["admin"]
            )
            assert refreshed.status_code == 200, refreshed.text
            assert "tasks.cancel" in refreshed.json()["capabilities"]["supported_routes"]
            handle = await app.publish("slow")
            await started.wait()
            path = f"/studio/services/svc/tasks/{handle.task_id}/cancel"

            refused = await studio.client.post(path, headers=who["reader"])
            assert refused.status_code == 403
            bad_inputs: list[dict[str, Any]] = [
                {"json": {"reason": "x" * 501}},
                {"json": {"reason": ""}},
                {"json": {"why": "extra field"}},
                {"json": ["reason"]},
            ]
            for options in bad_inputs:
                bad = await studio.client.post(path, headers=who["operator"], **options)
                assert bad.status_code == 422, (options, bad.text)
            bad_id = await studio.client.post(
                "/studio/services/svc/tasks/a..b/cancel", headers=who["operator"]
            )
            assert bad_id.status_code == 422
            assert effects == []  # nothing above reached the task

            done = await studio.client.post(
                path, headers=who["operator"], json={"reason": "stopped from Studio"}
            )
            assert done.status_code == 202, done.text
            body = done.json()
            assert (body["service_id"], body["task_id"]) == ("svc", handle.task_id)
            assert (body["state"], body["reason"]) == ("requested", "stopped from Studio")
            assert body["task_ref"]["task_id"] == handle.task_id
            event = await handle.wait()
            assert (event["status"], event["message"]) == ("cancelled", "stopped from Studio")
            assert effects == ["finally"]

            # The service's 409 stays a 409: the task already ended, nothing changed.
            again = await studio.client.post(path, headers=who["operator"])
            assert again.status_code == 409, again.text
            assert again.json()["code"] == "already_terminal"
            assert again.json()["upstream_status"] == 409
            assert "cancelled" in again.json()["detail"]
            unknown = await studio.client.post(
                "/studio/services/svc/tasks/nobody/cancel", headers=who["operator"]
            )
            assert unknown.status_code == 404
            assert unknown.json()["code"] == "upstream_not_found"

            audit = await studio.client.get(
                "/studio/audit", params={"action": "task.cancel"}, headers=who["admin"]
            )
            entries = audit.json()["items"]
            outcomes = sorted((e["outcome"], e["status_code"]) for e in entries)
            assert ("denied", 403) in outcomes
            assert ("success", 202) in outcomes
            assert ("failure", 409) in outcomes
            assert f"svc/{handle.task_id}" in {e["target"] for e in entries}


async def test_a_service_without_the_cancel_route_is_not_called() -> None:
    started = anyio.Event()
    app = slow_app([], started)
    with anyio.fail_after(30):
        async with (
            served(app, cancel=False) as url,
            studio_with_roles(uuid.uuid4().hex[:8]) as (studio, who),
        ):
            await studio.register("svc", url, who["admin"])
            refreshed = await studio.client.post(
                "/studio/services/svc/refresh", headers=who["admin"]
            )
            assert "tasks.cancel" not in refreshed.json()["capabilities"]["supported_routes"]
            handle = await app.publish("slow")
            await started.wait()
            answer = await studio.client.post(
                f"/studio/services/svc/tasks/{handle.task_id}/cancel", headers=who["operator"]
            )
            assert answer.status_code == 501, answer.text
            assert answer.json()["code"] == "unsupported_route"
            # the service was never asked: the task was still running, with no cancel pending
            assert (await handle.cancel("test over")).state == "requested"
            assert (await handle.wait())["status"] == "cancelled"
