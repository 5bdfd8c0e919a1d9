"""The cluster key layout on the real 6-node Redis Cluster (both backends).

The cluster store refuses a call whose keys span slots (CrossSlotError,
before sending) and the servers refuse it too (CROSSSLOT), so these runs
prove on the real engine what tests/integration/test_cluster_key_layout.py
proves with a recorder: the status store (with the feed and the parent's
children set), observations, the DLQ, cancellation and workflow state work
with ``cluster=True``, and the default layout does not.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from redis_cluster import RedisCluster

import relayna
from _dlq_records import dlq_record  # tests/ is on sys.path (rootdir conftest)
from relayna.app import TaskFailed
from relayna.consumer import RetryPolicy, TaskContext
from relayna.dlq import DLQQuery, DLQStore, DLQStoreConfig
from relayna.errors import CrossSlotError
from relayna.observability import (
    ObservationStore,
    ObservationStoreConfig,
    ServiceEventFeed,
    ServiceEventFeedConfig,
    TaskMessageReceived,
)
from relayna.rabbitmq import CancelStore, TaskIds
from relayna.status import StatusStore, StatusStoreConfig
from relayna.transport import key_slot, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.slow_tier]


def event(task: str, n: int, parent: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"task_id": task, "event_id": f"e{n}", "status": "running"}
    if parent:
        out["meta"] = {"parent_task_id": parent}
    return out


async def test_status_feed_and_observations_on_the_cluster(
    redis_cluster: RedisCluster, unique: str
) -> None:
    tasks = [f"t{i}-{unique}" for i in range(12)]
    assert len({key_slot(t) for t in tasks}) > 1  # spread over slots (and primaries)
    with anyio.fail_after(30):
        async with open_store(redis_cluster.url) as store:
            feed = ServiceEventFeed(
                store, ServiceEventFeedConfig(prefix=f"f-{unique}", cluster=True)
            )
            status = StatusStore(
                store, StatusStoreConfig(prefix=f"s-{unique}", cluster=True), feed=feed
            )
            await status.prepare()
            parent = f"p-{unique}"
            assert await status.write(event(parent, 0)) is True
            results = await status.write_many([event(t, 1, parent) for t in tasks])
            assert results == [True] * len(tasks)
            assert await status.write_many([event(tasks[0], 1, parent)]) == [False]
            assert await status.children(parent) == sorted(tasks)
            assert [e["event_id"] for e in await status.history(tasks[3])] == ["e1"]
            assert len((await feed.read(limit=50)).items) == 1 + len(tasks)

            obs = ObservationStore(
                store, ObservationStoreConfig(prefix=f"o-{unique}", cluster=True)
            )
            batch = [
                TaskMessageReceived(consumer_name="w", queue_name="q", task_id=t, retry_attempt=0)
                for t in tasks[:5]
            ]
            assert await obs.write_many(batch, feed=feed) == [True] * 5
            assert len(await obs.history(tasks[4])) == 1
            assert len((await feed.read(limit=50)).items) == 1 + len(tasks) + 5

            # the default layout's write-with-feed spans the task's and the feed's slots
            plain = StatusStore(
                store,
                StatusStoreConfig(prefix=f"d-{unique}"),
                feed=ServiceEventFeed(store, ServiceEventFeedConfig(prefix=f"df-{unique}")),
            )
            with pytest.raises(CrossSlotError):
                await plain.write(event(tasks[1], 9))


async def test_dlq_cancellation_and_task_ids_on_the_cluster(
    redis_cluster: RedisCluster, unique: str
) -> None:
    with anyio.fail_after(30):
        async with open_store(redis_cluster.url) as store:
            dlq = DLQStore(store, DLQStoreConfig(prefix=f"d-{unique}", cluster=True))
            records = [dlq_record(n) for n in range(3)]
            assert await dlq.add_many(records) == [True, True, True]
            page = await dlq.list_records(DLQQuery(queue_name="orders.dlq", reason="handler_error"))
            assert len(page.records) == 3
            assert await dlq.delete(records[0].dlq_id) is True

            prefix = f"c-{unique}"
            ids = TaskIds(store, prefix=prefix, cluster=True)
            cancels = CancelStore(store, prefix=prefix, cluster=True)
            assert await ids.claim("task-a") is not None
            assert (await cancels.request("task-a", "stop")).state == "requested"
            assert (
                await cancels.request(f"batch-{unique}", require_known=False)
            ).state == "requested"
            gates = await cancels.steps(
                [
                    CancelStore.start_step("task-a"),
                    CancelStore.start_step("item-1", batch_id=f"batch-{unique}"),
                    CancelStore.start_step("item-2"),
                ]
            )
            assert [g.state for g in gates] == ["cancelled", "cancelled", "run"]
            assert await cancels.pending_ids() >= {"task-a", f"batch-{unique}"}


async def test_an_app_on_the_cluster_runs_tasks_with_the_implied_layout(
    redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    """A ``redis+cluster://`` store URL turns the cluster layout on: the
    App's worker, hub, feed, DLQ, task ids and cancels all run on the real
    cluster (a cross-slot call would fail them)."""
    monkeypatch.delenv("RELAYNA_STORE_CLUSTER_KEYS", raising=False)
    app = relayna.App(name=f"cl{unique}", broker="memory://", store=redis_cluster.url)

    @app.task("work", retry=RetryPolicy(max_retries=1, delay_ms=20))
    async def work(ctx: TaskContext, payload: dict[str, Any]) -> int:
        if payload.get("fail"):
            raise RuntimeError("no")
        return 2

    with anyio.fail_after(60):
        async with app.open(worker=True):
            assert app.store_config.cluster is True
            ok = await app.publish("work", {}, task_id=f"ok-{unique}")
            assert await ok.result() == {"value": 2}
            bad = await app.publish("work", {"fail": True}, task_id=f"bad-{unique}")
            with pytest.raises(TaskFailed):
                await bad.result()
            assert (await app.cancel(f"ok-{unique}")).state == "terminal"
            dlq = app.runtime.dlq
            assert dlq is not None
            # the record is written after the DLQ copy is confirmed, which may
            # be after the failed status reached the handle: poll (60 s ceiling)
            query = DLQQuery(task_id=f"bad-{unique}")
            while not (await dlq.store.list_records(query)).records:  # noqa: ASYNC110
                await anyio.sleep(0.05)
            [record] = (await dlq.store.list_records(query)).records
            assert record.reason == "handler_error"
