"""`relayna dev` as one system: the demo service and Studio in one task group, both backends.

With relayna-studio installed (the test environment installs ``./studio``),
Studio serves its UI and API on loopback with the demo service registered;
an operator's path (find a dead letter, replay it, see the task complete,
find it in the task list) goes through Studio only. Without it, relayna
says how to install it and the service runs alone.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from relayna.devserver import (
    STUDIO_INSTALL_HINT,
    DevConfig,
    DevStudioConfig,
    DevUrls,
    run_dev_system,
    studio_installed,
)
from relayna.devserver._studio import run_dev_studio
from relayna.errors import ConfigurationError

pytestmark = pytest.mark.anyio


async def _until(client: httpx.AsyncClient, path: str, ok: Any, **params: Any) -> Any:
    """GET ``path`` until ``ok(body)``; the caller's fail_after bounds it."""
    while True:
        response = await client.get(path, params=params)
        if response.status_code == 200 and ok(response.json()):
            return response.json()
        await anyio.sleep(0.05)


@asynccontextmanager
async def _system(config: DevConfig, studio: DevStudioConfig) -> AsyncIterator[DevUrls]:
    shutdown = anyio.Event()
    async with anyio.create_task_group() as tg:
        urls: DevUrls = await tg.start(lambda task_status: run_dev_system(
            config, shutdown, studio=studio, task_status=task_status
        ))  # fmt: skip
        try:
            yield urls
        finally:
            shutdown.set()


async def test_studio_comes_up_with_the_demo_service_registered() -> None:
    config = DevConfig(port=free_port(), step_seconds=0.01, retry_delay_ms=100, drain_timeout=5)
    studio = DevStudioConfig(port=free_port(), pull_sync_interval_seconds=0.2)
    assert studio_installed()
    with anyio.fail_after(60):
        async with _system(config, studio) as urls:
            assert urls.service == config.url
            assert urls.studio == f"http://127.0.0.1:{studio.port}/tasks/search?service_id=demo"
            async with httpx.AsyncClient(base_url=studio.url, timeout=20) as ui:
                page = await ui.get(urls.studio)
                assert page.status_code == 200
                assert page.headers["content-type"].startswith("text/html")
                record = (await ui.get("/studio/services/demo")).json()
                assert record["base_url"] == f"http://127.0.0.1:{config.port}"
                assert "dlq.replay" in record["capabilities"]["supported_routes"]
                assert (await ui.get("/studio/auth/whoami")).json()["auth_enabled"] is False

                # Submitted through Studio (the UI's "Submit a task"), kept codes on bad input.
                assert "tasks.submit" in record["capabilities"]["supported_routes"]
                submit = "/studio/services/demo/tasks"
                posted = await ui.post(
                    submit, json={"payload": {"steps": 2, "mode": "fail_until_replayed"}}
                )
                assert posted.status_code == 200, posted.text
                task_id = posted.json()["task_id"]
                assert posted.json()["service_id"] == "demo"
                bad_mode = await ui.post(submit, json={"payload": {"mode": "explode"}})
                assert bad_mode.status_code == 422, bad_mode.text
                assert (await ui.post(submit, json=[1])).status_code == 422
                taken = await ui.post(submit, json={"task_id": task_id, "payload": {}})
                assert taken.status_code == 409, taken.text
                dlq = await _until(
                    ui,
                    "/studio/services/demo/dlq/messages",
                    lambda body: len(body["items"]) == 1,
                    task_id=task_id,
                )
                dlq_id = dlq["items"][0]["dlq_id"]
                # A retry whose override is not a JSON object: the service's 422, kept.
                forced = await ui.post(
                    f"/studio/failed-tasks/demo/{dlq_id}/retry",
                    json={"override_payload": "{not json"},
                )
                assert forced.status_code == 422, forced.text
                replay = await ui.post(f"/studio/services/demo/dlq/messages/{dlq_id}/replay")
                assert replay.status_code == 200, replay.text
                await _until(
                    ui,
                    f"/studio/services/demo/status/{task_id}",
                    lambda body: body["event"]["status"] == "completed",
                )
                found = await _until(
                    ui,
                    "/studio/tasks/search",
                    lambda body: [i["status"] for i in body["items"]] == ["completed"],
                    task_id=task_id,
                )
                assert found["items"][0]["service_id"] == "demo"
                audit = (await ui.get("/studio/audit", params={"action": "dlq.replay"})).json()
                assert [e["outcome"] for e in audit["items"]] == ["success"]
                await _workflow_and_fanout_through_studio(ui)


async def _workflow_and_fanout_through_studio(ui: httpx.AsyncClient) -> None:
    """The two kinds every graph needs, submitted and read through Studio only: a
    workflow task's graph has both stages and the hop between them; an aggregation
    fan-out's graph has its children, each run by the aggregation consumer."""
    topology = (await ui.get("/studio/services/demo/workflow/topology")).json()
    assert [s["name"] for s in topology["stages"]] == ["planner", "worker"]
    assert [(e["source"], e["target"]) for e in topology["edges"]] == [("planner", "worker")]
    submit = "/studio/services/demo/tasks"
    bad = await ui.post(submit, json={"task_type": "demo.workflow", "payload": {"q": 1}})
    assert bad.status_code == 422, bad.text
    flow = await ui.post(submit, json={"task_type": "demo.workflow", "payload": {"steps": 2}})
    fan = await ui.post(submit, json={"payload": {"mode": "fanout", "steps": 3}})
    assert flow.status_code == fan.status_code == 200, (flow.text, fan.text)
    flow_id, fan_id = flow.json()["task_id"], fan.json()["task_id"]

    def kinds(graph: dict[str, Any]) -> list[str]:
        return sorted(n["kind"] for n in graph["nodes"])

    graph = await _until(
        ui,
        f"/studio/services/demo/executions/{flow_id}/graph",
        lambda g: kinds(g).count("stage_attempt") == 2 and g["summary"]["status"] == "completed",
    )
    stages = sorted(
        n["annotations"]["stage"] for n in graph["nodes"] if n["kind"] == "stage_attempt"
    )
    assert stages == ["planner", "worker"]
    assert [e["kind"] for e in graph["edges"]].count("stage_transitioned_to") == 1
    graph = await _until(
        ui,
        f"/studio/services/demo/executions/{fan_id}/graph",
        lambda g: kinds(g).count("aggregation_child") == 3 and kinds(g).count("task_attempt") == 4,
    )
    await _until(
        ui,
        f"/studio/services/demo/status/{fan_id}",
        lambda body: body["event"]["status"] == "completed",
    )


async def test_studio_port_in_use_stops_the_whole_system() -> None:
    with anyio.fail_after(30):
        busy = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with busy:
            port = busy.extra(anyio.abc.SocketAttribute.local_port)
            config = DevConfig(port=free_port(), drain_timeout=2)
            studio = DevStudioConfig(port=port)
            async with anyio.create_task_group() as tg:
                with pytest.raises(OSError):
                    await tg.start(partial(run_dev_system, config, anyio.Event(), studio=studio))


async def test_without_relayna_studio_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "relayna_studio", None)  # import fails, as uninstalled
    assert not studio_installed()
    with anyio.fail_after(10), pytest.raises(ConfigurationError) as info:
        await run_dev_studio(
            DevStudioConfig(port=free_port()),
            store_url="memory://",
            service_url="http://127.0.0.1:1/",
            shutdown=anyio.Event(),
        )
    assert STUDIO_INSTALL_HINT in str(info.value)
    assert "pip install -e ./studio" in STUDIO_INSTALL_HINT


@pytest.mark.rabbitmq
@pytest.mark.redis
async def test_real_rabbitmq_and_redis_unchanged_and_a_second_run_repoints_the_service(
    amqp_url: str, redis_url: str, unique: str
) -> None:
    """--broker-url/--store-url: the same system on the real servers. Studio keeps its
    registry in that Redis, so the next run finds ``demo`` and points it at its own URL."""
    for run in (1, 2):
        config = DevConfig(
            port=free_port(),
            broker_url=amqp_url,
            store_url=redis_url,
            prefix=f"dev-{unique}",
            step_seconds=0.01,
            retry_delay_ms=100,
            drain_timeout=5,
        )
        studio = DevStudioConfig(port=free_port(), pull_sync_interval_seconds=0.2)
        with anyio.fail_after(60):
            async with (
                _system(config, studio) as urls,
                httpx.AsyncClient(base_url=studio.url, timeout=20) as ui,
            ):
                record = (await ui.get("/studio/services/demo")).json()
                assert record["base_url"] == urls.service.rstrip("/"), run
                posted = await ui.post(
                    "/studio/services/demo/tasks", json={"payload": {"mode": "fail_once"}}
                )
                task_id = posted.json()["task_id"]
                await _until(
                    ui,
                    f"/studio/services/demo/status/{task_id}",
                    lambda body: body["event"]["status"] == "completed",
                )
                await _workflow_and_fanout_through_studio(ui)
