"""The runtime's failing-over broker (``open_failover_broker``) against the real
RabbitMQ node, reached through two fault proxies named as two nodes of one URL.

Taking a proxy down closes the connection as a dead node would: the next
operation goes through the other "node" without a restart; a publish whose
confirm was cut off raises ``PublishOutcomeUnknown`` (and the test shows the
broker did get it, which is why nothing is republished silently);
``publish_idempotent`` sends it again; with every node down an operation fails
``BrokerUnavailable`` after the bound and the broker recovers once a node
answers; a DLQ replay refused that way leaves its record as it was. Native on
asyncio and trio, aiormq on asyncio (the ``adapter`` fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import anyio
import pytest

from _dlq_records import dlq_record  # tests/ is on sys.path
from _fault_proxy import FaultProxy, open_fault_proxy
from relayna.dlq import DLQService, DLQStore, DLQStoreConfig
from relayna.errors import BrokerUnavailable, PublishOutcomeUnknown
from relayna.transport import (
    Broker,
    ExchangeSpec,
    FailoverBroker,
    QueueSpec,
    open_broker,
    open_failover_broker,
    open_store,
    publish_idempotent,
)
from relayna.transport.amqp._hosts import FAILURE_MEMORY

pytestmark = pytest.mark.anyio

BOUND = 1.0  # unavailable_timeout in these tests


@asynccontextmanager
async def _two_nodes(amqp_url: str) -> AsyncIterator[tuple[FaultProxy, FaultProxy, str]]:
    port = urlsplit(amqp_url).port
    assert port is not None
    FAILURE_MEMORY.clear()  # other tests' dead nodes must not reorder ours
    async with open_fault_proxy(port) as first, open_fault_proxy(port) as second:
        hosts = f"127.0.0.1:{first.port},127.0.0.1:{second.port}"
        yield first, second, f"amqp://guest:guest@{hosts}/?connection_timeout=2"
    FAILURE_MEMORY.clear()


@asynccontextmanager
async def _failover(url: str, adapter: str) -> AsyncIterator[FailoverBroker]:
    async with open_failover_broker(url, adapter=adapter, unavailable_timeout=BOUND) as broker:  # type: ignore[arg-type]
        assert isinstance(broker, FailoverBroker)
        yield broker


async def _depth(broker: Broker, queue: str) -> int:
    return (await broker.inspect_queue(queue)).message_count


async def _until_noticed(broker: FailoverBroker, connection: Broker | None) -> None:
    """Until the broker saw ``connection`` close (a request racing with that
    moment may still take it: its publish then has an unknown outcome)."""
    while broker.current is connection:  # noqa: ASYNC110 - polling the broker's state
        await anyio.sleep(0.01)


async def _until_reconnected(broker: FailoverBroker, count: int) -> None:
    while broker.reconnects < count:  # noqa: ASYNC110 - polling the broker's counter
        await anyio.sleep(0.01)


async def test_operations_continue_through_the_next_node_after_a_loss(
    adapter: str, amqp_url: str, unique: str
) -> None:
    queue = f"t.fo.{unique}"
    exchange = f"t.fo.x.{unique}"
    with anyio.fail_after(30):
        async with _two_nodes(amqp_url) as (first, second, url), _failover(url, adapter) as broker:
            await broker.declare_exchange(ExchangeSpec(exchange, type="fanout"))
            await broker.declare_queue(QueueSpec(queue, durable=False))
            await broker.publish("", queue, b"before")
            assert second.stats.accepted == 0  # the first node answered
            first.down()  # that node dies: its connection is closed, new ones refused
            await _until_noticed(broker, broker.current)
            await broker.publish("", queue, b"after")  # no restart, no error
            assert second.stats.accepted >= 1
            assert broker.reconnects == 1
            await broker.publish(exchange, "", b"through the re-declared exchange", mandatory=False)
            assert await _depth(broker, queue) == 2
            await broker.delete_queue(queue)
            await broker.delete_exchange(exchange)


async def _cut_off(
    broker: FailoverBroker, proxy: FaultProxy, publish: Callable[[], Awaitable[None]]
) -> BaseException | None:
    """Run ``publish`` with its confirm swallowed by ``proxy``, then take that
    node down; its ``PublishOutcomeUnknown`` (None if it returned)."""
    await broker.publish("", "", b"warm-up", mandatory=False)  # the confirm channel is open
    proxy.downstream.blackhole = True  # the publish arrives, its confirm never does
    errors: list[BaseException] = []

    async def run() -> None:
        try:
            await publish()
        except PublishOutcomeUnknown as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        while proxy.stats.blackholed_bytes == 0:  # noqa: ASYNC110 - polling the proxy
            await anyio.sleep(0.01)  # the broker confirmed; the proxy ate it
        proxy.down()
    return errors[0] if errors else None


async def test_a_publish_cut_off_before_its_confirm_has_an_unknown_outcome(
    adapter: str, amqp_url: str, unique: str
) -> None:
    queue = f"t.fo.{unique}"
    with anyio.fail_after(30):
        async with _two_nodes(amqp_url) as (first, _second, url), _failover(url, adapter) as broker:
            await broker.declare_queue(QueueSpec(queue, durable=False))
            error = await _cut_off(broker, first, lambda: broker.publish("", queue, b"once"))
            assert isinstance(error, PublishOutcomeUnknown)
            # It is there: republishing it silently would make two copies.
            assert await _depth(broker, queue) == 1
            await broker.delete_queue(queue)


async def test_an_idempotent_publish_is_sent_again_after_an_unknown_outcome(
    adapter: str, amqp_url: str, unique: str
) -> None:
    queue = f"t.fo.{unique}"
    with anyio.fail_after(30):
        async with _two_nodes(amqp_url) as (first, _second, url), _failover(url, adapter) as broker:
            await broker.declare_queue(QueueSpec(queue, durable=False))
            error = await _cut_off(
                broker, first, lambda: publish_idempotent(broker, "", queue, b"cancel t1")
            )
            assert error is None  # it returned normally
            assert await _depth(broker, queue) == 2  # both copies: harmless for a cancel
            await broker.delete_queue(queue)


async def test_with_every_node_down_operations_fail_after_the_bound_then_recover(
    adapter: str, amqp_url: str, unique: str
) -> None:
    queue = f"t.fo.{unique}"
    with anyio.fail_after(40):
        async with _two_nodes(amqp_url) as (first, second, url), _failover(url, adapter) as broker:
            await broker.declare_queue(QueueSpec(queue, durable=False))
            first.down()
            second.down()
            await _until_noticed(broker, broker.current)
            started = anyio.current_time()
            with pytest.raises(BrokerUnavailable, match="no broker node answered"):
                await broker.publish("", queue, b"nobody home")
            assert anyio.current_time() - started >= BOUND
            with pytest.raises(BrokerUnavailable):
                await broker.inspect_queue(queue)
            second.up()
            reconnects = broker.reconnects
            with anyio.fail_after(15):  # the backoff between attempts is at most 5 s
                await _until_reconnected(broker, reconnects + 1)
            await broker.publish("", queue, b"back")
            assert await _depth(broker, queue) == 1
            await broker.delete_queue(queue)


async def test_a_dlq_replay_refused_for_want_of_a_node_leaves_the_record_as_it_was(
    adapter: str, amqp_url: str, redis_url: str, unique: str
) -> None:
    source = f"t.fo.src.{unique}"
    with anyio.fail_after(40):
        async with (
            _two_nodes(amqp_url) as (first, second, url),
            _failover(url, adapter) as broker,
            open_store(redis_url) as store,
        ):
            await broker.declare_queue(QueueSpec(source, durable=False))
            records = DLQStore(store, DLQStoreConfig(prefix=f"fo-{unique}"))
            record = dlq_record(1, source_queue_name=source, retry_queue_name=None)
            await records.add(record)
            service = DLQService(records, broker)
            first.down()
            second.down()
            await _until_noticed(broker, broker.current)
            with pytest.raises(BrokerUnavailable):
                await service.replay(record.dlq_id)
            again = await records.get(record.dlq_id)
            assert again is not None
            assert again.state == "dead_lettered"  # not "unconfirmed_republish": nothing sent
            first.up()
            with anyio.fail_after(15):
                await _until_reconnected(broker, 1)
            result = await service.replay(record.dlq_id)  # no force needed
            assert result is not None
            assert result.state == "replayed"
            assert await _depth(broker, source) == 1
            await broker.delete_queue(source)


async def test_memory_urls_open_the_memory_broker_as_it_is(adapter: str) -> None:
    with anyio.fail_after(5):
        async with open_failover_broker("memory://", adapter=adapter) as broker:  # type: ignore[arg-type]
            assert not isinstance(broker, FailoverBroker)
            async with open_broker("memory://") as other:
                assert type(broker) is type(other)
