"""Network faults between relayna and RabbitMQ (issue 26), through a fault proxy.

A publisher and a :class:`TaskConsumer` both reach a real RabbitMQ through
:mod:`_fault_proxy`; while tasks flow, one fault is injected: latency,
a bandwidth limit, a slow drip of bytes, resets in the middle of frames, or a
silent blackhole (half-open: no FIN, no RST; 1 s heartbeats must find it).
Every publish call must end with a confirm or a typed error within a bound
(never a hang); a publish without a confirm is retried on a new connection;
the consumer reconnects by itself. The history checker then requires 0 lost
(every confirmed task handled) and 0 unexpected; duplicates and recovered
publishes are at-least-once and allowed. Both backends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from _fault_proxy import FaultProxy, open_fault_proxy  # tests/ is on sys.path
from _history_checker import History
from relayna._supervise import Backoff
from relayna.consumer import TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.errors import BrokerError
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusShardedAggregationTopology
from relayna.transport import open_broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]

TASKS = 40
PUBLISH_BOUND = 12.0  # connect (3 s) + publish_timeout (3 s) + close, with room
FAULTED_URL = "?heartbeat=1&publish_timeout=3&connection_timeout=3"


async def _until(progress: Callable[[], int], count: int) -> None:
    """Wait until ``count`` tasks are confirmed (the fault hits a flowing run)."""
    while progress() < count:  # noqa: ASYNC110 - polling the history checker
        await anyio.sleep(0.01)


async def _latency(proxy: FaultProxy, progress: Callable[[], int]) -> None:
    proxy.upstream.latency = proxy.downstream.latency = 0.02


async def _bandwidth(proxy: FaultProxy, progress: Callable[[], int]) -> None:
    proxy.upstream.bytes_per_second = proxy.downstream.bytes_per_second = 40_000


async def _drip(proxy: FaultProxy, progress: Callable[[], int]) -> None:
    await _until(progress, TASKS // 4)
    proxy.downstream.drip = 0.0005
    await anyio.sleep(1.0)
    proxy.clear()


async def _resets(proxy: FaultProxy, progress: Callable[[], int]) -> None:
    for step in range(4):
        await _until(progress, (step + 1) * TASKS // 6)
        before = proxy.stats.resets
        # Mid-frame: a few hundred bytes into whatever flows next.
        proxy.upstream.reset_after = 150 + 97 * step
        with anyio.move_on_after(3):
            while proxy.stats.resets == before:  # noqa: ASYNC110 - polling the proxy
                await anyio.sleep(0.01)
        proxy.clear()


async def _blackhole(proxy: FaultProxy, progress: Callable[[], int]) -> None:
    await _until(progress, TASKS // 3)
    proxy.upstream.blackhole = proxy.downstream.blackhole = True
    await anyio.sleep(3.5)  # > 2 missed heartbeats of 1 s: both sides must notice
    proxy.clear()


FAULTS: dict[str, Callable[[FaultProxy, Callable[[], int]], Awaitable[None]]] = {
    "latency": _latency,
    "bandwidth": _bandwidth,
    "drip": _drip,
    "reset": _resets,
    "blackhole": _blackhole,
}


async def _publish_all(url: str, topology: Any, history: History, durations: list[float]) -> None:
    """Publish every task until confirmed; each call ends within PUBLISH_BOUND."""
    pending = [f"task-{i}" for i in range(TASKS)]
    while pending:
        try:
            async with (
                open_broker(url) as broker,
                open_relayna_client(topology, broker, declare=False) as client,
            ):
                while pending:
                    task_id = pending[0]
                    start = anyio.current_time()
                    try:
                        with anyio.fail_after(PUBLISH_BOUND):
                            await client.publish_task({"task_id": task_id})
                    except BrokerError:
                        history.publish(task_id, "unknown")  # no confirm: may or may not be in
                        raise
                    finally:
                        durations.append(anyio.current_time() - start)
                    history.publish(task_id, "ok")
                    pending.pop(0)
        except BrokerError:
            await anyio.sleep(0.1)  # a new connection for the rest


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_publish_and_consume_through_a_fault(amqp_url: str, unique: str, fault: str) -> None:
    topology = SharedTasksSharedStatusShardedAggregationTopology(
        tasks_exchange=f"ft-{unique}",
        tasks_queue=f"ft-{unique}.q",
        tasks_routing_key="task",
        status_exchange=f"fs-{unique}",
        status_queue=f"fs-{unique}.q",
        status_use_streams=False,
    )
    history = History()
    durations: list[float] = []
    port = int(amqp_url.rsplit(":", 1)[1].split("/")[0])

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        history.consume(task.task_id)

    with anyio.fail_after(90):
        async with open_broker(amqp_url) as admin:
            await topology.plan().apply(admin)
            async with open_fault_proxy(port) as proxy:
                url = amqp_url.replace(f":{port}/", f":{proxy.port}/") + FAULTED_URL
                consumer = TaskConsumer(
                    topology=topology,
                    broker=url,
                    handler=handler,
                    prefetch=4,
                    backoff=Backoff(initial=0.05, maximum=0.5),
                )
                async with anyio.create_task_group() as tg:
                    await tg.start(consumer.run)
                    tg.start_soon(FAULTS[fault], proxy, lambda: len(history.confirmed()))
                    await _publish_all(url, topology, history, durations)
                    while not history.confirmed() <= set(history.consumed):  # noqa: ASYNC110
                        await anyio.sleep(0.02)  # polling the checker: every confirmed task handled
                    proxy.clear()
                    tg.cancel_scope.cancel()
            await admin.delete_queue(topology.tasks_queue)
            await admin.delete_queue(topology.tasks_queue + ".dlq")
    verdict = history.verdict()
    print(f"{fault}: {verdict.summary()} reconnects={consumer.stats.reconnects} "
          f"max_publish={max(durations):.2f}s proxy={proxy.stats}")  # fmt: skip
    assert not verdict.lost, verdict.summary()
    assert not verdict.unexpected, verdict.summary()
    assert verdict.ok == TASKS
    assert max(durations) < PUBLISH_BOUND
    if fault == "reset":
        assert proxy.stats.resets >= 1
    if fault == "blackhole":
        assert proxy.stats.blackholed_bytes > 0
        assert consumer.stats.reconnects >= 1  # the half-open connection was found dead
