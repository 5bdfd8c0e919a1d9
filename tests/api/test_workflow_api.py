"""Workflow routes over real HTTP (hypercorn + httpx), both backends, on the memory
transports and on real RabbitMQ + Redis: shapes (checked against the routes'
own OpenAPI schemas), a replay that finishes a run, capability ids, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import jsonschema
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from _transports import TRANSPORTS
from _workflow_support import Stack, planner_docsearch, started, wait_for
from relayna.api import (
    WORKFLOW_CAPABILITY_ROUTE_IDS,
    ORJSONResponse,
    RelaynaRuntime,
    RuntimeConfig,
    capabilities_routes,
    open_relayna_runtime,
    openapi_document,
    undocumented_routes,
    workflow_routes,
)
from relayna.contracts import ContractAliasConfig, WorkflowEnvelope
from relayna.contracts import headers as h
from relayna.rabbitmq import CancelStore, open_relayna_client
from relayna.topology import SharedStatusWorkflowTopology, SharedTasksSharedStatusTopology
from relayna.workflow import WorkflowContext

pytestmark = pytest.mark.anyio

Serve = Callable[[Any], Any]


class App:
    def __init__(
        self, runtime: RelaynaRuntime, client: httpx.AsyncClient, stack: Stack, doc: dict[str, Any]
    ) -> None:
        self.runtime = runtime
        self.client = client
        self.stack = stack
        self.doc = doc

    def check(self, path: str, method: str, response: httpx.Response) -> Any:
        """The body, after checking it against the route's documented schema."""
        operation = self.doc["paths"][path][method]
        spec = operation["responses"][str(response.status_code)]
        schema = spec["content"]["application/json"]["schema"]
        body = response.json()
        components = {"components": self.doc.get("components", {})}
        jsonschema.Draft202012Validator({**schema, **components}).validate(body)
        return body


def _urls(kind: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    if kind == "real":
        return request.getfixturevalue("amqp_url"), request.getfixturevalue("redis_url")
    return "memory://", "memory://"


@asynccontextmanager
async def workflow_app(
    serve: Serve,
    request: pytest.FixtureRequest,
    kind: str,
    topology: SharedStatusWorkflowTopology,
    **options: Any,
) -> AsyncIterator[App]:
    broker_url, store_url = _urls(kind, request)
    config = RuntimeConfig(
        store_url=store_url, broker_url=broker_url, topology=topology, run_hub=False
    )
    async with open_relayna_runtime(config) as runtime:
        assert runtime.broker is not None
        stack = Stack(topology, runtime.broker, runtime.store)
        routes = [
            *workflow_routes(state=stack.state, **options),
            *capabilities_routes(),
        ]
        doc = openapi_document(routes, title="t", version="1")

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        app = Starlette(routes=routes, lifespan=lifespan)
        async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield App(runtime, client, stack, doc)


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_topology_and_stages_answer_the_original_shapes(
    serve: Serve, request: pytest.FixtureRequest, unique: str, kind: str
) -> None:
    topology = planner_docsearch(unique)
    with anyio.fail_after(20):
        async with workflow_app(serve, request, kind, topology) as app:
            graph = app.check(
                "/workflow/topology", "get", await app.client.get("/workflow/topology")
            )
            stages = app.check("/workflow/stages", "get", await app.client.get("/workflow/stages"))
            capabilities = (await app.client.get("/relayna/capabilities")).json()
    assert set(graph) == {"workflow_exchange", "status_queue", "stages", "entry_routes", "edges"}
    assert graph["workflow_exchange"] == f"wf-{unique}"
    assert [s["name"] for s in graph["stages"]] == ["planner", "docsearch"]
    assert {"source": "planner", "target": "docsearch", "kind": "transition"}.items() <= next(
        e for e in graph["edges"] if e["kind"] == "transition"
    ).items()
    assert stages["stages"] == graph["stages"]
    docsearch = stages["stages"][1]
    assert docsearch["terminal"] is True
    assert docsearch["accepted_actions"][0]["action"] == "search"
    assert docsearch["accepted_actions"][0]["payload"]["required_fields"] == ["q"]
    assert set(WORKFLOW_CAPABILITY_ROUTE_IDS) <= set(capabilities["supported_routes"])


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_dead_lettered_run_is_diagnosed_and_a_replay_over_http_finishes_it(
    serve: Serve, request: pytest.FixtureRequest, unique: str, kind: str
) -> None:
    topology = planner_docsearch(unique, max_retries=0, retry_delay_ms=50)
    broken = True
    replay_headers: list[Any] = []

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        await ctx.publish_to_stage("docsearch", {"q": "relayna"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        if broken:
            raise RuntimeError("index offline")
        replay_headers.append(ctx.headers.get(h.REPLAY_REASON))

    with anyio.fail_after(30):
        async with workflow_app(serve, request, kind, topology) as app:
            app.stack.consumer("planner", plan)
            docsearch = app.stack.consumer("docsearch", search)
            async with (
                open_relayna_client(topology, app.runtime.broker) as client,
                started(app.stack),
            ):
                await client.publish_to_stage({"task_id": "run-1"}, "planner")
                await wait_for(lambda: docsearch.stats.dead_lettered == 1)
                path = "/workflow/runs/{task_id}"
                failed = app.check(path, "get", await app.client.get("/workflow/runs/run-1"))
                broken = False
                answer = await app.client.post(
                    "/workflow/runs/run-1/replay",
                    json={"stage": "docsearch", "reason": "index rebuilt"},
                )
                replayed = app.check(path + "/replay", "post", answer)
                await wait_for(lambda: docsearch.stats.acked == 1)
                done = app.check(path, "get", await app.client.get("/workflow/runs/run-1"))
    assert answer.status_code == 200
    assert failed["run"]["status"] == "failed"
    assert [r["code"] for r in failed["diagnosis"]["reasons"]] == [
        "stage_dead_lettered",
        "no_terminal_stage",
    ]
    assert failed["diagnosis"]["stalled"] is True
    planner_id = next(m["message_id"] for m in failed["messages"] if m["stage"] == "planner")
    hop = next(e for e in failed["lineage"] if e["target_stage"] == "docsearch")
    assert hop["parent_message_id"] == planner_id  # the real parent, not the correlation id
    assert hop["source_stage"] == "planner"
    assert replayed["stage"] == "docsearch"
    assert replayed["previous_status"] == "dead_lettered"
    assert replayed["previous_message_id"] == hop["message_id"]
    assert replay_headers == ["index rebuilt"]
    assert done["run"]["status"] == "completed"
    assert done["run"]["terminal_stage"] == "docsearch"
    assert done["diagnosis"] == {
        "task_id": "run-1",
        "status": "completed",
        "stalled": False,
        "reasons": [],
    }


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_bad_requests_get_typed_answers_and_publish_nothing(
    serve: Serve, request: pytest.FixtureRequest, unique: str, kind: str
) -> None:
    topology = planner_docsearch(unique)
    entered = anyio.Event()
    release = anyio.Event()

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        entered.set()
        await release.wait()

    def refuse(req: Request, route_id: str) -> Response | None:
        if req.headers.get("x-operator") != "ops":
            return ORJSONResponse({"detail": f"{route_id} needs an operator"}, status_code=403)
        return None

    replay = "/workflow/runs/{task_id}/replay"
    with anyio.fail_after(30):
        async with workflow_app(serve, request, kind, topology, authorize=refuse) as app:
            app.stack.consumer("planner", plan)
            c = app.client
            ops = {"x-operator": "ops"}
            unknown = await c.get("/workflow/runs/nobody")
            assert unknown.status_code == 404
            app.check("/workflow/runs/{task_id}", "get", unknown)
            bad_id = await c.get("/workflow/runs/" + "x" * 300)
            assert bad_id.status_code == 422
            refused = await c.post("/workflow/runs/nobody/replay", json={"stage": "planner"})
            assert refused.status_code == 403
            assert refused.json()["detail"] == "workflow.replay needs an operator"
            no_run = await c.post(
                "/workflow/runs/nobody/replay", json={"stage": "planner"}, headers=ops
            )
            assert no_run.status_code == 404
            app.check(replay, "post", no_run)
            async with (
                open_relayna_client(topology, app.runtime.broker) as client,
                started(app.stack),
            ):
                await client.publish_to_stage({"task_id": "busy"}, "planner")
                await entered.wait()
                url = "/workflow/runs/busy/replay"
                cases: list[tuple[Any, int]] = [
                    ({"stage": "nowhere"}, 422),  # unknown stage
                    ({"stage": "planner", "payload": [1]}, 422),
                    ({"stage": "planner", "force": "yes"}, 422),
                    ({"stage": "planner", "reason": ""}, 422),
                    ({"stage": "planner", "reason": "r" * 256}, 422),
                    ({"stage": "planner", "surprise": 1}, 422),
                    ({"payload": {}}, 422),  # a payload needs a stage
                    ([1, 2], 422),
                    ({"stage": "planner"}, 409),  # running: not without force
                    # action not accepted / payload breaks the schema: nothing published
                    ({"stage": "docsearch", "payload": {"lang": "en"}}, 422),
                ]
                for body, code in cases:
                    answer = await c.post(url, json=body, headers=ops)
                    assert answer.status_code == code, (body, answer.text)
                    app.check(replay, "post", answer)
                running = await c.post(url, json={"stage": "planner"}, headers=ops)
                assert running.json()["error"] == "stage_running"
                text = await c.post(url, content=b"stage=planner", headers=ops)
                assert text.status_code == 415
                huge = await c.post(
                    url,
                    json={"stage": "planner", "payload": {"blob": "x" * 2_000_000}},
                    headers=ops,
                )
                assert huge.status_code == 413, huge.text
                docsearch_queue = topology.stage("docsearch").queue
                depth = await app.runtime.broker.inspect_queue(docsearch_queue)
                release.set()
    assert depth.message_count == 0  # no refused replay reached the broker


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_cancel_route_cancels_a_running_run_and_answers_bad_input(
    serve: Serve, request: pytest.FixtureRequest, unique: str, kind: str
) -> None:
    topology = planner_docsearch(unique)
    blocked, done = f"blocked-{unique}", f"done-{unique}"
    entered = anyio.Event()

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        if message.task_id == blocked:
            entered.set()
            await anyio.sleep_forever()
        await ctx.publish_to_stage("docsearch", {"q": "relayna"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        return None

    def refuse(req: Request, route_id: str) -> Response | None:
        if req.headers.get("x-operator") != "ops":
            return ORJSONResponse({"detail": f"{route_id} needs an operator"}, status_code=403)
        return None

    path = "/workflow/runs/{task_id}/cancel"
    ops = {"x-operator": "ops"}
    with anyio.fail_after(30):
        async with workflow_app(serve, request, kind, topology, authorize=refuse) as app:
            cancels = CancelStore(app.runtime.store, prefix=app.runtime.status.config.prefix)
            planner = app.stack.consumer("planner", plan, cancels=cancels)
            docsearch = app.stack.consumer("docsearch", search, cancels=cancels)
            c = app.client
            refused = await c.post(f"/workflow/runs/{blocked}/cancel")
            unknown = await c.post(f"/workflow/runs/nobody-{unique}/cancel", headers=ops)
            bad_id = await c.post("/workflow/runs/" + "x" * 300 + "/cancel", headers=ops)
            bad_bodies = [
                await c.post(f"/workflow/runs/{blocked}/cancel", json=body, headers=ops)
                for body in ({"reason": 5}, {"why": "x"}, [1], {"reason": "r" * 501},
                             {"reason": "a\x00b"})
            ]  # fmt: skip
            null_body = await c.post(  # JSON null is not "no body"
                f"/workflow/runs/{blocked}/cancel",
                content=b"null",
                headers={**ops, "content-type": "application/json"},
            )
            async with (
                open_relayna_client(topology, app.runtime.broker) as client,
                started(app.stack),
            ):
                await client.publish_to_stage({"task_id": blocked}, "planner")
                await entered.wait()
                first = await c.post(
                    f"/workflow/runs/{blocked}/cancel", json={"reason": "not needed"}, headers=ops
                )
                await wait_for(lambda: planner.stats.cancelled["running"] == 1)
                again = await c.post(f"/workflow/runs/{blocked}/cancel", headers=ops)
                cancelled = (await c.get(f"/workflow/runs/{blocked}")).json()
                await client.publish_to_stage({"task_id": done}, "planner")
                await wait_for(lambda: docsearch.stats.acked == 1)
                ended = await c.post(f"/workflow/runs/{done}/cancel", headers=ops)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "workflow.cancel needs an operator"
    assert unknown.status_code == 404
    app.check(path, "post", unknown)
    assert bad_id.status_code == 422
    assert [r.status_code for r in bad_bodies] == [422] * 5
    assert null_body.status_code == 422, null_body.text
    assert first.status_code == 202
    assert app.check(path, "post", first) == {
        "task_id": blocked, "state": "requested", "reason": "not needed", "status": None,
    }  # fmt: skip
    assert again.status_code == 409  # the stage reported the run's end: cancelled
    assert (again.json()["error"], again.json()["status"]) == ("run_ended", "cancelled")
    assert cancelled["run"]["status"] == "cancelled"
    assert cancelled["run"]["cancel_reason"] == "not needed"
    assert ended.status_code == 409
    body = app.check(path, "post", ended)
    assert (body["error"], body["state"], body["status"]) == ("run_ended", "terminal", "completed")


async def test_a_service_without_a_workflow_topology_answers_404(serve: Serve, unique: str) -> None:
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"t-{unique}",
        tasks_queue=f"t-{unique}.q",
        tasks_routing_key="task",
        status_exchange=f"s-{unique}",
        status_queue=f"s-{unique}.q",
        status_use_streams=False,
    )
    config = RuntimeConfig(
        store_url="memory://", broker_url="memory://", topology=topology, run_hub=False
    )
    with anyio.fail_after(15):
        async with open_relayna_runtime(config) as runtime:

            @asynccontextmanager
            async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
                yield {"relayna": runtime}

            app = Starlette(routes=workflow_routes(), lifespan=lifespan)
            async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
                answers = [
                    (await client.get("/workflow/topology")).status_code,
                    (await client.get("/workflow/stages")).status_code,
                    (await client.get("/workflow/runs/t1")).status_code,
                    (await client.post("/workflow/runs/t1/replay", json={})).status_code,
                ]
    assert answers == [404, 404, 404, 404]


@pytest.mark.parametrize("aliased", [False, True])
async def test_every_workflow_route_is_documented_and_the_document_is_valid(
    aliased: bool,
) -> None:
    from openapi_spec_validator import validate

    aliases = ContractAliasConfig(field_aliases={"task_id": "documentId"}) if aliased else None
    routes = workflow_routes(aliases=aliases, authorize=lambda r, i: None)
    assert undocumented_routes(routes) == []
    doc = openapi_document(routes, title="t", version="1")
    validate(doc)
    name = "documentId" if aliased else "task_id"
    assert set(doc["paths"]) == {
        "/workflow/topology",
        "/workflow/stages",
        f"/workflow/runs/{{{name}}}",
        f"/workflow/runs/{{{name}}}/replay",
        f"/workflow/runs/{{{name}}}/cancel",
    }
    replay = doc["paths"][f"/workflow/runs/{{{name}}}/replay"]["post"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(replay["responses"])
    cancel = doc["paths"][f"/workflow/runs/{{{name}}}/cancel"]["post"]
    assert {"202", "401", "403", "404", "409", "422", "503"} <= set(cancel["responses"])
    read_only = workflow_routes(replay=False)
    assert [getattr(r, "name", None) for r in read_only] == [
        "workflow.topology",
        "workflow.stages",
        "workflow.runs",
    ]
