"""A workflow stage acks only after its group-committed steps reached a replica
(``replica_acks``). Memory broker + a memory store with a scripted
``wait_replicated``; the real Redis Cluster runs it in
tests/integration/cluster/test_redis_cluster_replica_acks.py."""

from __future__ import annotations

import anyio
import pytest

from _replica_store import WaitingStore
from _workflow_support import Stack, planner_docsearch, running, wait_for
from relayna.contracts import WorkflowEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker, open_store
from relayna.workflow import WorkflowContext

pytestmark = pytest.mark.anyio


async def test_an_unreplicated_stage_completion_is_not_acked(broker: Broker, unique: str) -> None:
    topology = planner_docsearch(unique)
    planned: list[str] = []
    searched: list[str] = []

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        planned.append(message.message_id)
        await ctx.publish_to_stage("docsearch", {"q": "otters"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        searched.append(message.message_id)

    async with open_store("memory://") as raw:
        store = WaitingStore(raw, answers=[0])  # the first WAIT sees no replica
        stack = Stack(topology, broker, store)  # type: ignore[arg-type]
        planner = stack.consumer("planner", plan, replica_wait=0.25)
        docsearch = stack.consumer("docsearch", search, replica_wait=0.25)
        run_id = f"run-{unique}"
        with anyio.fail_after(20):
            async with open_relayna_client(topology, broker) as client:
                async with running(planner, docsearch):
                    await client.publish_to_stage({"task_id": run_id, "payload": {}}, "planner")
                    await wait_for(lambda: planner.stats.acked == 1 and docsearch.stats.acked == 1)
            state = await stack.runs.get(run_id)
    # one stage's completion (whichever acked first) waited in vain: its delivery
    # was requeued, and the redelivery was acked as a duplicate of the recorded
    # step (no second call)
    assert len(planned) == len(searched) == 1
    consumers = (planner, docsearch)
    assert sum(c.stats.effect_errors for c in consumers) == 1
    assert sum(c.stats.duplicates_suppressed for c in consumers) == 1
    assert [replicas for replicas, _ in store.calls].count(1) == len(store.calls) >= 3
    assert state is not None
    assert state.status == "completed"
