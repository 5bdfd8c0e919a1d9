"""Behaviour specific to the in-memory broker (the shared contract is in tests/conformance)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from relayna.errors import (
    ChannelClosed,
    ConnectionLost,
    ConsumerCancelled,
    PreconditionFailed,
    PublishNacked,
)
from relayna.transport import BindingSpec, ExchangeSpec, Properties, QueueSpec, open_broker
from relayna.transport.memory_broker import MemoryBroker, open_memory_broker
from relayna.transport.memory_broker._message import copy_properties
from relayna.transport.memory_broker._tables import headers_match, topic_matches

pytestmark = pytest.mark.anyio

RETRY_ARGS = {
    "x-message-ttl": 30_000,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": "work",
}


# -- pure matchers (no event loop) ----------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("a.*", "a.b", True),
        ("a.*", "a", False),
        ("a.*", "a.b.c", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#", "", True),
        ("#.c", "a.b.c", True),
        ("#.c", "c", True),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("a.#.c", "a.x.y", False),
        ("*.*", "a.b", True),
        ("*", "", True),
        ("a.b", "a.b", True),
        ("a.b", "a.bb", False),
    ],
)
def test_topic_matches(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_headers_match() -> None:
    binding: dict[str, Any] = {"x-match": "any", "a": 1, "b": None}
    assert headers_match(binding, {"b": "anything"})
    assert not headers_match(binding, {"a": 2})
    assert headers_match({"a": 1, "c": [1, {"d": 2}]}, {"a": 1, "c": [1, {"d": 2}]})
    assert not headers_match({"a": 1, "c": 2}, {"a": 1})
    assert headers_match({"x-match": "all", "x-ignored": 1}, {})
    assert not headers_match({"x-match": "all-with-x", "x-k": 1}, {})


# -- mock clock (trio) -----------------------------------------------------------


class TestMockClock:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        import trio.testing

        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})

    async def test_retry_queue_moves_messages_back_unattended(self) -> None:
        async with open_memory_broker() as broker:
            await broker.declare_queue(QueueSpec("work"))
            await broker.declare_queue(QueueSpec("retry", arguments=RETRY_ARGS))
            start = anyio.current_time()
            await broker.publish("", "retry", b"again")
            await anyio.sleep(29.9)
            assert (broker.queue_depth("retry"), broker.queue_depth("work")) == (1, 0)
            await anyio.sleep(0.2)
            assert (broker.queue_depth("retry"), broker.queue_depth("work")) == (0, 1)
            async with broker.consume("work") as consumer:
                async for delivery in consumer:
                    death = delivery.properties.headers["x-death"][0]
                    assert death["reason"] == "expired"
                    assert death["queue"] == "retry"
                    await delivery.ack()
                    break
            assert 30 <= anyio.current_time() - start < 30.2

    async def test_per_message_expiration_and_timer_rearm(self) -> None:
        async with open_memory_broker() as broker:
            await broker.declare_queue(QueueSpec("q"))
            await broker.publish("", "q", b"long", Properties(expiration="10000"))
            await broker.publish("", "q", b"short", Properties(expiration="1000"))
            await broker.publish("", "q", b"forever")
            await anyio.sleep(1.01)
            assert broker.queue_bodies("q") == [b"long", b"forever"]
            await anyio.sleep(9)
            assert broker.queue_bodies("q") == [b"forever"]

    async def test_expired_cycle_is_dropped(self) -> None:
        async with open_memory_broker() as broker:
            for name, other in (("a", "b"), ("b", "a")):
                args = {
                    "x-message-ttl": 1000,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": other,
                }
                await broker.declare_queue(QueueSpec(name, arguments=args))
            await broker.publish("", "a", b"loop")
            await anyio.sleep(1.5)
            assert broker.queue_depth("b") == 1
            await anyio.sleep(1.0)
            assert (broker.queue_depth("a"), broker.queue_depth("b")) == (0, 0)

    async def test_requeued_message_keeps_its_deadline(self) -> None:
        async with open_memory_broker() as broker:
            await broker.declare_queue(QueueSpec("q", arguments={"x-message-ttl": 5000}))
            await broker.publish("", "q", b"m")
            async with broker.consume("q") as consumer:
                async for delivery in consumer:
                    await anyio.sleep(6)
                    await delivery.nack(requeue=True)
                    break
            await anyio.sleep(0.01)
            assert broker.queue_depth("q") == 0


# -- copies, settlement, lifecycle ------------------------------------------------


async def test_messages_are_copied() -> None:
    headers: dict[str, Any] = {"nested": {"list": [1, 2]}}
    async with open_memory_broker() as broker:
        await broker.declare_queue(QueueSpec("q"))
        await broker.publish("", "q", b"body", Properties(headers=headers))
        headers["nested"]["list"].append(3)
        async with broker.consume("q") as consumer:
            it = aiter(consumer)
            first = await anext(it)
            assert first.properties.headers == {"nested": {"list": [1, 2]}}
            first.properties.headers["nested"]["list"].clear()
            await first.nack(requeue=True)
            second = await anext(it)
            assert second.properties.headers == {"nested": {"list": [1, 2]}}
            assert second.redelivered
            await second.ack()
            with pytest.raises(PreconditionFailed):
                await second.ack()


async def test_leaving_consume_block_requeues_and_late_settle_raises() -> None:
    async with open_memory_broker() as broker:
        await broker.declare_queue(QueueSpec("q"))
        for body in (b"1", b"2", b"3"):
            await broker.publish("", "q", body)
        async with broker.consume("q", prefetch=2) as consumer:
            it = aiter(consumer)
            held = await anext(it)
            assert broker.unacked_count("q") == 2  # one read, one buffered
            assert broker.queue_depth("q") == 1
        assert broker.consumer_count("q") == 0
        assert broker.unacked_count("q") == 0
        assert broker.queue_bodies("q") == [b"1", b"2", b"3"]
        with pytest.raises(ChannelClosed):
            await held.ack()


async def test_cancelled_consumer_task_requeues() -> None:
    async with open_memory_broker() as broker:
        await broker.declare_queue(QueueSpec("q"))
        await broker.publish("", "q", b"work")
        got = anyio.Event()

        async def worker() -> None:
            async with broker.consume("q") as consumer:
                async for _delivery in consumer:
                    got.set()
                    await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            await got.wait()
            tg.cancel_scope.cancel()
        assert broker.queue_depth("q") == 1


async def test_queue_deletion_drains_buffer_then_cancels() -> None:
    async with open_memory_broker() as broker:
        await broker.declare_queue(QueueSpec("q"))
        await broker.publish("", "q", b"buffered")
        async with broker.consume("q", prefetch=5) as consumer:
            it = aiter(consumer)
            await anyio.lowlevel.checkpoint()
            assert await broker.delete_queue("q") == 0
            delivery = await anext(it)
            assert delivery.body == b"buffered"
            await delivery.ack()  # queue is gone: a no-op, like RabbitMQ
            with pytest.raises(ConsumerCancelled) as info:
                await anext(it)
            assert info.value.queue == "q"


async def test_closing_broker_ends_consumers_cleanly_without_leaking_tasks() -> None:
    ended = anyio.Event()
    started = anyio.Event()
    before = len(anyio.get_running_tasks())
    async with anyio.create_task_group() as tg:
        async with open_memory_broker() as broker:
            await broker.declare_queue(QueueSpec("q"))

            async def consume() -> None:
                async with broker.consume("q") as consumer:
                    started.set()
                    async for _ in consumer:
                        pass  # pragma: no cover - nothing is published
                ended.set()

            tg.start_soon(consume)
            await started.wait()
        with anyio.fail_after(1):
            await ended.wait()
    assert len(anyio.get_running_tasks()) == before
    with pytest.raises(ConnectionLost):
        await broker.publish("", "q", b"late")


async def test_each_memory_url_is_a_private_broker() -> None:
    async with open_broker("memory://x?bad") as one, open_broker("memory://") as two:
        assert isinstance(one, MemoryBroker)
        assert isinstance(two, MemoryBroker)
        await one.declare_queue(QueueSpec("q"))
        assert one.queue_names() == ["q"]
        assert two.queue_names() == []


async def test_death_history_most_recent_first() -> None:
    async with open_memory_broker() as broker:
        await broker.declare_queue(QueueSpec("end"))
        await broker.declare_queue(QueueSpec("short", arguments={"x-message-ttl": 1, **_to("end")}))
        await broker.declare_queue(QueueSpec("work", arguments=_to("short")))
        await broker.publish("", "work", b"m")
        async with broker.consume("work") as consumer:
            async for delivery in consumer:
                await delivery.reject()
                break
        with anyio.fail_after(2):
            async with broker.consume("end") as consumer:
                async for delivery in consumer:
                    deaths = delivery.properties.headers["x-death"]
                    assert [(d["queue"], d["reason"]) for d in deaths] == [
                        ("short", "expired"),
                        ("work", "rejected"),
                    ]
                    assert delivery.properties.headers["x-first-death-reason"] == "rejected"
                    await delivery.ack()
                    break


def _to(queue: str) -> dict[str, Any]:
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}


async def test_delivery_limit_without_dlx_drops() -> None:
    async with open_memory_broker() as broker:
        args = {"x-queue-type": "quorum", "x-delivery-limit": 1}
        await broker.declare_queue(QueueSpec("q", arguments=args))
        await broker.publish("", "q", b"m")
        counts = []
        async with broker.consume("q") as consumer:
            it = aiter(consumer)
            for _ in range(2):
                delivery = await anext(it)
                counts.append(delivery.properties.headers.get("x-delivery-count"))
                await delivery.nack()
        assert counts == [None, 1]
        assert broker.queue_depth("q") == 0


async def test_reject_publish_overflow_nacks() -> None:
    async with open_memory_broker() as broker:
        args = {"x-max-length": 1, "x-overflow": "reject-publish"}
        await broker.declare_queue(QueueSpec("q", arguments=args))
        await broker.publish("", "q", b"1")
        with pytest.raises(PublishNacked):
            await broker.publish("", "q", b"2")
        assert broker.queue_bodies("q") == [b"1"]


async def test_introspection_and_alternate_exchange() -> None:
    async with open_memory_broker() as broker:
        await broker.declare_exchange(ExchangeSpec("ae", "fanout"))
        await broker.declare_exchange(
            ExchangeSpec("main", "direct", arguments={"alternate-exchange": "ae"})
        )
        await broker.declare_queue(QueueSpec("unrouted"))
        await broker.bind_queue(BindingSpec("unrouted", "ae"))
        await broker.publish("main", "nothing-bound", b"m")
        assert broker.queue_bodies("unrouted") == [b"m"]
        assert broker.exchange_names() == ["ae", "main"]
        assert [b.queue for b in broker.bindings("ae")] == ["unrouted"]
        info = await broker.declare_queue(QueueSpec(""))
        assert info.name.startswith("amq.gen-")


async def test_stream_offset_on_classic_queue_is_an_error() -> None:
    async with open_memory_broker() as broker:
        await broker.declare_queue(QueueSpec("q"))
        with pytest.raises(PreconditionFailed):
            async with broker.consume("q", offset="first"):
                pass  # pragma: no cover


def test_copied_properties_keep_every_field_and_share_no_headers() -> None:
    """copy_properties is written field by field: a field added to Properties
    must be added there too, or deliveries would silently lose it."""
    values: dict[str, Any] = {
        "headers": {"h": {"nested": [1, 2]}},
        "delivery_mode": 2,
        "priority": 7,
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
    for field in attrs.fields(Properties):
        values.setdefault(field.name, f"value-of-{field.name}")
    original = Properties(**values)
    copy = copy_properties(original)
    assert copy == original
    assert copy.headers is not original.headers
    assert copy.headers["h"] is not original.headers["h"]
