"""Studio on the real 6-node Redis Cluster (both backends, slow tier).

A ``redis+cluster://`` store URL implies Studio's cluster key layout; its
operations (registry, push ingest, event lists per service and per task,
task search with and without ``service_id`` across services on several
primaries, retention, backfill, health reads, tokens, audit) run on the
real cluster, whose client refuses a call spanning slots before sending
(``CrossSlotError``) and whose servers refuse it too. The default layout's
scripts fail there with ``CrossSlotError``, and choosing the default layout
for a cluster URL is a ``ConfigurationError`` at startup.
"""

from __future__ import annotations

import uuid

import anyio
import orjson
import pytest
from redis_cluster import RedisCluster

from _studio_cluster_ops import exercise, open_test_studio, push, service_body, studio_settings
from relayna.errors import ConfigurationError, CrossSlotError
from relayna.transport import PubSubMessage, ShardedPubSub, open_store
from relayna_studio._events import EventStore
from relayna_studio._registry import Registry
from relayna_studio._search import TaskIndex

pytestmark = [pytest.mark.anyio, pytest.mark.slow_tier]


async def test_studio_ingest_search_detail_and_audit_on_the_cluster(
    redis_cluster: RedisCluster,
) -> None:
    url = redis_cluster.url
    prefix = f"sc-{uuid.uuid4().hex[:10]}"
    sids = [f"svc-{i}" for i in range(5)]
    # the services' slots are served by more than one primary
    assert len({redis_cluster.primary_of(s) for s in sids}) > 1
    tids = ["t1", "t/2", "t:3"]
    settings = studio_settings(url, prefix)
    assert settings.cluster_keys is True  # implied by the cluster URL
    with anyio.fail_after(60):
        async with open_store(url) as store:
            async with open_test_studio(settings, store=store) as studio:
                client = studio.client
                await exercise(studio, sids, tids)
                # task detail from Studio's store, after a second event for the task
                body = {"events": [push(sids[0], "t1", 99, "completed")]}
                assert (await client.post("/studio/ingest/events", json=body)).status_code == 200
                detail = (await client.get(f"/studio/tasks/{sids[0]}/t1/events")).json()
                assert [e["payload"]["status"] for e in detail["items"]] == [
                    "completed",
                    "failed",
                ]
                found = (
                    await client.get("/studio/tasks/search", params={"status": "completed"})
                ).json()
                assert [(d["service_id"], d["task_id"]) for d in found["items"]] == [
                    (sids[0], "t1")
                ]


async def test_the_default_layout_fails_on_the_cluster(redis_cluster: RedisCluster) -> None:
    url = redis_cluster.url
    prefix = f"sd-{uuid.uuid4().hex[:10]}"
    with pytest.raises(ConfigurationError):
        studio_settings(url, prefix, store_cluster_keys=False)
    with anyio.fail_after(30):
        async with open_store(url) as store:
            registry = Registry(store, f"{prefix}:services")
            with pytest.raises(CrossSlotError):
                await registry.create({**service_body("svc", 0), "status": "healthy"})
            index = TaskIndex(store, f"{prefix}:search")
            event = {"service_id": "svc", "task_id": "t1", "timestamp": "2026-05-01T00:00:01Z"}
            with pytest.raises(CrossSlotError):
                await index.upsert({"service_id": "svc"}, [event])
            events = EventStore(store, f"{prefix}:events")
            raw = push("svc", "t1", 1, "running")["event"]
            prepared = events.prepare_many("svc", [raw], "push")
            with pytest.raises(CrossSlotError):  # with a cursor, the failure is raised
                await events.insert("svc", prepared, cursor="c1")


async def test_studio_live_channels_are_sharded_on_the_cluster(redis_cluster: RedisCluster) -> None:
    """An ingested event reaches its service's and its task's sharded channels,
    for services whose slots are on different primaries."""
    url = redis_cluster.url
    prefix = f"sl-{uuid.uuid4().hex[:10]}"
    sids = [f"svc-{i}" for i in range(5)]
    by_primary = {redis_cluster.primary_of(s): s for s in sids}
    assert len(by_primary) > 1
    with anyio.fail_after(60):
        async with open_store(url) as store:
            events = EventStore(store, f"{prefix}:events", cluster=True)
            assert isinstance(store, ShardedPubSub)
            for sid in by_primary.values():
                keys = events.keys
                channels = (keys.service_channel(sid), keys.task_channel(sid, "t1"))
                async with store.ssubscribe(*channels) as subscription:
                    raw = push(sid, "t1", 1, "running")["event"]
                    result = await events.insert(sid, events.prepare_many(sid, [raw], "push"))
                    assert result.inserted == 1
                    heard: dict[str, bytes] = {}
                    async for message in subscription:
                        if isinstance(message, PubSubMessage):
                            heard[message.channel] = bytes(message.data)
                            if len(heard) == 2:
                                break
                assert set(heard) == set(channels)
                assert heard[channels[0]] == heard[channels[1]]
                assert orjson.loads(heard[channels[0]])["task_id"] == "t1"
