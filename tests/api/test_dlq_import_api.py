"""``POST /broker/dlq/messages/import`` on the memory transports, both backends:
broker-only DLQ messages become records that can be listed and replayed;
the authorize hook, the allowlist and bad query strings (Hypothesis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from relayna.api import ORJSONResponse, dlq_routes
from relayna.dlq import DLQService, DLQStore, DLQStoreConfig, PeekDLQInspector
from relayna.transport import Properties, QueueSpec, open_memory_store
from relayna.transport.memory_broker import open_memory_broker

pytestmark = pytest.mark.anyio

DLQ = "orders.dlq"
IMPORT = "/broker/dlq/messages/import"
ADMIN = {"authorization": "Bearer admin"}


def authorize(request: Request, route_id: str) -> Response | None:
    if request.headers.get("authorization") == ADMIN["authorization"]:
        return None
    return ORJSONResponse({"detail": f"{route_id} forbidden"}, status_code=403)


@asynccontextmanager
async def app() -> AsyncIterator[tuple[httpx.AsyncClient, Any, DLQStore]]:
    """The DLQ routes over a ready service (memory broker + store), in process."""
    async with open_memory_broker() as broker, open_memory_store() as store:
        for name in ("orders", DLQ):
            await broker.declare_queue(QueueSpec(name))
        records = DLQStore(store, DLQStoreConfig(prefix="imp"))
        service = DLQService(
            records, broker, inspector=PeekDLQInspector(broker), broker_queue_names=[DLQ]
        )
        routes = dlq_routes(service=service, authorize=authorize, failed_tasks=False)
        transport = httpx.ASGITransport(app=Starlette(routes=routes))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, broker, records


async def test_import_indexes_broker_only_messages_once_and_they_replay() -> None:
    with anyio.fail_after(15):
        async with app() as (client, broker, records):
            await broker.publish("", DLQ, b'{"task_id": "ext-1"}')
            await broker.publish("", DLQ, b"\xff\xfe not utf-8", Properties(headers={}))
            assert (await client.get("/dlq/messages")).json()["items"] == []

            refused = await client.post(IMPORT, params={"queue_name": DLQ})
            assert refused.status_code == 403
            assert (await client.get("/dlq/messages")).json()["items"] == []

            first = await client.post(IMPORT, params={"queue_name": DLQ}, headers=ADMIN)
            assert first.status_code == 200
            body = first.json()
            assert body["queue_name"] == DLQ
            assert body["count"] == 2
            assert body["added"] == body["dlq_ids"]
            assert (await broker.inspect_queue(DLQ)).message_count == 2  # left in the queue

            again = (await client.post(IMPORT, params={"queue_name": DLQ}, headers=ADMIN)).json()
            assert again["dlq_ids"] == body["dlq_ids"]
            assert again["added"] == []

            listed = (await client.get("/dlq/messages", params={"queue_name": DLQ})).json()
            assert sorted(i["dlq_id"] for i in listed["items"]) == sorted(body["dlq_ids"])
            assert {i["source_queue_name"] for i in listed["items"]} == {"unknown"}

            binary = [i["dlq_id"] for i in listed["items"] if i["body_encoding"] == "base64"]
            assert len(binary) == 1
            record = await records.get(binary[0])
            assert record is not None
            assert record.source_queue_name == "unknown"
            url = f"/dlq/messages/{binary[0]}/replay"
            replayed = await client.post(url, params={"target_queue": "orders"}, headers=ADMIN)
            assert replayed.status_code == 200
            async with broker.consume("orders", prefetch=1) as consumer:
                async for delivery in consumer:
                    assert delivery.body == b"\xff\xfe not utf-8"  # byte-identical
                    await delivery.ack()
                    break


async def test_import_refuses_bad_requests_and_writes_nothing() -> None:
    with anyio.fail_after(15):
        async with app() as (client, broker, _records):
            await broker.publish("", DLQ, b"{}")
            cases = [
                ({"queue_name": "secret.dlq"}, 400),
                ({}, 422),
                ({"queue_name": ""}, 422),
                ({"queue_name": DLQ, "limit": "0"}, 422),
                ({"queue_name": DLQ, "limit": "201"}, 422),
                ({"queue_name": DLQ, "limit": "ten"}, 422),
                ({"queue_name": "x" * 2000}, 422),
            ]
            for params, code in cases:
                response = await client.post(IMPORT, params=params, headers=ADMIN)
                assert response.status_code == code, (params, response.text)
            assert (await client.get("/dlq/messages")).json()["items"] == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    queue_name=st.one_of(st.none(), st.just(DLQ), st.text(max_size=40)),
    limit=st.one_of(st.none(), st.integers(-5, 300).map(str), st.text(max_size=8)),
)
async def test_any_query_string_is_answered_without_a_500(
    queue_name: str | None, limit: str | None
) -> None:
    params = {k: v for k, v in (("queue_name", queue_name), ("limit", limit)) if v is not None}
    with anyio.fail_after(15):
        async with app() as (client, broker, _records):
            await broker.publish("", DLQ, b'{"n": 1}')
            response = await client.post(IMPORT, params=params, headers=ADMIN)
            indexed = (await client.get("/dlq/messages")).json()["items"]
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code == 200:
        assert response.json()["count"] == len(indexed) == 1
    else:
        assert indexed == []
