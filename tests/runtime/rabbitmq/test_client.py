"""relayna.rabbitmq on the in-memory broker: what goes on the wire, and bad inputs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
import pytest

from relayna.contracts import StatusEvent, TaskEnvelope
from relayna.errors import (
    ContractError,
    EnvelopeTooLarge,
    TopologyError,
    UnroutableError,
    WorkflowContractError,
)
from relayna.rabbitmq import open_relayna_client
from relayna.topology import (
    SharedStatusWorkflowTopology,
    SharedTasksSharedStatusTopology,
    WorkflowEntryRoute,
    WorkflowStage,
)
from relayna.transport import Broker, QueueSpec

pytestmark = pytest.mark.anyio
Take = Callable[..., Awaitable[list[Any]]]


async def test_publish_task_sets_properties_and_headers(
    broker: Broker, topology: Any, take_messages: Take
) -> None:
    with anyio.fail_after(5):
        async with open_relayna_client(topology, broker) as client:
            task = await client.publish_task(
                {"task_id": "t-1", "payload": {"n": 1}}, headers={"k": "v"}
            )
            assert isinstance(task, TaskEnvelope)
        [(body, props)] = await take_messages(broker, topology.tasks_queue, 1)
    assert orjson.loads(body)["task_id"] == "t-1"
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2
    assert props.correlation_id == "t-1"
    assert props.priority is None
    assert props.headers["task_id"] == "t-1"
    assert props.headers["k"] == "v"


async def test_documentid_alias_is_accepted(broker: Broker, topology: Any) -> None:
    with anyio.fail_after(5):
        async with open_relayna_client(topology, broker) as client:
            task = await client.publish_task({"documentId": "doc-1"})
    assert task.task_id == "doc-1"


async def test_priority_is_kept_when_the_queue_allows_it(
    broker: Broker, unique: str, take_messages: Take
) -> None:
    topo = SharedTasksSharedStatusTopology(
        tasks_exchange=f"pt-{unique}",
        tasks_queue=f"pq-{unique}",
        tasks_routing_key="t",
        status_exchange=f"ps-{unique}",
        status_queue=f"psq-{unique}",
        status_use_streams=False,
        task_max_priority=10,
    )
    with anyio.fail_after(5):
        async with open_relayna_client(topo, broker) as client:
            await client.publish_task(TaskEnvelope(task_id="p", priority=7))
            with pytest.raises(ContractError, match="priority"):
                await client.publish_task(TaskEnvelope(task_id="p2", priority=11))
        [(_, props)] = await take_messages(broker, topo.tasks_queue, 1)
    assert props.priority == 7
    assert (await broker.inspect_queue(topo.tasks_queue)).message_count == 0


@pytest.mark.parametrize(
    ("task", "error"),
    [
        pytest.param({"task_id": "a\r\nb"}, ContractError, id="crlf-task-id"),
        pytest.param({"task_id": "a", "priority": 300}, ContractError, id="priority-300"),
        pytest.param(
            {"task_id": "a", "priority": 255}, ContractError, id="priority-on-plain-queue"
        ),
        pytest.param(
            {"task_id": "a", "payload": {"x": "y" * (2 * 1024 * 1024)}},
            EnvelopeTooLarge,
            id="body-over-limit",
        ),
        pytest.param({"task_id": "a", "payload": []}, ContractError, id="payload-not-object"),
    ],
)
async def test_bad_tasks_raise_before_anything_is_sent(
    broker: Broker, topology: Any, task: dict[str, Any], error: type[Exception]
) -> None:
    with anyio.fail_after(5):
        async with open_relayna_client(topology, broker) as client:
            with pytest.raises(error):
                await client.publish_task(task)
            with pytest.raises(error):
                await client.publish_tasks([{"task_id": "ok-1"}, task, {"task_id": "ok-2"}])
            with pytest.raises(ContractError, match="header"):
                await client.publish_task(
                    {"task_id": "h"}, headers={f"h{i}": i for i in range(500)}
                )
        assert (await broker.inspect_queue(topology.tasks_queue)).message_count == 0


async def test_publish_tasks_is_bounded_and_ordered(broker: Broker, topology: Any) -> None:
    with anyio.fail_after(10):
        async with open_relayna_client(topology, broker) as client:
            tasks = await client.publish_tasks(
                ({"task_id": f"t{i}"} for i in range(100)), concurrency=8
            )
            assert [t.task_id for t in tasks] == [f"t{i}" for i in range(100)]
        assert (await broker.inspect_queue(topology.tasks_queue)).message_count == 100


async def test_publish_batch_is_one_message(
    broker: Broker, topology: Any, take_messages: Take
) -> None:
    with anyio.fail_after(5):
        async with open_relayna_client(topology, broker) as client:
            await client.publish_batch(
                [{"task_id": "a"}, {"task_id": "b"}], batch_id="b-1", meta={"m": 1}
            )
            with pytest.raises(ContractError, match="priorit"):
                await client.publish_batch(
                    [TaskEnvelope(task_id="a", priority=1), TaskEnvelope(task_id="b")],
                    batch_id="b-2",
                )
        [(body, props)] = await take_messages(broker, topology.tasks_queue, 1)
    data = orjson.loads(body)
    assert data["batch_id"] == "b-1"
    assert [t["task_id"] for t in data["tasks"]] == ["a", "b"]
    assert props.correlation_id == "b-1"
    assert props.headers["batch_id"] == "b-1"
    assert props.headers["batch_size"] == 2


async def test_publish_status_fills_ids_and_routes_by_task_id(
    broker: Broker, topology: Any, take_messages: Take
) -> None:
    with anyio.fail_after(5):
        async with open_relayna_client(topology, broker) as client:
            event = await client.publish_status({"task_id": "t-9", "status": "processing"})
        [(body, props)] = await take_messages(broker, topology.status_queue, 1)
    assert event.correlation_id == "t-9"
    assert event.event_id
    data = orjson.loads(body)
    assert data["event_id"] == event.event_id
    assert props.headers == {"task_id": "t-9", "status": "processing"}
    assert props.correlation_id == "t-9"


async def test_publish_aggregation_status(
    broker: Broker, topology: Any, take_messages: Take
) -> None:
    shard = topology.shard_for("parent-1")
    with anyio.fail_after(5):
        async with open_relayna_client(topology, broker) as client:
            await topology.aggregation_queue_plan([shard]).apply(broker)
            with pytest.raises(ContractError, match="parent_task_id"):
                await client.publish_aggregation_status(StatusEvent(task_id="c", status="done"))
            event = await client.publish_aggregation_status(
                StatusEvent(task_id="c", status="done", meta={"parent_task_id": "parent-1"})
            )
        queue = topology.aggregation_queue_name([shard])
        [(body, _)] = await take_messages(broker, queue, 1)
    assert event.meta["aggregation_shard"] == shard
    assert orjson.loads(body)["meta"]["aggregation_role"] == "aggregation"
    # aggregation messages also reach the status queue (bound with '#')
    assert (await broker.inspect_queue(topology.status_queue)).message_count == 1


async def test_unroutable_raw_publish_raises(broker: Broker, topology: Any) -> None:
    with anyio.fail_after(5):
        async with open_relayna_client(topology, broker) as client:
            with pytest.raises(UnroutableError):
                await client.publish_raw(topology.tasks_exchange, "nobody-binds-this", b"{}")
            await broker.declare_queue(QueueSpec("raw-target"))
            await client.publish_raw("", "raw-target", b"{}")


def _workflow(unique: str) -> SharedStatusWorkflowTopology:
    stages = (
        WorkflowStage(
            name="plan",
            queue=f"wf-{unique}.plan",
            binding_keys=("plan.in",),
            publish_routing_key="plan.in",
            allowed_next_stages=("write",),
        ),
        WorkflowStage(
            name="write",
            queue=f"wf-{unique}.write",
            binding_keys=("write.in",),
            publish_routing_key="write.in",
            terminal=True,
        ),
    )
    return SharedStatusWorkflowTopology(
        workflow_exchange=f"wf-{unique}",
        status_exchange=f"wfs-{unique}",
        status_queue=f"wfsq-{unique}",
        stages=stages,
        status_use_streams=False,
        entry_routes=(
            WorkflowEntryRoute(name="start", routing_key="plan.in", target_stage="plan"),
        ),
    )


async def test_workflow_publishing_and_contract_errors(
    broker: Broker, unique: str, take_messages: Take
) -> None:
    topo = _workflow(unique)
    with anyio.fail_after(5):
        async with open_relayna_client(topo, broker) as client:
            with pytest.raises(TopologyError):
                await client.publish_task({"task_id": "t"})
            msg = await client.publish_to_entry({"task_id": "w-1", "payload": {"q": 1}}, "start")
            assert msg.stage == "plan"
            await client.publish_to_stage({"task_id": "w-1", "origin_stage": "plan"}, "write")
            with pytest.raises(WorkflowContractError) as info:
                await client.publish_to_stage({"task_id": "w-1", "origin_stage": "write"}, "plan")
            assert info.value.reason in {"terminal_stage_handoff", "forbidden_transition"}
            with pytest.raises(TopologyError):
                await client.publish_to_stage({"task_id": "w-1"}, "no-such-stage")
        plan_q, write_q = (s.queue for s in topo.stages)
        [(_, props)] = await take_messages(broker, plan_q, 1)
        assert props.headers["stage"] == "plan"
        assert props.message_id == props.headers["message_id"]
        [(_, props)] = await take_messages(broker, write_q, 1)
        assert props.headers["origin_stage"] == "plan"
        assert (await broker.inspect_queue(plan_q)).message_count == 0


async def test_client_opens_a_url(topology: Any) -> None:
    with anyio.fail_after(5):
        async with open_relayna_client(topology, "memory://") as client:
            await client.publish_task({"task_id": "u"})
            assert client.published == 1
