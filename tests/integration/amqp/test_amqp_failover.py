"""A broker URL naming several nodes, against the real RabbitMQ node: a dead
first node is passed over, and a supervised consumer whose node goes away
reconnects to the next node of the URL (not to the one that just failed)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import anyio
import pytest

from _fault_proxy import open_fault_proxy  # tests/ is on sys.path
from relayna.errors import BrokerConnectionError, ConnectionLost
from relayna.transport import Backoff, QueueSpec, supervise
from relayna.transport._open import open_broker
from relayna.transport.amqp import open_amqp_broker

pytestmark = pytest.mark.anyio


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nodes_url(amqp_url: str, *ports: int) -> str:
    parts = urlsplit(amqp_url)
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    return parts._replace(netloc=f"guest:guest@{hosts}").geturl()


async def test_a_dead_first_node_is_passed_over(adapter: str, amqp_url: str, unique: str) -> None:
    real = urlsplit(amqp_url).port
    assert real is not None
    url = _nodes_url(amqp_url, _closed_port(), real)
    queue = f"t.failover.{unique}"
    with anyio.fail_after(20):
        async with open_broker(url, adapter=adapter) as broker:  # type: ignore[arg-type]
            await broker.declare_queue(QueueSpec(queue, durable=False, auto_delete=False))
            await broker.publish("", queue, b"through the second node")
            async with broker.consume(queue, prefetch=1) as consumer:
                delivery = await consumer.__anext__()
                assert delivery.body == b"through the second node"
                await delivery.ack()
            await broker.delete_queue(queue)
        # the same, given as a list of single-node URLs
        single = [_nodes_url(amqp_url, _closed_port()), amqp_url]
        async with open_broker(single, adapter=adapter) as broker:  # type: ignore[arg-type]
            assert (await broker.declare_queue(QueueSpec(queue, durable=False))).name == queue
            await broker.delete_queue(queue)


async def test_no_node_answering_names_every_node(adapter: str, amqp_url: str) -> None:
    dead = [_closed_port(), _closed_port()]
    with anyio.fail_after(20), pytest.raises(BrokerConnectionError) as info:
        async with open_broker(_nodes_url(amqp_url, *dead), adapter=adapter):  # type: ignore[arg-type]
            pass
    assert "no node of 2 answered" in str(info.value)
    for port in dead:
        assert f"127.0.0.1:{port}" in str(info.value)


async def test_supervisor_fails_over_to_the_next_node(amqp_url: str, unique: str) -> None:
    """Node 1 (a proxy in front of the real node) drops every connection but
    keeps accepting new ones: the supervised consumer must come back on node 2,
    the next of the URL, because node 1 just failed (ordered would pick it)."""
    real = urlsplit(amqp_url).port
    assert real is not None
    queue = f"t.failover.sup.{unique}"
    received: list[bytes] = []
    errors: list[BaseException] = []
    ready = anyio.Event()
    ports: list[int] = []

    async with open_fault_proxy(real) as proxy:
        url = _nodes_url(amqp_url, proxy.port, real)

        async def run() -> None:
            async with open_amqp_broker(url) as broker:
                ports.append(broker.connection.params.port)
                await broker.declare_queue(QueueSpec(queue, durable=False))
                async with broker.consume(queue, prefetch=5) as consumer:
                    ready.set()
                    async for delivery in consumer:
                        received.append(delivery.body)
                        await delivery.ack()
                        if delivery.body == b"stop":
                            return

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                await tg.start(
                    lambda task_status: supervise(
                        run,
                        backoff=Backoff(initial=0.05, maximum=0.2),
                        on_retry=lambda exc, n, d: errors.append(exc),
                        task_status=task_status,
                    )
                )
                await ready.wait()
                assert ports == [proxy.port]  # ordered: node 1 first
                ready = anyio.Event()
                proxy.reset_all()  # node 1 lost; it still accepts connections
                await ready.wait()
                async with open_amqp_broker(amqp_url) as pub:
                    await pub.publish("", queue, b"after failover")
                    await pub.publish("", queue, b"stop")
            async with open_amqp_broker(amqp_url) as broker:
                await broker.delete_queue(queue)
    assert ports == [proxy.port, real]
    assert proxy.stats.accepted == 1  # the reconnect never went back to node 1
    assert received == [b"after failover", b"stop"]
    assert errors
    assert isinstance(errors[0], ConnectionLost)
