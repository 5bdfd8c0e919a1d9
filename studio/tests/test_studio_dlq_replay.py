"""Replaying a dead letter through Studio, against a real relayna service's DLQ routes.

The service is relayna's own app on loopback (``open_relayna_runtime`` on the
memory broker and store, ``dlq_routes`` and ``capabilities_routes``), with
records in its DLQ store. Studio runs with auth on: a reader is refused, an
operator replays, and every attempt is in the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette

from relayna.api import (
    DLQ_CAPABILITY_ROUTE_IDS,
    RelaynaRuntime,
    RuntimeConfig,
    capabilities_routes,
    dlq_routes,
    open_relayna_runtime,
    serving,
)
from relayna.consumer import DLQRecord, make_dlq_record
from relayna.contracts import headers as h
from relayna.dlq import DLQStore, DLQStoreConfig
from relayna.transport import QueueSpec
from studio_support import TableResolver, open_test_studio, settings_for

pytestmark = pytest.mark.anyio

HOST = "127.0.0.2"


def dlq_record(n: int) -> DLQRecord:
    """Task ``t{n}`` dead-lettered from ``orders`` after its one retry."""
    return make_dlq_record(
        queue_name="orders.dlq",
        source_queue_name="orders",
        retry_queue_name="orders.retry",
        task_id=f"t{n}",
        correlation_id=f"c{n}",
        service_name="worker",
        reason="handler_error",
        exception_type="ValueError",
        exception_message="boom",
        retry_attempt=1,
        max_retries=1,
        headers={h.RETRY_ATTEMPT: 1, h.SOURCE_QUEUE: "orders", h.FAILURE_REASON: "handler_error"},
        content_type="application/json",
        body=b'{"task_id": "t%d", "payload": {}}' % n,
    )


@asynccontextmanager
async def dlq_service(prefix: str) -> AsyncIterator[tuple[str, RelaynaRuntime, DLQStore]]:
    config = DLQStoreConfig(prefix=prefix)
    runtime_config = RuntimeConfig(store_url="memory://", broker_url="memory://")
    async with open_relayna_runtime(runtime_config) as runtime:
        assert runtime.broker is not None
        for name in ("orders", "orders.retry", "orders.dlq"):
            await runtime.broker.declare_queue(QueueSpec(name))

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        routes = [
            *capabilities_routes(extra_route_ids=DLQ_CAPABILITY_ROUTE_IDS),
            *dlq_routes(store_config=config),
        ]
        app = Starlette(routes=routes, lifespan=lifespan)
        async with serving(app, host=HOST, graceful_timeout=0.5) as url:
            yield url, runtime, DLQStore(runtime.store, config)


async def test_an_operator_replays_a_dead_letter_through_studio() -> None:
    prefix = uuid.uuid4().hex[:8]
    settings = settings_for(
        "memory://",
        f"replay:{prefix}",
        allowed_hosts=(".test",),
        allowed_networks=(f"{HOST}/32",),
        auth_enabled=True,
    )
    resolver = TableResolver({"orders.test": [HOST]})
    with anyio.fail_after(30):
        async with (
            dlq_service(f"dlq-{prefix}") as (url, service, records),
            open_test_studio(settings, resolver=resolver) as studio,
        ):
            roles = await studio.role_headers()
            admin, operator, reader = roles["admin"], roles["operator"], roles["reader"]
            await studio.register("orders", url, admin)
            refreshed = await studio.client.post("/studio/services/orders/refresh", headers=admin)
            assert refreshed.status_code == 200, refreshed.text
            capabilities = refreshed.json()["capabilities"]
            assert "dlq.replay" in capabilities["supported_routes"]
            # relayna's {flag: bool} is kept as the original's list of flags that are on
            assert capabilities["feature_flags"] == ["observations", "service_event_feed"]
            record = dlq_record(1)
            await records.add(record)
            path = f"/studio/services/orders/dlq/messages/{record.dlq_id}/replay"
            assert service.broker is not None

            refused = await studio.client.post(path, headers=reader)
            assert refused.status_code == 403
            assert (await service.broker.inspect_queue("orders.retry")).message_count == 0

            done = await studio.client.post(path, headers=operator)
            assert done.status_code == 200, done.text
            body = done.json()
            assert body["service_id"] == "orders"
            assert body["dlq_id"] == record.dlq_id
            assert (body["state"], body["replay_count"], body["forced"]) == ("replayed", 1, False)
            assert body["target_queue_name"] == "orders.retry"  # through the retry queue
            assert body["replayed_at"]
            assert (await service.broker.inspect_queue("orders.retry")).message_count == 1

            # The service's 409 stays a 409, with its reason as the code.
            again = await studio.client.post(path, headers=operator)
            assert again.status_code == 409, again.text
            assert again.json()["code"] == "already_replayed"
            assert again.json()["upstream_status"] == 409
            forced = await studio.client.post(path, params={"force": "true"}, headers=operator)
            assert forced.status_code == 200, forced.text
            assert (forced.json()["replay_count"], forced.json()["forced"]) == (2, True)
            assert (await service.broker.inspect_queue("orders.retry")).message_count == 2

            # A queue the broker does not have: the service's 422, nothing published.
            nowhere = await studio.client.post(
                path, params={"force": "1", "target_queue": "nowhere"}, headers=operator
            )
            assert nowhere.status_code == 422, nowhere.text
            assert "nowhere" in nowhere.json()["detail"]
            missing = await studio.client.post(
                "/studio/services/orders/dlq/messages/" + "a" * 64 + "/replay", headers=operator
            )
            assert missing.status_code == 404
            assert missing.json()["code"] == "upstream_not_found"
            assert (await service.broker.inspect_queue("orders.retry")).message_count == 2

            audit = await studio.client.get(
                "/studio/audit", params={"action": "dlq.replay"}, headers=admin
            )
            entries = audit.json()["items"]
            outcomes = sorted((e["outcome"], e["status_code"]) for e in entries)
            assert outcomes == [
                ("denied", 403),
                ("failure", 404),
                ("failure", 409),
                ("failure", 422),
                ("success", 200),
                ("success", 200),
            ]
            assert {e["target"] for e in entries} == {
                f"orders/{record.dlq_id}",
                "orders/" + "a" * 64,
            }


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ({"force": "maybe"}, "force"),
        ({"direct": ""}, "direct"),
        ({"target_queue": "x\n"}, "target_queue"),
        ({"limit": "3"}, "limit"),
    ],
)
async def test_bad_replay_input_is_422_before_any_call(query: dict[str, str], where: str) -> None:
    prefix = uuid.uuid4().hex[:8]
    settings = settings_for(
        "memory://", f"replay:{prefix}", allowed_hosts=(".test",), allowed_networks=(f"{HOST}/32",)
    )
    resolver = TableResolver({"orders.test": [HOST]})
    with anyio.fail_after(30):
        async with (
            dlq_service(f"dlq-{prefix}") as (url, service, records),
            open_test_studio(settings, resolver=resolver) as studio,
        ):
            await studio.register("orders", url)
            record = dlq_record(2)
            await records.add(record)
            answer = await studio.client.post(
                f"/studio/services/orders/dlq/messages/{record.dlq_id}/replay", params=query
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"][0]["loc"] == ["query", where]
            assert service.broker is not None
            assert (await service.broker.inspect_queue("orders.retry")).message_count == 0
            listed = await records.get(record.dlq_id)
            assert listed is not None
            assert listed.state == "dead_lettered"
