"""``relayna.App`` on the memory transports, both backends (issue 24, item 4)."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

import relayna
from relayna.api import serving
from relayna.app import TaskFailed
from relayna.consumer import RetryPolicy, TaskContext
from relayna.errors import ConfigurationError, DuplicateTaskError, TopologyError
from relayna.topology import RoutedTasksSharedStatusTopology

pytestmark = pytest.mark.anyio


def make_app(**options: Any) -> relayna.App:
    app = relayna.App(name="reports", broker="memory://", store="memory://", **options)

    @app.task("report.render", retry=RetryPolicy(max_retries=1, delay_ms=50))
    async def render(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("fail") == "always" or (payload.get("fail") == "once" and not ctx.attempt):
            raise RuntimeError(f"cannot render attempt {ctx.attempt}")
        await ctx.publish_status(status="running", meta={"progress": 0.5})
        return {"pages": payload.get("pages", 1)}

    @app.task("report.count")
    def count(ctx: TaskContext, payload: dict[str, Any]) -> int:  # a plain def: worker thread
        return len(payload.get("items", []))

    return app


async def test_a_decorated_task_runs_and_its_handle_follows_it(anyio_backend: str) -> None:
    app = make_app()
    render = app.tasks["report.render"]
    with anyio.fail_after(20):
        async with app.open(worker=True):
            handle = await render.publish({"pages": 3})
            assert await handle.result() == {"pages": 3}
            latest = await handle.status()
            assert latest is not None
            assert latest["status"] == "completed"
            assert [e["status"] for e in await handle.history()] == [
                "processing",
                "running",
                "completed",
            ]
            async with handle.events() as events:  # a finished task: history, then the end
                seen = [event["status"] async for event in events]
            assert seen == ["processing", "running", "completed"]
            counted = await app.publish("report.count", {"items": [1, 2, 3]}, task_id="c-1")
            assert counted.task_id == "c-1"
            assert await counted.result() == {"value": 3}


async def test_retry_then_success_and_failure_after_the_last_retry(anyio_backend: str) -> None:
    app = make_app()
    with anyio.fail_after(20):
        async with app.open(worker=True):
            once = await app.publish("report.render", {"fail": "once", "pages": 2})
            always = await app.publish("report.render", {"fail": "always"})
            assert await once.result() == {"pages": 2}
            with pytest.raises(TaskFailed) as failed:
                await always.result()
            assert failed.value.event["status"] == "failed"
            assert "cannot render attempt 1" in str(failed.value.event.get("message"))
            assert [e["status"] for e in await once.history()] == [
                "processing",
                "retrying",
                "processing",
                "running",
                "completed",
            ]
            dlq = await app.runtime.broker.inspect_queue("reports.tasks.dlq")  # type: ignore[union-attr]
            assert dlq.message_count == 1


async def test_events_follow_a_task_live(anyio_backend: str) -> None:
    app = relayna.App(name="live", broker="memory://", store="memory://")
    release = anyio.Event()

    @app.task("slow")
    async def slow(ctx: TaskContext, payload: dict[str, Any]) -> str:
        await ctx.publish_status(status="waiting")
        await release.wait()
        return "done"

    with anyio.fail_after(20):
        async with app.open(worker=True):
            handle = await slow.publish()
            seen: list[str] = []
            async with handle.events() as events:
                async for event in events:
                    seen.append(event["status"])
                    if event["status"] == "waiting":
                        release.set()  # only now can the task finish: these are live
    assert seen == ["processing", "waiting", "completed"]


async def test_the_asgi_app_serves_routes_page_health_and_runs_the_worker(
    anyio_backend: str,
) -> None:
    app = make_app()
    with anyio.fail_after(30):
        async with (
            serving(app.asgi(page=True, worker=True)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            page = await http.get("/")
            assert page.status_code == 200
            assert "report.render" in page.text
            assert "report.count" in page.text
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "checks": {"store": "ok", "broker": "ok"}}
            posted = await http.post(
                "/tasks", json={"task_type": "report.render", "payload": {"pages": 7}}
            )
            assert posted.status_code == 202, posted.text
            task_id = posted.json()["task_id"]
            async with http.stream("GET", f"/events/{task_id}") as stream:
                body = "".join([chunk async for chunk in stream.aiter_text()])
            assert '"status":"completed"' in body
            assert '"pages":7' in body
            bad = await http.post("/tasks", json={"task_type": "nope", "payload": {}})
            assert bad.status_code == 422


async def test_readiness_fails_when_the_store_is_gone(anyio_backend: str) -> None:
    from relayna.api._health import readiness
    from relayna.transport import open_store

    app = make_app()
    async with app.open():
        runtime = app.runtime
        ready, body = await readiness(runtime, 1.0)
        assert ready
        async with open_store("memory://") as other:
            pass  # closed
        runtime.store = other
        ready, body = await readiness(runtime, 1.0)
        assert not ready
        assert body["checks"]["store"].startswith("error: StoreError")
        assert body["checks"]["broker"] == "ok"
        runtime.request_shutdown()
        assert (await readiness(runtime, 1.0))[1] == {
            "status": "unavailable",
            "detail": "shutting down",
        }
    assert (await readiness(None, 1.0))[0] is False


async def test_publishing_needs_an_open_app(anyio_backend: str) -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="not open"):
        await app.publish("report.render", {})


def test_registration_mistakes_are_configuration_errors() -> None:
    app = relayna.App(name="svc", broker="memory://", store="memory://")

    @app.task("a.b")
    async def first(ctx: TaskContext, payload: dict[str, Any]) -> None: ...

    with pytest.raises(ConfigurationError, match="twice"):
        app.task("a.b")
    with pytest.raises(ConfigurationError, match="invalid task type"):
        app.task("has space")
    with pytest.raises(ConfigurationError, match="invalid app name"):
        relayna.App(name="no\nnewlines")
    with pytest.raises(ConfigurationError, match="no tasks"):
        relayna.App(name="empty", broker="memory://").consumer()


def test_tasks_on_one_queue_must_share_their_retry_policy() -> None:
    app = relayna.App(name="svc", broker="memory://", retry=RetryPolicy(max_retries=5))

    @app.task("a", retry=RetryPolicy(max_retries=1))
    def a(ctx: TaskContext, payload: dict[str, Any]) -> None: ...

    @app.task("b")
    def b(ctx: TaskContext, payload: dict[str, Any]) -> None: ...

    assert app.consumer().retry_policy == RetryPolicy(max_retries=1)

    @app.task("c", retry=RetryPolicy(max_retries=2))
    def c(ctx: TaskContext, payload: dict[str, Any]) -> None: ...

    with pytest.raises(ConfigurationError, match="retry policies must be equal"):
        app.consumer()


def test_an_explicit_topology_must_route_every_task() -> None:
    topology = RoutedTasksSharedStatusTopology(
        tasks_exchange="x.tasks",
        tasks_queue="x.tasks",
        task_types=("a",),
        status_exchange="x.status",
        status_queue="x.status",
    )
    app = relayna.App(topology, broker="memory://")

    @app.task("a")
    def a(ctx: TaskContext, payload: dict[str, Any]) -> None: ...

    assert app.consumer().queue_name == "x.tasks"

    @app.task("b")
    def b(ctx: TaskContext, payload: dict[str, Any]) -> None: ...

    with pytest.raises(ConfigurationError, match=r"does not route task types \['b'\]"):
        app.consumer()


def test_an_app_without_tasks_has_no_topology_to_build() -> None:
    with pytest.raises(TopologyError):
        _ = relayna.App(name="empty").topology


def test_a_task_is_still_a_plain_function() -> None:
    app = make_app()
    assert app.tasks["report.count"](None, {"items": [1, 2]}) == 2  # type: ignore[arg-type]
    assert relayna.App is relayna.app.App  # type: ignore[attr-defined]


async def test_registration_after_open_is_refused(anyio_backend: str) -> None:
    app = make_app()
    async with app.open():
        with pytest.raises(ConfigurationError, match="already in use"):
            app.task("late")
        with pytest.raises(ConfigurationError, match="already open"):
            async with app.open():
                pass
    app.task("late")  # closed again: the built topology is rebuilt next time


async def test_publish_if_exists_skips_or_refuses_a_known_task_id(anyio_backend: str) -> None:
    app = make_app()
    render = app.tasks["report.render"]
    with anyio.fail_after(20):
        async with app.open(worker=True):
            first = await render.publish({"pages": 2}, task_id="once-only")
            assert await first.result() == {"pages": 2}
            skipped = await render.publish({"pages": 9}, task_id="once-only", if_exists="skip")
            assert skipped.task_id == "once-only"
            with pytest.raises(DuplicateTaskError):
                await app.publish(
                    "report.render", {"pages": 9}, task_id="once-only", if_exists="error"
                )
            with pytest.raises(ConfigurationError):
                await app.publish("report.render", {}, if_exists="maybe")  # type: ignore[arg-type]
            completed = [e for e in await first.history() if e["status"] == "completed"]
            assert len(completed) == 1  # neither the skip nor the refused publish ran it
            assert completed[0]["result"] == {"pages": 2}


async def test_the_apps_worker_records_dead_letters_its_dlq_routes_list_and_replay(
    anyio_backend: str,
) -> None:
    app = make_app()
    with anyio.fail_after(30):
        async with (
            serving(app.asgi(page=True, dlq=True, worker=True)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            posted = await http.post(
                "/tasks", json={"task_type": "report.render", "payload": {"fail": "always"}}
            )
            task_id = posted.json()["task_id"]
            async with http.stream("GET", f"/events/{task_id}") as stream:  # ends when terminal
                body = "".join([chunk async for chunk in stream.aiter_text()])
            assert '"status":"failed"' in body
            listed = await http.get("/dlq/messages", params={"task_id": task_id})
            assert listed.status_code == 200, listed.text
            [item] = listed.json()["items"]
            assert item["reason"] == "handler_error"
            assert item["source_queue_name"] == "reports.tasks"
            detail = (await http.get(f"/dlq/messages/{item['dlq_id']}")).json()
            assert detail["latest_status"]["status"] == "failed"
            replay = await http.post(f"/dlq/messages/{item['dlq_id']}/replay")
            assert replay.status_code == 200, replay.text
            again = await http.post(f"/dlq/messages/{item['dlq_id']}/replay")
            assert again.status_code == 409


def test_dlq_routes_need_a_dlq_config() -> None:
    app = relayna.App(name="plain", broker="memory://", store="memory://", dlq_config=None)
    with pytest.raises(ConfigurationError, match="dlq_config"):
        app.routes(dlq=True)
