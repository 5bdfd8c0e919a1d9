"""Broker conformance checks: declarations, errors, publish/consume and routing."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs

from relayna.errors import (
    AccessRefused,
    ChannelClosed,
    NotFound,
    PreconditionFailed,
    UnroutableError,
)
from relayna.testing._broker_support import (
    BrokerCapabilities,
    _bodies,
    _consuming,
    _eventually,
    _expect,
    _raises,
    _resources,
)
from relayna.transport import BindingSpec, Broker, ExchangeSpec, Properties, QueueSpec

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
