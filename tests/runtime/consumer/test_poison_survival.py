"""No single delivery ends a worker, the hub or a history read (issue 26, class 1).

The reported case: a valid ISO-8601 timestamp that cannot be converted to UTC
(year 1 with a positive offset) raised ``OverflowError`` out of the codec and
killed ``relayna dev``. Here it, and a bug injected into relayna's own decode
path, are dead-lettered (worker) or skipped and counted (hub, history), and
the next good message is processed. Memory transports, both backends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
import pytest

from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.consumer import _task as task_module
from relayna.contracts import StatusEvent, TaskEnvelope, encode_status
from relayna.rabbitmq import open_relayna_client
from relayna.status import StatusHub, StatusHubConfig, StatusStore, StreamHistoryReader
from relayna.status import _event as event_module
from relayna.topology import StatusTopologyBase
from relayna.transport import Broker, Properties, open_broker, open_store

pytestmark = pytest.mark.anyio
Take = Callable[..., Awaitable[list[Any]]]
Until = Callable[..., Awaitable[None]]

OUT_OF_RANGE = "0001-01-01T00:00:00+05:00"  # OverflowError in astimezone(UTC) before the fix


def _statuses(messages: list[tuple[bytes, Properties]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for body, _ in messages:
        event = orjson.loads(body)
        out.setdefault(event["task_id"], []).append(event["status"])
    return out


async def test_a_task_with_an_unconvertible_timestamp_is_dead_lettered_and_fails(
    broker: Broker, topology: Any, running: Any, until: Until, take_messages: Take
) -> None:
    handled: list[str] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> dict[str, str]:
        handled.append(task.task_id)
        return {"ok": "yes"}

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        retry_policy=RetryPolicy(max_retries=1, delay_ms=10),
        statuses=LifecycleStatuses(enabled=True),
    )
    queue = topology.tasks_queue
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            # Straight to the queue, no task_id header: only the body names the task.
            bad = orjson.dumps({"task_id": "bad-ts", "created_at": OUT_OF_RANGE})
            await broker.publish("", queue, bad, Properties(content_type="application/json"))
            await client.publish_task({"task_id": "good"})
            await until(lambda: consumer.stats.dead_lettered == 1 and consumer.stats.acked == 1)
        dead = await take_messages(broker, queue + ".dlq", 1)
        statuses = _statuses(await take_messages(broker, topology.status_queue, 3))
    assert handled == ["good"]
    assert dead[0][1].headers["relayna-failure-reason"] == "schema"
    assert statuses == {"bad-ts": ["failed"], "good": ["processing", "completed"]}


async def test_a_bug_in_the_decode_path_dead_letters_that_delivery_only(
    broker: Broker,
    topology: Any,
    running: Any,
    until: Until,
    take_messages: Take,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = task_module.parse_task

    def buggy(body: bytes, *args: Any, **kwargs: Any) -> Any:
        if b"trigger" in body:
            raise RuntimeError("a bug in relayna")
        return real(body, *args, **kwargs)

    monkeypatch.setattr(task_module, "parse_task", buggy)

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        return None

    consumer = TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        retry_policy=RetryPolicy(max_retries=1, delay_ms=10),
        statuses=LifecycleStatuses(enabled=True),
        prefetch=1,
    )
    queue = topology.tasks_queue
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client, running(consumer):
            await client.publish_task({"task_id": "hit", "payload": {"x": "trigger"}})
            await client.publish_task({"task_id": "after"})
            await until(lambda: consumer.stats.dead_lettered == 1 and consumer.stats.acked == 1)
        dead = await take_messages(broker, queue + ".dlq", 1)
        statuses = _statuses(await take_messages(broker, topology.status_queue, 3))
    assert dead[0][1].headers["relayna-failure-reason"] == "internal_error"
    assert dead[0][1].headers["relayna-exception-type"] == "RuntimeError"
    assert statuses == {"hit": ["failed"], "after": ["processing", "completed"]}


def _status(task_id: str, n: int, status: str = "running") -> bytes:
    return encode_status(StatusEvent(task_id=task_id, status=status, event_id=f"{task_id}-{n}"))


@pytest.mark.parametrize("fault", ["out_of_range", "decoder_bug"])
async def test_the_hub_and_history_skip_and_count_an_undecodable_status(
    unique: str, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    bad = orjson.dumps({"task_id": "t", "status": "running", "timestamp": OUT_OF_RANGE})
    if fault == "decoder_bug":
        real = event_module.unstructure
        bad = _status("t", 0)

        def buggy(envelope: Any) -> Any:
            if envelope.event_id == "t-0":
                raise ZeroDivisionError("a bug in relayna")
            return real(envelope)

        monkeypatch.setattr(event_module, "unstructure", buggy)
    reason = "schema" if fault == "out_of_range" else "decoder_error"
    with anyio.fail_after(10):
        async with open_broker("memory://") as broker, open_store("memory://") as raw:
            await topology.plan().apply(broker)
            store = StatusStore(raw)
            for body in (_status("t", 1), bad, _status("t", 2, "completed")):
                await broker.publish("", topology.status_queue, body)
            hub = StatusHub(
                broker, store, StatusHubConfig(queue=topology.status_queue, offset="first")
            )
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                while hub.stats.stored < 2:  # noqa: ASYNC110 - polling the hub's counter
                    await anyio.sleep(0.005)
                tg.cancel_scope.cancel()
            history = await store.history("t")
            reader = StreamHistoryReader(broker, topology.status_queue)
            replay = await reader.replay("t", max_seconds=5)
    assert hub.stats.malformed == {reason: 1}
    assert [e["event_id"] for e in history] == ["t-2", "t-1"]
    assert [e["event_id"] for e in replay.events] == ["t-1", "t-2"]
    assert (replay.skipped, replay.stopped_by, dict(reader.skipped)) == (1, "terminal", {reason: 1})
