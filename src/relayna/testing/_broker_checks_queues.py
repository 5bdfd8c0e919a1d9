"""Broker conformance checks: queue features, streams and queue management."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio

from relayna.errors import ConsumerCancelled, NotFound
from relayna.testing._broker_support import (
    BrokerCapabilities,
    _bodies,
    _consuming,
    _deaths,
    _eventually,
    _expect,
    _raises,
    _resources,
    _within,
)
from relayna.transport import Broker, Delivery, Properties, StreamOffset


async def check_dead_letter(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """reject(requeue=False) dead-letters with an ``x-death`` history."""
    async with _resources(broker, prefix) as res:
        dlx = await res.exchange("dlx", "fanout")
        dlq = await res.queue("dlq")
        await res.bind(dlq, dlx)
        work = await res.queue("work", **{"x-dead-letter-exchange": dlx})
        await broker.publish("", work, b"poison", Properties(headers={"app": "v"}))
        for round_ in (1, 2):
            async with _consuming(broker, work, prefetch=1) as inbox:
                await (await inbox.next()).reject(requeue=False)
            async with _consuming(broker, dlq, prefetch=1) as inbox:
                dead = await inbox.next()
                await dead.ack()
            _expect(dead.body == b"poison", "dead-lettered body changed")
            _expect(dead.exchange == dlx and dead.routing_key == work, f"routing {dead!r}")
            deaths = _deaths(dead)
            _expect(len(deaths) == 1, f"x-death not compressed by queue+reason: {deaths!r}")
            death = deaths[0]
            for key, value in {
                "queue": work,
                "reason": "rejected",
                "count": round_,
                "exchange": "",
            }.items():
                _expect(death.get(key) == value, f"x-death {key}: {death.get(key)!r} != {value!r}")
            _expect(list(death.get("routing-keys", [])) == [work], f"routing-keys {death!r}")
            _expect(isinstance(death.get("time"), datetime), f"x-death time {death.get('time')!r}")
            headers = dead.properties.headers
            _expect(headers.get("x-first-death-reason") == "rejected", f"first death {headers!r}")
            _expect(headers.get("x-first-death-queue") == work, f"first death {headers!r}")
            _expect(headers.get("app") == "v", "application header lost")
            await broker.publish("", work, dead.body, dead.properties)


async def check_ttl_retry(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Retry queue: ``x-message-ttl`` + DLX moves messages back on time, unattended."""
    delay = 0.4
    async with _resources(broker, prefix) as res:
        work = await res.queue("work")
        retry = await res.queue(
            "retry",
            **{
                "x-message-ttl": int(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": work,
            },
        )
        async with _consuming(broker, work, prefetch=5) as inbox:
            start = anyio.current_time()
            await broker.publish("", retry, b"one")
            await anyio.sleep(0.15)
            await broker.publish("", retry, b"two")
            for body, sent_at in ((b"one", start), (b"two", start + 0.15)):
                delivery = await inbox.next()
                _within(anyio.current_time() - sent_at, delay, caps, f"retry of {body!r}")
                _expect(delivery.body == body, f"got {delivery.body!r}, expected {body!r}")
                death = _deaths(delivery)[0]
                _expect(
                    death.get("reason") == "expired" and death.get("queue") == retry,
                    f"x-death {death!r}",
                )
                await delivery.ack()


async def check_message_expiration(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Per-message ``expiration`` dead-letters with ``original-expiration``."""
    delay = 0.3
    async with _resources(broker, prefix) as res:
        dlq = await res.queue("dlq")
        parked = await res.queue(
            "parked", **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
        )
        async with _consuming(broker, dlq) as inbox:
            start = anyio.current_time()
            await broker.publish(
                "", parked, b"short", Properties(expiration=str(int(delay * 1000)))
            )
            delivery = await inbox.next()
            _within(anyio.current_time() - start, delay, caps, "per-message expiration")
            await delivery.ack()
        death = _deaths(delivery)[0]
        _expect(death.get("reason") == "expired", f"x-death {death!r}")
        _expect(death.get("original-expiration") == str(int(delay * 1000)), f"x-death {death!r}")
        _expect(delivery.properties.expiration is None, "expiration kept on the dead-lettered copy")


async def check_priority(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """``x-max-priority``: higher priority first, FIFO within one priority."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q", **{"x-max-priority": 10})
        priorities = [None, 1, 5, 9, 5, 1, 9, 0]
        for index, priority in enumerate(priorities):
            await broker.publish("", queue, str(index).encode(), Properties(priority=priority))
        got = await _bodies(broker, queue, len(priorities))
        expected = sorted(range(len(priorities)), key=lambda i: (-(priorities[i] or 0), i))
        _expect(got == [str(i).encode() for i in expected], f"priority order {got}")


async def check_max_length(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """``x-max-length`` drops from the head and dead-letters with reason ``maxlen``."""
    async with _resources(broker, prefix) as res:
        dlq = await res.queue("dlq")
        queue = await res.queue(
            "q",
            **{"x-max-length": 3, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq},
        )
        for i in range(5):
            await broker.publish("", queue, str(i).encode())
        _expect((await broker.inspect_queue(queue)).message_count == 3, "max-length not applied")
        _expect(await _bodies(broker, queue, 3) == [b"2", b"3", b"4"], "head not dropped")
        async with _consuming(broker, dlq) as inbox:
            dropped = await inbox.take(2)
        _expect(
            [d.body for d in dropped] == [b"0", b"1"], f"dead-lettered {[d.body for d in dropped]}"
        )
        _expect(_deaths(dropped[0])[0].get("reason") == "maxlen", "x-death reason is not maxlen")


async def check_single_active_consumer(
    broker: Broker, prefix: str, caps: BrokerCapabilities
) -> None:
    """``x-single-active-consumer``: one consumer gets everything until it leaves."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q", **{"x-single-active-consumer": True})
        async with _consuming(broker, queue, prefetch=10) as standby_first:
            async with _consuming(broker, queue, prefetch=10) as standby:
                for i in range(4):
                    await broker.publish("", queue, str(i).encode())
                await standby_first.take(4, ack=False)
                await standby.quiet(0.2)
                _expect((await broker.inspect_queue(queue)).consumer_count == 2, "consumer count")
            await standby_first.quiet(0.05)


async def check_quorum_delivery_limit(
    broker: Broker, prefix: str, caps: BrokerCapabilities
) -> None:
    """Quorum queue with ``x-delivery-limit``: dead-lettered after limit + 1 deliveries."""
    async with _resources(broker, prefix) as res:
        dlq = await res.queue("dlq")
        queue = await res.queue(
            "q",
            **{
                "x-queue-type": "quorum",
                "x-delivery-limit": 2,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dlq,
            },
        )
        await broker.publish("", queue, b"flaky")
        async with _consuming(broker, queue, prefetch=1) as inbox:
            for attempt in range(3):
                delivery = await inbox.next()
                _expect(
                    delivery.redelivered == (attempt > 0), f"redelivered flag on attempt {attempt}"
                )
                await delivery.nack(requeue=True)
            await inbox.quiet(0.3)
        async with _consuming(broker, dlq) as inbox:
            dead = await inbox.next()
            await dead.ack()
        _expect(dead.body == b"flaky", "dead-lettered body")
        _expect(_deaths(dead)[0].get("reason") == "delivery_limit", f"x-death {_deaths(dead)!r}")


# -- streams ----------------------------------------------------------------------


async def _stream_read(
    broker: Broker, queue: str, offset: StreamOffset, count: int
) -> list[Delivery]:
    async with _consuming(broker, queue, prefetch=20, offset=offset) as inbox:
        return await inbox.take(count)


def _offset_of(delivery: Delivery) -> int:
    value = delivery.properties.headers.get("x-stream-offset")
    _expect(
        isinstance(value, int), f"x-stream-offset header missing: {delivery.properties.headers!r}"
    )
    assert isinstance(value, int)
    return value


async def check_stream_offsets(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Streams are non-destructive; consumers start at first / number / last / next."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("s", **{"x-queue-type": "stream"})
        for i in range(10):
            await broker.publish("", queue, f"m{i}".encode())
        for _ in range(2):  # reading twice gives the same log
            got = await _stream_read(broker, queue, "first", 10)
            _expect([d.body for d in got] == [f"m{i}".encode() for i in range(10)], "first")
            _expect([_offset_of(d) for d in got] == list(range(10)), "offsets from first")
        got = await _stream_read(broker, queue, 4, 6)
        _expect([d.body for d in got] == [f"m{i}".encode() for i in range(4, 10)], "numeric offset")
        async with _consuming(broker, queue, prefetch=20, offset="last") as inbox:
            first = await inbox.next()
            seen = [first]
            while _offset_of(seen[-1]) < 9:
                seen.append(await inbox.next())
            offsets = [_offset_of(d) for d in seen]
            _expect(offsets == list(range(offsets[0], 10)), f"'last' offsets {offsets}")
            _expect(seen[-1].body == b"m9", "'last' did not include the last message")
            await inbox.quiet(0.1)
        async with _consuming(broker, queue, prefetch=20, offset="next") as inbox:
            await inbox.quiet(0.2)
            await broker.publish("", queue, b"m10")
            delivery = await inbox.next()
            _expect(delivery.body == b"m10" and _offset_of(delivery) == 10, "'next'")
            await delivery.ack()


async def check_stream_timestamp(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """A timestamp offset starts at the first message published at or after it."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("s", **{"x-queue-type": "stream"})
        await broker.publish("", queue, b"before")
        now = datetime.now(UTC)
        mark = (now + timedelta(seconds=1)).replace(microsecond=0)
        await anyio.sleep((mark - now).total_seconds() + 0.15)
        await broker.publish("", queue, b"after-1")
        await broker.publish("", queue, b"after-2")
        got = await _stream_read(broker, queue, mark, 2)
        _expect(
            [d.body for d in got] == [b"after-1", b"after-2"],
            f"timestamp offset {[d.body for d in got]}",
        )


# -- queue management -----------------------------------------------------------------


async def check_inspect_and_delete(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """inspect_queue reports depth and consumers; purge/delete return counts."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q")
        for i in range(3):
            await broker.publish("", queue, str(i).encode())
        info = await broker.inspect_queue(queue)
        _expect((info.message_count, info.consumer_count) == (3, 0), f"inspect {info!r}")

        async def consumers() -> int:
            return (await broker.inspect_queue(queue)).consumer_count

        async with _consuming(broker, queue, prefetch=1) as inbox:
            await inbox.next()
            await _eventually(consumers, 1, "consumer_count while consuming")
        await _eventually(consumers, 0, "consumer_count after the consumer left")
        _expect(await broker.purge_queue(queue) == 3, "purge count")
        for i in range(2):
            await broker.publish("", queue, str(i).encode())
        _expect(await broker.delete_queue(queue) == 2, "delete count")
        await _raises(NotFound, broker.inspect_queue(queue), "inspect a deleted queue")
        _expect(await broker.delete_queue(queue) == 0, "deleting a missing queue")


async def check_delete_cancels_consumer(
    broker: Broker, prefix: str, caps: BrokerCapabilities
) -> None:
    """Deleting a queue cancels its consumers: iteration raises ConsumerCancelled."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q")
        async with _consuming(broker, queue) as inbox:
            await broker.delete_queue(queue)
            await _raises(
                ConsumerCancelled, inbox.next(within=5), "iterating a consumer of a deleted queue"
            )
