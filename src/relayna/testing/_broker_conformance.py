"""A public conformance checker for :class:`relayna.transport.Broker` adapters.

Each ``check_*`` coroutine takes an already-open broker, a name prefix unique
to the run (every queue and exchange a check declares starts with it) and a
:class:`BrokerCapabilities`, and raises :class:`AssertionError` when the
adapter breaks the contract. Checks delete what they declare, even when they
fail. They assert only what RabbitMQ 3.10+ really guarantees, so the same
suite runs against the native AMQP adapter, aiormq and the in-memory broker::

    async with open_broker(url) as broker:
        for check in BROKER_CHECKS:
            if check.applies(caps):
                await check.run(broker, f"{prefix}.{check.name}", caps)

or simply ``await check_broker(broker, prefix, caps)``.

Deliveries are read by a task that pumps the consumer into a memory object
stream, so waiting "for nothing to arrive" never cancels the adapter's
iterator.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import attrs

from relayna.errors import (
    AccessRefused,
    BrokerError,
    ChannelClosed,
    ConsumerCancelled,
    NotFound,
    PreconditionFailed,
    UnroutableError,
)
from relayna.transport._broker import (
    BindingSpec,
    Broker,
    Delivery,
    ExchangeSpec,
    ExchangeType,
    Properties,
    QueueSpec,
    StreamOffset,
)

__all__ = ["BROKER_CHECKS", "BrokerCapabilities", "BrokerCheck", "check_broker"]

_E = TypeVar("_E", bound=BaseException)


@attrs.frozen
class BrokerCapabilities:
    """What the broker under test supports; checks needing more are skipped.

    ``ttl_accuracy`` is the relative tolerance of TTL timing checks (0.1 = ±10 %).
    """

    streams: bool = True
    quorum: bool = True
    priorities: bool = True
    delivery_limit: bool = True
    ttl_accuracy: float = 0.1


CheckFunction = Callable[[Broker, str, BrokerCapabilities], Awaitable[None]]


@attrs.frozen
class BrokerCheck:
    """One named check and the capabilities it needs."""

    name: str
    run: CheckFunction
    requires: frozenset[str] = frozenset()

    def applies(self, caps: BrokerCapabilities) -> bool:
        return all(getattr(caps, name) for name in self.requires)


# -- helpers -------------------------------------------------------------------


def _expect(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def _raises(kind: type[_E], operation: Coroutine[Any, Any, object], what: str) -> _E:
    try:
        await operation
    except kind as exc:
        return exc
    raise AssertionError(f"{what}: expected {kind.__name__}, nothing was raised")


async def _eventually(
    probe: Callable[[], Awaitable[object]], expected: object, what: str, within: float = 5.0
) -> None:
    """Poll ``probe`` until it returns ``expected`` (queue stats settle asynchronously)."""
    value: object = None
    with anyio.move_on_after(within):
        while True:
            value = await probe()
            if value == expected:
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"{what}: expected {expected!r}, still {value!r} after {within}s")


class _Resources:
    """Declares queues/exchanges and deletes them again at exit."""

    def __init__(self, broker: Broker, prefix: str) -> None:
        self.broker = broker
        self.prefix = prefix
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    async def queue(self, suffix: str, **arguments: Any) -> str:
        name = f"{self.prefix}.{suffix}"
        self.queues.append(name)
        await self.broker.declare_queue(QueueSpec(name, arguments=arguments))
        return name

    async def exchange(self, suffix: str, kind: ExchangeType = "direct") -> str:
        name = f"{self.prefix}.{suffix}"
        self.exchanges.append(name)
        await self.broker.declare_exchange(ExchangeSpec(name, kind))
        return name

    async def bind(self, queue: str, exchange: str, key: str = "", **arguments: Any) -> None:
        await self.broker.bind_queue(BindingSpec(queue, exchange, key, arguments=arguments))

    async def cleanup(self) -> None:
        with anyio.CancelScope(shield=True), anyio.fail_after(15):
            for name in self.queues:
                await self.broker.delete_queue(name)
            for name in self.exchanges:
                await self.broker.delete_exchange(name)


@asynccontextmanager
async def _resources(broker: Broker, prefix: str) -> AsyncIterator[_Resources]:
    res = _Resources(broker, prefix)
    try:
        yield res
    finally:
        await res.cleanup()


@attrs.frozen
class _End:
    error: BaseException | None


class _Inbox:
    def __init__(self, receive: anyio.abc.ObjectReceiveStream[Delivery | _End], queue: str) -> None:
        self._receive = receive
        self.queue = queue

    async def next(self, within: float = 5.0) -> Delivery:
        try:
            with anyio.fail_after(within):
                item = await self._receive.receive()
        except TimeoutError:
            raise AssertionError(f"no delivery from {self.queue!r} within {within}s") from None
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            raise AssertionError(f"consumer of {self.queue!r} ended unexpectedly")
        return item

    async def take(self, count: int, *, ack: bool = True, within: float = 5.0) -> list[Delivery]:
        deliveries = [await self.next(within) for _ in range(count)]
        if ack:
            for delivery in deliveries:
                await delivery.ack()
        return deliveries

    async def quiet(self, seconds: float) -> None:
        """Assert that nothing is delivered for ``seconds``."""
        with anyio.move_on_after(seconds):
            item = await self._receive.receive()
            raise AssertionError(f"unexpected delivery from {self.queue!r}: {item!r}")


@asynccontextmanager
async def _consuming(
    broker: Broker, queue: str, *, prefetch: int = 10, offset: StreamOffset | None = None
) -> AsyncIterator[_Inbox]:
    send, receive = anyio.create_memory_object_stream[Delivery | _End](math.inf)

    async def pump() -> None:
        async with send:
            try:
                async for delivery in consumer:
                    await send.send(delivery)
            except BrokerError as exc:  # handed to the check, which re-raises it
                await send.send(_End(exc))
            else:
                await send.send(_End(None))

    async with broker.consume(queue, prefetch=prefetch, offset=offset) as consumer:
        async with anyio.create_task_group() as tg, receive:
            tg.start_soon(pump)
            yield _Inbox(receive, queue)
            tg.cancel_scope.cancel()


async def _bodies(broker: Broker, queue: str, count: int) -> list[bytes]:
    async with _consuming(broker, queue, prefetch=max(count, 1)) as inbox:
        deliveries = await inbox.take(count)
        await inbox.quiet(0.1)
    return [d.body for d in deliveries]


def _deaths(delivery: Delivery) -> list[dict[str, Any]]:
    deaths = delivery.properties.headers.get("x-death")
    _expect(
        isinstance(deaths, list) and deaths, f"no x-death header: {delivery.properties.headers!r}"
    )
    assert isinstance(deaths, list)
    return [dict(entry) for entry in deaths]


def _within(elapsed: float, delay: float, caps: BrokerCapabilities, what: str) -> None:
    low, high = delay * (1 - caps.ttl_accuracy), delay * (1 + caps.ttl_accuracy)
    _expect(low <= elapsed <= high, f"{what}: took {elapsed:.3f}s, expected {low:.3f}..{high:.3f}s")


# -- declarations, errors -------------------------------------------------------


async def check_declare(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Redeclares are idempotent; conflicts raise 406 and the broker stays usable."""
    async with _resources(broker, prefix) as res:
        exchange = await res.exchange("x", "direct")
        await broker.declare_exchange(ExchangeSpec(exchange, "direct"))
        queue = await res.queue("q", **{"x-message-ttl": 60_000})
        info = await broker.declare_queue(QueueSpec(queue, arguments={"x-message-ttl": 60_000}))
        _expect(info.name == queue and info.message_count == 0, f"redeclare returned {info!r}")
        err = await _raises(
            PreconditionFailed,
            broker.declare_exchange(ExchangeSpec(exchange, "fanout")),
            "exchange redeclared with another type",
        )
        _expect(err.reply_code == 406, f"reply_code {err.reply_code}, expected 406")
        err = await _raises(
            PreconditionFailed,
            broker.declare_queue(QueueSpec(queue, arguments={"x-message-ttl": 1_000})),
            "queue redeclared with other arguments",
        )
        _expect(err.reply_code == 406, f"reply_code {err.reply_code}, expected 406")
        await res.bind(queue, exchange, "k")
        await broker.publish(exchange, "k", b"still usable")
        info = await broker.inspect_queue(queue)
        _expect(info.message_count == 1, f"after conflicts, depth {info.message_count} != 1")


async def check_errors(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Missing exchange → NotFound(404); missing queue → NotFound; default exchange → 403."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q")
        err: ChannelClosed = await _raises(
            NotFound,
            broker.publish(f"{prefix}.missing", "k", b"x"),
            "publish to a missing exchange",
        )
        _expect(err.reply_code == 404, f"reply_code {err.reply_code}, expected 404")
        await _raises(
            NotFound, broker.inspect_queue(f"{prefix}.missing"), "inspect a missing queue"
        )
        await _raises(
            NotFound,
            broker.bind_queue(BindingSpec(queue, f"{prefix}.missing", "k")),
            "bind to a missing exchange",
        )
        err = await _raises(
            AccessRefused,
            broker.bind_queue(BindingSpec(queue, "", queue)),
            "bind to the default exchange",
        )
        _expect(err.reply_code == 403, f"reply_code {err.reply_code}, expected 403")
        await broker.publish("", queue, b"routed by name")
        info = await broker.inspect_queue(queue)
        _expect(info.message_count == 1, f"default exchange did not route by queue name: {info!r}")


async def check_unroutable(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """A mandatory publish that reaches no queue raises UnroutableError."""
    async with _resources(broker, prefix) as res:
        exchange = await res.exchange("x", "direct")
        err = await _raises(
            UnroutableError,
            broker.publish(exchange, "nowhere", b"x", mandatory=True),
            "mandatory publish",
        )
        _expect(
            err.exchange == exchange and err.routing_key == "nowhere", f"error context: {err!r}"
        )
        await _raises(
            UnroutableError,
            broker.publish("", f"{prefix}.no-queue", b"x"),
            "default exchange, no queue",
        )
        await broker.publish(exchange, "nowhere", b"x", mandatory=False)
        queue = await res.queue("q")
        await res.bind(queue, exchange, "somewhere")
        await broker.publish(exchange, "somewhere", b"x", mandatory=True)
        _expect((await broker.inspect_queue(queue)).message_count == 1, "routable publish lost")


# -- publish / consume ------------------------------------------------------------


def _rich_properties(broker: Broker) -> Properties:
    parts = urlsplit(broker.url)
    user = "relayna" if parts.scheme == "memory" else parts.username
    headers: dict[str, Any] = {
        "str": "text ✓",
        "int": 42,
        "negative": -7,
        "max-long": 2**63 - 1,
        "min-long": -(2**63),
        "true": True,
        "false": False,
        "float": 1.5,
        "decimal": Decimal("12.345"),
        "timestamp": datetime(2024, 5, 17, 12, 30, 45, tzinfo=UTC),
        "void": None,
        "bytes": b"\x00\x01\xff",
        "array": [1, "two", [3, {"four": 4}], Decimal("-0.5")],
        "table": {"nested": {"deep": [True, None, "x"]}, "n": 1},
    }
    return Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=3,
        correlation_id="corr-1",
        reply_to="reply.queue",
        expiration="600000",
        message_id="msg-1",
        timestamp=datetime(2024, 5, 17, 12, 30, 45, tzinfo=UTC),
        type="relayna.test",
        user_id=user,
        app_id="relayna-conformance",
    )


async def check_round_trip(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Body, every basic property and rich header values survive a round trip."""
    async with _resources(broker, prefix) as res:
        exchange = await res.exchange("x", "direct")
        queue = await res.queue("q")
        await res.bind(queue, exchange, "rk")
        sent = _rich_properties(broker)
        body = bytes(range(256)) * 4
        await broker.publish(exchange, "rk", body, sent)
        async with _consuming(broker, queue) as inbox:
            delivery = await inbox.next()
            await delivery.ack()
            _expect(delivery.settled, "delivery not settled after ack")
        _expect(delivery.body == body, "body changed in transit")
        _expect(
            delivery.exchange == exchange and delivery.routing_key == "rk",
            f"routing info: {delivery!r}",
        )
        _expect(not delivery.redelivered, "first delivery marked redelivered")
        got = delivery.properties
        for field in attrs.fields(Properties):
            if field.name == "headers":
                continue
            _expect(
                getattr(got, field.name) == getattr(sent, field.name),
                f"property {field.name}: sent {getattr(sent, field.name)!r}, got {getattr(got, field.name)!r}",
            )
        for key, value in sent.headers.items():
            _expect(key in got.headers, f"header {key!r} lost")
            _expect(
                got.headers[key] == value,
                f"header {key!r}: sent {value!r}, got {got.headers[key]!r}",
            )
        _expect(
            got.timestamp is not None and got.timestamp.tzinfo is not None, "timestamp not tz-aware"
        )


async def check_large_bodies(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Bodies bigger than an AMQP frame (and empty bodies) arrive intact."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q")
        big = os.urandom(300 * 1024 + 7)
        for body in (big, b"", b"x"):
            await broker.publish("", queue, body)
        _expect(await _bodies(broker, queue, 3) == [big, b"", b"x"], "large/empty bodies corrupted")


async def check_concurrent_confirms(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """10 000 publishes from 100 concurrent tasks are all confirmed and enqueued."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q")

        async def publisher(worker: int) -> None:
            for i in range(100):
                await broker.publish("", queue, f"{worker}:{i}".encode())

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for worker in range(100):
                    tg.start_soon(publisher, worker)
        info = await broker.inspect_queue(queue)
        _expect(
            info.message_count == 10_000,
            f"{info.message_count} of 10000 confirmed messages enqueued",
        )
        purged = await broker.purge_queue(queue)
        _expect(purged == 10_000, f"purge returned {purged}")


async def check_prefetch(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Never more unsettled deliveries than ``prefetch``; settling frees credit."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q")
        for i in range(8):
            await broker.publish("", queue, str(i).encode())
        async with _consuming(broker, queue, prefetch=3) as inbox:
            held = [await inbox.next() for _ in range(3)]
            await inbox.quiet(0.3)
            await held.pop(0).ack()
            held.append(await inbox.next())
            await inbox.quiet(0.2)
            await held.pop(0).nack(requeue=False)
            held.append(await inbox.next())
            await inbox.quiet(0.2)
            _expect(
                [d.body for d in held] == [b"2", b"3", b"4"], f"order: {[d.body for d in held]}"
            )
            for delivery in held:
                await delivery.ack()
            await inbox.take(3)


async def check_requeue(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """nack/reject with requeue redeliver the message with ``redelivered`` set."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q")
        await broker.publish("", queue, b"a")
        async with _consuming(broker, queue, prefetch=1) as inbox:
            first = await inbox.next()
            _expect(not first.redelivered, "fresh delivery marked redelivered")
            await first.nack(requeue=True)
            second = await inbox.next()
            _expect(second.body == b"a" and second.redelivered, "nack(requeue) not redelivered")
            await second.reject(requeue=True)
            third = await inbox.next()
            _expect(third.body == b"a" and third.redelivered, "reject(requeue) not redelivered")
            await third.ack()
            await inbox.quiet(0.1)


async def check_exit_requeues(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Leaving the consume block requeues unsettled deliveries, in original order."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("q")
        for body in (b"a", b"b", b"c"):
            await broker.publish("", queue, body)
        async with _consuming(broker, queue, prefetch=3) as inbox:
            await inbox.take(3, ack=False)

        async def depth() -> int:
            return (await broker.inspect_queue(queue)).message_count

        await _eventually(depth, 3, "requeued messages after consumer exit")
        async with _consuming(broker, queue, prefetch=3) as inbox:
            again = await inbox.take(3)
        _expect([d.body for d in again] == [b"a", b"b", b"c"], f"order {[d.body for d in again]}")
        _expect(all(d.redelivered for d in again), "requeued messages not marked redelivered")


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


# -- routing ------------------------------------------------------------------------


async def _depths(broker: Broker, queues: list[str]) -> list[int]:
    return [(await broker.inspect_queue(queue)).message_count for queue in queues]


async def check_topic_routing(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Topic exchange: ``*`` matches one word, ``#`` zero or more."""
    async with _resources(broker, prefix) as res:
        exchange = await res.exchange("topic", "topic")
        patterns = ["a.*", "a.#", "#", "*.b.*", "a.b"]
        queues = [await res.queue(f"q{i}") for i in range(len(patterns))]
        for queue, pattern in zip(queues, patterns, strict=True):
            await res.bind(queue, exchange, pattern)
        cases = {
            "a.b": [1, 1, 1, 0, 1],
            "a": [0, 1, 1, 0, 0],
            "a.b.c": [0, 1, 1, 1, 0],
            "x.b.y": [0, 0, 1, 1, 0],
        }
        for key, expected in cases.items():
            await broker.publish(exchange, key, key.encode())
            depths = await _depths(broker, queues)
            _expect(depths == expected, f"key {key!r} reached {depths}, expected {expected}")
            for queue in queues:
                await broker.purge_queue(queue)


async def check_fanout_direct_routing(
    broker: Broker, prefix: str, caps: BrokerCapabilities
) -> None:
    """Fanout ignores keys; direct routes on exact keys to every bound queue."""
    async with _resources(broker, prefix) as res:
        fanout = await res.exchange("fanout", "fanout")
        direct = await res.exchange("direct", "direct")
        queues = [await res.queue(f"q{i}") for i in range(3)]
        await res.bind(queues[0], fanout, "x")
        await res.bind(queues[1], fanout, "y")
        await res.bind(queues[0], direct, "k")
        await res.bind(queues[2], direct, "k")
        await res.bind(queues[2], direct, "k")  # duplicate binding: still one copy
        await broker.publish(fanout, "anything", b"f")
        _expect(await _depths(broker, queues) == [1, 1, 0], "fanout routing")
        await broker.publish(direct, "k", b"d")
        await broker.publish(direct, "K", b"d", mandatory=False)
        _expect(await _depths(broker, queues) == [2, 1, 1], "direct routing")


async def check_headers_routing(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Headers exchange with ``x-match`` all and any."""
    async with _resources(broker, prefix) as res:
        exchange = await res.exchange("headers", "headers")
        q_all = await res.queue("all")
        q_any = await res.queue("any")
        await res.bind(q_all, exchange, "", **{"x-match": "all", "kind": "task", "v": 2})
        await res.bind(q_any, exchange, "", **{"x-match": "any", "kind": "task", "v": 2})
        publishes: list[tuple[dict[str, Any], list[int]]] = [
            ({"kind": "task", "v": 2, "extra": "y"}, [1, 1]),
            ({"kind": "task"}, [1, 2]),
            ({"v": 3}, [1, 2]),
        ]
        for headers, expected in publishes:
            await broker.publish(exchange, "", b"h", Properties(headers=headers), mandatory=False)
            depths = await _depths(broker, [q_all, q_any])
            _expect(
                depths == expected, f"headers {headers!r}: depths {depths}, expected {expected}"
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


BROKER_CHECKS: tuple[BrokerCheck, ...] = (
    BrokerCheck("declare", check_declare),
    BrokerCheck("errors", check_errors),
    BrokerCheck("unroutable", check_unroutable),
    BrokerCheck("round_trip", check_round_trip),
    BrokerCheck("large_bodies", check_large_bodies),
    BrokerCheck("concurrent_confirms", check_concurrent_confirms),
    BrokerCheck("prefetch", check_prefetch),
    BrokerCheck("requeue", check_requeue),
    BrokerCheck("exit_requeues", check_exit_requeues),
    BrokerCheck("dead_letter", check_dead_letter),
    BrokerCheck("ttl_retry", check_ttl_retry),
    BrokerCheck("message_expiration", check_message_expiration),
    BrokerCheck("priority", check_priority, frozenset({"priorities"})),
    BrokerCheck("max_length", check_max_length),
    BrokerCheck("single_active_consumer", check_single_active_consumer),
    BrokerCheck(
        "quorum_delivery_limit",
        check_quorum_delivery_limit,
        frozenset({"quorum", "delivery_limit"}),
    ),
    BrokerCheck("stream_offsets", check_stream_offsets, frozenset({"streams"})),
    BrokerCheck("stream_timestamp", check_stream_timestamp, frozenset({"streams"})),
    BrokerCheck("topic_routing", check_topic_routing),
    BrokerCheck("fanout_direct_routing", check_fanout_direct_routing),
    BrokerCheck("headers_routing", check_headers_routing),
    BrokerCheck("inspect_and_delete", check_inspect_and_delete),
    BrokerCheck("delete_cancels_consumer", check_delete_cancels_consumer),
)
"""Every check, in a sensible order. Run each with a fresh prefix."""


async def check_broker(broker: Broker, prefix: str, caps: BrokerCapabilities | None = None) -> None:
    """Run every applicable check in :data:`BROKER_CHECKS` (each under ``prefix.name``)."""
    caps = caps or BrokerCapabilities()
    for check in BROKER_CHECKS:
        if check.applies(caps):
            with anyio.fail_after(90):
                await check.run(broker, f"{prefix}.{check.name}", caps)
