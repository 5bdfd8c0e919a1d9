"""Broker DLQ inspectors on the real RabbitMQ: the management HTTP API and the
native client's basic.get + requeue. Both leave every message in the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import anyio
import pytest

from relayna.contracts import headers as h
from relayna.dlq import BrokerDLQInspector, ManagementDLQInspector, PeekDLQInspector
from relayna.errors import BrokerError, NotFound
from relayna.transport import Broker, Properties, QueueSpec, open_broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    async with open_broker(amqp_url) as opened:
        yield opened


@pytest.fixture
async def dlq_queue(broker: Broker, unique: str) -> AsyncIterator[str]:
    name = f"insp-{unique}.dlq"
    await broker.declare_queue(QueueSpec(name))
    await broker.publish(
        "",
        name,
        b'{"task_id": "t-1"}',
        Properties(
            correlation_id="c-1",
            content_type="application/json",
            headers={h.SOURCE_QUEUE: "orders", h.FAILURE_REASON: "handler_error", "task_id": "t-1"},
        ),
    )
    await broker.publish("", name, b"\xff\xfe raw", Properties())  # no relayna headers
    await broker.publish("", name, b'{"task_id": "t-3"}', Properties(message_id="m-3"))
    yield name
    with anyio.CancelScope(shield=True):
        await broker.delete_queue(name)


def inspectors(broker: Broker, mgmt_url: str) -> list[BrokerDLQInspector]:
    return [ManagementDLQInspector(mgmt_url), PeekDLQInspector(broker)]  # type: ignore[arg-type]


async def test_both_inspectors_read_and_requeue(
    broker: Broker, dlq_queue: str, services: object
) -> None:
    mgmt_url = services.mgmt_url  # type: ignore[attr-defined]
    with anyio.fail_after(30):
        for inspector in inspectors(broker, mgmt_url):
            first = await inspector.list_messages(dlq_queue, limit=2)
            assert len(first) == 2, inspector
            relayna, raw = first
            assert (relayna.source_queue_name, relayna.reason) == ("orders", "handler_error")
            assert (relayna.task_id, relayna.correlation_id) == ("t-1", "c-1")
            assert relayna.body == {"task_id": "t-1"}
            assert relayna.body_encoding == "json"
            assert raw.source_queue_name == "unknown"
            assert raw.reason is None
            assert raw.body_encoding == "base64"
            assert raw.raw_body == b"\xff\xfe raw"
            every = await inspector.list_messages(dlq_queue, limit=50)
            assert [m.raw_body for m in every][2] == b'{"task_id": "t-3"}'
            assert every[2].message_key == "m-3"
            assert every[0].redelivered
            assert every[1].redelivered
            assert (await broker.inspect_queue(dlq_queue)).message_count == 3


async def test_missing_queue_is_not_found(broker: Broker, services: object, unique: str) -> None:
    mgmt_url = services.mgmt_url  # type: ignore[attr-defined]
    with anyio.fail_after(20):
        for inspector in inspectors(broker, mgmt_url):
            with pytest.raises(NotFound):
                await inspector.list_messages(f"nothing-{unique}", limit=5)
        # the broker connection stays usable after the channel error
        await broker.declare_queue(QueueSpec(f"after-{unique}", auto_delete=True))


async def test_management_credentials_never_appear_in_errors(
    dlq_queue: str, services: object
) -> None:
    parts = urlsplit(services.mgmt_url)  # type: ignore[attr-defined]
    url = f"http://guest:wrong-s3cret@{parts.hostname}:{parts.port}/"
    inspector = ManagementDLQInspector(url)
    assert "wrong-s3cret" not in inspector.url
    with anyio.fail_after(20), pytest.raises(BrokerError) as refused:
        await inspector.list_messages(dlq_queue, limit=1)
    assert "401" in str(refused.value)
    assert "wrong-s3cret" not in str(refused.value)
    closed = ManagementDLQInspector("http://user:pw-x@127.0.0.1:1/", timeout=2)
    with anyio.fail_after(20), pytest.raises(BrokerError) as unreachable:
        await closed.list_messages(dlq_queue, limit=1)
    assert "pw-x" not in str(unreachable.value)
