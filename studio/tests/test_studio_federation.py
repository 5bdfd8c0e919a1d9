"""Federation against two real relayna services (one with aliases) and misbehaving upstreams.

The relayna services are relayna's own routes (``relayna_services``: status,
history, execution graph, feed, DLQ and failed tasks, capability document)
on loopback, over the parametrised store (memory or the real Redis); their
records are written through relayna's own stores. Only the upstreams that
must misbehave (timeout, reset, 5xx, non-JSON, 401 ...) are test-side, since
no real relayna answers like that.
"""

from __future__ import annotations

import socket
import struct
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from relayna.api import serving
from relayna.contracts import ContractAliasConfig
from relayna_services import HOST, bind, dlq_record, relayna_service
from relayna_studio._capabilities import _check as check_capabilities
from relayna_studio._federation import advertised
from studio_support import TableResolver, open_test_studio, settings_for

pytestmark = pytest.mark.anyio


def bad_upstream(hang: anyio.Event) -> Starlette:
    async def slow(request: Request) -> Response:
        await hang.wait()
        return JSONResponse({})

    async def five(request: Request) -> Response:
        return JSONResponse({"detail": "boom"}, status_code=503)

    async def text(request: Request) -> Response:
        return PlainTextResponse("not json")

    async def array(request: Request) -> Response:
        return JSONResponse([1, 2])

    async def unauthorized(request: Request) -> Response:
        return JSONResponse({"detail": "no"}, status_code=401)

    async def teapot(request: Request) -> Response:
        return JSONResponse({"detail": "short and stout"}, status_code=418)

    async def gone(request: Request) -> Response:
        return JSONResponse({"detail": "No status found for task_id 't'"}, status_code=404)

    async def method(request: Request) -> Response:
        return JSONResponse({"detail": "nope"}, status_code=405)

    async def moved(request: Request) -> Response:
        return Response(status_code=307, headers={"location": "http://127.0.0.1:1/"})

    async def empty(request: Request) -> Response:
        return Response(status_code=204)

    table = {
        "slow": slow,
        "five": five,
        "text": text,
        "array": array,
        "unauthorized": unauthorized,
        "teapot": teapot,
        "gone": gone,
        "method": method,
        "moved": moved,
        "empty": empty,
    }

    async def dispatch(request: Request) -> Response:
        # any other id (Studio's join probes): relayna's own 404 answer
        return await table.get(request.path_params["task_id"], gone)(request)

    return Starlette(routes=[Route("/status/{task_id}", dispatch)])


@asynccontextmanager
async def resetting_listener() -> AsyncIterator[int]:
    """Accepts and resets every connection (SO_LINGER 0 → RST)."""
    listener = await anyio.create_tcp_listener(local_host=HOST)
    port = int(listener.extra(anyio.abc.SocketAttribute.local_port))

    async def handle(stream: anyio.abc.SocketStream) -> None:
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


def event(task_id: str, status: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": status,
        "event_id": f"{task_id}-{n}",
        "timestamp": f"2026-05-01T12:00:{n:02d}Z",
        **extra,
    }


async def register(client: Any, service_id: str, port: int, host: str) -> None:
    response = await client.post(
        "/studio/services",
        json={
            "service_id": service_id,
            "name": service_id,
            "base_url": f"http://{host}:{port}",
            "environment": "test",
            "auth_mode": "internal_network",
        },
    )
    assert response.status_code == 201, response.text


async def test_federation_against_real_services(store_url: str) -> None:
    t0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
    hang = anyio.Event()
    resolver = TableResolver(
        {"plain.test": [HOST], "aliased.test": [HOST], "bad.test": [HOST], "reset.test": [HOST]}
    )
    settings = settings_for(
        store_url,
        f"fed:{uuid.uuid4().hex[:8]}",
        allowed_hosts=(".test",),
        allowed_networks=(f"{HOST}/32",),
        # the 'slow' upstream must time out; 3 s keeps every healthy call on a busy box
        federation_timeout_seconds=3.0,
    )
    bad = bind()
    bad_port = int(bad.getsockname()[1])
    with anyio.fail_after(90):
        async with (
            relayna_service(store_url, title="plain") as plain_svc,
            relayna_service(
                store_url,
                title="aliased",
                aliases=ContractAliasConfig(field_aliases={"task_id": "documentId"}),
            ) as aliased_svc,
            serving(bad_upstream(hang), sock=bad, graceful_timeout=0.2),
            resetting_listener() as reset_port,
            open_test_studio(settings, resolver=resolver) as studio,
        ):
            plain, aliased = plain_svc.runtime, aliased_svc.runtime
            plain_port, aliased_port = plain_svc.port, aliased_svc.port
            # failed tasks: 37 in one service, 23 in the other, interleaved in time
            for i in range(37):
                await plain_svc.dlq.add(dlq_record(f"ta{i}", t0 - timedelta(minutes=i)))
            for i in range(23):
                at = t0 - timedelta(minutes=i, seconds=30)
                await aliased_svc.dlq.add(dlq_record(f"tb{i}", at))
            client = studio.client
            await register(client, "plain", plain_port, "plain.test")
            await register(client, "aliased", aliased_port, "aliased.test")
            await register(client, "bad", bad_port, "bad.test")
            await register(client, "reset", reset_port, "reset.test")
            for sid in ("plain", "aliased"):
                assert (await client.post(f"/studio/services/{sid}/refresh")).status_code == 200

            await plain.status.write(event("job-1", "queued", 1, correlation_id="corr-9"))
            await plain.status.write(
                event(
                    "job-1", "completed", 2, correlation_id="corr-9", meta={"parent_task_id": "p-1"}
                )
            )
            await aliased.status.write(event("doc/7", "completed", 3))

            status = await client.get("/studio/services/plain/status/job-1")
            assert status.status_code == 200, status.text
            body = status.json()
            assert body["event"]["status"] == "completed"
            assert body["task_ref"] == {
                "service_id": "plain",
                "task_id": "job-1",
                "correlation_id": "corr-9",
                "parent_refs": [{"service_id": "plain", "task_id": "p-1"}],
                "child_refs": [],
            }
            # a task id with '/' through the aliased service (path segment, http alias)
            aliased_status = await client.get("/studio/services/aliased/status/doc%2F7")
            assert aliased_status.status_code == 200, aliased_status.text
            assert aliased_status.json()["event"]["documentId"] == "doc/7"
            assert aliased_status.json()["task_ref"]["task_id"] == "doc/7"
            missing = await client.get("/studio/services/plain/status/nope")
            assert missing.status_code == 404
            assert missing.json()["code"] == "upstream_not_found"
            # capability gating: neither service mounts the workflow routes, and their
            # capability documents (computed from the mounted routes) say so
            gated = await client.get("/studio/services/plain/workflow/topology")
            assert gated.status_code == 501
            assert gated.json()["code"] == "unsupported_route"
            # legacy service (no capability document) without the route: a bare 404
            legacy = await client.get("/studio/services/bad/workflow/topology")
            assert legacy.status_code == 501
            assert legacy.json()["code"] == "unsupported_route"
            # the execution graph through the aliased service: task id under its alias
            graph = await client.get("/studio/services/aliased/executions/doc%2F7/graph")
            assert graph.status_code == 200, graph.text
            assert graph.json()["documentId"] == "doc/7"
            assert graph.json()["task_ref"]["task_id"] == "doc/7"
            assert {n["service_id"] for n in graph.json()["nodes"]} == {"aliased"}
            # the Mermaid form is relayna's own rendering: what the service itself answers
            async with httpx.AsyncClient(base_url=f"http://{HOST}:{aliased_port}") as direct:
                own = await direct.get("/executions/doc%2F7/graph?format=mermaid")
            drawn = await client.get(
                "/studio/services/aliased/executions/doc%2F7/graph?format=mermaid"
            )
            assert drawn.status_code == 200, drawn.text
            assert drawn.headers["content-type"].startswith("text/vnd.mermaid")
            assert drawn.text == own.text
            assert drawn.text.startswith("flowchart LR\n")
            view = (
                await client.get("/studio/services/aliased/executions/doc%2F7/graph?format=view")
            ).json()
            assert set(view) == {"task_id", "topology_kind", "summary", "related_task_ids", "graph",
                                 "mermaid", "service_id", "task_ref"}  # fmt: skip
            assert (view["task_id"], view["mermaid"]) == ("doc/7", own.text)
            assert view["summary"] == graph.json()["summary"]

            detail = await client.get("/studio/tasks/plain/job-1?join=correlation")
            assert detail.status_code == 200, detail.text
            d = detail.json()
            assert d["latest_status"]["status"] == "completed"
            assert d["task_ref"]["correlation_id"] == "corr-9"
            # relayna's /history reads the status stream, which this service does not
            # have (no broker topology): a section error, the rest of the detail stands
            assert [(e["section"], e["upstream_status"]) for e in d["errors"]] == [("history", 400)]
            assert d["dlq_messages"] == []
            assert d["execution_graph"]["task_id"] == "job-1"
            dead = (await client.get("/studio/tasks/plain/ta3")).json()
            assert [m["task_id"] for m in dead["dlq_messages"]] == ["ta3"]
            assert dead["dlq_messages"][0]["task_ref"]["service_id"] == "plain"
            assert d["join_warnings"] == [] or d["join_warnings"][0]["code"] in (
                "incomplete_join_candidate_scan",
                "ambiguous_join_candidate",
            )

            # the SSE relay: replay then terminal, Last-Event-ID resume, 204 after the end
            async with client.stream("GET", "/studio/tasks/plain/job-1/stream") as stream:
                assert stream.status_code == 200
                text = b"".join([chunk async for chunk in stream.aiter_raw()]).decode()
            assert "event: ready" in text
            assert "id: job-1-1" in text
            assert "id: job-1-2" in text
            resumed = await client.get(
                "/studio/tasks/plain/job-1/stream", headers={"last-event-id": "job-1-2"}
            )
            assert resumed.status_code == 204

            # every error mapping
            cases = {
                "slow": (504, "upstream_timeout", True),
                "five": (502, "upstream_response_error", True),
                "text": (502, "invalid_json", False),
                "array": (502, "invalid_response_shape", False),
                "unauthorized": (502, "upstream_auth_failure", False),
                "teapot": (502, "upstream_client_error", False),
                "gone": (404, "upstream_not_found", False),
                "method": (501, "unsupported_route", False),
                "moved": (502, "upstream_redirect", False),
            }
            for task_id, (http, code, retryable) in cases.items():
                response = await client.get(f"/studio/services/bad/status/{task_id}")
                assert response.status_code == http, (task_id, response.text)
                err = response.json()
                assert err["code"] == code, task_id
                assert err["retryable"] is retryable
                assert err["service_id"] == "bad"
                assert set(err) == {"detail", "code", "service_id", "upstream_status", "retryable"}
            hang.set()
            reset = await client.get("/studio/services/reset/status/x")
            assert reset.status_code == 502
            assert reset.json()["code"] == "upstream_transport_error"
            assert reset.json()["retryable"] is True
            empty = await client.get("/studio/services/bad/status/empty")
            assert empty.status_code == 200
            assert empty.json()["service_id"] == "bad"
            # disabled and unknown-auth services are refused before any call
            await client.patch("/studio/services/bad", json={"status": "disabled"})
            disabled = await client.get("/studio/services/bad/status/five")
            assert disabled.json()["code"] == "service_disabled"
            assert disabled.status_code == 503
            await client.patch("/studio/services/reset", json={"auth_mode": "static_token"})
            assert (await client.get("/studio/services/reset/status/x")).status_code == 501
            unknown = await client.get("/studio/services/ghost/status/x")
            assert unknown.status_code == 404
            assert unknown.json()["code"] == "service_not_found"

            # failed tasks across services: every item once, in order, at any page size
            expected_items = []
            for port in (plain_port, aliased_port):
                async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}") as direct:
                    listed = (await direct.get("/failed-tasks?limit=200")).json()
                    assert listed["next_cursor"] is None
                    expected_items += listed["items"]
            assert len(expected_items) == 60
            expected = sorted(expected_items, key=lambda i: i["failed_at"], reverse=True)
            for page_size in (1, 7, 50):
                seen: list[str] = []
                cursor = None
                while True:
                    query = f"/studio/failed-tasks?limit={page_size}" + (
                        f"&cursor={cursor}" if cursor else ""
                    )
                    page = (await client.get(query)).json()
                    # 'reset' (auth_mode static_token) is refused before any call
                    assert [e["code"] for e in page["errors"]] == ["unsupported_auth_mode"]
                    seen += [i["failure_id"] for i in page["items"]]
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                assert seen == [i["failure_id"] for i in expected], page_size
            bad_cursor = await client.get("/studio/failed-tasks?cursor=garbage!")
            assert bad_cursor.status_code == 400
            assert bad_cursor.json()["code"] == "invalid_cursor"
            one = await client.get("/studio/failed-tasks?service_id=aliased&limit=5")
            assert [i["task_id"] for i in one.json()["items"]] == [f"tb{i}" for i in range(5)]
            assert {i["service_id"] for i in one.json()["items"]} == {"aliased"}
            nxt = await client.get(
                "/studio/failed-tasks",
                params={"service_id": "aliased", "limit": 5, "cursor": one.json()["next_cursor"]},
            )
            assert [i["task_id"] for i in nxt.json()["items"]] == [f"tb{i}" for i in range(5, 10)]


@pytest.mark.parametrize(
    "path",
    [
        "/studio/services/plain/status/a%20b",
        "/studio/tasks/plain/a%0Ab",
        "/studio/tasks/plain/..x",
        "/studio/services/plain/history?max_scan=1&bogus=2",
        "/studio/services/plain/dlq/messages?limit=0",
        "/studio/services/plain/dlq/messages?limit=999",
        "/studio/services/plain/dlq/messages?task_id=a%20b",
        "/studio/tasks/plain/t?join=sideways",
        "/studio/failed-tasks?limit=abc",
        "/studio/failed-tasks/plain/a%20b",
        "/studio/services/x%20y/history",
    ],
)
async def test_bad_federation_input_is_4xx_before_any_call(store_url: str, path: str) -> None:
    settings = settings_for(store_url, f"fedbad:{uuid.uuid4().hex[:8]}")
    with anyio.fail_after(20):
        async with open_test_studio(settings, resolver=TableResolver()) as studio:
            response = await studio.client.get(path)
            assert 400 <= response.status_code < 500, response.text
            assert response.json()["detail"]


def test_feature_flags_are_read_as_a_list_or_as_relayna_s_object() -> None:
    """The original's list of names, and relayna's own ``{name: bool}`` (read as the
    names that are on); anything else refuses the refresh."""
    listed = {"supported_routes": ["status.latest"], "feature_flags": ["execution_graphs"]}
    assert check_capabilities(listed)["feature_flags"] == ["execution_graphs"]
    relayna_doc = {"supported_routes": [], "feature_flags": {"status_hub": True, "observations": False,
                                                             "service_event_feed": True}}  # fmt: skip
    assert check_capabilities(relayna_doc)["feature_flags"] == ["service_event_feed", "status_hub"]
    for bad in ({"feature_flags": {"x": "yes"}}, {"feature_flags": "x"}, {"feature_flags": [1]},
                {"supported_routes": {"status.latest": True}}, [1]):  # fmt: skip
        with pytest.raises(ValueError, match=r"must be|not a JSON object"):
            check_capabilities(bad)


def test_history_and_graph_routes_are_found_under_either_id() -> None:
    """A service advertising only the original ids, only relayna's issue ids, or
    both (relayna's capability document) is gated the same way."""
    meta = {"service_metadata": {"compatibility": "capabilities_v1"}}
    for ids in (
        ["status.history", "execution.graph"],
        ["history.list", "executions.graph"],
        ["execution.graph", "executions.graph", "history.list", "status.history"],
    ):
        document = {**meta, "supported_routes": ids}
        assert advertised(document, "status.history") is True
        assert advertised(document, "execution.graph") is True
    neither = {**meta, "supported_routes": ["status.latest"]}
    assert advertised(neither, "status.history") is False
    assert advertised(neither, "execution.graph") is False
