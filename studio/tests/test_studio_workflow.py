"""Workflow runs and replay through Studio, against a real relayna workflow service.

The service is relayna's own app (``relayna_services``: ``workflow_routes``
and the capability document among relayna's other routes) on the memory
broker and the parametrised store, with real ``WorkflowConsumer`` stage
workers. A run dead-letters at its second stage; an operator replays that
stage through Studio and the run completes. Studio runs with auth on: a
reader is refused, every attempt is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import anyio
import pytest

from relayna.consumer import LeasePolicy
from relayna.contracts import WorkflowEnvelope
from relayna.rabbitmq import CancelStore, open_relayna_client
from relayna.topology import SharedStatusWorkflowTopology, WorkflowStage
from relayna.workflow import WorkflowConsumer, WorkflowContext
from relayna_services import HOST, RelaynaService, relayna_service
from studio_support import Studio, TableResolver, open_test_studio, settings_for

pytestmark = pytest.mark.anyio


def topology(unique: str) -> SharedStatusWorkflowTopology:
    """planner -> docsearch (terminal, no retries: a failure dead-letters at once)."""
    return SharedStatusWorkflowTopology(
        workflow_exchange=f"wf-{unique}",
        status_exchange=f"wf-status-{unique}",
        status_queue=f"wf-status-{unique}.q",
        status_use_streams=False,
        stages=(
            WorkflowStage(
                "planner",
                f"wf-{unique}.planner",
                ("planner.in",),
                "planner.in",
                allowed_next_stages=("docsearch",),
            ),
            WorkflowStage(
                "docsearch",
                f"wf-{unique}.docsearch",
                ("docsearch.in",),
                "docsearch.in",
                terminal=True,
                max_retries=0,
            ),
        ),
    )


@asynccontextmanager
async def stage_workers(
    service: RelaynaService,
    wf: SharedStatusWorkflowTopology,
    handlers: dict[str, Callable[..., Any]],
    **options: Any,
) -> AsyncIterator[None]:
    runtime = service.runtime
    assert runtime.broker is not None
    async with anyio.create_task_group() as tg:
        for name, handler in handlers.items():
            consumer = WorkflowConsumer(
                topology=wf,
                broker=runtime.broker,
                stage=name,
                handler=handler,
                store=runtime.store,
                consumer_name=name,
                state=service.workflow_state,
                lease_policy=LeasePolicy(ttl=1.0, heartbeat_interval=0.2, conflict_delay=0.02),
                drain_timeout=1.0,
                **options,
            )
            await tg.start(consumer.run)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def register(studio: Studio, admin: dict[str, str], sid: str, port: int) -> list[str]:
    """Register ``sid`` (on ``port``) and refresh it; its supported route ids."""
    created = await studio.client.post(
        "/studio/services",
        headers=admin,
        json={
            "service_id": sid,
            "name": sid,
            "base_url": f"http://{sid}.test:{port}",
            "environment": "test",
            "auth_mode": "internal_network",
        },
    )
    assert created.status_code == 201, created.text
    refreshed = await studio.client.post(f"/studio/services/{sid}/refresh", headers=admin)
    assert refreshed.status_code == 200, refreshed.text
    routes: list[str] = refreshed.json()["capabilities"]["supported_routes"]
    return routes


async def run_status(studio: Studio, headers: dict[str, str], want: str) -> dict[str, Any]:
    """Poll the run through Studio until its status is ``want`` (bounded by the caller)."""
    while True:
        answer = await studio.client.get(
            "/studio/services/wf/workflow/runs/run%2F1", headers=headers
        )
        if answer.status_code == 200 and answer.json()["run"]["status"] == want:
            return dict(answer.json())
        assert answer.status_code in (200, 404), answer.text
        await anyio.sleep(0.02)


async def test_an_operator_replays_a_dead_lettered_stage_through_studio(store_url: str) -> None:
    unique = uuid.uuid4().hex[:8]
    wf = topology(unique)
    broken = True

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("docsearch", {"q": "relayna"})

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        if broken:
            raise RuntimeError("index offline")

    settings = settings_for(
        store_url,
        f"wf:{unique}",
        allowed_hosts=(".test",),
        allowed_networks=(f"{HOST}/32",),
        auth_enabled=True,
    )
    resolver = TableResolver({"wf.test": [HOST], "plain.test": [HOST]})
    with anyio.fail_after(60):
        async with (
            relayna_service(store_url, topology=wf, title="wf") as service,
            relayna_service(store_url, title="plain") as plain,
            open_test_studio(settings, resolver=resolver) as studio,
            stage_workers(service, wf, {"planner": plan, "docsearch": search}),
        ):
            roles = await studio.role_headers()
            admin, operator, reader = roles["admin"], roles["operator"], roles["reader"]
            await register(studio, admin, "wf", service.port)
            caps = await register(studio, admin, "plain", plain.port)
            assert "workflow.runs" not in caps  # 'plain' has no workflow routes

            topo = await studio.client.get("/studio/services/wf/workflow/topology", headers=reader)
            assert topo.status_code == 200, topo.text
            assert [s["name"] for s in topo.json()["stages"]] == ["planner", "docsearch"]
            assert topo.json()["service_id"] == "wf"

            assert service.runtime.broker is not None
            async with open_relayna_client(wf, service.runtime.broker) as client:
                await client.publish_to_stage({"task_id": "run/1"}, "planner")
            failed = await run_status(studio, reader, "failed")
            assert failed["service_id"] == "wf"
            assert failed["task_id"] == "run/1"
            assert failed["task_ref"]["task_id"] == "run/1"
            assert failed["diagnosis"]["reasons"][0]["code"] == "stage_dead_lettered"

            path = "/studio/services/wf/workflow/runs/run%2F1/replay"
            body = {"stage": "docsearch", "reason": "index rebuilt"}
            refused = await studio.client.post(path, json=body, headers=reader)
            assert refused.status_code == 403
            # the service's own validation answers keep their status (nothing replayed)
            unknown_stage = await studio.client.post(
                path, json={"stage": "nowhere"}, headers=operator
            )
            assert unknown_stage.status_code == 422, unknown_stage.text
            assert unknown_stage.json()["service_id"] == "wf"
            not_object = await studio.client.post(path, json=[1], headers=operator)
            assert not_object.status_code == 422
            no_run = await studio.client.post(
                "/studio/services/wf/workflow/runs/nobody/replay", json=body, headers=operator
            )
            assert no_run.status_code == 404
            assert no_run.json()["code"] == "upstream_not_found"

            broken = False
            replayed = await studio.client.post(path, json=body, headers=operator)
            assert replayed.status_code == 200, replayed.text
            assert replayed.json()["stage"] == "docsearch"
            assert replayed.json()["previous_status"] == "dead_lettered"
            assert replayed.json()["service_id"] == "wf"
            done = await run_status(studio, reader, "completed")
            assert done["run"]["terminal_stage"] == "docsearch"
            assert done["diagnosis"]["stalled"] is False

            # capability gating: 'plain' does not advertise the workflow routes
            for method, gated_path in (
                ("GET", "/studio/services/plain/workflow/runs/run%2F1"),
                ("POST", "/studio/services/plain/workflow/runs/run%2F1/replay"),
                ("GET", "/studio/services/plain/workflow/topology"),
            ):
                gated = await studio.client.request(method, gated_path, headers=operator)
                assert gated.status_code == 501, (gated_path, gated.text)
                assert gated.json()["code"] == "unsupported_route"
            missing = await studio.client.get(
                "/studio/services/wf/workflow/runs/nobody", headers=reader
            )
            assert missing.status_code == 404
            assert missing.json()["code"] == "upstream_not_found"

            audit = await studio.client.get(
                "/studio/audit", params={"action": "workflow.replay"}, headers=admin
            )
            outcomes = sorted(
                (e["outcome"], e["status_code"], e["target"]) for e in audit.json()["items"]
            )
            assert outcomes == [
                ("denied", 403, "wf/run/1"),
                ("failure", 404, "wf/nobody"),
                ("failure", 422, "wf/run/1"),
                ("failure", 422, "wf/run/1"),
                ("failure", 501, "plain/run/1"),
                ("success", 200, "wf/run/1"),
            ]
            spec = (await studio.client.get("/openapi.json")).json()["paths"]
            replay_op = spec["/studio/services/{service_id}/workflow/runs/{task_id}/replay"]
            assert "post" in replay_op
            assert "get" in spec["/studio/services/{service_id}/workflow/runs/{task_id}"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/studio/services/wf/workflow/runs/a%20b"),
        ("GET", "/studio/services/wf/workflow/runs/x?bogus=1"),
        ("POST", "/studio/services/wf/workflow/runs/a%0Ab/replay"),
        ("GET", "/studio/services/wf/executions/t/graph?format=svg"),
        ("GET", "/studio/services/wf/executions/t/graph?other=1"),
    ],
)
async def test_bad_workflow_and_graph_input_is_4xx_before_any_call(method: str, path: str) -> None:
    settings = settings_for("memory://", f"wfbad:{uuid.uuid4().hex[:8]}")
    with anyio.fail_after(20):
        async with open_test_studio(settings, resolver=TableResolver()) as studio:
            response = await studio.client.request(method, path)
            assert 400 <= response.status_code < 500, response.text
            assert response.json()["detail"]


async def test_an_operator_cancels_a_running_run_through_studio(store_url: str) -> None:
    """``POST /studio/services/{id}/workflow/runs/{task_id}/cancel`` (capability
    ``workflow.cancel``): the running stage's handler is cancelled (its ``finally``
    runs), the run ends ``cancelled``; a second cancel is the service's 409; a reader
    is refused; a service without the route is not called."""
    unique = uuid.uuid4().hex[:8]
    wf = topology(unique)
    task_id = f"cx/{unique}"
    entered, cleaned = anyio.Event(), anyio.Event()

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            cleaned.set()

    settings = settings_for(
        store_url,
        f"wfc:{unique}",
        allowed_hosts=(".test",),
        allowed_networks=(f"{HOST}/32",),
        auth_enabled=True,
    )
    resolver = TableResolver({"wf.test": [HOST], "plain.test": [HOST]})
    with anyio.fail_after(60):
        async with (
            relayna_service(store_url, topology=wf, title="wf") as service,
            relayna_service(store_url, title="plain") as plain,
            open_test_studio(settings, resolver=resolver) as studio,
        ):
            cancels = CancelStore(
                service.runtime.store, prefix=service.runtime.status.config.prefix
            )
            async with stage_workers(service, wf, {"planner": plan}, cancels=cancels):
                roles = await studio.role_headers()
                admin, operator, reader = roles["admin"], roles["operator"], roles["reader"]
                for sid, port in (("wf", service.port), ("plain", plain.port)):
                    caps = await register(studio, admin, sid, port)
                    assert ("workflow.cancel" in caps) == (sid == "wf")
                assert service.runtime.broker is not None
                async with open_relayna_client(wf, service.runtime.broker) as client:
                    await client.publish_to_stage({"task_id": task_id}, "planner")
                await entered.wait()
                path = f"/studio/services/wf/workflow/runs/{quote(task_id, safe='')}/cancel"
                refused = await studio.client.post(path, headers=reader)
                bad = await studio.client.post(path, json={"reason": ""}, headers=operator)
                first = await studio.client.post(
                    path, json={"reason": "not needed"}, headers=operator
                )
                await cleaned.wait()
                while True:  # the stage reports the run's end
                    run = await studio.client.get(path.removesuffix("/cancel"), headers=reader)
                    if run.status_code == 200 and run.json()["run"]["status"] == "cancelled":
                        break
                    await anyio.sleep(0.02)
                again = await studio.client.post(path, headers=operator)
                gated = await studio.client.post(
                    f"/studio/services/plain/workflow/runs/{quote(task_id, safe='')}/cancel",
                    headers=operator,
                )
                audit = await studio.client.get(
                    "/studio/audit", params={"action": "workflow.cancel"}, headers=admin
                )
    assert refused.status_code == 403
    assert bad.status_code == 422
    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["service_id"], body["task_id"]) == ("wf", task_id)
    assert (body["state"], body["reason"]) == ("requested", "not needed")
    assert run.json()["run"]["cancel_reason"] == "not needed"
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "run_ended"  # the service's own code comes through
    assert gated.status_code == 501
    assert gated.json()["code"] == "unsupported_route"
    outcomes = sorted((e["outcome"], e["status_code"]) for e in audit.json()["items"])
    assert ("success", 202) in outcomes
    assert ("denied", 403) in outcomes
