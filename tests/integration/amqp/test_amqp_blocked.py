"""``connection.blocked`` on a private RabbitMQ node (resource alarms are node-wide,
so the shared test broker is never touched): blocked publishes raise
``PublishBlocked`` after ``publish_timeout``, ``broker.blocked`` / ``statistics()``
report the alarm, publishing resumes after it clears, and every publish
acknowledged to its caller is in the queue."""

from __future__ import annotations

import anyio
import pytest
from services import Services

from relayna.errors import PublishBlocked
from relayna.transport._broker import Properties, QueueSpec
from relayna.transport.amqp import open_amqp_broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]

PUBLISH_TIMEOUT = 2.0
PUBLISHERS = 20


async def _ctl(svc: Services, *args: str) -> None:
    res = await anyio.to_thread.run_sync(lambda: svc.rabbitmqctl(*args))
    assert res.returncode == 0, res.stdout + res.stderr


async def test_blocked_publish_raises_then_recovers(private_rabbit: Services, unique: str) -> None:
    url = f"{private_rabbit.amqp_url}?publish_timeout={PUBLISH_TIMEOUT}"
    q = f"t.blocked.{unique}"
    acked: list[bytes] = []
    blocked_after: list[float] = []
    props = Properties(delivery_mode=2)
    async with open_amqp_broker(url) as broker:
        await broker.declare_queue(QueueSpec(q, durable=True))
        await broker.publish("", q, b"before", props)
        acked.append(b"before")
        assert not broker.blocked
        assert broker.statistics()["blocked"] == 0

        await _ctl(private_rabbit, "set_vm_memory_high_watermark", "absolute", "1MB")
        try:

            async def publisher(n: int) -> None:
                i = 0
                while True:
                    body = f"p{n}.{i}".encode()
                    started = anyio.current_time()
                    try:
                        await broker.publish("", q, body, props)
                    except PublishBlocked:
                        blocked_after.append(anyio.current_time() - started)
                        return
                    acked.append(body)
                    i += 1

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for n in range(PUBLISHERS):
                        tg.start_soon(publisher, n)
            assert len(blocked_after) == PUBLISHERS
            # Each publish gave up after about publish_timeout, never much later.
            assert max(blocked_after) < PUBLISH_TIMEOUT + 3
            assert broker.blocked
            assert broker.statistics()["blocked"] == 1
            assert broker.statistics()["publish_blocked_total"] >= PUBLISHERS
            # A publish started while blocked waits publish_timeout, then raises.
            started = anyio.current_time()
            with pytest.raises(PublishBlocked):
                await broker.publish("", q, b"late", props)
            assert PUBLISH_TIMEOUT - 0.5 <= anyio.current_time() - started < PUBLISH_TIMEOUT + 3
        finally:
            with anyio.CancelScope(shield=True):
                await _ctl(private_rabbit, "set_vm_memory_high_watermark", "0.4")

        with anyio.fail_after(30):
            while broker.blocked:  # noqa: ASYNC110 - polling the public gauge
                await anyio.sleep(0.05)
            assert broker.statistics()["blocked"] == 0
            for i in range(20):
                await broker.publish("", q, f"after.{i}".encode(), props)
                acked.append(f"after.{i}".encode())

            # Everything acknowledged to a caller is in the queue (messages whose
            # publish raised PublishBlocked may or may not be).
            count = (await broker.inspect_queue(q)).message_count
            assert count >= len(acked)
            seen: set[bytes] = set()
            async with broker.consume(q, prefetch=100) as consumer:
                async for d in consumer:
                    seen.add(d.body)
                    await d.ack()
                    if len(seen) == count:
                        break
            assert set(acked) <= seen
        await broker.delete_queue(q)
