"""Broker-protocol behaviour of the AMQP adapters against the real RabbitMQ."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import anyio
import anyio.lowlevel
import pytest

from relayna.errors import (
    ConsumerCancelled,
    NotFound,
    PreconditionFailed,
    UnroutableError,
    UnsupportedBackendError,
)
from relayna.transport import open_aiormq_broker
from relayna.transport._broker import (
    BindingSpec,
    Broker,
    Delivery,
    ExchangeSpec,
    Properties,
    QueueSpec,
)

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]


async def _next(consumer: object, wait: float = 5) -> Delivery:
    with anyio.fail_after(wait):
        return await consumer.__aiter__().__anext__()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_aiormq_refuses_trio(amqp_url: str) -> None:
    with pytest.raises(UnsupportedBackendError):
        async with open_aiormq_broker(amqp_url):
            pass


async def test_declare_idempotent_and_precondition_failed(broker: Broker, unique: str) -> None:
    q, x = f"t.decl.{unique}", f"t.x.{unique}"
    with anyio.fail_after(10):
        try:
            spec = QueueSpec(q, durable=False, arguments={"x-max-length": 10})
            assert (await broker.declare_queue(spec)).name == q
            await broker.declare_queue(spec)
            await broker.declare_exchange(ExchangeSpec(x, "topic", durable=False))
            await broker.declare_exchange(ExchangeSpec(x, "topic", durable=False))
            await broker.bind_queue(BindingSpec(q, x, "a.#"))
            with pytest.raises(PreconditionFailed) as info:
                await broker.declare_queue(QueueSpec(q, durable=True))
            assert info.value.reply_code == 406
            assert "***" in str(info.value) or "guest" not in str(info.value)
            with pytest.raises(PreconditionFailed):
                await broker.declare_exchange(ExchangeSpec(x, "direct", durable=False))
            # still usable
            await broker.publish(x, "a.b", b"ok")
            assert (await broker.inspect_queue(q)).message_count == 1
            assert await broker.purge_queue(q) == 1
            with pytest.raises(NotFound):
                await broker.inspect_queue(f"t.missing.{unique}")
        finally:
            await broker.delete_queue(q)
            await broker.delete_exchange(x)


async def test_round_trip_all_properties(broker: Broker, unique: str) -> None:
    q = f"t.rt.{unique}"
    ts = dt.datetime(2024, 5, 17, 12, 30, 1, tzinfo=dt.UTC)
    headers = {
        "nested": {"a": 1, "b": {"c": "deep"}, "l": [1, "two", 3.5, True]},
        "array": [1, 2, [3, 4]],
        "dec": Decimal("12.345"),
        "ts": ts,
        "big": 2**62,
        "neg": -(2**40),
        "bytes": b"\x00\xff",
        "none": None,
        "flag": False,
        "text": "héllo",
    }
    props = Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=5,
        correlation_id="corr",
        reply_to="reply.q",
        expiration="60000",
        message_id="mid-1",
        timestamp=ts,
        type="kind",
        user_id="guest",
        app_id="relayna-tests",
    )
    await broker.declare_queue(QueueSpec(q, durable=False))
    try:
        with anyio.fail_after(10):
            await broker.publish("", q, b"\x00body\xff", props)
            async with broker.consume(q, prefetch=1) as consumer:
                d = await _next(consumer)
                assert d.body == b"\x00body\xff"
                assert d.properties == props
                assert d.routing_key == q
                assert d.exchange == ""
                assert not d.redelivered
                assert not d.settled
                await d.ack()
                assert d.settled
    finally:
        await broker.delete_queue(q)


async def test_pipelined_confirms(broker: Broker, unique: str) -> None:
    q = f"t.conf.{unique}"
    await broker.declare_queue(QueueSpec(q, durable=False))
    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(10_000):
                    tg.start_soon(broker.publish, "", q, str(i).encode())
            assert (await broker.inspect_queue(q)).message_count == 10_000
    finally:
        await broker.delete_queue(q)


async def test_unroutable_and_missing_exchange(broker: Broker, unique: str) -> None:
    with anyio.fail_after(10):
        with pytest.raises(UnroutableError) as info:
            await broker.publish("", f"t.nowhere.{unique}", b"x")
        assert info.value.reply_code == 312
        await broker.publish("", f"t.nowhere.{unique}", b"x", mandatory=False)
        with pytest.raises(NotFound):
            await broker.publish(f"t.noexchange.{unique}", "k", b"x")
        q = f"t.after.{unique}"
        await broker.declare_queue(QueueSpec(q, durable=False))
        try:
            await broker.publish("", q, b"still works")
        finally:
            await broker.delete_queue(q)


async def test_prefetch_nack_requeue_redelivered(broker: Broker, unique: str) -> None:
    q = f"t.pf.{unique}"
    await broker.declare_queue(QueueSpec(q, durable=False))
    try:
        with anyio.fail_after(15):
            for i in range(6):
                await broker.publish("", q, str(i).encode())
            async with broker.consume(q, prefetch=3) as consumer:
                got = [await _next(consumer) for _ in range(3)]
                with pytest.raises(TimeoutError):
                    await _next(consumer, wait=0.5)
                await got[0].nack(requeue=True)
                again = await _next(consumer)
                assert again.body == b"0"
                assert again.redelivered
                for d in [*got[1:], again]:
                    await d.ack()
                rest = [await _next(consumer) for _ in range(3)]
                assert [d.body for d in rest] == [b"3", b"4", b"5"]
                assert not any(d.redelivered for d in rest)
                for d in rest:
                    await d.ack()
    finally:
        await broker.delete_queue(q)


async def test_reject_dead_letters_with_x_death(broker: Broker, unique: str) -> None:
    q, dlx, dlq = f"t.work.{unique}", f"t.dlx.{unique}", f"t.dlq.{unique}"
    await broker.declare_exchange(ExchangeSpec(dlx, "fanout", durable=False))
    await broker.declare_queue(QueueSpec(dlq, durable=False))
    await broker.bind_queue(BindingSpec(dlq, dlx))
    await broker.declare_queue(
        QueueSpec(q, durable=False, arguments={"x-dead-letter-exchange": dlx})
    )
    try:
        with anyio.fail_after(10):
            await broker.publish("", q, b"bad")
            async with broker.consume(q) as consumer:
                await (await _next(consumer)).reject(requeue=False)
            async with broker.consume(dlq) as consumer:
                d = await _next(consumer)
                assert d.body == b"bad"
                death = d.properties.headers["x-death"][0]
                assert death["queue"] == q
                assert death["reason"] == "rejected"
                await d.ack()
    finally:
        for name in (q, dlq):
            await broker.delete_queue(name)
        await broker.delete_exchange(dlx)


async def test_ttl_dead_letter_delayed_retry(broker: Broker, unique: str) -> None:
    delay_q, target = f"t.delay.{unique}", f"t.target.{unique}"
    await broker.declare_queue(QueueSpec(target, durable=False))
    await broker.declare_queue(
        QueueSpec(
            delay_q,
            durable=False,
            arguments={
                "x-message-ttl": 1000,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": target,
            },
        )
    )
    try:
        with anyio.fail_after(10):
            async with broker.consume(target) as consumer:
                start = anyio.current_time()
                await broker.publish("", delay_q, b"later")
                d = await _next(consumer)
                elapsed = anyio.current_time() - start
                await d.ack()
            assert 0.9 <= elapsed <= 1.1, elapsed
            assert d.properties.headers["x-death"][0]["reason"] == "expired"
    finally:
        await broker.delete_queue(delay_q)
        await broker.delete_queue(target)


async def test_priority_queue(broker: Broker, unique: str) -> None:
    q = f"t.prio.{unique}"
    await broker.declare_queue(QueueSpec(q, durable=False, arguments={"x-max-priority": 10}))
    try:
        with anyio.fail_after(10):
            for prio in (1, 9, 5):
                await broker.publish("", q, str(prio).encode(), Properties(priority=prio))
            async with broker.consume(q, prefetch=3) as consumer:
                bodies = []
                for _ in range(3):
                    d = await _next(consumer)
                    bodies.append(d.body)
                    await d.ack()
            assert bodies == [b"9", b"5", b"1"]
    finally:
        await broker.delete_queue(q)


async def test_quorum_delivery_limit(broker: Broker, unique: str) -> None:
    q, dlq = f"t.quorum.{unique}", f"t.qdlq.{unique}"
    await broker.declare_queue(QueueSpec(dlq, durable=False))
    await broker.declare_queue(
        QueueSpec(
            q,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 1,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dlq,
            },
        )
    )
    try:
        with anyio.fail_after(15):
            await broker.publish("", q, b"poison", Properties(delivery_mode=2))
            async with broker.consume(q) as consumer:
                first = await _next(consumer)
                await first.nack(requeue=True)
                second = await _next(consumer)
                assert second.redelivered
                assert second.properties.headers.get("x-delivery-count") == 1
                await second.nack(requeue=True)
            async with broker.consume(dlq) as consumer:
                d = await _next(consumer)
                assert d.body == b"poison"
                await d.ack()
    finally:
        await broker.delete_queue(q)
        await broker.delete_queue(dlq)


async def test_stream_offsets(broker: Broker, unique: str) -> None:
    q = f"t.stream.{unique}"
    await broker.declare_queue(QueueSpec(q, arguments={"x-queue-type": "stream"}))
    try:
        with anyio.fail_after(20):
            before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
            for i in range(5):
                await broker.publish("", q, f"m{i}".encode())

            async def read(offset: object, n: int) -> list[bytes]:
                out = []
                async with broker.consume(q, prefetch=10, offset=offset) as consumer:  # type: ignore[arg-type]
                    for _ in range(n):
                        d = await _next(consumer)
                        out.append(d.body)
                        await d.ack()
                return out

            assert await read("first", 5) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
            assert await read(2, 3) == [b"m2", b"m3", b"m4"]
            assert await read(before, 5) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
            assert (await read("last", 1))[0].startswith(b"m")
            async with broker.consume(q, prefetch=10, offset="next") as consumer:
                with pytest.raises(TimeoutError):
                    await _next(consumer, wait=0.5)
                await broker.publish("", q, b"new")
                d = await _next(consumer)
                assert d.body == b"new"
                await d.ack()
    finally:
        await broker.delete_queue(q)


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_stream_offset_on_non_stream_queue(
    broker: Broker, unique: str, queue_type: str
) -> None:
    """RabbitMQ (3.10) refuses ``x-stream-offset`` on classic and quorum queues with
    406 PRECONDITION_FAILED at ``basic.consume``; both adapters surface it."""
    q = f"t.nostream.{unique}"
    await broker.declare_queue(QueueSpec(q, arguments={"x-queue-type": queue_type}))
    try:
        with anyio.fail_after(10):
            for offset in ("first", 0):
                with pytest.raises(PreconditionFailed) as info:
                    async with broker.consume(q, prefetch=1, offset=offset):
                        pass
                assert info.value.reply_code == 406
            await broker.publish("", q, b"still-usable")
            async with broker.consume(q, prefetch=1) as consumer:
                d = await _next(consumer)
                assert d.body == b"still-usable"
                await d.ack()
    finally:
        await broker.delete_queue(q)


async def test_body_larger_than_frame_max(broker: Broker, unique: str) -> None:
    q = f"t.big.{unique}"
    body = bytes(range(256)) * 4000  # ~1 MB, many frames
    await broker.declare_queue(QueueSpec(q, durable=False))
    try:
        with anyio.fail_after(20):
            await broker.publish("", q, body)
            await broker.publish("", q, b"")
            async with broker.consume(q, prefetch=2) as consumer:
                d1, d2 = await _next(consumer), await _next(consumer)
                assert d1.body == body
                assert d2.body == b""
                await d1.ack()
                await d2.ack()
    finally:
        await broker.delete_queue(q)


async def test_consumer_cancelled_by_queue_deletion(broker: Broker, unique: str) -> None:
    q = f"t.gone.{unique}"
    await broker.declare_queue(QueueSpec(q, durable=False))
    with anyio.fail_after(10):
        async with broker.consume(q) as consumer:
            await broker.delete_queue(q)
            with pytest.raises(ConsumerCancelled) as info:
                await _next(consumer)
            assert info.value.queue == q
        # the broker stays usable
        await broker.declare_queue(QueueSpec(q, durable=False))
        await broker.delete_queue(q)


async def test_leaving_consume_requeues_unsettled(broker: Broker, unique: str) -> None:
    q = f"t.requeue.{unique}"
    await broker.declare_queue(QueueSpec(q, durable=False))
    try:
        with anyio.fail_after(10):
            await broker.publish("", q, b"keep")
            async with broker.consume(q) as consumer:
                await _next(consumer)
            async with broker.consume(q) as consumer:
                d = await _next(consumer)
                assert d.body == b"keep"
                assert d.redelivered
                await d.ack()
    finally:
        await broker.delete_queue(q)


async def test_cancelled_publishes_do_not_corrupt(broker: Broker, unique: str) -> None:
    q = f"t.cancel.{unique}"
    await broker.declare_queue(QueueSpec(q, durable=False))
    try:
        with anyio.fail_after(20):
            for _ in range(20):
                with anyio.move_on_after(0.001):
                    async with anyio.create_task_group() as tg:
                        for i in range(50):
                            tg.start_soon(
                                broker.publish, "", q, b"y" * 200_000 if i % 7 == 0 else b"x"
                            )
            await broker.publish("", q, b"final")
            n = (await broker.inspect_queue(q)).message_count
            assert n >= 1
            await broker.purge_queue(q)
    finally:
        await broker.delete_queue(q)


async def test_buffered_deliveries_stay_cancellable_and_fair(broker: Broker, unique: str) -> None:
    """Consumers take buffered deliveries without a task switch each, but still
    honour cancellation and let other tasks run."""
    q = f"t.fastpath.{unique}"
    n = 600
    await broker.declare_queue(QueueSpec(q))
    try:
        with anyio.fail_after(30):
            for i in range(n):
                await broker.publish("", q, str(i).encode())
            async with broker.consume(q, prefetch=n) as consumer:
                first = await _next(consumer)
                await first.ack()
                # The rest are on their way into the buffer once the broker holds none.
                while (await broker.inspect_queue(q)).message_count:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await consumer.__aiter__().__anext__()
                assert scope.cancelled_caught
                ticks = 0

                async def ticker() -> None:
                    nonlocal ticks
                    while True:
                        ticks += 1
                        await anyio.lowlevel.checkpoint()

                got = [first.body]
                async with anyio.create_task_group() as tg:
                    tg.start_soon(ticker)
                    async for d in consumer:
                        got.append(d.body)
                        await d.ack()
                        if len(got) == n:
                            break
                    ran = ticks
                    tg.cancel_scope.cancel()
                assert sorted(int(b) for b in got) == list(range(n))
                assert ran >= 2, ran  # the consumer yielded while taking buffered deliveries
    finally:
        await broker.delete_queue(q)
