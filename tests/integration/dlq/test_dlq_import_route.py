"""``POST /broker/dlq/messages/import`` on the real stack (RabbitMQ + Redis,
hypercorn), both backends: a message dead-lettered without relayna (no record)
is indexed from the live queue, left there, listed, and replayed over HTTP."""

from __future__ import annotations

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from relayna.api import ORJSONResponse, RuntimeConfig, dlq_routes, relayna_lifespan, serving
from relayna.dlq import DLQStore, DLQStoreConfig
from relayna.transport import QueueSpec, open_broker, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]


def authorize(request: Request, route_id: str) -> Response | None:
    if request.headers.get("authorization") == "Bearer ops":
        return None
    return ORJSONResponse({"detail": f"{route_id} needs ops"}, status_code=401)


async def test_broker_only_messages_are_imported_and_replayed(
    amqp_url: str, redis_url: str, unique: str
) -> None:
    source, dlq = f"imp-{unique}", f"imp-{unique}.dlq"
    config = DLQStoreConfig(prefix=f"dlq-imp:{unique}")
    ops = {"authorization": "Bearer ops"}
    app = Starlette(
        routes=dlq_routes(
            store_config=config, broker_queue_names=[dlq], inspector="peek", authorize=authorize
        ),
        lifespan=relayna_lifespan(RuntimeConfig(store_url=redis_url, broker_url=amqp_url)),
    )
    with anyio.fail_after(30):
        async with open_broker(amqp_url) as broker, open_store(redis_url) as store:
            try:
                await broker.declare_queue(QueueSpec(source))
                await broker.declare_queue(QueueSpec(dlq))
                # Dead-lettered by another producer: no relayna headers, no record.
                await broker.publish("", dlq, b'{"task_id": "legacy-7", "n": 7}')
                records = DLQStore(store, config)
                async with (
                    serving(app, graceful_timeout=1.0) as base,
                    httpx.AsyncClient(base_url=base, timeout=15) as client,
                ):
                    url = "/broker/dlq/messages/import"
                    refused = await client.post(url, params={"queue_name": dlq})
                    assert refused.status_code == 401
                    outside = await client.post(url, params={"queue_name": source}, headers=ops)
                    assert outside.status_code == 400
                    assert (await client.get("/dlq/messages")).json()["items"] == []

                    done = await client.post(url, params={"queue_name": dlq}, headers=ops)
                    assert done.status_code == 200
                    imported = done.json()
                    assert imported["count"] == 1
                    assert imported["added"] == imported["dlq_ids"]
                    (dlq_id,) = imported["dlq_ids"]
                    record = await records.get(dlq_id)
                    assert record is not None
                    assert record.task_id == "legacy-7"
                    assert (await broker.inspect_queue(dlq)).message_count == 1  # left there

                    again = await client.post(url, params={"queue_name": dlq}, headers=ops)
                    assert again.json()["added"] == []  # idempotent

                    listed = await client.get("/dlq/messages", params={"task_id": "legacy-7"})
                    assert [i["dlq_id"] for i in listed.json()["items"]] == [dlq_id]
                    replay = await client.post(
                        f"/dlq/messages/{dlq_id}/replay",
                        params={"target_queue": source},
                        headers=ops,
                    )
                    assert replay.status_code == 200
                    detail = (await client.get(f"/dlq/messages/{dlq_id}")).json()
                    assert detail["state"] == "replayed"
                async with broker.consume(source, prefetch=1) as consumer:
                    async for delivery in consumer:
                        assert delivery.body == b'{"task_id": "legacy-7", "n": 7}'
                        await delivery.ack()
                        break
            finally:
                with anyio.CancelScope(shield=True):
                    await broker.delete_queue(source)
                    await broker.delete_queue(dlq)
