"""DLQ and failed-task routes over real HTTP (hypercorn + httpx) on the memory
transports, both backends: shapes, codes, replay semantics, bad input."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from _dlq_records import dlq_record  # tests/ is on sys.path (rootdir conftest)
from relayna.api import (
    DLQ_CAPABILITY_ROUTE_IDS,
    FAILED_TASKS_CAPABILITY_ROUTE_IDS,
    ORJSONResponse,
    RelaynaRuntime,
    RuntimeConfig,
    dlq_routes,
    open_relayna_runtime,
)
from relayna.contracts import headers as h
from relayna.dlq import DLQStore, DLQStoreConfig, record_from_broker
from relayna.dlq._inspect import broker_message
from relayna.transport import Broker, Properties, QueueSpec

pytestmark = pytest.mark.anyio

Serve = Callable[[Any], Any]
T0 = datetime.now(UTC).replace(microsecond=0)


def rec(n: int, *, age: float = 0.0, **changes: Any) -> Any:
    return dlq_record(n, age=age, now=T0, **changes)


class App:
    def __init__(self, runtime: RelaynaRuntime, client: httpx.AsyncClient, store: DLQStore) -> None:
        self.runtime = runtime
        self.client = client
        self.store = store

    @property
    def broker(self) -> Broker:
        assert self.runtime.broker is not None
        return self.runtime.broker

    async def take(self, queue: str) -> list[tuple[bytes, Properties]]:
        """Every message now in ``queue`` (taken)."""
        info = await self.broker.inspect_queue(queue)
        out: list[tuple[bytes, Properties]] = []
        if info.message_count == 0:
            return out
        async with self.broker.consume(queue, prefetch=info.message_count) as consumer:
            async for delivery in consumer:
                out.append((delivery.body, delivery.properties))
                await delivery.ack()
                if len(out) == info.message_count:
                    break
        return out


@asynccontextmanager
async def dlq_app(serve: Serve, unique: str, **route_options: Any) -> AsyncIterator[App]:
    config = DLQStoreConfig(prefix=f"dlq-{unique}")
    runtime_config = RuntimeConfig(store_url="memory://", broker_url="memory://")
    async with open_relayna_runtime(runtime_config) as runtime:
        assert runtime.broker is not None
        for name in ("orders", "orders.retry", "orders.dlq"):
            await runtime.broker.declare_queue(QueueSpec(name))

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        app = Starlette(routes=dlq_routes(store_config=config, **route_options), lifespan=lifespan)
        async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield App(runtime, client, DLQStore(runtime.store, config))


async def test_listing_detail_and_queue_summary(serve: Serve, unique: str) -> None:
    with anyio.fail_after(15):
        async with dlq_app(serve, unique) as app:
            await app.runtime.status.write({"task_id": "t1", "event_id": "e1", "status": "failed"})
            for n in range(3):
                await app.store.add(rec(n, age=n))
            await app.broker.publish("", "orders.dlq", b"copy")
            page = (await app.client.get("/dlq/messages", params={"limit": "2"})).json()
            assert [i["task_id"] for i in page["items"]] == ["t0", "t1"]
            rest = (
                await app.client.get("/dlq/messages", params={"cursor": page["next_cursor"]})
            ).json()
            assert [i["task_id"] for i in rest["items"]] == ["t2"]
            assert rest["next_cursor"] is None
            one = (await app.client.get("/dlq/messages", params={"task_id": "t1"})).json()
            assert [i["task_id"] for i in one["items"]] == ["t1"]
            dlq_id = one["items"][0]["dlq_id"]
            detail = (await app.client.get(f"/dlq/messages/{dlq_id}")).json()
            assert detail["latest_status"]["status"] == "failed"
            assert [e["event_id"] for e in detail["status_history"]] == ["e1"]
            assert detail["body"] == {"task_id": "t1", "payload": {}}
            assert detail["body_encoding"] == "json"
            assert detail["headers"][h.FAILURE_REASON] == "handler_error"
            assert detail["diagnosis"]["failure"]["reason"] == "handler_error"
            assert detail["execution_graph_url"] == "/executions/t1/graph"
            queues = (await app.client.get("/dlq/queues")).json()
            assert queues == {
                "queues": [
                    {
                        "queue_name": "orders.dlq",
                        "indexed_count": 3,
                        "last_indexed_at": T0.isoformat().replace("+00:00", "Z"),
                        "exists": True,
                        "message_count": 1,
                    }
                ]
            }


async def test_bad_input_answers(serve: Serve, unique: str) -> None:
    with anyio.fail_after(15):
        async with dlq_app(serve, unique) as app:
            c = app.client
            assert (await c.get("/dlq/messages/" + "a" * 64)).status_code == 404
            assert (await c.post("/dlq/messages/" + "a" * 64 + "/replay")).status_code == 404
            assert (await c.get("/dlq/messages/a%0d%0ab")).status_code == 422
            for params in (
                {"cursor": "garbage"},
                {"cursor": "1:" + "x" * 200},
                {"limit": "0"},
                {"limit": "201"},
                {"limit": "abc"},
                {"state": "lost"},
            ):
                response = await c.get("/dlq/messages", params=params)
                assert response.status_code == 422, params
                assert response.json()["detail"][0]["loc"][0] == "query"
            for params in (
                {"failed_from": "not-a-date"},
                {"failed_to": "2026-02-30T00:00:00Z"},
                {"investigation_status": "x"},
            ):
                assert (await c.get("/failed-tasks", params=params)).status_code == 422, params
            assert (await c.post("/dlq/messages/abc/replay?force=maybe")).status_code == 422
            assert (await c.get("/failed-tasks/nope")).status_code == 404
            assert (await c.delete("/failed-tasks/nope")).status_code == 404
            assert (await c.post("/failed-tasks/nope/mark-investigated")).status_code == 404


async def test_replay_then_409_then_force(serve: Serve, unique: str) -> None:
    with anyio.fail_after(15):
        async with dlq_app(serve, unique) as app:
            record = rec(1)
            await app.store.add(record)
            url = f"/dlq/messages/{record.dlq_id}/replay"
            first = await app.client.post(url)
            assert first.status_code == 200
            body = first.json()
            assert body["dlq_id"] == record.dlq_id
            assert body["target_queue_name"] == "orders.retry"
            assert (body["state"], body["replay_count"], body["forced"]) == ("replayed", 1, False)
            [(payload, props)] = await app.take("orders.retry")
            assert payload == record.body
            assert props.correlation_id == "c1"
            assert props.headers[h.REPLAYED_FROM_DLQ] is True
            assert props.headers[h.DLQ_ID] == record.dlq_id
            assert props.headers[h.RETRY_ATTEMPT] == 0
            assert props.headers[h.ORIGINAL_RETRY_ATTEMPT] == 1
            assert h.FAILURE_REASON not in props.headers
            again = await app.client.post(url)
            assert again.status_code == 409
            assert again.json()["error"] == "already_replayed"
            forced = await app.client.post(url, params={"force": "true", "direct": "true"})
            assert forced.status_code == 200
            assert forced.json()["replay_count"] == 2
            assert forced.json()["target_queue_name"] == "orders"
            assert len(await app.take("orders")) == 1
            listed = (await app.client.get("/dlq/messages", params={"state": "replayed"})).json()
            assert [i["dlq_id"] for i in listed["items"]] == [record.dlq_id]


async def test_ten_concurrent_replays_publish_once(serve: Serve, unique: str) -> None:
    with anyio.fail_after(20):
        async with dlq_app(serve, unique) as app:
            record = rec(1)
            await app.store.add(record)
            codes: list[int] = []

            async def replay() -> None:
                response = await app.client.post(f"/dlq/messages/{record.dlq_id}/replay")
                codes.append(response.status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(replay)
            assert sorted(codes) == [200] + [409] * 9
            assert len(await app.take("orders.retry")) == 1


async def test_binary_body_is_shown_base64_and_replayed_byte_identical(
    serve: Serve, unique: str
) -> None:
    raw = b"\xff\xfe\x00binary\x80"
    with anyio.fail_after(15):
        async with dlq_app(serve, unique) as app:
            record = rec(1, body=raw, content_type="application/octet-stream")
            await app.store.add(record)
            detail = (await app.client.get(f"/dlq/messages/{record.dlq_id}")).json()
            assert detail["body_encoding"] == "base64"
            assert base64.b64decode(detail["body"]) == raw
            assert base64.b64decode(detail["raw_body_b64"]) == raw
            assert (
                await app.client.post(f"/dlq/messages/{record.dlq_id}/replay")
            ).status_code == 200
            [(payload, _)] = await app.take("orders.retry")
            assert payload == raw


async def test_a_5mb_body_is_recorded_without_it_and_not_replayable(
    serve: Serve, unique: str
) -> None:
    with anyio.fail_after(20):
        async with dlq_app(serve, unique) as app:
            record = rec(1, body=b"x" * (5 * 1024 * 1024), reason="too_large")
            assert await app.store.add(record)
            detail = (await app.client.get(f"/dlq/messages/{record.dlq_id}")).json()
            assert detail["payload_available"] is False
            assert detail["body_omitted"] == "too_large"
            assert detail["body_size"] == 5 * 1024 * 1024
            response = await app.client.post(f"/dlq/messages/{record.dlq_id}/replay")
            assert response.status_code == 409
            assert response.json()["error"] == "payload_unavailable"
            retry = await app.client.post(f"/failed-tasks/{record.dlq_id}/retry")
            assert retry.status_code == 409
            assert retry.json()["error"] == "manual_retry_payload_unavailable"


async def test_a_message_without_relayna_headers_is_replayable_to_a_named_queue(
    serve: Serve, unique: str
) -> None:
    with anyio.fail_after(15):
        async with dlq_app(
            serve, unique, broker_queue_names=["orders.dlq"], inspector="peek"
        ) as app:
            await app.broker.publish("", "orders.dlq", b'{"task_id": "ext-1"}')
            listed = (await app.client.get("/broker/dlq/messages")).json()["items"]
            assert [(i["source_queue_name"], i["task_id"]) for i in listed] == [
                ("unknown", "ext-1")
            ]
            message = broker_message(
                "orders.dlq",
                b'{"task_id": "ext-1"}',
                headers={},
                correlation_id=None,
                content_type=None,
                message_id=None,
                redelivered=True,
            )
            record = record_from_broker(message, now=T0)
            await app.store.add(record)
            url = f"/dlq/messages/{record.dlq_id}/replay"
            refused = await app.client.post(url)
            assert refused.status_code == 409
            assert refused.json()["error"] == "source_unknown"
            missing = await app.client.post(url, params={"target_queue": "no-such-queue"})
            assert missing.status_code == 422
            ok = await app.client.post(url, params={"target_queue": "orders"})
            assert ok.status_code == 200
            assert ok.json()["target_queue_name"] == "orders"
            assert [p for p, _ in await app.take("orders")] == [b'{"task_id": "ext-1"}']


async def test_broker_routes_and_the_allowlist(serve: Serve, unique: str) -> None:
    with anyio.fail_after(15):
        async with dlq_app(
            serve, unique, broker_queue_names=["orders.dlq", "gone.dlq"], inspector="peek"
        ) as app:
            for n in range(3):
                await app.broker.publish(
                    "",
                    "orders.dlq",
                    b'{"n": %d}' % n,
                    Properties(headers={h.SOURCE_QUEUE: "orders", h.FAILURE_REASON: "boom"}),
                )
            outside = await app.client.get("/broker/dlq/messages", params={"queue_name": "secret"})
            assert outside.status_code == 400
            assert "Allowed queues" in outside.json()["detail"]
            assert (
                await app.client.get("/broker/dlq/messages", params={"limit": "500"})
            ).status_code == 422
            items = (
                await app.client.get(
                    "/broker/dlq/messages", params={"queue_name": "orders.dlq", "limit": "2"}
                )
            ).json()["items"]
            assert [i["body"] for i in items] == [{"n": 0}, {"n": 1}]
            assert {(i["source_queue_name"], i["reason"]) for i in items} == {("orders", "boom")}
            assert (await app.broker.inspect_queue("orders.dlq")).message_count == 3  # left there
            queues = (await app.client.get("/broker/dlq/queues")).json()["queues"]
            assert [(q["queue_name"], q["exists"], q["message_count"]) for q in queues] == [
                ("orders.dlq", True, 3)
            ]


async def test_failed_task_routes(serve: Serve, unique: str) -> None:
    with anyio.fail_after(20):
        async with dlq_app(serve, unique) as app:
            c = app.client
            record = rec(1)
            other = rec(2, age=1, service_name="billing", exception_type="KeyError")
            await app.store.add(record)
            await app.store.add(other)
            listing = (await c.get("/failed-tasks", params={"service_name": "billing"})).json()
            assert [i["task_id"] for i in listing["items"]] == ["t2"]
            assert listing["errors"] == []
            by_type = (await c.get("/failed-tasks", params={"error_type": "ValueError"})).json()
            assert [i["failure_id"] for i in by_type["items"]] == [record.dlq_id]
            window = {
                "failed_from": (T0 - timedelta(seconds=1)).isoformat(),
                "failed_to": T0.isoformat(),
            }
            assert len((await c.get("/failed-tasks", params=window)).json()["items"]) == 2
            url = f"/failed-tasks/{record.dlq_id}"
            detail = (await c.get(url)).json()
            assert detail["dlq_id"] == record.dlq_id
            assert detail["status"] == "DLQ"
            marked = await c.post(
                url + "/mark-investigated", json={"investigated_by": "ana", "note": "n"}
            )
            assert marked.status_code == 200
            assert (marked.json()["investigation_status"], marked.json()["investigated_by"]) == (
                "investigated",
                "ana",
            )
            assert marked.json()["investigation_note"] == "n"
            assert (await c.post(url + "/mark-investigated")).json()[
                "investigated_by"
            ] == "operator"
            bad = await c.post(url + "/mark-investigated", json={"who": "x"})
            assert bad.status_code == 422
            wrong_type = await c.post(
                url + "/mark-investigated", content=b"{}", headers={"content-type": "text/plain"}
            )
            assert wrong_type.status_code == 415
            too_big = await c.post(
                url + "/mark-investigated",
                content=b'{"note": "' + b"x" * (2 * 1024 * 1024) + b'"}',
                headers={"content-type": "application/json"},
            )
            assert too_big.status_code == 413
            un = (await c.post(url + "/mark-uninvestigated")).json()
            assert un["investigation_status"] == "unreviewed"
            assert un["investigated_by"] is None
            filtered = await c.get("/failed-tasks", params={"investigation_status": "unreviewed"})
            assert len(filtered.json()["items"]) == 2

            not_json = await c.post(url + "/retry", json={"override_payload": "{not json"})
            assert not_json.status_code == 422
            broken = await c.post(
                url + "/retry", content=b"{oops", headers={"content-type": "application/json"}
            )
            assert broken.status_code == 422
            assert (await c.post(url + "/retry", json={"force": "yes"})).status_code == 422
            assert (await c.post(url + "/retry", json={"target_queue": ""})).status_code == 422
            retried = await c.post(url + "/retry", json={"retried_by": "bob", "note": "again"})
            assert retried.status_code == 200
            assert retried.json() == {
                "failure_id": record.dlq_id,
                "target_queue": "orders",
                "retry_status": "retried",
                "retried_at": retried.json()["retried_at"],
                "retried_by": "bob",
                "retried_task_id": "t1",
            }
            [(payload, props)] = await app.take("orders")
            assert payload == record.body
            assert props.headers[h.MANUAL_RETRY_FROM_FAILURE_ID] == record.dlq_id
            twice = await c.post(url + "/retry")
            assert twice.status_code == 409
            assert twice.json()["error"] == "already_retried"
            override = await c.post(
                url + "/retry",
                json={
                    "force": True,
                    "override_payload": {"task_id": "t1-b"},
                    "target_queue": "orders.retry",
                },
            )
            assert override.status_code == 200
            assert override.json()["retried_task_id"] == "t1-b"
            assert [p for p, _ in await app.take("orders.retry")] == [b'{"task_id":"t1-b"}']
            detail = (await c.get(url)).json()
            assert (detail["retry_status"], detail["retry_target_queue"]) == (
                "retried",
                "orders.retry",
            )
            assert (await c.delete(url)).status_code == 204
            assert (await c.get(url)).status_code == 404
            assert (await c.delete(url)).status_code == 404


async def test_authorization_hook_guards_mutating_routes_only(serve: Serve, unique: str) -> None:
    seen: list[str] = []

    async def authorize(request: Request, route_id: str) -> Response | None:
        seen.append(route_id)
        if request.headers.get("authorization") == "Bearer admin":
            return None
        return ORJSONResponse({"detail": "forbidden"}, status_code=403)

    with anyio.fail_after(15):
        async with dlq_app(serve, unique, authorize=authorize) as app:
            record = rec(1)
            await app.store.add(record)
            c = app.client
            assert (await c.get("/dlq/messages")).status_code == 200
            assert (await c.get(f"/failed-tasks/{record.dlq_id}")).status_code == 200
            assert (await c.post(f"/dlq/messages/{record.dlq_id}/replay")).status_code == 403
            assert (await c.post(f"/failed-tasks/{record.dlq_id}/retry")).status_code == 403
            assert (await c.delete(f"/failed-tasks/{record.dlq_id}")).status_code == 403
            assert await app.take("orders.retry") == []
            admin = {"authorization": "Bearer admin"}
            response = await c.post(f"/dlq/messages/{record.dlq_id}/replay", headers=admin)
            assert response.status_code == 200
            assert seen == ["dlq.replay", "failed_tasks.retry", "failed_tasks.delete", "dlq.replay"]


async def test_route_names_are_the_capability_ids(serve: Serve, unique: str) -> None:
    routes = dlq_routes(broker_queue_names=["a.dlq"], inspector="peek")
    names = {getattr(r, "name", None) for r in routes}
    assert set(DLQ_CAPABILITY_ROUTE_IDS) <= names
    assert set(FAILED_TASKS_CAPABILITY_ROUTE_IDS) <= names
    without_broker = {getattr(r, "name", None) for r in dlq_routes(failed_tasks=False)}
    assert "broker.dlq.messages" not in without_broker
    assert not set(FAILED_TASKS_CAPABILITY_ROUTE_IDS) & without_broker


async def test_http_alias_renames_task_id(serve: Serve, unique: str) -> None:
    from relayna.contracts import ContractAliasConfig

    aliases = ContractAliasConfig(field_aliases={"task_id": "documentId"})
    with anyio.fail_after(15):
        async with dlq_app(serve, unique, aliases=aliases) as app:
            await app.store.add(rec(1))
            items = (await app.client.get("/dlq/messages", params={"documentId": "t1"})).json()[
                "items"
            ]
            assert [i["documentId"] for i in items] == ["t1"]
            assert "task_id" not in items[0]


@pytest.mark.parametrize("aliased", [False, True])
async def test_every_dlq_route_is_documented_and_the_document_is_valid(aliased: bool) -> None:
    from openapi_spec_validator import validate

    from relayna.api import openapi_document, undocumented_routes
    from relayna.contracts import ContractAliasConfig

    aliases = ContractAliasConfig(field_aliases={"task_id": "documentId"}) if aliased else None
    routes = dlq_routes(
        broker_queue_names=["a.dlq"], inspector="peek", aliases=aliases, authorize=lambda r, i: None
    )
    assert undocumented_routes(routes) == []
    doc = openapi_document(routes, title="t", version="1")
    validate(doc)
    assert len(doc["paths"]) == 12
    replay = doc["paths"]["/dlq/messages/{dlq_id}/replay"]["post"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(replay["responses"])
    name = "documentId" if aliased else "task_id"
    listing = doc["paths"]["/dlq/messages"]["get"]
    assert name in {p["name"] for p in listing["parameters"]}


async def test_capabilities_and_execution_graph_see_the_dlq(serve: Serve, unique: str) -> None:
    from relayna.api import capabilities_routes, execution_routes

    config = RuntimeConfig(
        store_url="memory://", broker_url="memory://", dlq=DLQStoreConfig(prefix=f"g-{unique}")
    )
    with anyio.fail_after(15):
        async with open_relayna_runtime(config) as runtime:
            assert runtime.dlq is not None

            @asynccontextmanager
            async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
                yield {"relayna": runtime}

            routes = [*capabilities_routes(), *execution_routes(), *dlq_routes()]
            app = Starlette(routes=routes, lifespan=lifespan)
            record = rec(1)
            await runtime.dlq.store.add(record)
            async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as c:
                doc = (await c.get("/relayna/capabilities")).json()
                supported = set(doc["supported_routes"])
                assert {"dlq.messages", "dlq.replay", "failed_tasks.retry"} <= supported
                assert "broker.dlq.messages" not in supported  # not mounted: no allowlist
                listed = (await c.get("/dlq/messages")).json()["items"]
                assert [i["dlq_id"] for i in listed] == [record.dlq_id]
                graph = await c.get("/executions/t1/graph")  # no status, no observation
                assert graph.status_code == 200
                kinds = {n["kind"] for n in graph.json()["nodes"]}
                assert "dlq_record" in kinds
