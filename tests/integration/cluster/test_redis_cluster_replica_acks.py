"""Acks after replicas on the real 6-node Redis Cluster: the primary holding a
worker's writes is SIGKILLed right after one of them returns (before any
``WAIT``), its replica is promoted and the killed node restarted (it rejoins as
the replica, so ``WAIT 1`` can succeed again).

What must hold: every message whose ack went out has its effect on the promoted
replica -- the DLQ record of every dead-lettered task, the completed run state
of every workflow run (the stage completions behind the acks). The consumers
run on the memory broker (the subject is the store); the store is the cluster
with the cluster key layout and the default ``replica_acks`` (1 on a cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count, islice
from typing import Any

import anyio
import pytest
from redis_cluster import RedisCluster

from _workflow_support import Stack, planner_docsearch, running, wait_for
from relayna.consumer import RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope, WorkflowEnvelope
from relayna.dlq import DLQQuery, DLQStore, DLQStoreConfig
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Store, key_slot, open_broker, open_store
from relayna.workflow import WorkflowContext, WorkflowRuns, WorkflowStoreConfig

pytestmark = [pytest.mark.anyio, pytest.mark.slow_tier]

URL_OPTIONS = "?failover_timeout=30"
#: Seconds the effects get to settle after the failover (a lost one never does).
SETTLE = 45


class KillAfter:
    """``store``, whose ``nth`` call of the script ``name`` kills the primary of
    ``slot_key`` as soon as it returned (and has it promoted and restarted)."""

    def __init__(
        self, store: Store, name: str, nth: int, cluster: RedisCluster, slot_key: str
    ) -> None:
        self._store = store
        self._name = name
        self._nth = nth
        self._cluster = cluster
        self._slot_key = slot_key
        self.calls = 0
        self._frozen: list[int] = []
        self.killed: int | None = None
        self.recovered = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def run_script(self, script: Any, keys: Any, args: Any = ()) -> Any:
        victim = self._before(script)
        result = await self._store.run_script(script, keys, args)
        self._after(victim)
        return result

    async def run_script_many(self, script: Any, calls: Any) -> Any:
        victim = self._before(script)
        result = await self._store.run_script_many(script, calls)
        self._after(victim)
        return result

    def _before(self, script: Any) -> int | None:
        """The victim, cut off from its replicas, when this call is the nth: the
        write then reaches no replica before the kill (loopback replication
        would otherwise win that race almost always)."""
        if script.name != self._name:
            return None
        self.calls += 1
        if self.calls != self._nth:
            return None
        victim = self._cluster.primary_of(self._slot_key)
        self._frozen = self._cluster.isolate(victim)
        return victim

    def _after(self, old: int | None) -> None:
        if old is None:
            return
        self._cluster.kill(old)  # right now: no WAIT has been sent for this write
        self._cluster.thaw(self._frozen)  # a replica without the write takes over
        self.killed = old

        async def recover() -> None:
            await anyio.to_thread.run_sync(
                lambda: self._cluster.wait_promoted(self._slot_key, old, timeout=60)
            )
            await anyio.to_thread.run_sync(self._cluster.restart, old)
            self.recovered.set()

        self._tg.start_soon(recover)

    def bind(self, tg: Any) -> None:
        self._tg = tg


def _served_by(cluster: RedisCluster, port: int) -> Callable[[str], bool]:
    ranges = next(n["slots"] for n in cluster.nodes() if n["port"] == port)
    assert isinstance(ranges, list)
    return lambda key: any(lo <= key_slot(key) <= hi for lo, hi in ranges)


async def _healed(cluster: RedisCluster) -> None:
    for port in list(cluster.killed):
        await anyio.to_thread.run_sync(cluster.restart, port)
    await anyio.to_thread.run_sync(lambda: cluster.wait_ok(timeout=60, replicas=True))


async def test_every_acked_dead_letter_has_its_record_after_a_primary_kill(
    redis_cluster: RedisCluster, unique: str
) -> None:
    await anyio.to_thread.run_sync(lambda: redis_cluster.wait_ok(timeout=60, replicas=True))
    tasks = 40
    prefix = f"rra{unique}"
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"tx.{unique}",
        tasks_queue=f"tq.{unique}",
        tasks_routing_key="task",
        status_exchange=f"sx.{unique}",
        status_queue=f"sq.{unique}",
        status_use_streams=False,
    )

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise ValueError("always")

    try:
        with anyio.fail_after(150):
            async with (
                open_broker("memory://") as broker,
                open_store(redis_cluster.url + URL_OPTIONS) as raw,
            ):
                store = KillAfter(
                    raw, "relayna.dlq.add", tasks // 2, redis_cluster, f"{{{prefix}}}"
                )
                dlq = DLQStore(store, DLQStoreConfig(prefix=prefix, cluster=True))  # type: ignore[arg-type]
                consumer = TaskConsumer(
                    topology=topology,
                    broker=broker,
                    handler=handler,
                    retry_policy=RetryPolicy(max_retries=0),
                    dlq_recorder=dlq,
                    dlq_record_timeout=90,  # the failover (~2 s) and the resync fit in
                )
                async with anyio.create_task_group() as tg:
                    store.bind(tg)
                    await tg.start(consumer.run)
                    async with open_relayna_client(topology, broker) as client:
                        for i in range(tasks):
                            await client.publish_task({"task_id": f"d{i}", "payload": {}})
                    await wait_for(lambda: store.recovered.is_set(), limit=90)

                    async def recorded() -> list[str]:
                        page = await dlq.list_records(DLQQuery(), limit=200)
                        return sorted(r.task_id or "" for r in page.records)

                    expected = sorted(f"d{i}" for i in range(tasks))
                    # a record lost behind an ack never comes back: bounded wait, then assert
                    with anyio.move_on_after(SETTLE):
                        while await recorded() != expected or consumer.inflight:  # noqa: ASYNC110 - polling the store
                            await anyio.sleep(0.1)
                    info = await broker.inspect_queue(topology.tasks_queue)
                    tg.cancel_scope.cancel()
                # every task was acked (the queue is empty) and each has its record, read
                # from the slot's current primary: the promoted replica
                assert await recorded() == expected
                assert info.message_count == 0
                assert consumer.stats.dlq_record_errors == 0
                assert store.killed is not None
                assert redis_cluster.primary_of(f"{{{prefix}}}") != store.killed
    finally:
        await _healed(redis_cluster)


async def test_every_acked_stage_completion_survives_a_primary_kill(
    redis_cluster: RedisCluster, unique: str
) -> None:
    await anyio.to_thread.run_sync(lambda: redis_cluster.wait_ok(timeout=60, replicas=True))
    runs = 24
    topology = planner_docsearch(unique)
    victim = redis_cluster.primary_of(f"{{r0-{unique}}}")
    served = _served_by(redis_cluster, victim)
    run_ids = list(islice((r for i in count() if served(r := f"r{i}-{unique}")), runs))
    planned: list[str] = []
    searched: list[str] = []

    async def plan(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        planned.append(message.task_id)
        await ctx.publish_to_stage("docsearch", {"q": "otters"}, action="search")

    async def search(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
        searched.append(message.task_id)

    try:
        with anyio.fail_after(150):
            async with (
                open_broker("memory://") as broker,
                open_store(redis_cluster.url + URL_OPTIONS) as raw,
            ):
                store = KillAfter(
                    raw,
                    "relayna.workflow.stage_steps",
                    runs // 2,
                    redis_cluster,
                    f"{{{run_ids[0]}}}",
                )
                stack = Stack(topology, broker, store)  # type: ignore[arg-type]
                stack.state = WorkflowStoreConfig(prefix=f"wra{unique}", cluster=True)
                planner = stack.consumer("planner", plan, drain_timeout=5.0)
                docsearch = stack.consumer("docsearch", search, drain_timeout=5.0)
                async with anyio.create_task_group() as tg:
                    store.bind(tg)
                    async with (
                        open_relayna_client(topology, broker) as client,
                        running(planner, docsearch),
                    ):
                        for run_id in run_ids:
                            await client.publish_to_stage(
                                {"task_id": run_id, "payload": {}}, "planner"
                            )
                        await wait_for(lambda: store.recovered.is_set(), limit=90)
                        check = WorkflowRuns(raw, topology, config=stack.state)

                        async def statuses() -> dict[str, str | None]:
                            states = {r: await check.get(r) for r in run_ids}
                            return {r: s.status if s else None for r, s in states.items()}

                        # a completion lost behind an ack never comes back: bounded wait
                        with anyio.move_on_after(SETTLE):
                            while set((await statuses()).values()) != {"completed"}:  # noqa: ASYNC110
                                await anyio.sleep(0.1)
                        for stage in ("planner", "docsearch"):
                            queue = topology.stage(stage).queue
                            assert (await broker.inspect_queue(queue)).message_count == 0
                    tg.cancel_scope.cancel()
                # every stage message was acked; each ack had its completion on a replica,
                # so the promoted replica holds every run as completed
                assert await statuses() == dict.fromkeys(run_ids, "completed")
                assert store.killed == victim
                assert redis_cluster.primary_of(f"{{{run_ids[0]}}}") != victim
                print(
                    f"\nplanner calls {len(planned)} for {runs} runs; "
                    f"stage_steps calls {store.calls}"
                )
    finally:
        await _healed(redis_cluster)
